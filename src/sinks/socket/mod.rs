//! The socket: subscribers connect to a Unix socket and receive records as newline-delimited
//! JSON. The wire protocol is documented, with an example of every message, in
//! `docs/protocol.md`.
//!
//! Two halves meet in a [`Hub`]. The pipeline thread calls [`Hub::publish`], which serializes
//! the record once and pushes the line into each interested subscriber's bounded queue; a full
//! queue drops the record and counts it. [`serve`] runs on the tokio runtime: it accepts
//! connections (capped by a semaphore), runs one task per subscriber that writes the queue
//! out and reads the subscriber's requests, and on shutdown flushes briefly, closes every
//! connection and removes the socket file.
//!
//! Architecture invariant: `Hub::publish` never blocks on a subscriber, never does I/O and
//! allocates nothing per subscriber — a slow or stalled subscriber costs the pipeline a
//! counter increment. Only this module knows the control messages of the protocol
//! (`hello`, `subscribed`, `error`, `dropped`); records get their shape from `record`.

mod bind;
mod hub;
mod protocol;
mod serve;
mod sink;

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::validate::{count_in, Checked, Invalid, Problems};

pub use bind::{bind, default_socket_path, SocketListener};
pub use hub::Hub;
/// The socket's filters, for the web sink's stream, which filters the same way.
pub(crate) use protocol::{kind_bit, parse_request, Filter};
pub use protocol::{Hello, MAX_REQUEST_LINE, PROTOCOL_VERSION};
pub use serve::serve;
pub use sink::{hello, start, COUNTERS};

/// Errors of binding and serving the socket.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another process answers on the socket path. Stop it, or give this one another path.
    #[error(
        "another hark is already listening on {}; stop it or set socket.path to another file",
        .0.display()
    )]
    InUse(PathBuf),
    /// Something that is not a socket sits at the path; hark will not delete it.
    #[error(
        "{} exists and is not a socket; remove it or set socket.path to another file",
        .0.display()
    )]
    NotASocket(PathBuf),
    /// Unix socket paths are limited by `sun_path` (108 bytes with the terminating NUL).
    #[error("socket path {} is {len} bytes long, the limit is {max}; choose a shorter socket.path", path.display())]
    PathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    /// `socket.mode` is not an octal permission.
    #[error("socket.mode {0:?} is not an octal permission such as \"0660\"")]
    InvalidMode(String),
    /// `socket.group` names no group on this system.
    #[error("socket.group {0:?} is not a group on this system")]
    UnknownGroup(String),
    /// The socket's directory belongs to someone else (only checked for the `/tmp` fallback).
    #[error("{} is not a directory owned by you; remove it or set socket.path", .0.display())]
    UnsafeDirectory(PathBuf),
    #[error("{} has mode {mode:o}: others can write in it and replace the socket; it must be writable by its owner only (e.g. `chmod 0700 {}`), or set socket.path", .path.display(), .path.display())]
    WritableDirectory { path: PathBuf, mode: u32 },
    /// A system call on the path failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Result of this module.
pub type Result<T, E = PublishError> = std::result::Result<T, E>;

/// Whether the socket accepts `line` as a subscriber's request, given the model's `labels`
/// (for `hark::front_door` and its fuzz target).
pub fn request_accepted(line: &[u8], labels: &[String]) -> bool {
    protocol::parse_request(line, &protocol::Filter::default(), labels).is_ok()
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PublishError + 'a {
    move |source| PublishError::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// The `[socket]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SocketSettings {
    /// Where to listen. `None` means [`default_socket_path`].
    pub path: Option<PathBuf>,
    /// Permissions of the socket file, in octal. Connecting needs write permission, so
    /// "0660" lets the owner and `group` subscribe.
    pub mode: String,
    /// Group to give the socket file, so its members may subscribe. `None` keeps the
    /// process's group.
    pub group: Option<String>,
    /// Subscribers served at once; one more gets an `error` and is closed.
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub max_subscribers: usize,
    /// Records queued per subscriber before further records for it are dropped (and counted).
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub queue: usize,
}

impl Default for SocketSettings {
    fn default() -> Self {
        SocketSettings {
            path: None,
            mode: "0660".into(),
            group: None,
            max_subscribers: 64,
            queue: 256,
        }
    }
}

impl SocketSettings {
    /// Checks values that deserialization cannot; each problem names its key.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if let Err(e) = bind::parse_mode(&self.mode) {
            problems.push(
                Invalid::new("socket.mode", format!("{:?}", self.mode), e.to_string())
                    .allowed("an octal permission such as \"0660\""),
            );
        }
        if let Some(path) = &self.path {
            if path.as_os_str().is_empty() {
                problems.push(Invalid::new(
                    "socket.path",
                    "\"\"",
                    "must not be empty (leave it out for the default)",
                ));
            } else if let Err(e) = bind::check_path_len(path) {
                problems.push(Invalid::new("socket.path", path.display(), e.to_string()));
            }
        }
        if self.group.as_deref() == Some("") {
            problems.push(Invalid::new(
                "socket.group",
                "\"\"",
                "must not be empty (leave it out to keep the process's group)",
            ));
        }
        // Bounded so that the semaphore and each subscriber's queue can be allocated.
        for (key, v, max) in [
            ("socket.max_subscribers", self.max_subscribers, 4096),
            ("socket.queue", self.queue, 65_536),
        ] {
            if let Err(p) = count_in(key, v, 1, max) {
                problems.push(p);
            }
        }
        problems.into_result()
    }

    /// The path to listen on: `path`, or [`default_socket_path`].
    pub fn resolved_path(&self) -> PathBuf {
        self.path.clone().unwrap_or_else(default_socket_path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_defaults_and_unknown_keys() {
        let s: SocketSettings = serde_json::from_str("{}").unwrap();
        assert_eq!(s, SocketSettings::default());
        assert!(s.validate().is_ok());
        let mut unknown = Vec::new();
        let mut de = serde_json::Deserializer::from_str(r#"{"queu":3}"#);
        let _: SocketSettings =
            serde_ignored::deserialize(&mut de, |p| unknown.push(p.to_string())).unwrap();
        assert_eq!(unknown, ["queu"]);
        let s = SocketSettings {
            queue: 0,
            ..SocketSettings::default()
        };
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("socket.queue"));
    }
}
