//! Hooks, against the real daemon: `hark run --config FILE` with `[[hooks]]` entries plays a
//! recording of door knocks at real time, and the hooks are real programs it starts. What a
//! hook saw is read back from files it writes; what hark logged is its stderr; what hark
//! decided is its own `--print json` stdout.
//!
//! The recording comes from `../shared/data/recordings`; without it the tests say
//! `SKIPPED:` and pass.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Knocks only, and a threshold below the recording's smoothed Knock score (about 0.52 at
/// onset, for the default 0.5 a hair's breadth): the number of events must not depend on
/// rounding.
const KNOCKS_ONLY: &str = "[decision]\non = 0.4\noff = 0.25\nlisten = [\"Knock\"]\n";

// ---------------------------------------------------------------------------------------------
// The input

/// The two inputs, built once per test binary with sox from Door5.wav: `one` is a knock
/// after 1 s of silence (4 s; its event starts at 1 s), `three` is three of them 3 s apart
/// (10 s). `None` (after saying `SKIPPED:`) when the shared recordings are not there.
struct Inputs {
    one: PathBuf,
    three: PathBuf,
}

fn inputs() -> Option<&'static Inputs> {
    static INPUTS: OnceLock<Option<Inputs>> = OnceLock::new();
    let built = INPUTS.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../shared/data/recordings/door_knock_Door5.wav");
        if !source.is_file() {
            return None;
        }
        // Built in a directory of its own and renamed into place: the other test binary may
        // be building a file at the same moment.
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let work = tempfile::tempdir_in(target).unwrap();
        let path = |name: &str| work.path().join(name).to_str().unwrap().to_owned();
        let (lead, knock) = (path("lead.wav"), path("knock.wav"));
        let (one, three) = (path("one.wav"), path("three.wav"));
        let source = source.to_str().unwrap();
        let mono = ["-r", "16000", "-c", "1", "-b", "16"];
        sox(&[&["-n"], &mono[..], &[&lead, "trim", "0", "1"]].concat());
        // The first 1.5 s of the recording hold the knocking; 1.5 s of silence end the event.
        sox(&[
            &[source],
            &mono[..],
            &[&knock, "trim", "0", "1.5", "pad", "0", "1.5"],
        ]
        .concat());
        sox(&[&lead, &knock, &one]);
        sox(&[&lead, &knock, &knock, &knock, &three]);
        let inputs = Inputs {
            one: target.join("daemon_hooks-one-knock.wav"),
            three: target.join("daemon_hooks-three-knocks.wav"),
        };
        std::fs::rename(&one, &inputs.one).unwrap();
        std::fs::rename(&three, &inputs.three).unwrap();
        Some(inputs)
    });
    if built.is_none() {
        eprintln!("SKIPPED: ../shared/data/recordings/door_knock_Door5.wav not found");
    }
    built.as_ref()
}

/// Runs sox with `args`; panics with its stderr if it fails.
fn sox(args: &[&str]) {
    let out = Command::new("sox")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run sox (install the `sox` package): {e}"));
    assert!(
        out.status.success(),
        "sox {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// A `hark run` child. Dropping it kills the child if the test did not stop it.
struct Daemon {
    child: Child,
    socket: PathBuf,
    /// Every line printed on stdout, as printed.
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    status: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `hark --log info run --config <config> --input <input> --socket dir/hark.sock
    /// --print json` at real time and returns once it answers on its socket.
    fn start(dir: &Path, config: &str, input: &Path, exit_at_end: bool) -> Daemon {
        let config_path = dir.join("hark.toml");
        std::fs::write(&config_path, config).unwrap();
        let socket = dir.join("hark.sock");
        let mut c = Command::new(env!("CARGO_BIN_EXE_hark"));
        // models/ and third_party/ resolve from the crate's root.
        c.current_dir(env!("CARGO_MANIFEST_DIR"));
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("HARK_")
                || ["RUST_LOG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"].contains(&&*k)
            {
                c.env_remove(&key);
            }
        }
        c.env("NO_COLOR", "1")
            .args(["--log", "info", "run", "--config"])
            .arg(&config_path)
            .arg("--input")
            .arg(input)
            .arg("--socket")
            .arg(&socket)
            .args(["--print", "json"]);
        if exit_at_end {
            c.arg("--exit-at-end");
        }
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {c:?}: {e}"));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let lines = stdout.clone();
        let r1 = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line);
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
        let mut d = Daemon {
            child,
            socket,
            stdout,
            stderr,
            readers: vec![r1, r2],
            status: None,
        };
        d.wait_ready();
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = UnixStream::connect(&self.socket) {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.contains("\"hello\"") {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                self.status = Some(status);
                panic!(
                    "hark exited with {status} before serving; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "hark did not serve its socket within 20 s; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// What hark logged so far, without terminal escapes.
    fn stderr(&self) -> String {
        strip_ansi(&self.stderr.lock().unwrap())
    }

    /// Waits up to `timeout` for a log line containing all of `parts`, and returns it.
    fn wait_for_log(&self, timeout: Duration, parts: &[&str]) -> String {
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
    fn printed(&self) -> Vec<(String, Value)> {
        let lines = self.stdout.lock().unwrap();
        lines
            .iter()
            .map(|l| {
                let v = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("hark printed a line that is not JSON: {e}: {l}"));
                (l.clone(), v)
            })
            .collect()
    }

    /// Every record but the predictions: what a default subscriber gets.
    fn published(&self) -> Vec<Value> {
        self.printed()
            .into_iter()
            .map(|(_, v)| v)
            .filter(|v| kind(v) != "prediction")
            .collect()
    }

    /// The `id`s of the `event_start` records printed so far.
    fn start_ids(&self) -> Vec<u64> {
        self.printed()
            .iter()
            .filter(|(_, v)| kind(v) == "event_start")
            .map(|(_, v)| v["id"].as_u64().unwrap())
            .collect()
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
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
        assert!(
            status.success(),
            "hark exited with {status}; stderr:\n{}",
            self.stderr()
        );
        status
    }

    /// The exit at the end of the input (`--exit-at-end`), which must be a success.
    fn finish(&mut self) {
        self.wait_exit(Duration::from_secs(40));
    }

    /// SIGTERM, then the exit within 10 s, which must be a success.
    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        self.wait_exit(Duration::from_secs(10));
    }

    fn kill(&mut self) {
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

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte
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

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// A `[[hooks]]` entry on Knock starts that runs `command` (TOML array items, already quoted)
/// with `extra` keys.
fn hook(name: &str, command: &str, extra: &str) -> String {
    format!(
        "\n[[hooks]]\nname = \"{name}\"\nlabels = [\"Knock\"]\ncommand = [{command}]\n{extra}\n"
    )
}

/// A TOML basic string holding `path`.
fn toml_path(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

/// A hook that appends `HARK_ID` to `file`, one line per run.
fn append_id(name: &str, file: &Path, extra: &str) -> String {
    hook(
        name,
        &format!(
            r#"'sh', '-c', 'echo "$HARK_ID" >> "$1"', 'sh', {}"#,
            toml_path(file)
        ),
        extra,
    )
}

fn ids_in(file: &Path) -> Vec<u64> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| l.parse().unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn a_hook_gets_the_daemons_knock_event_in_its_environment_and_on_stdin() {
    let Some(inputs) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = KNOCKS_ONLY.to_owned()
        + &hook(
            "env-and-stdin",
            &format!(
                r#"'sh', '-c', 'env | grep ^HARK_ > "$1"; cat > "$1.json"', 'sh', {}"#,
                toml_path(&out)
            ),
            "",
        );
    let mut daemon = Daemon::start(dir.path(), &config, &inputs.one, true);
    daemon.finish();

    let starts: Vec<(String, Value)> = daemon
        .printed()
        .into_iter()
        .filter(|(_, v)| kind(v) == "event_start")
        .collect();
    assert_eq!(starts.len(), 1, "one knock: {starts:?}");
    let (raw, start) = &starts[0];
    assert_eq!(start["label"], "Knock");

    let stdin = std::fs::read_to_string(out.with_extension("json")).expect("the hook ran");
    assert_eq!(
        stdin,
        format!("{raw}\n"),
        "the hook's stdin is the record, exactly as printed"
    );
    let env = std::fs::read_to_string(&out).unwrap();
    let var = |name: &str| -> &str {
        env.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in the hook's environment:\n{env}"))
    };
    assert_eq!(var("HARK_EVENT"), "event_start");
    assert_eq!(var("HARK_LABEL"), "Knock");
    assert_eq!(var("HARK_ID"), start["id"].to_string());
    assert_eq!(var("HARK_TIME"), start["time"]);
    assert_eq!(var("HARK_END"), "");
    let score: f32 = var("HARK_SCORE").parse().unwrap();
    assert_eq!(score, start["score"].as_f64().unwrap() as f32);
    let at: f64 = var("HARK_START").parse().unwrap();
    assert_eq!(at, start["start"].as_f64().unwrap());
    daemon.wait_for_log(Duration::ZERO, &["hook finished", "hook=env-and-stdin"]);
}

#[test]
fn cooldown_runs_a_hook_once_for_several_knocks_and_zero_cooldown_runs_it_for_each() {
    let Some(inputs) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (once, every) = (dir.path().join("once"), dir.path().join("every"));
    let config = KNOCKS_ONLY.to_owned()
        + &append_id("once", &once, "cooldown = 60")
        + &append_id("every", &every, "cooldown = 0");
    let mut daemon = Daemon::start(dir.path(), &config, &inputs.three, true);
    daemon.finish();

    let ids = daemon.start_ids();
    assert!(ids.len() >= 3, "three knocks in 10 s: {ids:?}");
    assert_eq!(ids_in(&once), ids[..1], "cooldown 60: only the first knock");
    assert_eq!(ids_in(&every), ids, "cooldown 0: every knock");
}

/// True while `pid` is a live process (not gone, not a zombie waiting for its reaper).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next()),
            Some(Some('Z' | 'X'))
        ),
        Err(_) => false,
    }
}

#[test]
fn a_hook_that_outlives_its_timeout_has_its_process_group_killed() {
    let Some(inputs) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let config = KNOCKS_ONLY.to_owned()
        + &hook(
            "hang",
            &format!(
                r#"'sh', '-c', 'sleep 1000 & echo $! > "$1"; wait', 'sh', {}"#,
                toml_path(&pidfile)
            ),
            "timeout = 1\ncooldown = 60",
        );
    let mut daemon = Daemon::start(dir.path(), &config, &inputs.three, false);

    let deadline = Instant::now() + Duration::from_secs(15);
    let pid: u32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile) {
            if text.ends_with('\n') {
                break text.trim().parse().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the hook did not run within 15 s; stderr:\n{}",
            daemon.stderr()
        );
        thread::sleep(Duration::from_millis(10));
    };
    let started = Instant::now();
    assert!(alive(pid), "the hook's background sleep runs");
    while alive(pid) {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the grandchild {pid} of a hook with timeout = 1 still runs after 3 s; stderr:\n{}",
            daemon.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    eprintln!("grandchild gone {:?} after it started", started.elapsed());
    let line = daemon.wait_for_log(
        Duration::from_secs(5),
        &["killing hook's process group", "hook=hang", "timed out"],
    );
    eprintln!("{line}");
    daemon.terminate();
}

#[test]
fn a_missing_and_a_failing_program_are_logged_and_disturb_nothing_else() {
    let Some(inputs) = inputs() else { return };
    let dir = tempfile::tempdir().unwrap();
    let worked = dir.path().join("worked");
    let config = KNOCKS_ONLY.to_owned()
        + &hook("missing", "'/nonexistent/hark-test-hook'", "")
        + &hook(
            "failing",
            "'sh', '-c', 'echo failing on purpose >&2; exit 3'",
            "",
        )
        + &append_id("working", &worked, "");
    let mut daemon = Daemon::start(dir.path(), &config, &inputs.three, true);
    let subscriber = {
        let stream = UnixStream::connect(&daemon.socket).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        thread::spawn(move || -> Vec<Value> {
            BufReader::new(stream)
                .lines()
                .map(|l| serde_json::from_str(&l.expect("a line within 30 s")).unwrap())
                .collect()
        })
    };
    daemon.finish();

    let ids = daemon.start_ids();
    assert!(ids.len() >= 3, "three knocks in 10 s: {ids:?}");
    let lines = subscriber.join().unwrap();
    assert_eq!(kind(&lines[0]), "hello");
    assert_eq!(
        lines[1..],
        daemon.published()[..],
        "the subscriber got every record"
    );
    assert_eq!(ids_in(&worked), ids, "the working hook ran for every knock");

    let line = daemon.wait_for_log(
        Duration::ZERO,
        &[
            "cannot start hook",
            "hook=missing",
            "/nonexistent/hark-test-hook",
        ],
    );
    assert!(
        line.contains("No such file") || line.contains("os error 2"),
        "the error says why: {line}"
    );
    daemon.wait_for_log(Duration::ZERO, &["hook failed", "hook=failing", "code=3"]);
    daemon.wait_for_log(
        Duration::ZERO,
        &["hook output", "hook=failing", "failing on purpose"],
    );
}
