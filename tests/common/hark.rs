//! Running the real `hark` binary from integration tests: its command line, feeding it, reading
//! the JSON records it prints, watching it while it runs and stopping it with SIGTERM.
//!
//! Every child starts from [`command`]: the crate's root as its working directory and an
//! environment without `HARK_*`, `RUST_LOG`, ALSA or systemd variables, so that the developer's
//! shell does not change what a test sees. [`HarkRun`] adds `--log warn --config FILE
//! --no-socket --print json`, with a config file the test writes (or an empty one), so that
//! `/etc/hark/hark.toml` does not either. Records are parsed into the library's own [`Record`]
//! type: a line that does not parse fails the test. Every deadline here is multiplied by
//! `HARK_TEST_SLOW` ([`super::slow`]) when the child runs under an emulator.

use std::ffi::OsStr;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hark::record::Record;

use super::slow::scaled;

/// The crate's root: the child's working directory, so `models/` and `third_party/` resolve.
pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether the environment variable `name`, when the test process has it, would change what a
/// `hark` child does: hark's own configuration (`HARK_<SECTION>__<KEY>`, `HARK_LOG`, ...), its
/// log filter, the ALSA configuration, and what systemd gives a service.
fn is_ambient(name: &str) -> bool {
    name.starts_with("HARK_")
        || matches!(
            name,
            "RUST_LOG"
                | "NOTIFY_SOCKET"
                | "WATCHDOG_USEC"
                | "WATCHDOG_PID"
                | "INVOCATION_ID"
                | "RUNTIME_DIRECTORY"
                | "ALSA_CONFIG_PATH"
        )
}

/// The `hark` binary under test, to run in the crate's root, with none of the test process's
/// [`is_ambient`] variables. The caller adds the arguments (and any variable the test means).
///
/// When the tests are a cross build running under an emulator, the host cannot exec the binary
/// itself: `scripts/test-aarch64.sh` names the emulator in `HARK_TEST_EMULATOR`
/// (`qemu-aarch64-static`, which takes its sysroot and CPU from `QEMU_LD_PREFIX` and `QEMU_CPU`),
/// and the binary runs through it.
pub fn command() -> Command {
    let exe = env!("CARGO_BIN_EXE_hark");
    let mut command = match std::env::var_os("HARK_TEST_EMULATOR") {
        Some(emulator) => {
            let mut command = Command::new(emulator);
            command.arg(exe);
            command
        }
        None => Command::new(exe),
    };
    command.current_dir(manifest_dir());
    for (key, _) in std::env::vars_os() {
        if is_ambient(&key.to_string_lossy()) {
            command.env_remove(&key);
        }
    }
    command
}

/// Window and hop of the default model, in seconds, from its manifest (`models/ced-tiny.toml`),
/// so tolerances follow the model rather than a copy of its numbers.
pub fn model_window_and_hop() -> (f64, f64) {
    let path = manifest_dir().join("models/ced-tiny.toml");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {} (run scripts/setup.sh): {e}", path.display()));
    let manifest: toml::Value = toml::from_str(&text).expect("the manifest is TOML");
    let get = |key: &str| {
        manifest
            .get(key)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .unwrap_or_else(|| panic!("{} has no numeric {key}", path.display()))
    };
    (get("window"), get("hop"))
}

/// Writes `toml` to `dir/name` and returns the path, for `--config`.
pub fn write_config(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, toml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

/// The first time (seconds) at which a 10 ms block of `path`, as mono at 16 kHz, is louder than
/// `threshold_db` dBFS: the true onset of a sound placed in silence.
pub fn onset_seconds(path: &Path, threshold_db: f32) -> f64 {
    let rate = 16_000;
    let samples = hark::audio::load_mono(path, rate).expect("decode the test audio");
    let block = rate as usize / 100;
    samples
        .chunks(block)
        .position(|b| hark::pipeline::level_dbfs(b) > threshold_db)
        .map(|i| (i * block) as f64 / f64::from(rate))
        .unwrap_or_else(|| panic!("{} never exceeds {threshold_db} dBFS", path.display()))
}

/// A `hark` command line under construction. `hark --log warn run --config CONFIG --no-socket
/// --print json`, then whatever the test adds.
pub struct HarkRun {
    command: Command,
}

impl HarkRun {
    pub fn new(config: &Path) -> HarkRun {
        let mut command = command();
        command.args(["--log", "warn", "run", "--config"]);
        command.arg(config);
        command.args(["--no-socket", "--print", "json"]);
        HarkRun { command }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> HarkRun {
        self.command.arg(arg);
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: &[S]) -> HarkRun {
        self.command.args(args);
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> HarkRun {
        self.command.env(key, value);
        self
    }

    /// Runs to the end with nothing on stdin; panics if it takes longer than `timeout`.
    pub fn run_to_end(self, timeout: Duration) -> Finished {
        self.run_to_end_feeding(timeout, drop)
    }

    /// Runs to the end while `feed` writes the child's stdin on a thread of its own (stdin is
    /// closed when `feed` returns); panics if it takes longer than `timeout`.
    pub fn run_to_end_feeding<F>(self, timeout: Duration, feed: F) -> Finished
    where
        F: FnOnce(ChildStdin) + Send + 'static,
    {
        let started = Instant::now();
        let mut running = self.start(Stdio::piped());
        let stdin = running.child.stdin.take().expect("stdin is piped");
        let feeder = thread::spawn(move || feed(stdin));
        let status = running.wait_exit(timeout).unwrap_or_else(|| {
            running.kill();
            panic!(
                "hark did not finish within {timeout:?}; stderr:\n{}",
                running.collect_stderr()
            )
        });
        let elapsed = started.elapsed();
        // A feeder that met a closed pipe has nothing more to do; its result does not matter.
        let _ = feeder.join();
        running.finish(status, elapsed)
    }

    /// Starts the daemon and returns while it runs.
    pub fn spawn(self) -> Daemon {
        let mut daemon = self.start(Stdio::null());
        daemon.started = Instant::now();
        daemon
    }

    fn start(mut self, stdin: Stdio) -> Daemon {
        let mut child = self
            .command
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.command));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        let stdout_reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let parsed =
                    serde_json::from_str::<Record>(&line).map_err(|e| format!("{e}: {line}"));
                if tx.send(parsed).is_err() {
                    break;
                }
            }
        });
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let stderr_reader = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        Daemon {
            pid: child.id() as libc::pid_t,
            child,
            rx,
            records: Vec::new(),
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
            started: Instant::now(),
            exited: false,
        }
    }
}

/// A `hark run` that has exited.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Every record it printed, in order.
    pub records: Vec<Record>,
    pub stderr: String,
    /// From start (or, for a stopped daemon, from SIGTERM) to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Panics with the stderr unless the exit code is 0.
    pub fn assert_success(&self) -> &Finished {
        assert!(
            self.status.success(),
            "hark exited with {}; stderr:\n{}",
            self.status,
            self.stderr
        );
        self
    }

    /// `(label, start)` of every `event_start`, in order.
    pub fn event_starts(&self) -> Vec<(String, f64)> {
        event_starts(&self.records)
    }

    /// Every `status` record, in order.
    pub fn statuses(&self) -> Vec<&Record> {
        self.records
            .iter()
            .filter(|r| matches!(r, Record::Status { .. }))
            .collect()
    }

    /// The last `status` record: the one hark writes as it stops.
    pub fn final_status(&self) -> &Record {
        self.statuses()
            .last()
            .unwrap_or_else(|| panic!("no status record; stderr:\n{}", self.stderr))
    }

    /// `(start, top-1 label, its score)` of every scored `prediction`.
    pub fn top1(&self) -> Vec<(f64, String, f32)> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Prediction { start, top, .. } => {
                    top.first().map(|t| (*start, t.label.clone(), t.score))
                }
                _ => None,
            })
            .collect()
    }
}

/// `(label, start)` of every `event_start` in `records`, in order.
pub fn event_starts(records: &[Record]) -> Vec<(String, f64)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::EventStart { label, start, .. } => Some((label.clone(), *start)),
            _ => None,
        })
        .collect()
}

/// `overruns` and `skipped_windows` of a status record.
pub fn status_counts(record: &Record) -> (u64, u64) {
    match record {
        Record::Status {
            overruns,
            skipped_windows,
            ..
        } => (*overruns, *skipped_windows),
        other => panic!("not a status record: {other:?}"),
    }
}

/// The `message` of a status record.
pub fn status_message(record: &Record) -> Option<&str> {
    match record {
        Record::Status { message, .. } => message.as_deref(),
        other => panic!("not a status record: {other:?}"),
    }
}

/// A `hark run` child that is still running. Dropping it kills the child (by its pid) if a
/// test failed before stopping it.
pub struct Daemon {
    pid: libc::pid_t,
    child: Child,
    rx: Receiver<Result<Record, String>>,
    records: Vec<Record>,
    stdout_reader: Option<JoinHandle<()>>,
    stderr_reader: Option<JoinHandle<String>>,
    started: Instant,
    exited: bool,
}

impl Daemon {
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Time since the daemon was started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// Records received so far.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Takes in what has arrived, without waiting.
    pub fn poll(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.push(line);
        }
    }

    /// Waits up to `timeout` ([`scaled`]) for a record for which `wanted` is true and returns a
    /// copy of it; `None` if the time runs out or the daemon's stdout closes first.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&Record) -> bool,
    ) -> Option<Record> {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = line.as_ref().ok().filter(|r| wanted(r)).cloned();
                    self.push(line);
                    if hit.is_some() {
                        return hit;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None
                }
            }
        }
    }

    /// The child's resident set size in KiB, while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        super::tools::rss_kib(self.pid)
    }

    /// True while the child has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; panics (after killing the child) if
    /// it does not come. `elapsed` of the result is the time from SIGTERM to exit.
    pub fn terminate(mut self, timeout: Duration) -> Finished {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        let sent = unsafe { libc::kill(self.pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "kill(SIGTERM) failed");
        let signalled = Instant::now();
        let status = self.wait_exit(timeout).unwrap_or_else(|| {
            self.kill();
            panic!(
                "hark did not exit within {timeout:?} of SIGTERM; stderr:\n{}",
                self.collect_stderr()
            )
        });
        let elapsed = signalled.elapsed();
        self.finish(status, elapsed)
    }

    /// Waits for the child to exit, polling so that a hang becomes a timeout ([`scaled`]).
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + scaled(timeout);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for hark") {
                self.exited = true;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn push(&mut self, line: Result<Record, String>) {
        match line {
            Ok(record) => self.records.push(record),
            Err(bad) => panic!("hark printed a line that is not a record: {bad}"),
        }
    }

    fn kill(&mut self) {
        if !self.exited {
            // SAFETY: as in `terminate`; SIGKILL so a hung child cannot outlive the test.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.child.wait();
            self.exited = true;
        }
    }

    fn collect_stderr(&mut self) -> String {
        self.stderr_reader
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    fn finish(mut self, status: ExitStatus, elapsed: Duration) -> Finished {
        if let Some(reader) = self.stdout_reader.take() {
            let _ = reader.join();
        }
        while let Ok(line) = self.rx.try_recv() {
            self.push(line);
        }
        let stderr = self.collect_stderr();
        Finished {
            status,
            records: std::mem::take(&mut self.records),
            stderr,
            elapsed,
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
