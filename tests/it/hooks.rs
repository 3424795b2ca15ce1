//! Hooks, end to end: real child processes started by the dispatcher on a real tokio
//! runtime, fed from a plain thread as the pipeline does. What a hook saw is read back from
//! files it writes; what hark logged is captured from tracing.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use hark::record::Record;
use hark::shutdown::Shutdown;
use hark::sinks::hooks::{self, HookEvent, HookSettings};
use hark::sinks::{Fanout, RunningModel, SinkContext, SinkHealth};
use tokio::sync::watch;

/// The hooks sink as the daemon runs it: its own fan-out, settings watch and shutdown.
struct Hooks {
    fanout: Fanout,
    settings: watch::Sender<Vec<HookSettings>>,
    health: Arc<SinkHealth>,
    task: tokio::task::JoinHandle<()>,
    _model: watch::Sender<Arc<RunningModel>>,
}

impl Hooks {
    fn start(settings: Vec<HookSettings>, rt: &tokio::runtime::Handle) -> Hooks {
        let _in = rt.enter();
        let fanout = Fanout::new();
        let (settings_tx, settings_rx) = watch::channel(settings);
        let (model_tx, model_rx) = watch::channel(Arc::new(RunningModel {
            name: "test".into(),
            labels: vec!["Knock".into(), "Doorbell".into()],
            groups: Default::default(),
            sample_rate: 16_000,
            window: 1.0,
            hop: 0.5,
        }));
        let shutdown = Shutdown::new();
        let records = fanout.subscribe("hooks", hooks::COUNTERS, &shutdown);
        let health = records.health().clone();
        let task = hooks::start(SinkContext {
            records,
            settings: settings_rx,
            model: model_rx,
            shutdown,
        });
        Hooks {
            fanout,
            settings: settings_tx,
            health,
            task,
            _model: model_tx,
        }
    }

    /// What the consumer does: publish into the fan-out, never waiting.
    fn handle(&self, rec: &Record) {
        self.fanout.publish(rec.clone());
    }

    fn sender(&self) -> Fanout {
        self.fanout.clone()
    }

    fn set_settings(&self, settings: Vec<HookSettings>) {
        self.settings.send_replace(settings);
    }

    /// The consumer is done: the fan-out closes and the sink drains and ends.
    async fn shutdown(self) {
        drop(self.fanout);
        self.task.await.expect("the hooks sink ends cleanly");
    }
}

use crate::common::tools::alive;

/// Everything the hooks logged, from any test. Only events of the hooks module (a target with
/// `hooks` in it) are captured: the other areas' tests share this process, and their logs
/// must neither mix in nor be formatted for nothing.
fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        use tracing_subscriber::Layer as _;
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let hooks_only = tracing_subscriber::filter::filter_fn(|meta| {
            meta.target().contains("hooks") && *meta.level() <= tracing::Level::DEBUG
        });
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || Capture(sink.clone()))
                    .with_filter(hooks_only),
            )
            .init();
        buf
    })
}

/// hark sweeps, at a hooks sink's stop, every process any hook run of this process left behind
/// (one sink per daemon process). Tests here run several sinks in one process, so they take
/// turns: one test's stop must not end another test's running hooks.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits up to 10 s for a log line containing all of `parts`, and returns it.
fn wait_for_log(parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = String::from_utf8_lossy(&logs().lock().unwrap()).into_owned();
        if let Some(line) = text.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {parts:?} in:\n{text}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits up to 10 s for `path` to hold what `ready` accepts, and returns it.
fn wait_for_file(path: &Path, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if ready(&text) {
                return text;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{} never got ready",
            path.display()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    logs();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn hook(name: &str, labels: &[&str], command: &[&str]) -> HookSettings {
    HookSettings {
        name: name.into(),
        labels: labels.iter().map(|s| s.to_string()).collect(),
        on: vec![HookEvent::EventStart],
        command: command.iter().map(|s| s.to_string()).collect(),
        cooldown: 0.0,
        timeout: 10.0,
        // Room for runs overlapping the tail of the previous one; the flood test sets 1.
        max_concurrent: 8,
    }
}

/// A hook command that appends the event's id (`HARK_ID`) to `file`, one line per run.
fn append_id(file: &Path) -> Vec<String> {
    ["sh", "-c", r#"echo "$HARK_ID" >> "$1""#, "sh", arg(file)]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// A hook on Knock whose shell starts `sleep 1000` in the background, writes its pid to
/// `pidfile` (via a rename, so a reader never sees half of it) and waits for it.
fn grandchild_hook(name: &str, pidfile: &Path, timeout: f64) -> HookSettings {
    let mut h = hook(
        name,
        &["Knock"],
        &[
            "sh",
            "-c",
            r#"sleep 1000 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; wait"#,
            "sh",
            arg(pidfile),
        ],
    );
    h.timeout = timeout;
    h
}

/// The pid [`grandchild_hook`] wrote, once it is there.
fn grandchild(pidfile: &Path) -> u32 {
    wait_for_file(pidfile, |t| t.ends_with('\n'))
        .trim()
        .parse()
        .unwrap()
}

fn start_rec(id: u64, label: &str) -> Record {
    Record::EventStart {
        id,
        label: label.into(),
        group: None,
        start: 1.5,
        time: "2026-01-01T12:00:00.123Z".into(),
        score: 0.8,
        clip: None,
        image: None,
    }
}

fn end_rec(id: u64, label: &str) -> Record {
    Record::EventEnd {
        id,
        label: label.into(),
        group: None,
        start: 1.5,
        end: 3.25,
        time: "2026-01-01T12:00:01.873Z".into(),
        peak: 0.9,
        clip: None,
        image: None,
    }
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The hook's `HARK_*` variables, sorted, without `HARK_HOOK_RUN` (a per-run token).
fn env_lines(text: &str) -> Vec<&str> {
    let mut lines: Vec<_> = text
        .lines()
        .filter(|l| !l.starts_with("HARK_HOOK_RUN="))
        .collect();
    lines.sort();
    lines
}

#[test]
fn the_event_reaches_the_hook_in_its_environment_and_on_stdin() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut h = hook(
        "env-and-stdin",
        &["Knock"],
        &[
            "sh",
            "-c",
            r#"env | grep ^HARK_ > "$1.$HARK_EVENT"; cat > "$1.$HARK_EVENT.json""#,
            "sh",
            arg(&out),
        ],
    );
    h.on = vec![HookEvent::EventStart, HookEvent::EventEnd];
    let hooks = Hooks::start(vec![h], rt.handle());

    let start = start_rec(7, "Knock");
    hooks.handle(&start);
    let json = wait_for_file(&out.with_extension("event_start.json"), |t| {
        t.ends_with('\n')
    });
    assert_eq!(json, start.to_json() + "\n");
    let env = std::fs::read_to_string(out.with_extension("event_start")).unwrap();
    assert_eq!(
        env_lines(&env),
        [
            "HARK_CLIP=",
            "HARK_END=",
            "HARK_EVENT=event_start",
            "HARK_GROUP=",
            "HARK_ID=7",
            "HARK_IMAGE=",
            "HARK_LABEL=Knock",
            "HARK_SCORE=0.8",
            "HARK_START=1.5",
            "HARK_TIME=2026-01-01T12:00:00.123Z",
        ]
    );

    let end = end_rec(7, "Knock");
    hooks.handle(&end);
    let json = wait_for_file(&out.with_extension("event_end.json"), |t| t.ends_with('\n'));
    assert_eq!(json, end.to_json() + "\n");
    let env = std::fs::read_to_string(out.with_extension("event_end")).unwrap();
    assert_eq!(
        env_lines(&env),
        [
            "HARK_CLIP=",
            "HARK_END=3.25",
            "HARK_EVENT=event_end",
            "HARK_GROUP=",
            "HARK_ID=7",
            "HARK_IMAGE=",
            "HARK_LABEL=Knock",
            "HARK_SCORE=0.9",
            "HARK_START=1.5",
            "HARK_TIME=2026-01-01T12:00:01.873Z",
        ]
    );
    rt.block_on(hooks.shutdown());
}

#[test]
fn a_label_with_shell_metacharacters_is_never_interpreted() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("label");
    let d = dir.path().display();
    let label = format!(
        "Knock; touch {d}/pwned1 && touch {d}/pwned2 | $(touch {d}/pwned3) `touch {d}/pwned4` '\"\n*"
    );
    let hooks = Hooks::start(
        vec![
            hook(
                "metachar",
                &["*"],
                &[
                    "sh",
                    "-c",
                    r#"printf '%s' "$HARK_LABEL" > "$1""#,
                    "sh",
                    arg(&out),
                ],
            ),
            // And a program that is not a shell: the label is not among its arguments.
            hook(
                "metachar-argv",
                &["*"],
                &["sh", "-c", r#"echo "$#" > "$1.argc""#, "sh", arg(&out)],
            ),
        ],
        rt.handle(),
    );
    hooks.handle(&start_rec(1, &label));
    let seen = wait_for_file(&out, |t| t.len() >= label.len());
    assert_eq!(seen, label);
    assert_eq!(
        wait_for_file(&out.with_extension("argc"), |t| t.ends_with('\n')),
        "1\n"
    );
    rt.block_on(hooks.shutdown());
    for i in 1..=4 {
        assert!(!dir.path().join(format!("pwned{i}")).exists(), "pwned{i}");
    }
}

#[test]
fn a_cooldown_suppresses_a_second_run_of_the_same_label_within_the_window() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut long = hook("cooldown-long", &["*"], &[]);
    long.command = append_id(&runs);
    long.cooldown = 30.0;
    let hooks = Hooks::start(vec![long], rt.handle());

    hooks.handle(&start_rec(1, "Knock"));
    wait_for_file(&runs, |t| t == "1\n");
    hooks.handle(&start_rec(2, "Knock")); // within 30 s: skipped
    hooks.handle(&start_rec(3, "Doorbell")); // another label: runs
    wait_for_file(&runs, |t| t.lines().count() == 2);
    thread::sleep(Duration::from_millis(200));
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), "1\n3\n");
    wait_for_log(&["hook=cooldown-long", "cooldown"]);

    // A short cooldown expires.
    let short_runs = dir.path().join("short");
    let mut short = hook("cooldown-short", &["*"], &[]);
    short.command = append_id(&short_runs);
    short.cooldown = 0.3;
    hooks.set_settings(vec![short]);
    hooks.handle(&start_rec(4, "Knock"));
    wait_for_file(&short_runs, |t| t == "4\n");
    hooks.handle(&start_rec(5, "Knock"));
    thread::sleep(Duration::from_millis(500));
    hooks.handle(&start_rec(6, "Knock"));
    wait_for_file(&short_runs, |t| t == "4\n6\n");
    rt.block_on(hooks.shutdown());
}

fn wait_until_gone(pid: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} still alive");
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_timeout_kills_the_hooks_whole_process_group() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let h = grandchild_hook("timeout-group", &pidfile, 0.5);
    let hooks = Hooks::start(vec![h], rt.handle());
    let started = Instant::now();
    hooks.handle(&start_rec(1, "Knock"));
    let pid = grandchild(&pidfile);
    assert!(alive(pid), "the grandchild runs before the timeout");
    wait_until_gone(pid, Duration::from_secs(5));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450),
        "killed too early: {took:?}"
    );
    wait_for_log(&["hook=timeout-group", "killing hook's process group"]);
    wait_for_log(&["hook=timeout-group", "hook killed by signal"]);
    rt.block_on(hooks.shutdown());
}

#[test]
fn missing_and_failing_programs_are_logged_and_other_hooks_still_run() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let done = dir.path().join("done");
    let hooks = Hooks::start(
        vec![
            hook(
                "missing-program",
                &["Knock"],
                &["/nonexistent/hark-test-hook"],
            ),
            hook(
                "failing-program",
                &["Knock"],
                &["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"],
            ),
            hook(
                "working-program",
                &["Knock"],
                &["sh", "-c", r#"echo ran > "$1""#, "sh", arg(&done)],
            ),
        ],
        rt.handle(),
    );
    hooks.handle(&start_rec(1, "Knock"));
    assert_eq!(wait_for_file(&done, |t| t.ends_with('\n')), "ran\n");
    let line = wait_for_log(&["hook=missing-program", "cannot start hook"]);
    assert!(line.contains("/nonexistent/hark-test-hook"), "{line}");
    assert!(line.contains("No such file"), "{line}");
    wait_for_log(&["hook=failing-program", "hook failed", "code=3"]);
    wait_for_log(&["hook=failing-program", "hook output", "line=to-stdout"]);
    wait_for_log(&["hook=failing-program", "hook output", "line=to-stderr"]);
    wait_for_log(&["hook=working-program", "hook finished"]);

    // Nothing was disturbed: the hooks run again on the next event.
    std::fs::remove_file(&done).unwrap();
    hooks.handle(&start_rec(2, "Knock"));
    assert_eq!(wait_for_file(&done, |t| t.ends_with('\n')), "ran\n");
    rt.block_on(hooks.shutdown());
}

#[test]
fn a_flood_of_events_never_blocks_handle() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let mut flood = hook(
        "flood",
        &["*"],
        &["sh", "-c", r#"echo x >> "$1"; sleep 0.3"#, "sh", arg(&runs)],
    );
    flood.max_concurrent = 1;
    let hooks = Hooks::start(vec![flood], rt.handle());
    let sender = hooks.sender();
    let (longest, total) = thread::spawn(move || {
        let t0 = Instant::now();
        let mut longest = Duration::ZERO;
        for id in 0..1000 {
            let before = Instant::now();
            sender.publish(start_rec(id, "Knock"));
            longest = longest.max(before.elapsed());
        }
        (longest, t0.elapsed())
    })
    .join()
    .unwrap();
    eprintln!("1000 events: {total:?} in all, longest handle() {longest:?}");
    assert!(
        longest < Duration::from_millis(50),
        "handle blocked {longest:?}"
    );
    assert!(
        total < Duration::from_millis(500),
        "1000 handle() took {total:?}"
    );

    // One run at a time (max_concurrent = 1): the rest were skipped, and said so.
    wait_for_file(&runs, |t| !t.is_empty());
    wait_for_log(&["hook=flood", "hook still running; event skipped"]);
    let health = hooks.health.clone();
    rt.block_on(hooks.shutdown());
    assert_eq!(health.get("lagged"), 0, "the fan-out kept every event");
    assert_eq!(
        health.get("runs") + health.get("skipped"),
        1000,
        "every event ran the hook or was counted as skipped"
    );
    let ran = std::fs::read_to_string(&runs).unwrap().lines().count();
    assert!((1..100).contains(&ran), "{ran} runs");
}

#[test]
fn reloaded_settings_take_effect() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    let mut before = hook("reload-old", &["Knock"], &[]);
    before.command = append_id(&old);
    let hooks = Hooks::start(vec![before], rt.handle());
    hooks.handle(&start_rec(1, "Knock"));
    wait_for_file(&old, |t| t == "1\n");

    let mut after = hook("reload-new", &["Doorbell"], &[]);
    after.command = append_id(&new);
    after.on = vec![HookEvent::EventEnd];
    hooks.set_settings(vec![after]);
    thread::sleep(Duration::from_millis(100));
    hooks.handle(&start_rec(2, "Knock"));
    hooks.handle(&start_rec(3, "Doorbell"));
    hooks.handle(&end_rec(4, "Doorbell"));
    wait_for_file(&new, |t| t == "4\n");
    rt.block_on(hooks.shutdown());
    assert_eq!(std::fs::read_to_string(&old).unwrap(), "1\n");
}

#[test]
fn records_that_are_not_events_run_nothing() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let hooks = Hooks::start(
        vec![hook(
            "non-events",
            &["*"],
            &["sh", "-c", r#"echo ran >> "$1""#, "sh", arg(&out)],
        )],
        rt.handle(),
    );
    hooks.handle(&Record::Status {
        start: 0.0,
        time: "t".into(),
        overruns: 0,
        windows: 0,
        skipped_windows: 0,
        inference_ms: 1.0,
        level_db: -30.0,
        message: None,
        sinks: None,
    });
    hooks.handle(&end_rec(1, "Knock")); // the hook is on event_start only
    thread::sleep(Duration::from_millis(300));
    assert!(!out.exists());
    rt.block_on(hooks.shutdown());
}

#[test]
fn shutdown_kills_hooks_that_do_not_finish() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let h = grandchild_hook("shutdown-kill", &pidfile, 600.0);
    let hooks = Hooks::start(vec![h], rt.handle());
    hooks.handle(&start_rec(1, "Knock"));
    let pid = grandchild(&pidfile);
    let t0 = Instant::now();
    rt.block_on(hooks.shutdown());
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    wait_until_gone(pid, Duration::from_secs(2));
    wait_for_log(&["hooks still running at shutdown; killing them"]);
}

#[test]
fn a_hook_on_a_group_runs_for_every_label_of_it_with_the_group_in_its_environment() {
    let _one_at_a_time = serial();
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut h = hook(
        "on-a-group",
        &["door"],
        &[
            "sh",
            "-c",
            r#"echo "$HARK_GROUP $HARK_LABEL $HARK_ID" >> "$1""#,
            "sh",
            arg(&out),
        ],
    );
    // Two runs may overlap; neither may be skipped for it.
    h.max_concurrent = 4;
    let hooks = Hooks::start(vec![h], rt.handle());
    let in_group = |id: u64, label: &str| {
        let mut r = start_rec(id, label);
        if let Record::EventStart { group, .. } = &mut r {
            *group = Some("door".into());
        }
        r
    };
    hooks.handle(&in_group(1, "Knock"));
    hooks.handle(&start_rec(2, "Knock")); // the label alone, in no group: not this hook's
    hooks.handle(&in_group(3, "Doorbell"));
    let text = wait_for_file(&out, |t| t.lines().count() == 2);
    rt.block_on(hooks.shutdown());
    // Runs are separate processes: their lines may land in either order.
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, ["door Doorbell 3", "door Knock 1"]);
}
