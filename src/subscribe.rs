//! `hark subscribe`: a client of the daemon's socket.
//!
//! Connects, sends one request saying what it wants, and prints what arrives: readable lines
//! by default, the raw JSON lines with `--json`. When the daemon goes away (restart, upgrade)
//! it reconnects with exponential backoff, forever. It speaks only the documented protocol
//! (docs/protocol.md), exactly as any other program would. `mqtt` does the same from an MQTT
//! broker (`hark subscribe --mqtt URL`).

mod mqtt;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use mqtt::{follow_mqtt, MqttSubscribeOptions};

/// What to ask the daemon for.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    pub socket: PathBuf,
    /// Also receive `prediction` records (one per window).
    pub predictions: bool,
    /// Only events with these labels (empty: all).
    pub labels: Vec<String>,
    /// Print raw JSON lines.
    pub json: bool,
    /// Give up after this many failed connection attempts in a row (None: never).
    pub max_attempts: Option<u32>,
}

/// The socket to try when none is given: where `hark run` would listen in this session, or
/// else the system service's socket if it exists.
pub fn default_socket() -> PathBuf {
    let own = crate::sinks::socket::default_socket_path();
    let system = Path::new("/run/hark/hark.sock");
    if !own.exists() && system.exists() {
        system.to_path_buf()
    } else {
        own
    }
}

const BACKOFF_START: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The request line sent after connecting.
pub fn request(opts: &SubscribeOptions) -> String {
    let mut types = vec!["event_start", "event_end", "status"];
    if opts.predictions {
        types.push("prediction");
    }
    serde_json::json!({ "subscribe": types, "labels": opts.labels }).to_string()
}

/// Run until stdout closes or `max_attempts` connection attempts in a row fail.
pub fn follow(opts: &SubscribeOptions) -> anyhow::Result<()> {
    let mut backoff = BACKOFF_START;
    let mut failures = 0u32;
    loop {
        match session(opts) {
            Ok(Session::StdoutClosed) => return Ok(()),
            Ok(Session::ServerClosed) => {
                eprintln!("hark subscribe: connection closed; reconnecting");
                failures = 0;
                backoff = BACKOFF_START;
            }
            Err(e) => {
                failures += 1;
                if opts.max_attempts.is_some_and(|m| failures >= m) {
                    anyhow::bail!("cannot connect to {}: {e}", opts.socket.display());
                }
                if failures == 1 {
                    eprintln!(
                        "hark subscribe: cannot connect to {}: {e}; retrying (is `hark run` running?)",
                        opts.socket.display()
                    );
                }
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

enum Session {
    ServerClosed,
    StdoutClosed,
}

fn session(opts: &SubscribeOptions) -> std::io::Result<Session> {
    let stream = connect(&opts.socket)?;
    let mut writer = stream.try_clone()?;
    writeln!(writer, "{}", request(opts))?;
    let stdout = std::io::stdout();
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        let text = if opts.json {
            Some(line)
        } else {
            readable(&line)
        };
        if let Some(text) = text {
            let mut out = stdout.lock();
            if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
                return Ok(Session::StdoutClosed);
            }
        }
    }
    Ok(Session::ServerClosed)
}

fn connect(path: &Path) -> std::io::Result<UnixStream> {
    UnixStream::connect(path)
}

/// One record as a short readable line (None for records not worth a line).
pub fn readable(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
    let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
    Some(match v["type"].as_str()? {
        "hello" => format!(
            "connected: model {}, {} labels, window {} s, hop {} s",
            s("model"),
            v["labels"].as_array().map_or(0, Vec::len),
            f("window"),
            f("hop")
        ),
        "event_start" => format!("{:9.2}s  start  {}  (score {:.2})", f("start"), s("label"), f("score")),
        "event_end" => format!(
            "{:9.2}s  end    {}  ({:.1} s, peak {:.2})",
            f("end"),
            s("label"),
            f("end") - f("start"),
            f("peak")
        ),
        "prediction" => {
            let top: Vec<String> = v["top"]
                .as_array()?
                .iter()
                .take(3)
                .map(|t| format!("{} {:.2}", t["label"].as_str().unwrap_or(""), t["score"].as_f64().unwrap_or(0.0)))
                .collect();
            format!("{:9.2}s  {:>6.1} dBFS  {}", f("start"), f("level_db"), top.join("  |  "))
        }
        "status" => format!(
            "{:9.2}s  status: overruns {}, skipped windows {}, inference {:.1} ms, level {:.1} dBFS{}",
            f("start"),
            v["overruns"],
            v["skipped_windows"],
            f("inference_ms"),
            f("level_db"),
            v["message"].as_str().map(|m| format!(" ({m})")).unwrap_or_default()
        ),
        "dropped" => format!("(this client was too slow: {} records dropped)", v["count"]),
        "error" => format!("error from hark: {}", s("message")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_asks_for_predictions_only_when_wanted() {
        let mut o = SubscribeOptions {
            socket: "/x".into(),
            predictions: false,
            labels: vec!["Knock".into()],
            json: false,
            max_attempts: None,
        };
        let v: serde_json::Value = serde_json::from_str(&request(&o)).unwrap();
        assert_eq!(v["labels"][0], "Knock");
        assert!(!v["subscribe"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "prediction"));
        o.predictions = true;
        assert!(request(&o).contains("prediction"));
    }

    #[test]
    fn readable_event_lines() {
        let l = readable(r#"{"type":"event_end","id":1,"label":"Knock","start":1.0,"end":3.5,"time":"t","peak":0.9}"#).unwrap();
        assert!(
            l.contains("end") && l.contains("Knock") && l.contains("2.5 s"),
            "{l}"
        );
        assert!(readable("not json").is_none());
    }
}
