//! `hark run` as a daemon with its Unix socket, for the tests that talk to it over the socket
//! (`daemon_socket`, `daemon_hooks`, `lifecycle`): the command line, the door-knock input built
//! with sox, and a running daemon whose stdout (`--print json`) and stderr are collected.
//!
//! Unlike [`crate::common::hark`], which runs hark with `--no-socket` and parses records into
//! the library's types, this keeps records as JSON values, as a socket client sees them. Every
//! deadline here is multiplied by `HARK_TEST_SLOW` ([`super::slow`]).

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::slow::scaled;

// ---------------------------------------------------------------------------------------------
// The input

/// Where Door5.wav is, under `../shared`.
const DOOR5: &str = "data/recordings/door_knock_Door5.wav";

/// `../shared/data/recordings/door_knock_Door5.wav`, if it is there.
pub fn door5() -> Option<PathBuf> {
    super::shared::shared(DOOR5)
}

/// Tells the test log that the test is skipped when `built` is `None` (no recordings).
pub fn or_skip<T>(built: Option<T>) -> Option<T> {
    if built.is_none() {
        super::shared::say_skipped(DOOR5);
    }
    built
}

/// `knocks` knocks 3 s apart after 1 s of silence, 16 kHz mono, built with sox from `source`
/// (Door5.wav) as `CARGO_TARGET_TMPDIR/name`: the events start at 1, 4, 7, ... s. The first
/// 1.5 s of the recording hold the knocking; 1.5 s of silence end each event.
///
/// Built in a directory of its own and renamed into place: another run of the tests may be
/// building a file of the same name at the same moment.
pub fn knocks_after_a_second(source: &Path, knocks: usize, name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = target.join(name);
    let work = tempfile::tempdir_in(target).unwrap();
    let path = |name: &str| work.path().join(name).to_str().unwrap().to_owned();
    let (lead, knock, built) = (path("lead.wav"), path("knock.wav"), path("built.wav"));
    let source = source.to_str().unwrap();
    let mono = ["-r", "16000", "-c", "1", "-b", "16"];
    super::tools::sox(&[&["-n"], &mono[..], &[&lead, "trim", "0", "1"]].concat());
    super::tools::sox(
        &[
            &[source],
            &mono[..],
            &[&knock, "trim", "0", "1.5", "pad", "0", "1.5"],
        ]
        .concat(),
    );
    let mut parts = vec![lead.as_str()];
    parts.extend(std::iter::repeat_n(knock.as_str(), knocks));
    parts.push(&built);
    super::tools::sox(&parts);
    std::fs::rename(&built, &out).unwrap();
    out
}

// ---------------------------------------------------------------------------------------------
// The command line

/// `hark --log info run --config CONFIG --socket SOCKET --print json` from
/// [`super::hark::command`] (the crate's root, a clean environment), without colour in its
/// log. The caller adds the input.
pub fn hark_command(config: &Path, socket: &Path) -> Command {
    let mut c = super::hark::command();
    c.env("NO_COLOR", "1");
    c.args(["--log", "info", "run", "--config"])
        .arg(config)
        .arg("--socket")
        .arg(socket)
        .args(["--print", "json"]);
    c
}

/// [`hark_command`] with `config` (TOML) written beside the socket (`SOCKET` with the extension
/// `.toml`), `--input INPUT` played at real time, and `--exit-at-end` if `exit_at_end`.
pub fn hark_run(config: &str, input: &Path, socket: &Path, exit_at_end: bool) -> Command {
    let config_path = socket.with_extension("toml");
    std::fs::write(&config_path, config).unwrap();
    let mut c = hark_command(&config_path, socket);
    c.arg("--input").arg(input);
    if exit_at_end {
        c.arg("--exit-at-end");
    }
    c
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// A `hark run` child. Dropping it kills the child if the test did not stop it.
pub struct Daemon {
    child: Child,
    socket: PathBuf,
    /// Every line printed on stdout, as printed and parsed.
    stdout: Arc<Mutex<Vec<(String, Value)>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
    /// When the child was started.
    spawned: Instant,
}

impl Daemon {
    /// Starts [`hark_run`] and returns once it answers on its socket with a hello.
    pub fn start(config: &str, input: &Path, socket: &Path, exit_at_end: bool) -> Daemon {
        let mut d = Daemon::spawn(hark_run(config, input, socket, exit_at_end), socket);
        d.wait_ready();
        d
    }

    /// Spawns `command`, collecting its stdout (every line must be JSON) and stderr, without
    /// waiting for anything.
    pub fn spawn(mut command: Command, socket: &Path) -> Daemon {
        let spawned = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let lines = stdout.clone();
        let r1 = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(raw) = line else { break };
                let record = serde_json::from_str(&raw)
                    .unwrap_or_else(|e| panic!("hark printed a line that is not JSON: {e}: {raw}"));
                lines.lock().unwrap().push((raw, record));
            }
        });
        let mut err = child.stderr.take().unwrap();
        let text = stderr.clone();
        let r2 = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                text.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Daemon {
            child,
            socket: socket.to_owned(),
            stdout,
            stderr,
            readers: vec![r1, r2],
            status: None,
            spawned,
        }
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Waits until a connection to the socket gets a hello (a stale file refuses connections,
    /// so this also waits for hark to replace one), at most 20 s ([`scaled`]). Says in the test
    /// log how long it took from the spawn.
    pub fn wait_ready(&mut self) {
        let limit = scaled(Duration::from_secs(20));
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(s) = UnixStream::connect(&self.socket) {
                s.set_read_timeout(Some(scaled(Duration::from_secs(5))))
                    .unwrap();
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.contains("\"hello\"") {
                    eprintln!(
                        "hark served {} {:.1} s after its spawn",
                        self.socket.display(),
                        self.spawned.elapsed().as_secs_f64()
                    );
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                panic!(
                    "hark exited with {status} before serving {}; stderr:\n{}",
                    self.socket.display(),
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "hark did not serve {} within {limit:?}; stderr:\n{}",
                self.socket.display(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What hark logged so far, without terminal escapes.
    pub fn stderr(&self) -> String {
        strip_ansi(&self.stderr.lock().unwrap())
    }

    /// Waits up to `timeout` ([`scaled`]) for a log line containing all of `parts`, and returns
    /// it.
    pub fn wait_for_log(&self, timeout: Duration, parts: &[&str]) -> String {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "hark logged no line with {parts:?}; stderr:\n{text}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every line printed so far, raw and parsed.
    pub fn printed(&self) -> Vec<(String, Value)> {
        self.stdout.lock().unwrap().clone()
    }

    /// Every record printed so far.
    pub fn records(&self) -> Vec<Value> {
        let lines = self.stdout.lock().unwrap();
        lines.iter().map(|(_, v)| v.clone()).collect()
    }

    /// What a subscriber with the default subscription should have received: every record
    /// but the predictions.
    pub fn published(&self) -> Vec<Value> {
        let mut r = self.records();
        r.retain(|v| kind(v) != "prediction");
        r
    }

    /// The `id`s of the `event_start` records printed so far.
    pub fn start_ids(&self) -> Vec<u64> {
        self.records()
            .iter()
            .filter(|v| kind(v) == "event_start")
            .map(|v| v["id"].as_u64().unwrap())
            .collect()
    }

    /// Waits up to `timeout` ([`scaled`]) for a printed record that `wanted` accepts.
    pub fn wait_for(&self, timeout: Duration, wanted: impl Fn(&Value) -> bool) -> bool {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.records().iter().any(&wanted) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Waits for the final `status` hark prints when the input ends.
    pub fn wait_for_end_of_input(&self) {
        assert!(
            self.wait_for(Duration::from_secs(30), |v| {
                kind(v) == "status" && v["message"] == "end of input"
            }),
            "no end-of-input status within 30 s (times HARK_TEST_SLOW); stderr:\n{}",
            self.stderr()
        );
    }

    /// Waits for the exit (killing the child after `timeout`, [`scaled`]) and for its output to
    /// close.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let timeout = scaled(timeout);
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.status.or_else(|| self.child.try_wait().unwrap()) {
                break s;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "hark did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        self.status = Some(status);
        for r in self.readers.drain(..) {
            r.join().expect("output reader");
        }
        status
    }

    /// SIGTERM, then the exit within 10 s, which must be a success.
    pub fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(unsafe { libc::kill(self.pid(), libc::SIGTERM) }, 0);
        let status = self.wait_exit(Duration::from_secs(10));
        assert!(
            status.success(),
            "hark exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr()
        );
    }

    /// The exit at the end of the input (`--exit-at-end`), which must be a success.
    pub fn finish(&mut self) {
        let status = self.wait_exit(Duration::from_secs(40));
        assert!(
            status.success(),
            "hark exited with {status}; stderr:\n{}",
            self.stderr()
        );
    }

    pub fn kill(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `s` without CSI escape sequences (ESC [ parameters final-byte).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A record's (or socket line's) `type`; "" when it has none.
pub fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}
