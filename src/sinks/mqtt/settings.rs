//! The `[mqtt]` section: where the broker is, who hark is on it, and its validation; the
//! broker's address parsed from `url`, and the defaults taken from the host name.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::validate::{Checked, Invalid, Problems};

/// `[mqtt]`: publish events, states and health to an MQTT broker (docs/mqtt.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MqttSettings {
    /// Off unless set: hark publishes nothing to MQTT.
    pub enabled: bool,
    /// `mqtt://host[:port]` (1883 by default) or `mqtts://host[:port]` (TLS, 8883).
    pub url: String,
    pub username: Option<String>,
    /// Not printed by `check-config`; `password_file` keeps it out of the config file.
    #[serde(skip_serializing)]
    pub password: Option<String>,
    /// A file whose first line is the password.
    pub password_file: Option<PathBuf>,
    /// MQTT client id; unset: `hark-<hostname>`. Two clients with one id cut each other off.
    pub client_id: Option<String>,
    /// This hark's name in topics and Home Assistant ids, `[a-z0-9_-]`; unset: the host name.
    pub node: Option<String>,
    /// First level of every topic: `<topic_prefix>/<node>/...`.
    pub topic_prefix: String,
    /// QoS of events and states, 0 or 1.
    pub qos: u8,
    /// Seconds between keep-alive pings; the broker declares hark gone (Last Will) after 1.5×.
    pub keepalive: f64,
    /// Seconds over which the level is summarised (min / mean / max) into one message.
    pub level_interval: f64,
    /// Messages held while the broker is unreachable; more are dropped and counted.
    pub queue: usize,
    /// CA certificates (PEM) to trust for `mqtts://`; unset: the system's.
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for brokers that ask for one; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub homeassistant: HomeAssistantSettings,
    /// Accept commands on `<topic_prefix>/<node>/set` (mute, thresholds, level gate), answered
    /// on `.../set/result`, and offer Home Assistant a mute `switch` per listened sound.
    pub commands: bool,
}

/// `[mqtt.homeassistant]`: Home Assistant MQTT discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HomeAssistantSettings {
    /// Publish discovery configs so Home Assistant creates hark's entities by itself.
    pub discovery: bool,
    /// Home Assistant's discovery prefix; its birth message is `<prefix>/status`.
    pub prefix: String,
}

impl Default for HomeAssistantSettings {
    fn default() -> Self {
        HomeAssistantSettings {
            discovery: true,
            prefix: "homeassistant".into(),
        }
    }
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            enabled: false,
            url: "mqtt://127.0.0.1:1883".into(),
            username: None,
            password: None,
            password_file: None,
            client_id: None,
            node: None,
            topic_prefix: "hark".into(),
            qos: 1,
            keepalive: 30.0,
            level_interval: 10.0,
            queue: 1000,
            ca_file: None,
            cert_file: None,
            key_file: None,
            homeassistant: HomeAssistantSettings::default(),
            commands: false,
        }
    }
}

/// The broker's address, from `url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Broker {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]` (IPv6 in brackets).
    pub fn parse(url: &str) -> Result<Broker, Invalid> {
        let bad = |problem: &str| {
            Invalid::new("mqtt.url", format!("{url:?}"), problem)
                .allowed("mqtt://host[:port] or mqtts://host[:port]")
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (tls, default_port) = match scheme {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            _ => return Err(bad("unknown scheme")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(bad("a path, query or user in the URL is not used"));
        }
        let (host, port) = split_host_port(rest).ok_or_else(|| bad("bad port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Broker {
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
            tls,
        })
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; None for a bad port.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    match port {
        None => Some((host, None)),
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .map(|p| (host, Some(p))),
    }
}

/// The host name, sanitized for a topic level: lower case, `[a-z0-9_-]`, else `_`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let clean = sanitize_node(&raw);
    if clean.is_empty() {
        "hark".into()
    } else {
        clean
    }
}

/// `s` in `[a-z0-9_-]`: lower case, anything else becomes `_`.
pub fn sanitize_node(s: &str) -> String {
    s.trim()
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl MqttSettings {
    /// The node name: `node`, else the sanitized host name.
    pub fn node(&self) -> String {
        self.node.clone().unwrap_or_else(hostname)
    }

    /// The client id: `client_id`, else `hark-<hostname>`.
    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("hark-{}", hostname()))
    }

    /// The password: `password`, else the first line of `password_file`.
    pub fn password(&self) -> std::io::Result<Option<String>> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        match &self.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)?;
                Ok(Some(text.lines().next().unwrap_or("").to_owned()))
            }
            None => Ok(None),
        }
    }

    /// Every check; the files only when MQTT is on (a section that is off may name files
    /// of another machine).
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        let broker = Broker::parse(&self.url);
        if let Err(p) = &broker {
            problems.push(p.clone());
        }
        self.check_names(&mut problems);
        self.check_numbers(&mut problems);
        self.check_credentials(&mut problems);
        let tls = broker.map(|b| b.tls).unwrap_or(true);
        self.check_tls(tls, &mut problems);
        problems.into_result()
    }

    fn check_names(&self, problems: &mut Problems) {
        if let Some(p) = topic_level_problem(&self.topic_prefix) {
            problems.push(Invalid::new(
                "mqtt.topic_prefix",
                format!("{:?}", self.topic_prefix),
                p,
            ));
        }
        let ha = &self.homeassistant.prefix;
        if let Some(p) = topic_level_problem(ha) {
            problems.push(Invalid::new(
                "mqtt.homeassistant.prefix",
                format!("{ha:?}"),
                p,
            ));
        }
        if let Some(node) = &self.node {
            if node.is_empty() || sanitize_node(node) != *node {
                problems.push(
                    Invalid::new("mqtt.node", format!("{node:?}"), "not a plain name")
                        .allowed("lower-case letters, digits, - and _"),
                );
            }
        }
        if let Some(id) = &self.client_id {
            if id.trim().is_empty() || id.len() > 256 {
                problems.push(
                    Invalid::new("mqtt.client_id", format!("{id:?}"), "empty or too long")
                        .allowed("1 to 256 characters"),
                );
            }
        }
    }

    fn check_numbers(&self, problems: &mut Problems) {
        if self.qos > 1 {
            problems.push(Invalid::new("mqtt.qos", self.qos, "not supported").allowed("0 or 1"));
        }
        if !(self.keepalive.is_finite() && (5.0..=3600.0).contains(&self.keepalive)) {
            problems.push(
                Invalid::new("mqtt.keepalive", self.keepalive, "out of range")
                    .allowed("5 to 3600 seconds"),
            );
        }
        let li = self.level_interval;
        if !(li.is_finite() && (0.5..=86_400.0).contains(&li)) {
            problems.push(
                Invalid::new("mqtt.level_interval", li, "out of range")
                    .allowed("0.5 to 86400 seconds"),
            );
        }
        if !(1..=1_000_000).contains(&self.queue) {
            problems.push(
                Invalid::new("mqtt.queue", self.queue, "out of range").allowed("1 to 1000000"),
            );
        }
    }

    fn check_credentials(&self, problems: &mut Problems) {
        if let (Some(_), Some(file)) = (&self.password, &self.password_file) {
            problems.push(
                Invalid::new(
                    "mqtt.password_file",
                    file.display(),
                    "given together with mqtt.password",
                )
                .allowed("one of password and password_file"),
            );
        }
        if (self.password.is_some() || self.password_file.is_some()) && self.username.is_none() {
            problems.push(Invalid::new(
                "mqtt.username",
                "(unset)",
                "a password needs a user name",
            ));
        }
        if self.enabled {
            readable(
                "mqtt.password_file",
                self.password_file.as_deref(),
                problems,
            );
        }
    }

    fn check_tls(&self, tls: bool, problems: &mut Problems) {
        let files = [
            ("mqtt.ca_file", &self.ca_file),
            ("mqtt.cert_file", &self.cert_file),
            ("mqtt.key_file", &self.key_file),
        ];
        for (key, file) in files {
            if let Some(f) = file {
                if !tls {
                    problems.push(
                        Invalid::new(key, f.display(), "TLS files need a TLS url")
                            .allowed(format!("mqtts://... in mqtt.url (now {:?})", self.url)),
                    );
                } else if self.enabled {
                    readable(key, Some(f), problems);
                }
            }
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            let (key, other) = if self.cert_file.is_some() {
                ("mqtt.key_file", "mqtt.cert_file")
            } else {
                ("mqtt.cert_file", "mqtt.key_file")
            };
            problems.push(Invalid::new(key, "(unset)", format!("needed with {other}")));
        }
    }
}

/// Why `s` cannot be a fixed part of a topic, if it cannot.
fn topic_level_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        Some("must not be empty")
    } else if s.contains(['+', '#', '\0']) {
        Some("must not contain + # or NUL (MQTT wildcards)")
    } else if s.starts_with('/') || s.ends_with('/') {
        Some("must not start or end with /")
    } else {
        None
    }
}

/// Adds a problem for `key` when `path` is given but cannot be read.
fn readable(key: &str, path: Option<&Path>, problems: &mut Problems) {
    if let Some(path) = path {
        if let Err(e) = std::fs::File::open(path) {
            problems.push(Invalid::new(
                key,
                path.display(),
                format!("cannot be read: {e}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::ignored_keys as ignored;

    #[test]
    fn urls_parse_with_default_ports_and_bad_ones_name_the_key() {
        let b = Broker::parse("mqtt://broker.lan").unwrap();
        assert_eq!(
            (b.host.as_str(), b.port, b.tls),
            ("broker.lan", 1883, false)
        );
        let b = Broker::parse("mqtts://10.0.0.2:9999").unwrap();
        assert_eq!((b.host.as_str(), b.port, b.tls), ("10.0.0.2", 9999, true));
        let b = Broker::parse("mqtt://[::1]:1884").unwrap();
        assert_eq!((b.host.as_str(), b.port), ("::1", 1884));
        for bad in [
            "http://x",
            "broker:1883",
            "mqtt://",
            "mqtt://x:0",
            "mqtt://x:99999",
            "mqtt://x/a",
        ] {
            let e = Broker::parse(bad).unwrap_err().to_string();
            assert!(e.starts_with("mqtt.url = "), "{e}");
        }
    }

    #[test]
    fn validate_names_each_key() {
        let with = |f: fn(&mut MqttSettings)| {
            let mut s = MqttSettings {
                enabled: true,
                ..Default::default()
            };
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        type Case = (fn(&mut MqttSettings), &'static str);
        let cases: [Case; 11] = [
            (|s| s.qos = 2, "mqtt.qos = 2"),
            (|s| s.keepalive = 0.0, "mqtt.keepalive = 0"),
            (|s| s.level_interval = -1.0, "mqtt.level_interval = -1"),
            (|s| s.queue = 0, "mqtt.queue = 0"),
            (|s| s.topic_prefix = "a/#".into(), "mqtt.topic_prefix = "),
            (|s| s.node = Some("Kitchen Pi".into()), "mqtt.node = "),
            (
                |s| s.homeassistant.prefix = String::new(),
                "mqtt.homeassistant.prefix = ",
            ),
            (|s| s.password = Some("x".into()), "mqtt.username = "),
            (
                |s| s.ca_file = Some("/ca.pem".into()),
                "mqtt.ca_file = /ca.pem: TLS files",
            ),
            (
                |s| {
                    s.url = "mqtts://x".into();
                    s.ca_file = Some("/nonexistent/ca.pem".into());
                },
                "mqtt.ca_file = /nonexistent/ca.pem: cannot be read",
            ),
            (
                |s| {
                    s.url = "mqtts://x".into();
                    s.cert_file = Some("/etc/hostname".into());
                },
                "mqtt.key_file = (unset): needed with mqtt.cert_file",
            ),
        ];
        for (f, want) in cases {
            let err = with(f);
            assert!(err.starts_with(want), "{err}\nwanted: {want}");
        }
        assert!(MqttSettings::default().validate().is_ok());
    }

    #[test]
    fn defaults_from_the_host_name_and_unknown_keys_reported() {
        assert_eq!(sanitize_node("Kitchen-Pi.local"), "kitchen-pi_local");
        let s = MqttSettings::default();
        assert!(s.client_id().starts_with("hark-"));
        assert!(!s.node().is_empty());
        #[derive(Deserialize)]
        struct File {
            #[allow(dead_code)]
            mqtt: MqttSettings,
        }
        let keys = ignored::<File>(
            "[mqtt]\nenabled = true\nhost = \"x\"\n[mqtt.homeassistant]\nprefx = \"h\"\n",
        );
        assert_eq!(keys, ["mqtt.host", "mqtt.homeassistant.prefx"]);
    }
}
