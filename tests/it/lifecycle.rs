//! hark as a long-running service, against the real binary: the stop signals with subscribers
//! connected, a configuration reload with SIGHUP (applied live, or rejected while the running
//! configuration stays), systemd's notify protocol on a `NOTIFY_SOCKET` the test binds, with
//! watchdog pings that stop while the consumer is wedged, and a capture device that vanishes
//! and comes back.
//!
//! The input is a recording of door knocks repeated with pauses between them (Knock events at
//! about 0, 5.5, 11 and 16 s of stream time), played at real time. It comes from
//! `../shared/data/recordings`; without it the tests say `SKIPPED:` and pass. The device-loss
//! tests run a private sound server (see `common::sound_server`): PulseAudio for the `alsa` and
//! `pulseaudio` hosts, PipeWire for the `pipewire` one; without its programs they fail, naming
//! the package.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hark::capture::HostChoice;
use serde_json::Value;

use crate::common::daemon::{self, hark_command, kind};
use crate::common::sound_server::SoundServer;
use crate::common::tools::{self, median};

/// Knock events only, with a threshold well under the recording's smoothed Knock score at each
/// repetition (0.51 to 0.73), so that every repetition makes an event.
const KNOCKS: &str = "[decision]\non = 0.4\noff = 0.25\nlisten = [\"Knock\"]\n";

/// The same with thresholds no Knock reaches.
const KNOCKS_OUT_OF_REACH: &str = "[decision]\non = 0.99\noff = 0.98\nlisten = [\"Knock\"]\n";

/// A value validation must refuse (`decision.on` is a score, 0..=1).
const BROKEN: &str = "[decision]\non = 7\noff = 0.25\nlisten = [\"Knock\"]\n";

/// Seconds from one knock repetition to the next in [`knocks`].
const CYCLE: f64 = 3.84 + 1.5;

/// The issue's limit from a stop signal to the exit.
const STOP_LIMIT: Duration = Duration::from_secs(2);

// ---------------------------------------------------------------------------------------------
// The input

/// `door_knock_Door5.wav` (3.84 s; knocking from 0 s) and 1.5 s of silence, six times: 32 s.
/// Built once per run of the tests; `None` (after saying `SKIPPED:`) without the recordings.
fn knocks() -> Option<PathBuf> {
    static KNOCKS: OnceLock<Option<PathBuf>> = OnceLock::new();
    let built = KNOCKS.get_or_init(|| {
        let source = daemon::door5()?;
        let dir = tempfile::Builder::new()
            .prefix("lifecycle-input")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap()
            .keep();
        let out = dir.join("knocks.wav");
        // `pad 0 1.5` appends the pause; `repeat 5` plays the result six times.
        tools::sox(&[
            source.as_os_str(),
            out.as_os_str(),
            "pad".as_ref(),
            "0".as_ref(),
            "1.5".as_ref(),
            "repeat".as_ref(),
            "5".as_ref(),
        ]);
        Some(out)
    });
    daemon::or_skip(built.clone())
}

// ---------------------------------------------------------------------------------------------
// Lines from a pipe or a socket

/// Lines read on a thread of their own, with the time each arrived. The reader ends at end of
/// file, which [`Lines::closed`] then reports.
struct Lines {
    rx: Receiver<(Instant, String)>,
    seen: Vec<(Instant, String)>,
    closed: bool,
}

impl Lines {
    fn read(name: &str, from: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = mpsc::channel();
        thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for line in BufReader::new(from).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((Instant::now(), line)).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        Lines {
            rx,
            seen: Vec::new(),
            closed: false,
        }
    }

    /// Takes in what has arrived, without waiting.
    fn poll(&mut self) {
        loop {
            match self.rx.try_recv() {
                Ok(line) => self.seen.push(line),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.closed = true;
                    return;
                }
            }
        }
    }

    /// Waits up to `timeout` for a new line for which `wanted` is true; its index in `seen`.
    fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&str) -> bool,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    let hit = wanted(&line.1);
                    self.seen.push(line);
                    if hit {
                        return Some(self.seen.len() - 1);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.closed = true;
                    return None;
                }
            }
        }
    }

    /// Waits up to `timeout` for end of file; true if it came.
    fn wait_closed(&mut self, timeout: Duration) -> bool {
        self.wait_for(timeout, |_| false);
        self.closed
    }

    fn text(&mut self) -> String {
        self.poll();
        let lines: Vec<&str> = self.seen.iter().map(|(_, l)| l.as_str()).collect();
        lines.join("\n")
    }
}

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"))
}

fn message(v: &Value) -> &str {
    v["message"].as_str().unwrap_or("")
}

fn is_knock_start(v: &Value) -> bool {
    kind(v) == "event_start" && v["label"] == "Knock"
}

/// The Knock score among a prediction's top labels (0 when it is not among them).
fn knock_score(v: &Value) -> f64 {
    v["top"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["label"] == "Knock")
        .and_then(|t| t["score"].as_f64())
        .unwrap_or(0.0)
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// A running `hark run`. Dropping it kills the child (SIGKILL to its pid) if the test did not
/// see it exit, so a failing test leaves nothing behind.
struct Hark {
    child: Child,
    stdout: Lines,
    stderr: Lines,
    status: Option<ExitStatus>,
}

/// A scratch directory with the config file (from `toml`) and the socket path in it.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new(toml: &str) -> Scratch {
        // Not under CARGO_TARGET_TMPDIR: socket paths must fit in sun_path (108 bytes).
        let dir = tempfile::Builder::new()
            .prefix("hark-lifecycle-")
            .tempdir()
            .unwrap();
        let s = Scratch { dir };
        s.write_config(toml);
        s
    }
    fn config(&self) -> PathBuf {
        self.dir.path().join("hark.toml")
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("hark.sock")
    }
    fn write_config(&self, toml: &str) {
        std::fs::write(self.config(), toml).unwrap();
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Hark {
    /// Spawns `command` (hark itself, or a shell that execs it) and waits until the daemon
    /// accepts connections on `socket`.
    fn start(mut command: Command, socket: &Path) -> Hark {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        let stdout = Lines::read("hark-stdout", child.stdout.take().unwrap());
        let stderr = Lines::read("hark-stderr", child.stderr.take().unwrap());
        let mut hark = Hark {
            child,
            stdout,
            stderr,
            status: None,
        };
        // Model loading and stream start take well under a second alone; leave room for a
        // machine busy with other tests.
        let deadline = Instant::now() + Duration::from_secs(30);
        while UnixStream::connect(socket).is_err() {
            if let Some(status) = hark.child.try_wait().unwrap() {
                hark.status = Some(status);
                panic!(
                    "hark exited with {status} before its socket was up; stderr:\n{}",
                    hark.stderr.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "hark's socket {} did not come up within 30 s; stderr:\n{}",
                socket.display(),
                hark.stderr.text()
            );
            thread::sleep(Duration::from_millis(20));
        }
        hark
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child, which has not been reaped (`status` is
        // None until we reap it), so the pid cannot have been reused.
        assert!(self.status.is_none(), "hark has exited already");
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
        assert_eq!(sent, 0, "kill({signal}) failed");
    }

    /// Waits up to `timeout` for the exit.
    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn running(&mut self) -> bool {
        self.status.is_none() && self.wait_exit(Duration::ZERO).is_none()
    }

    /// Sends `signal` and asserts a successful exit within [`STOP_LIMIT`]; returns how long it
    /// took.
    fn stop_with(&mut self, signal: libc::c_int, name: &str) -> Duration {
        self.signal(signal);
        let sent = Instant::now();
        // Wait longer than the limit, so that a slow exit is reported with its time.
        let status = self.wait_exit(STOP_LIMIT * 5);
        let took = sent.elapsed();
        let status = status.unwrap_or_else(|| {
            panic!(
                "hark did not exit within {:?} of {name}; stderr:\n{}",
                STOP_LIMIT * 5,
                self.stderr.text()
            )
        });
        assert!(
            status.success(),
            "hark exited with {status} after {name}; stderr:\n{}",
            self.stderr.text()
        );
        assert!(
            took < STOP_LIMIT,
            "hark took {took:?} to exit after {name} (limit {STOP_LIMIT:?}); stderr:\n{}",
            self.stderr.text()
        );
        eprintln!("{name}: hark exited 0 in {took:?}");
        took
    }
}

impl Drop for Hark {
    fn drop(&mut self) {
        if self.status.is_none() {
            // Child::kill is SIGKILL to this child's pid only.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A socket client that reads records line by line, as any program could.
struct Subscriber {
    stream: UnixStream,
    lines: Lines,
}

impl Subscriber {
    /// Connects and reads the `hello`.
    fn connect(socket: &Path) -> Subscriber {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
        let lines = Lines::read("subscriber", stream.try_clone().unwrap());
        let mut s = Subscriber { stream, lines };
        let first = s
            .lines
            .wait_for(Duration::from_secs(5), |_| true)
            .expect("a hello within 5 s of connecting");
        let hello = json(&s.lines.seen[first].1);
        assert_eq!(kind(&hello), "hello", "the first line is the hello");
        s
    }

    /// Sends a request and waits for its `subscribed`.
    fn request(&mut self, request: &str) {
        writeln!(self.stream, "{request}").unwrap();
        self.lines
            .wait_for(Duration::from_secs(5), |l| kind(&json(l)) == "subscribed")
            .unwrap_or_else(|| panic!("no `subscribed` for {request}: {}", self.lines.text()));
    }

    /// Waits up to `timeout` for a new record for which `wanted` is true.
    fn wait_for(
        &mut self,
        timeout: Duration,
        mut wanted: impl FnMut(&Value) -> bool,
    ) -> Option<Value> {
        let i = self.lines.wait_for(timeout, |l| wanted(&json(l)))?;
        Some(json(&self.lines.seen[i].1))
    }

    /// Every record received so far, after the hello.
    fn records(&mut self) -> Vec<Value> {
        self.lines.poll();
        self.lines
            .seen
            .iter()
            .skip(1)
            .map(|(_, l)| json(l))
            .collect()
    }

    /// Records after index `from` of [`Subscriber::records`].
    fn records_since(&mut self, from: usize) -> Vec<Value> {
        self.records().split_off(from)
    }
}

// ---------------------------------------------------------------------------------------------
// Stop signals

/// Starts hark on the knocks with three subscribers, waits until each has an event, sends
/// `signal`, and checks the orderly stop: exit 0 within 2 s; each subscriber's stream ends with
/// a `status` record and then end of file, every event it saw started was also ended; the
/// socket file is gone; stdout ends with the same final status.
fn stop_while_events_flow(signal: libc::c_int, name: &str) {
    let Some(input) = knocks() else { return };
    let scratch = Scratch::new(KNOCKS);
    let mut command = hark_command(&scratch.config(), &scratch.socket());
    command.arg("--input").arg(&input);
    let mut hark = Hark::start(command, &scratch.socket());

    let mut subscribers: Vec<Subscriber> = (0..3)
        .map(|_| Subscriber::connect(&scratch.socket()))
        .collect();
    for (i, s) in subscribers.iter_mut().enumerate() {
        s.wait_for(Duration::from_secs(15), is_knock_start)
            .unwrap_or_else(|| panic!("subscriber {i} got no Knock event_start within 15 s"));
    }

    // The first Knock is still open here (it ends about 2.5 s into the stream): the stop must
    // end it for the subscribers.
    hark.stop_with(signal, name);

    for (i, s) in subscribers.iter_mut().enumerate() {
        assert!(
            s.lines.wait_closed(Duration::from_secs(2)),
            "subscriber {i}: the connection was not closed after {name}; got:\n{}",
            s.lines.text()
        );
        let records = s.records();
        let last = records.last().expect("records");
        assert_eq!(
            kind(last),
            "status",
            "subscriber {i}: the last record before EOF is not a status: {last}"
        );
        assert_eq!(
            message(last),
            "stopping",
            "subscriber {i}: final status {last}"
        );
        let started: Vec<&Value> = records
            .iter()
            .filter(|r| kind(r) == "event_start")
            .collect();
        for start in started {
            assert!(
                records
                    .iter()
                    .any(|r| kind(r) == "event_end" && r["id"] == start["id"]),
                "subscriber {i}: event {start} was never ended; got:\n{}",
                s.lines.text()
            );
        }
    }
    assert!(
        !scratch.socket().exists(),
        "the socket file {} is still there after {name}",
        scratch.socket().display()
    );
    assert!(hark.stdout.wait_closed(Duration::from_secs(1)));
    let printed = hark.stdout.text();
    let last = json(printed.lines().last().expect("hark printed records"));
    assert_eq!(
        (kind(&last), message(&last)),
        ("status", "stopping"),
        "stdout's last record: {last}"
    );
}

#[test]
fn sigterm_while_events_flow_ends_events_sends_a_final_status_closes_subscribers_and_removes_the_socket(
) {
    stop_while_events_flow(libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint_stops_in_the_same_orderly_way_as_sigterm() {
    stop_while_events_flow(libc::SIGINT, "SIGINT");
}

// ---------------------------------------------------------------------------------------------
// SIGHUP

/// The stream time (end of the newest window) among `records`' predictions.
fn stream_end(records: &[Value]) -> f64 {
    records
        .iter()
        .filter(|r| kind(r) == "prediction")
        .filter_map(|r| r["end"].as_f64())
        .fold(0.0, f64::max)
}

#[test]
fn sighup_applies_a_threshold_change_live_and_rejects_a_broken_config_without_stopping() {
    let Some(input) = knocks() else { return };
    let scratch = Scratch::new(KNOCKS);
    let mut command = hark_command(&scratch.config(), &scratch.socket());
    command.arg("--input").arg(&input);
    let mut hark = Hark::start(command, &scratch.socket());
    let mut sub = Subscriber::connect(&scratch.socket());
    sub.request(r#"{"subscribe":["event_start","event_end","status","prediction"]}"#);

    // The first repetition makes an event with the configuration hark started with.
    let first = sub
        .wait_for(Duration::from_secs(15), is_knock_start)
        .expect("a Knock event_start within 15 s");
    sub.wait_for(Duration::from_secs(10), |r| {
        kind(r) == "event_end" && r["id"] == first["id"]
    })
    .expect("the first Knock event ends");

    // Thresholds out of reach, live.
    scratch.write_config(KNOCKS_OUT_OF_REACH);
    hark.signal(libc::SIGHUP);
    hark.stderr
        .wait_for(Duration::from_secs(5), |l| {
            l.contains("configuration reloaded")
        })
        .unwrap_or_else(|| panic!("no reload logged after SIGHUP:\n{}", hark.stderr.text()));
    let reloaded_at = sub.records().len();
    let when = stream_end(&sub.records());
    assert!(
        when < CYCLE,
        "the reload came at {when} s of stream time, after the second knock began at {CYCLE} s: \
         the test cannot tell what the new thresholds did"
    );

    // Through the second repetition: predictions go on and score the knocking as before, but
    // no event starts.
    sub.wait_for(Duration::from_secs(15), |r| {
        kind(r) == "prediction" && r["start"].as_f64().unwrap_or(0.0) >= CYCLE + 2.5
    })
    .expect("predictions through the second knock");
    let after = sub.records_since(reloaded_at);
    let peak = after
        .iter()
        .filter(|r| kind(r) == "prediction")
        .map(knock_score)
        .fold(0.0, f64::max);
    assert!(
        peak >= 0.4,
        "the second knock scored only {peak}: it would not have made an event anyway"
    );
    let starts: Vec<&Value> = after.iter().filter(|r| kind(r) == "event_start").collect();
    assert!(
        starts.is_empty(),
        "event_start after thresholds were raised to 0.99 (Knock peaked at {peak}): {starts:?}"
    );

    // A configuration that fails validation is rejected; hark keeps running and publishing.
    scratch.write_config(BROKEN);
    hark.signal(libc::SIGHUP);
    let i = hark
        .stderr
        .wait_for(Duration::from_secs(5), |l| l.contains("rejected"))
        .unwrap_or_else(|| panic!("no rejection logged:\n{}", hark.stderr.text()));
    let line = hark.stderr.seen[i].1.clone();
    assert!(
        line.contains("decision.on"),
        "the rejection does not name the bad key: {line}"
    );
    assert!(hark.running(), "hark stopped after a broken config");
    let before = stream_end(&sub.records());
    sub.wait_for(Duration::from_secs(5), |r| {
        kind(r) == "prediction" && r["start"].as_f64().unwrap_or(0.0) > before
    })
    .expect("predictions go on after the rejected reload");

    // Back to the first configuration: events return at the next repetition, so the running
    // pipeline was untouched by the rejection.
    scratch.write_config(KNOCKS);
    hark.signal(libc::SIGHUP);
    hark.stderr
        .wait_for(Duration::from_secs(5), |l| {
            l.contains("configuration reloaded")
        })
        .unwrap_or_else(|| panic!("no second reload logged:\n{}", hark.stderr.text()));
    let again = sub
        .wait_for(Duration::from_secs(15), is_knock_start)
        .expect("Knock events again after restoring the thresholds");
    eprintln!("events resumed with {again}");

    hark.stop_with(libc::SIGTERM, "SIGTERM");
}

// ---------------------------------------------------------------------------------------------
// systemd's notify protocol

/// Receives datagrams on a socket bound at `path` until dropped.
struct NotifySocket {
    got: Arc<std::sync::Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    reader: Option<thread::JoinHandle<()>>,
}

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let socket = UnixDatagram::bind(path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, s) = (got.clone(), stop.clone());
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    g.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        NotifySocket {
            got,
            stop,
            reader: Some(reader),
        }
    }

    fn messages(&self) -> Vec<(Instant, String)> {
        self.got.lock().unwrap().clone()
    }

    /// Waits up to `timeout` for a datagram holding `line` (e.g. `READY=1`).
    fn wait_for(&self, timeout: Duration, line: &str) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let hit = self
                .messages()
                .into_iter()
                .find(|(_, m)| m.lines().any(|l| l == line));
            if let Some((at, _)) = hit {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// What hark said on `NOTIFY_SOCKET` in one run.
struct Notified {
    messages: Vec<(Instant, String)>,
    ready: Instant,
    stopping: Instant,
}

impl Notified {
    /// Arrival times of the `WATCHDOG=1` datagrams.
    fn pings(&self) -> Vec<Instant> {
        self.messages
            .iter()
            .filter(|(_, m)| m.trim_end() == "WATCHDOG=1")
            .map(|(at, _)| *at)
            .collect()
    }
}

/// Seconds between consecutive pings.
fn gaps(pings: &[Instant]) -> Vec<f64> {
    pings
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect()
}

fn describe_gaps(gaps: &[f64]) -> String {
    format!(
        "{} pings, gaps in ms: {:?}",
        gaps.len() + 1,
        gaps.iter()
            .map(|g| (g * 1000.0).round())
            .collect::<Vec<_>>()
    )
}

/// Runs hark on the knocks under a notify socket the test binds, with `WATCHDOG_USEC=200000`
/// (pings due every 100 ms) and the extra environment `env`, until `run_for` after READY=1
/// (or after `wait_log` appears in its log, when given); then SIGTERM. Checks READY=1 with a
/// STATUS= line first, STOPPING=1 after the signal, and no ping outside the two.
fn notify_run(
    input: &Path,
    env: &[(&str, &str)],
    wait_log: Option<&str>,
    run_for: Duration,
) -> Notified {
    let scratch = Scratch::new(KNOCKS);
    let notify_path = scratch.path("notify.sock");
    let notify = NotifySocket::bind(&notify_path);

    let mut hark_cmd = hark_command(&scratch.config(), &scratch.socket());
    hark_cmd.arg("--input").arg(input);
    // sd-notify 0.4's `watchdog_enabled` requires WATCHDOG_PID to be set and equal to the
    // process's pid (libsystemd's sd_watchdog_enabled would also accept it unset; systemd
    // always sets it). The pid is not known before the spawn, so a shell sets it to its own
    // pid and execs hark, which keeps that pid.
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$0" "$@""#)
        .arg(hark_cmd.get_program())
        .args(hark_cmd.get_args())
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in hark_cmd.get_envs() {
        match v {
            Some(v) => command.env(k, v),
            None => command.env_remove(k),
        };
    }
    command
        .env("NOTIFY_SOCKET", &notify_path)
        .env("WATCHDOG_USEC", "200000");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut hark = Hark::start(command, &scratch.socket());

    let ready = notify
        .wait_for(Duration::from_secs(10), "READY=1")
        .unwrap_or_else(|| panic!("no READY=1 on NOTIFY_SOCKET:\n{}", hark.stderr.text()));
    if let Some(log) = wait_log {
        hark.stderr
            .wait_for(Duration::from_secs(15), |l| l.contains(log))
            .unwrap_or_else(|| panic!("hark never logged {log:?}:\n{}", hark.stderr.text()));
    }
    thread::sleep(run_for);
    hark.stop_with(libc::SIGTERM, "SIGTERM");
    let stopping = notify
        .wait_for(Duration::from_secs(1), "STOPPING=1")
        .expect("STOPPING=1 on NOTIFY_SOCKET after SIGTERM");

    let notified = Notified {
        messages: notify.messages(),
        ready,
        stopping,
    };
    let first = &notified.messages[0].1;
    assert!(
        first.lines().any(|l| l == "READY=1") && first.lines().any(|l| l.starts_with("STATUS=")),
        "the first message is not READY=1 with a STATUS= line: {first:?}"
    );
    assert!(
        notified
            .pings()
            .iter()
            .all(|p| *p >= notified.ready && *p <= notified.stopping),
        "watchdog pings before READY=1 or after STOPPING=1"
    );
    notified
}

#[test]
fn sd_notify_ready_with_status_then_watchdog_pings_every_half_interval_then_stopping() {
    let Some(input) = knocks() else { return };
    let notified = notify_run(&input, &[], None, Duration::from_secs(3));
    let pings = notified.pings();
    let gaps = gaps(&pings);
    let summary = describe_gaps(&gaps);
    eprintln!("{summary}");
    assert!(gaps.len() >= 15, "too few watchdog pings in 3 s: {summary}");
    let median = median(&gaps);
    assert!(
        (0.08..0.2).contains(&median),
        "pings are not about every 100 ms (half of WATCHDOG_USEC): median gap {median:.3} s; \
         {summary}"
    );
    let longest = gaps.iter().copied().fold(0.0, f64::max);
    assert!(
        longest < 0.6,
        "the pings stopped for {longest:.3} s: {summary}"
    );
}

#[test]
fn sd_notify_watchdog_pings_stop_while_the_consumer_is_wedged_and_resume_after() {
    let Some(input) = knocks() else { return };
    // The consumer sleeps 2 s before window 4 (about 3 s into the stream).
    let notified = notify_run(
        &input,
        &[("HARK_FAULT_STALL", "4:2.0")],
        Some("HARK_FAULT_STALL"),
        // The rest of the stall, then long enough for pings to resume.
        Duration::from_millis(2000 + 1500),
    );
    let gaps = gaps(&notified.pings());
    let summary = describe_gaps(&gaps);
    eprintln!("{summary}");
    let (wedge, longest) =
        gaps.iter().copied().enumerate().fold(
            (0, 0.0),
            |best, (i, g)| if g > best.1 { (i, g) } else { best },
        );
    assert!(
        (1.5..3.0).contains(&longest),
        "the pings did not stop for the 2 s stall: longest gap {longest:.3} s; {summary}"
    );
    let (before, after) = (&gaps[..wedge], &gaps[wedge + 1..]);
    assert!(
        before.len() >= 5,
        "too few pings before the stall: {summary}"
    );
    assert!(
        after.len() >= 5,
        "the pings did not resume after the stall: {summary}"
    );
    let other = before.iter().chain(after).copied().fold(0.0, f64::max);
    assert!(
        other < 0.6,
        "the pings also stopped for {other:.3} s outside the stall: {summary}"
    );
}

// ---------------------------------------------------------------------------------------------
// Device loss

/// How the capture device goes away in [`device_loss`].
#[derive(Clone, Copy)]
enum Loss {
    /// The source vanishes from a running sound server (a USB microphone unplugged).
    SourceRemoved,
    /// The sound server itself dies and is started again.
    ServerKilled,
}

/// hark records from a sound server's source through `host` (ALSA: PulseAudio's `pulse` PCM;
/// PulseAudio: its own protocol; PipeWire: cpal's PipeWire host on a PipeWire server) while
/// knocks play into it; the device goes away (`loss`), hark must say so with a `status` and
/// keep running; the device comes back, hark must reopen it by itself and say so, and Knock
/// events must resume when the knocks play again.
fn device_loss(loss: Loss, host: HostChoice) {
    let Some(input) = knocks() else { return };
    let mut server = SoundServer::start_for(host);
    // A dead sound server can leave the stream silent without an error: hark notices by the
    // absence of samples (capture.stall_timeout), shortened here to keep the test quick.
    let scratch = Scratch::new(&format!(
        "{KNOCKS}[capture]\nstall_timeout = 2.0\nhost = \"{host}\"\n"
    ));
    let mut command = hark_command(&scratch.config(), &scratch.socket());
    command.args(["--device", SoundServer::device_for(host)]);
    server.apply_env(&mut command);
    let mut hark = Hark::start(command, &scratch.socket());
    let mut sub = Subscriber::connect(&scratch.socket());

    let player = server.play(&input);
    let first = sub
        .wait_for(Duration::from_secs(15), is_knock_start)
        .unwrap_or_else(|| {
            panic!(
                "no Knock event from the sound server's source; hark:\n{}\nserver:\n{}",
                hark.stderr.text(),
                server.log()
            )
        });

    match loss {
        Loss::SourceRemoved => server.remove_sink(),
        Loss::ServerKilled => server.kill(),
    }
    drop(player);
    let lost = sub.wait_for(Duration::from_secs(5), |r| {
        kind(r) == "status" && message(r).contains("lost")
    });
    assert!(
        lost.is_some(),
        "no `status` saying the device was lost within 5 s; records:\n{}\nhark:\n{}",
        sub.lines.text(),
        hark.stderr.text()
    );
    // While it is gone hark retries, and keeps running.
    thread::sleep(Duration::from_secs(1));
    assert!(hark.running(), "hark stopped when the device went away");

    match loss {
        Loss::SourceRemoved => server.add_sink(),
        Loss::ServerKilled => server.restart(),
    }
    let back = sub.wait_for(Duration::from_secs(15), |r| {
        kind(r) == "status" && message(r).contains("is back")
    });
    assert!(
        back.is_some(),
        "no `status` saying the device is back within 15 s; records:\n{}\nhark:\n{}",
        sub.lines.text(),
        hark.stderr.text()
    );
    let _player = server.play(&input);
    sub.wait_for(Duration::from_secs(15), |r| {
        is_knock_start(r) && r["id"] != first["id"]
    })
    .unwrap_or_else(|| {
        panic!(
            "Knock events did not resume after the device came back; records:\n{}\nhark:\n{}",
            sub.lines.text(),
            hark.stderr.text()
        )
    });
    hark.stop_with(libc::SIGTERM, "SIGTERM");
}

#[test]
fn capture_source_that_vanishes_and_comes_back_is_reopened_and_events_resume_alsa() {
    device_loss(Loss::SourceRemoved, HostChoice::Alsa);
}

#[test]
fn sound_server_that_dies_and_restarts_is_reopened_and_events_resume_alsa() {
    device_loss(Loss::ServerKilled, HostChoice::Alsa);
}

#[cfg(feature = "pulseaudio")]
#[test]
fn capture_source_that_vanishes_and_comes_back_is_reopened_and_events_resume_pulseaudio() {
    device_loss(Loss::SourceRemoved, HostChoice::Pulseaudio);
}

#[cfg(feature = "pulseaudio")]
#[test]
fn sound_server_that_dies_and_restarts_is_reopened_and_events_resume_pulseaudio() {
    device_loss(Loss::ServerKilled, HostChoice::Pulseaudio);
}

#[cfg(feature = "pipewire")]
#[test]
fn capture_source_that_vanishes_and_comes_back_is_reopened_and_events_resume_pipewire() {
    device_loss(Loss::SourceRemoved, HostChoice::Pipewire);
}

#[cfg(feature = "pipewire")]
#[test]
fn sound_server_that_dies_and_restarts_is_reopened_and_events_resume_pipewire() {
    device_loss(Loss::ServerKilled, HostChoice::Pipewire);
}
