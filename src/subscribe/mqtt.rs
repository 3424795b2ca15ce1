//! `hark subscribe --mqtt URL`: the same output as the socket subscriber, from the `event`
//! and `status` topics of one hark (`--node N`) or of every hark on the broker (`+`, the
//! default), so one terminal follows a house of Pis. With every node, each readable line
//! starts with `[node]`; `--json` prints the payloads as published (they carry `node`).
//! Reconnects with a backoff, forever unless `--max-attempts` says otherwise.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use serde_json::Value;

use super::{readable, BACKOFF_MAX, BACKOFF_START};
use crate::sinks::mqtt::{describe_connection_error, tls_config, Broker, MqttSettings};

/// What `hark subscribe --mqtt` was asked for.
#[derive(Debug, Clone)]
pub struct MqttSubscribeOptions {
    pub url: String,
    /// A node name, or `+` for every node.
    pub node: String,
    pub topic_prefix: String,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Only events with these labels or groups (empty: all).
    pub labels: Vec<String>,
    pub json: bool,
    pub max_attempts: Option<u32>,
}

impl MqttSubscribeOptions {
    /// The `[mqtt]` settings these flags stand for (for the URL, login and TLS checks).
    fn settings(&self) -> MqttSettings {
        MqttSettings {
            enabled: true,
            url: self.url.clone(),
            username: self.username.clone(),
            password_file: self.password_file.clone(),
            ca_file: self.ca_file.clone(),
            topic_prefix: self.topic_prefix.clone(),
            ..MqttSettings::default()
        }
    }

    /// The line to print for `payload` on `topic`, if any.
    fn line(&self, payload: &[u8]) -> Option<String> {
        let text = std::str::from_utf8(payload).ok()?;
        let v: Value = serde_json::from_str(text).ok()?;
        if !self.labels.is_empty() && v["label"].is_string() {
            let wanted = |k: &str| {
                v[k].as_str()
                    .is_some_and(|x| self.labels.iter().any(|l| l == x))
            };
            if !(wanted("label") || wanted("group")) {
                return None;
            }
        }
        if self.json {
            return Some(text.to_owned());
        }
        let line = readable(text)?;
        Some(match (self.node.as_str(), v["node"].as_str()) {
            ("+", Some(node)) => format!("[{node}] {line}"),
            _ => line,
        })
    }
}

/// Run until stdout closes or `max_attempts` connection attempts in a row fail.
pub fn follow_mqtt(opts: &MqttSubscribeOptions) -> anyhow::Result<()> {
    opts.settings().validate()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the MQTT client's runtime")?;
    rt.block_on(follow(opts))
}

fn options(opts: &MqttSubscribeOptions) -> anyhow::Result<MqttOptions> {
    let s = opts.settings();
    let broker = Broker::parse(&s.url)?;
    let id = format!("hark-subscribe-{}", std::process::id());
    let mut o = MqttOptions::new(id, broker.host, broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    if let Some(user) = &s.username {
        let password = s.password().context("reading --password-file")?;
        o.set_credentials(user.clone(), password.unwrap_or_default());
    }
    if broker.tls {
        let tls = tls_config(&s)?;
        o.set_transport(Transport::Tls(TlsConfiguration::Rustls(Arc::new(tls))));
    }
    Ok(o)
}

async fn follow(opts: &MqttSubscribeOptions) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(options(opts)?, 16);
    let base = format!("{}/{}", opts.topic_prefix, opts.node);
    let (mut failures, mut backoff) = (0u32, BACKOFF_START);
    let stdout = std::io::stdout();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                (failures, backoff) = (0, BACKOFF_START);
                for topic in ["event", "status"] {
                    let _ = client.try_subscribe(format!("{base}/{topic}"), QoS::AtLeastOnce);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(line) = opts.line(&p.payload) {
                    let mut out = stdout.lock();
                    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                        return Ok(());
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                let cause = describe_connection_error(&e);
                if opts.max_attempts.is_some_and(|m| failures >= m) {
                    anyhow::bail!("cannot connect to {}: {cause}", opts.url);
                }
                if failures == 1 {
                    eprintln!(
                        "hark subscribe: cannot connect to {}: {cause}; retrying",
                        opts.url
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_follow_the_socket_subscriber_with_the_node_for_every_node_and_labels_filter() {
        let mut o = MqttSubscribeOptions {
            url: "mqtt://x".into(),
            node: "+".into(),
            topic_prefix: "hark".into(),
            username: None,
            password_file: None,
            ca_file: None,
            labels: vec!["smoke_alarm".into()],
            json: false,
            max_attempts: None,
        };
        let ev = br#"{"type":"event_start","id":1,"label":"Smoke detector, smoke alarm","group":"smoke_alarm","start":15.0,"time":"t","score":0.5,"node":"pi"}"#;
        let plain = readable(std::str::from_utf8(ev).unwrap()).unwrap();
        assert_eq!(o.line(ev).unwrap(), format!("[pi] {plain}"));
        o.node = "pi".into();
        assert_eq!(o.line(ev).unwrap(), plain);
        o.labels = vec!["Knock".into()];
        assert!(o.line(ev).is_none());
        assert!(o.line(b"not json").is_none());
    }
}
