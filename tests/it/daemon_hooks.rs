//! Hooks, against the real daemon: `hark run --config FILE` with `[[hooks]]` entries plays a
//! recording of door knocks at real time, and the hooks are real programs it starts. What a
//! hook saw is read back from files it writes; what hark logged is its stderr; what hark
//! decided is its own `--print json` stdout.
//!
//! The recording comes from `../shared/data/recordings`; without it the tests say
//! `SKIPPED:` and pass.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::daemon::{self, kind, Daemon};
use crate::common::tools::alive;

/// Knocks only, and a threshold below the recording's smoothed Knock score (about 0.52 at
/// onset, for the default 0.5 a hair's breadth): the number of events must not depend on
/// rounding.
const KNOCKS_ONLY: &str = "[decision]\non = 0.4\noff = 0.25\nlisten = [\"Knock\"]\n";

// ---------------------------------------------------------------------------------------------
// The input

/// The two inputs, built once per run of the tests with sox from Door5.wav: `one` is a knock
/// after 1 s of silence (4 s; its event starts at 1 s), `three` is three of them 3 s apart
/// (10 s). `None` (after saying `SKIPPED:`) when the shared recordings are not there.
struct Inputs {
    one: PathBuf,
    three: PathBuf,
}

fn inputs() -> Option<&'static Inputs> {
    static INPUTS: OnceLock<Option<Inputs>> = OnceLock::new();
    let built = INPUTS.get_or_init(|| {
        let source = daemon::door5()?;
        Some(Inputs {
            one: daemon::knocks_after_a_second(&source, 1, "daemon_hooks-one-knock.wav"),
            three: daemon::knocks_after_a_second(&source, 3, "daemon_hooks-three-knocks.wav"),
        })
    });
    daemon::or_skip(built.as_ref())
}

/// Starts the daemon (see [`Daemon::start`]) with its config file and socket in `dir`.
fn start_daemon(dir: &Path, config: &str, input: &Path, exit_at_end: bool) -> Daemon {
    Daemon::start(config, input, &dir.join("hark.sock"), exit_at_end)
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
    let mut daemon = start_daemon(dir.path(), &config, &inputs.one, true);
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
    let mut daemon = start_daemon(dir.path(), &config, &inputs.three, true);
    daemon.finish();

    let ids = daemon.start_ids();
    assert!(ids.len() >= 3, "three knocks in 10 s: {ids:?}");
    assert_eq!(ids_in(&once), ids[..1], "cooldown 60: only the first knock");
    assert_eq!(ids_in(&every), ids, "cooldown 0: every knock");
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
    let mut daemon = start_daemon(dir.path(), &config, &inputs.three, false);

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
    let mut daemon = start_daemon(dir.path(), &config, &inputs.three, true);
    let subscriber = {
        let stream = UnixStream::connect(daemon.socket()).unwrap();
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
