//! The web sink: a small dashboard page and an HTTP API on the daemon's tokio runtime (axum),
//! for people setting up a microphone and for Prometheus.
//!
//! - `board`: what the page and the API show, kept from the fan-out's records: the latest
//!   status and prediction, the current events and a bounded history of events.
//! - `server`: binding, the router and its guards (token, `max_clients`, refused bodies,
//!   security headers), and restarting on reload.
//! - `api`: `/api/status`, `/api/events`, `/healthz`, the embedded page.
//! - `stream`: Server-Sent Events: `/api/stream` (the socket's records, filtered as the
//!   socket filters) and `/api/spectrogram` (log-mel columns while a page watches).
//! - `metrics`: `/metrics`, Prometheus' text format.
//! - `clips`: `/clips/<name>`, only plain files hark wrote, by exact name.
//! - `offline`: one request target through the router without a socket (the fuzz target's
//!   front door).
//!
//! Must not: hold up the consumer (a slow client loses records, counted in `dropped`), change
//! any setting (no endpoint writes), accept request bodies, or make the consumer compute
//! spectrogram columns when no page watches.

mod api;
mod board;
mod clips;
mod guard;
mod metrics;
mod offline;
mod page;
mod server;
mod sink;
mod stream;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::validate::{count_in, seconds_in, Checked, Invalid, Problems};

pub use offline::answer as answer_offline;
pub use sink::{start, COUNTERS};

/// `[http]`: the dashboard and API. Off unless enabled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSettings {
    /// Off unless set: hark listens on no TCP port.
    pub enabled: bool,
    /// Address and port to listen on; anything beyond loopback without `token_file` is
    /// warned about at start.
    pub listen: String,
    /// A file whose first line is the token every request must carry (`Authorization:
    /// Bearer <token>`, or `?token=` once, which sets a cookie). Unset: no token.
    pub token_file: Option<PathBuf>,
    /// Requests served at once (an open page holds two streams); one more gets a 503.
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub max_clients: usize,
    /// `/healthz` answers 503 once the consumer's loop has not turned for this many seconds.
    pub stall_timeout: f64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            enabled: false,
            listen: "127.0.0.1:8765".into(),
            token_file: None,
            max_clients: 16,
            stall_timeout: 10.0,
        }
    }
}

/// Longest `stall_timeout`, seconds.
const MAX_STALL: f64 = 3600.0;

impl HttpSettings {
    /// Checks every key; the token file must be readable and hold a usable token.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if let Err(p) = self.address() {
            problems.push(p);
        }
        if let Err(p) = count_in("http.max_clients", self.max_clients, 1, 1024) {
            problems.push(p);
        }
        if let Err(p) = seconds_in("http.stall_timeout", self.stall_timeout, false, MAX_STALL) {
            problems.push(p);
        }
        if self.token_file.is_some() {
            if let Err(p) = self.token() {
                problems.push(p);
            }
        }
        problems.into_result()
    }

    /// `listen` as an address.
    pub fn address(&self) -> Result<SocketAddr, Invalid> {
        self.listen.parse().map_err(|_| {
            Invalid::new(
                "http.listen",
                format!("{:?}", self.listen),
                "not an address",
            )
            .allowed("an IP address and port such as \"127.0.0.1:8765\" or \"[::1]:8765\"")
        })
    }

    /// The token: the first line of `token_file`, trimmed. None without a file.
    pub fn token(&self) -> Result<Option<String>, Invalid> {
        let Some(path) = &self.token_file else {
            return Ok(None);
        };
        let bad = |problem: String| {
            Invalid::new("http.token_file", path.display(), problem).allowed(
                "a readable file whose first line is the token (visible ASCII, no ; , \" \\)",
            )
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let token = text.lines().next().unwrap_or("").trim();
        if token.is_empty() {
            return Err(bad("the first line is empty".into()));
        }
        let cookie_safe = |c: char| c.is_ascii_graphic() && !matches!(c, ';' | ',' | '"' | '\\');
        if !token.chars().all(cookie_safe) {
            return Err(bad("the token has characters a cookie cannot carry".into()));
        }
        Ok(Some(token.to_owned()))
    }
}

/// What the web sink is started with, and given again on reload.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSection {
    pub http: HttpSettings,
    /// Where `/clips/` files are; None when clips are off.
    pub clips_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_off_on_loopback_and_valid() {
        let s: HttpSettings = toml::from_str("").unwrap();
        assert_eq!(s, HttpSettings::default());
        assert!(!s.enabled);
        assert!(s.address().unwrap().ip().is_loopback());
        assert!(s.validate().is_ok());
        let unknown = crate::validate::ignored_keys::<HttpSettings>("listn = \"x\"");
        assert_eq!(unknown, ["listn"]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let s = HttpSettings {
            listen: "localhost".into(),
            max_clients: 0,
            stall_timeout: 0.0,
            token_file: Some("/nonexistent/token".into()),
            ..HttpSettings::default()
        };
        let err = s.validate().unwrap_err().to_string();
        for key in [
            "http.listen",
            "http.max_clients",
            "http.stall_timeout",
            "http.token_file",
        ] {
            assert!(err.contains(key), "{key}: {err}");
        }
    }

    #[test]
    fn the_token_is_the_first_line_and_must_fit_a_cookie() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let with = |text: &str| {
            std::fs::write(&path, text).unwrap();
            HttpSettings {
                token_file: Some(path.clone()),
                ..HttpSettings::default()
            }
            .token()
        };
        assert_eq!(
            with("s3cret\nignored\n").unwrap().as_deref(),
            Some("s3cret")
        );
        assert!(with("\n").is_err());
        assert!(with("a;b").is_err());
        assert!(with("a b").is_err());
    }
}
