//! Hooks: run the user's programs when a sound event starts or ends.
//!
//! The pipeline calls [`HookSender::handle`] (or [`Hooks::handle`]), which only clones an
//! event record into a bounded channel. A dispatcher task on the tokio runtime matches it
//! against the configured hooks, applies each hook's cooldown and concurrency limit, and
//! spawns the program directly — no shell — in a process group of its own, with the event in
//! `HARK_*` environment variables and the JSON record on stdin. Output lines and the exit
//! status are logged under the hook's name; a hook that outlives its timeout has its whole
//! process group killed.
//!
//! Architecture invariant: `handle` never blocks and never fails the caller (a full channel
//! drops the event and logs it), and the record's label never reaches a program's argv.

use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::record::Record;

/// Events waiting for the dispatcher. Beyond this, events are dropped (and logged).
const CHANNEL: usize = 1024;
/// Longest output line logged as one line; the rest of a longer line is cut.
const OUTPUT_LINE_MAX: usize = 4096;
/// Between SIGTERM and SIGKILL when a hook's process group is killed.
const KILL_GRACE: Duration = Duration::from_millis(500);
/// After a hook exits, how long to keep reading its output (a background grandchild may
/// hold the pipes open indefinitely).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// How long shutdown lets running hooks finish before killing them.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

/// What a hook runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookEvent {
    EventStart,
    EventEnd,
}

impl HookEvent {
    /// The name used in the config, `HARK_EVENT` and the record's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::EventStart => "event_start",
            HookEvent::EventEnd => "event_end",
        }
    }

    fn of(rec: &Record) -> Option<HookEvent> {
        match rec {
            Record::EventStart { .. } => Some(HookEvent::EventStart),
            Record::EventEnd { .. } => Some(HookEvent::EventEnd),
            _ => None,
        }
    }
}

/// One `[[hooks]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookSettings {
    /// Names the hook in logs; unique.
    pub name: String,
    /// Labels that trigger the hook, exactly as the model spells them; `["*"]` for all.
    pub labels: Vec<String>,
    /// Which event records trigger it.
    #[serde(default = "default_on")]
    pub on: Vec<HookEvent>,
    /// Program and arguments, run without a shell. The event is in the environment and on
    /// stdin, never in the arguments.
    pub command: Vec<String>,
    /// Seconds after a run during which the same label and event type do not run the hook
    /// again.
    #[serde(default)]
    pub cooldown: f64,
    /// Seconds a run may take before its process group is killed.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Runs of this hook at once; an event arriving beyond that is skipped (and logged).
    #[serde(default = "default_max_concurrent")]
    pub max_concurrent: usize,
}

fn default_on() -> Vec<HookEvent> {
    vec![HookEvent::EventStart]
}

fn default_timeout() -> f64 {
    10.0
}

fn default_max_concurrent() -> usize {
    1
}

/// The longest timeout or cooldown accepted, a day; anything longer is a typo.
const MAX_SECONDS: f64 = 86_400.0;

impl HookSettings {
    /// Checks what deserialization cannot. The message starts with the key at fault
    /// (`command: ...`); [`validate_hooks`] prefixes it with `hooks[i].`.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("name: must not be empty".into());
        }
        if self.labels.is_empty() {
            return Err(r#"labels: must list at least one label, or ["*"] for all"#.into());
        }
        if self.labels.iter().any(|l| l.is_empty()) {
            return Err("labels: a label is empty".into());
        }
        if self.on.is_empty() {
            return Err(r#"on: must list event_start, event_end or both"#.into());
        }
        match self.command.first() {
            None => {
                return Err(
                    r#"command: must not be empty; give the program and its arguments, e.g. ["notify-send", "hark"]"#
                        .into(),
                )
            }
            Some(program) if program.is_empty() => {
                return Err("command: the program (first element) is empty".into())
            }
            Some(_) => {}
        }
        if self.command.iter().any(|a| a.contains('\0')) {
            return Err("command: an argument contains a NUL byte".into());
        }
        if !(self.cooldown.is_finite() && (0.0..=MAX_SECONDS).contains(&self.cooldown)) {
            return Err(format!(
                "cooldown: must be between 0 and {MAX_SECONDS} seconds, got {}",
                self.cooldown
            ));
        }
        if !(self.timeout.is_finite() && self.timeout > 0.0 && self.timeout <= MAX_SECONDS) {
            return Err(format!(
                "timeout: must be more than 0 and at most {MAX_SECONDS} seconds, got {}",
                self.timeout
            ));
        }
        if self.max_concurrent == 0 {
            return Err("max_concurrent: must be at least 1, got 0".into());
        }
        Ok(())
    }

    /// Whether `event` of `label` triggers this hook.
    pub fn matches(&self, event: HookEvent, label: &str) -> bool {
        self.on.contains(&event) && self.labels.iter().any(|l| l == "*" || l == label)
    }

    /// The hook's labels the model does not know (always empty for `"*"`), for a warning at
    /// startup: a misspelt label would otherwise never fire.
    pub fn unknown_labels<'a>(&'a self, known: &[String]) -> Vec<&'a str> {
        self.labels
            .iter()
            .filter(|l| *l != "*" && !known.contains(l))
            .map(String::as_str)
            .collect()
    }
}

/// Validates every hook and that names are unique; the message names `hooks[i].key`.
pub fn validate_hooks(hooks: &[HookSettings]) -> Result<(), String> {
    for (i, hook) in hooks.iter().enumerate() {
        hook.validate().map_err(|e| format!("hooks[{i}].{e}"))?;
        if let Some(j) = hooks[..i].iter().position(|h| h.name == hook.name) {
            return Err(format!(
                "hooks[{i}].name: {:?} is already the name of hooks[{j}]",
                hook.name
            ));
        }
    }
    Ok(())
}

/// The environment a hook gets for `rec` (on top of hark's own): `HARK_EVENT`, `HARK_LABEL`,
/// `HARK_SCORE` (the score for a start, the peak for an end), `HARK_START`, `HARK_END`
/// (empty for a start), `HARK_ID` and `HARK_TIME`. `None` for records that are not events.
pub fn hook_env(rec: &Record) -> Option<[(&'static str, String); 7]> {
    let (event, id, label, score, start, end, time) = match rec {
        Record::EventStart {
            id,
            label,
            start,
            time,
            score,
        } => ("event_start", id, label, score, start, None, time),
        Record::EventEnd {
            id,
            label,
            start,
            end,
            time,
            peak,
        } => ("event_end", id, label, peak, start, Some(end), time),
        _ => return None,
    };
    Some([
        ("HARK_EVENT", event.to_owned()),
        ("HARK_LABEL", label.clone()),
        ("HARK_SCORE", score.to_string()),
        ("HARK_START", start.to_string()),
        ("HARK_END", end.map(f64::to_string).unwrap_or_default()),
        ("HARK_ID", id.to_string()),
        ("HARK_TIME", time.clone()),
    ])
}

/// The pipeline's handle: cheap to clone, callable from any thread.
#[derive(Clone)]
pub struct HookSender {
    tx: mpsc::Sender<Record>,
    dropped: Arc<AtomicU64>,
}

impl HookSender {
    /// Queues an event record for the hooks and returns at once; other records are ignored.
    /// If the dispatcher is that far behind, the event is dropped and a warning logged.
    pub fn handle(&self, rec: &Record) {
        if HookEvent::of(rec).is_none() {
            return;
        }
        match self.tx.try_send(rec.clone()) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(rec)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // One warning per hundred is enough to see a flood without adding to it.
                if dropped % 100 == 1 {
                    warn!(
                        dropped,
                        label = rec.label().unwrap_or_default(),
                        "hook queue full; event dropped"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                debug!("hooks stopped; event ignored");
            }
        }
    }
}

/// The running hooks: a dispatcher task and the processes it started.
pub struct Hooks {
    sender: HookSender,
    settings: watch::Sender<Vec<HookSettings>>,
    stop: watch::Sender<bool>,
    dispatcher: JoinHandle<()>,
}

impl Hooks {
    /// Starts the dispatcher on `rt`. Hooks that fail [`HookSettings::validate`] are logged
    /// and left out (validate the config first to report them properly).
    pub fn start(settings: Vec<HookSettings>, rt: &Handle) -> Hooks {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let (settings_tx, settings_rx) = watch::channel(settings);
        let (stop, stop_rx) = watch::channel(false);
        let dispatcher = rt.spawn(dispatch(rx, settings_rx, stop_rx));
        Hooks {
            sender: HookSender {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            settings: settings_tx,
            stop,
            dispatcher,
        }
    }

    /// See [`HookSender::handle`].
    pub fn handle(&self, rec: &Record) {
        self.sender.handle(rec);
    }

    /// A handle for the pipeline thread.
    pub fn sender(&self) -> HookSender {
        self.sender.clone()
    }

    /// Replaces the hooks (config reload). Running hooks finish; a hook that keeps its name
    /// keeps its cooldowns.
    pub fn set_settings(&self, settings: Vec<HookSettings>) {
        self.settings.send_replace(settings);
    }

    /// Stops taking events, lets running hooks finish for up to two seconds, then kills the
    /// process groups of those still running.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.dispatcher.await {
            warn!(error = %e, "hook dispatcher failed");
        }
    }
}

/// A hook with its run-time state.
struct Hook {
    settings: Arc<HookSettings>,
    name: Arc<str>,
    command: Arc<[String]>,
    slots: Arc<Semaphore>,
    /// When the hook last ran, per label and event type.
    last_run: HashMap<(String, HookEvent), Instant>,
}

fn build(settings: &[HookSettings], mut old: Vec<Hook>) -> Vec<Hook> {
    let mut hooks = Vec::with_capacity(settings.len());
    for s in settings {
        if let Err(e) = s.validate() {
            warn!(hook = %s.name, error = %e, "invalid hook left out");
            continue;
        }
        let kept = old
            .iter()
            .position(|h| h.settings.name == s.name)
            .map(|i| old.swap_remove(i));
        let (slots, last_run) = match kept {
            // Keep the semaphore when the limit is unchanged, so runs in flight still count.
            Some(h) if h.settings.max_concurrent == s.max_concurrent => (h.slots, h.last_run),
            Some(h) => (Arc::new(Semaphore::new(s.max_concurrent)), h.last_run),
            None => (Arc::new(Semaphore::new(s.max_concurrent)), HashMap::new()),
        };
        hooks.push(Hook {
            name: s.name.as_str().into(),
            command: s.command.clone().into(),
            settings: Arc::new(s.clone()),
            slots,
            last_run,
        });
    }
    hooks
}

async fn dispatch(
    mut events: mpsc::Receiver<Record>,
    mut settings: watch::Receiver<Vec<HookSettings>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut hooks = build(&settings.borrow_and_update(), Vec::new());
    let (kill, killed) = watch::channel(false);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            // A change (or `Hooks` dropped) means stop.
            _ = stop.changed() => break,
            Ok(()) = settings.changed() => {
                hooks = build(&settings.borrow_and_update(), hooks);
                info!(hooks = hooks.len(), "hooks reloaded");
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
            rec = events.recv() => match rec {
                Some(rec) => start_runs(&mut hooks, &rec, &mut running, &killed),
                None => break,
            },
        }
    }
    events.close();
    if running.is_empty() {
        return;
    }
    let finish = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_WAIT, finish).await.is_ok() {
        return;
    }
    warn!(
        running = running.len(),
        "hooks still running at shutdown; killing them"
    );
    let _ = kill.send(true);
    let finish = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(KILL_GRACE * 2, finish).await.is_err() {
        running.shutdown().await;
    }
}

fn start_runs(
    hooks: &mut [Hook],
    rec: &Record,
    running: &mut JoinSet<()>,
    killed: &watch::Receiver<bool>,
) {
    let (Some(event), Some(label)) = (HookEvent::of(rec), rec.label()) else {
        return;
    };
    let now = Instant::now();
    let mut payload = None;
    for hook in hooks.iter_mut() {
        if !hook.settings.matches(event, label) {
            continue;
        }
        let key = (label.to_owned(), event);
        let cooldown = Duration::from_secs_f64(hook.settings.cooldown);
        if let Some(last) = hook.last_run.get(&key) {
            if now.duration_since(*last) < cooldown {
                debug!(hook = %hook.name, label, "hook in cooldown; event skipped");
                continue;
            }
        }
        let Ok(permit) = hook.slots.clone().try_acquire_owned() else {
            warn!(
                hook = %hook.name,
                label,
                max_concurrent = hook.settings.max_concurrent,
                "hook still running; event skipped"
            );
            continue;
        };
        hook.last_run.insert(key, now);
        let (env, stdin) = payload.get_or_insert_with(|| {
            let mut json = rec.to_json();
            json.push('\n');
            (
                hook_env(rec).expect("an event record"),
                Arc::<str>::from(json),
            )
        });
        let run = Run {
            name: hook.name.clone(),
            label: label.into(),
            command: hook.command.clone(),
            env: env.clone(),
            stdin: stdin.clone(),
            timeout: Duration::from_secs_f64(hook.settings.timeout),
        };
        running.spawn(run.execute(permit, killed.clone()));
    }
}

/// One run of a hook.
struct Run {
    name: Arc<str>,
    label: Arc<str>,
    command: Arc<[String]>,
    env: [(&'static str, String); 7],
    stdin: Arc<str>,
    timeout: Duration,
}

impl Run {
    async fn execute(self, _slot: OwnedSemaphorePermit, mut killed: watch::Receiver<bool>) {
        let Run {
            name,
            label,
            command,
            env,
            stdin,
            timeout,
        } = self;
        let started = Instant::now();
        let mut child = match Command::new(&command[0])
            .args(&command[1..])
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own group, so that a timeout can kill whatever it started too.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
        {
            Ok(child) => child,
            Err(e) => {
                warn!(hook = %name, program = %command[0], error = %e, "cannot start hook");
                return;
            }
        };
        let pgid = child.id().and_then(|id| i32::try_from(id).ok());
        debug!(hook = %name, %label, pid = pgid, "hook started");

        let (input, output, errors) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let io = async {
            tokio::join!(
                async {
                    if let Some(mut input) = input {
                        // A hook that does not read stdin is fine (EPIPE is ignored).
                        let _ = input.write_all(stdin.as_bytes()).await;
                    }
                },
                log_output(&name, "stdout", output),
                log_output(&name, "stderr", errors),
            )
        };
        tokio::pin!(io);
        let mut io_done = false;
        let outcome = loop {
            tokio::select! {
                _ = &mut io, if !io_done => io_done = true,
                status = child.wait() => break Ok(status),
                () = tokio::time::sleep_until((started + timeout).into()) => break Err("timed out"),
                _ = killed.wait_for(|k| *k) => break Err("hark is stopping"),
            }
        };
        let status = match outcome {
            Ok(status) => status,
            Err(why) => {
                warn!(
                    hook = %name,
                    %label,
                    timeout_s = timeout.as_secs_f64(),
                    reason = why,
                    "killing hook's process group"
                );
                kill_group(&mut child, pgid).await
            }
        };
        if !io_done {
            let _ = tokio::time::timeout(OUTPUT_GRACE, &mut io).await;
        }
        log_exit(&name, &label, status, started.elapsed());
    }
}

/// SIGTERM to the group, a grace, SIGKILL to the group, then reap the leader.
async fn kill_group(child: &mut Child, pgid: Option<i32>) -> std::io::Result<ExitStatus> {
    let Some(pgid) = pgid else {
        child.start_kill()?;
        return child.wait().await;
    };
    signal_group(pgid, libc::SIGTERM);
    // The leader is not reaped before the SIGKILL: while it is a zombie its pid, which is the
    // group's id, cannot be reused, so the SIGKILL cannot reach a stranger.
    tokio::time::sleep(KILL_GRACE).await;
    signal_group(pgid, libc::SIGKILL);
    child.wait().await
}

fn signal_group(pgid: i32, signal: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(-pgid, signal) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            warn!(pgid, signal, error = %e, "cannot signal hook's process group");
        }
    }
}

fn log_exit(name: &str, label: &str, status: std::io::Result<ExitStatus>, took: Duration) {
    let elapsed_ms = took.as_millis() as u64;
    match status {
        Ok(s) if s.success() => info!(hook = %name, label, code = 0, elapsed_ms, "hook finished"),
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => warn!(hook = %name, label, code, elapsed_ms, "hook failed"),
            (None, Some(signal)) => {
                warn!(hook = %name, label, signal, elapsed_ms, "hook killed by signal")
            }
            _ => warn!(hook = %name, label, status = %s, elapsed_ms, "hook ended"),
        },
        Err(e) => warn!(hook = %name, label, error = %e, "cannot wait for hook"),
    }
}

/// Logs each line the hook prints. Lines are cut at [`OUTPUT_LINE_MAX`] bytes.
async fn log_output<R: AsyncRead + Unpin>(name: &str, stream: &'static str, pipe: Option<R>) {
    let Some(pipe) = pipe else { return };
    let mut pipe = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut cut = false;
    loop {
        let buf = match pipe.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                debug!(hook = %name, stream, error = %e, "cannot read hook output");
                return;
            }
        };
        let eof = buf.is_empty();
        let newline = buf.iter().position(|&b| b == b'\n');
        let end = newline.unwrap_or(buf.len());
        let room = OUTPUT_LINE_MAX.saturating_sub(line.len());
        cut |= end > room;
        line.extend_from_slice(&buf[..end.min(room)]);
        pipe.consume(end + usize::from(newline.is_some()));
        if newline.is_some() || (eof && !line.is_empty()) {
            let l = String::from_utf8_lossy(&line);
            let l = l.trim_end_matches('\r');
            if cut {
                info!(hook = %name, stream, line = %l, cut = true, "hook output");
            } else {
                info!(hook = %name, stream, line = %l, "hook output");
            }
            line.clear();
            cut = false;
        }
        if eof {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook() -> HookSettings {
        HookSettings {
            name: "n".into(),
            labels: vec!["Knock".into()],
            on: default_on(),
            command: vec!["true".into()],
            cooldown: 0.0,
            timeout: 10.0,
            max_concurrent: 1,
        }
    }

    #[test]
    fn validate_names_the_key() {
        let cases = [
            (
                HookSettings {
                    command: vec![],
                    ..hook()
                },
                "command:",
            ),
            (
                HookSettings {
                    command: vec!["".into()],
                    ..hook()
                },
                "command:",
            ),
            (
                HookSettings {
                    timeout: 0.0,
                    ..hook()
                },
                "timeout:",
            ),
            (
                HookSettings {
                    timeout: f64::NAN,
                    ..hook()
                },
                "timeout:",
            ),
            (
                HookSettings {
                    cooldown: -1.0,
                    ..hook()
                },
                "cooldown:",
            ),
            (
                HookSettings {
                    max_concurrent: 0,
                    ..hook()
                },
                "max_concurrent:",
            ),
            (
                HookSettings {
                    labels: vec![],
                    ..hook()
                },
                "labels:",
            ),
            (
                HookSettings {
                    on: vec![],
                    ..hook()
                },
                "on:",
            ),
            (
                HookSettings {
                    name: " ".into(),
                    ..hook()
                },
                "name:",
            ),
        ];
        for (h, key) in cases {
            let err = h.validate().unwrap_err();
            assert!(err.starts_with(key), "{err}");
        }
        assert!(hook().validate().is_ok());
        let err = validate_hooks(&[hook(), hook()]).unwrap_err();
        assert!(err.starts_with("hooks[1].name:"), "{err}");
        let err = validate_hooks(&[
            hook(),
            HookSettings {
                timeout: 0.0,
                ..hook()
            },
        ])
        .unwrap_err();
        assert!(err.starts_with("hooks[1].timeout:"), "{err}");
    }

    #[test]
    fn matches_labels_and_events() {
        let h = hook();
        assert!(h.matches(HookEvent::EventStart, "Knock"));
        assert!(!h.matches(HookEvent::EventEnd, "Knock"));
        assert!(!h.matches(HookEvent::EventStart, "knock"));
        let all = HookSettings {
            labels: vec!["*".into()],
            on: vec![HookEvent::EventEnd],
            ..hook()
        };
        assert!(all.matches(HookEvent::EventEnd, "Anything"));
        assert_eq!(hook().unknown_labels(&["Speech".into()]), ["Knock"]);
        assert!(all.unknown_labels(&[]).is_empty());
    }

    #[test]
    fn env_of_start_and_end() {
        let start = Record::EventStart {
            id: 4,
            label: "Door".into(),
            start: 1.5,
            time: "t".into(),
            score: 0.75,
        };
        let env: HashMap<_, _> = hook_env(&start).unwrap().into_iter().collect();
        assert_eq!(env["HARK_EVENT"], "event_start");
        assert_eq!(env["HARK_SCORE"], "0.75");
        assert_eq!(env["HARK_START"], "1.5");
        assert_eq!(env["HARK_END"], "");
        assert_eq!(env["HARK_ID"], "4");
        let end = Record::EventEnd {
            id: 4,
            label: "Door".into(),
            start: 1.5,
            end: 2.25,
            time: "t".into(),
            peak: 0.5,
        };
        let env: HashMap<_, _> = hook_env(&end).unwrap().into_iter().collect();
        assert_eq!(env["HARK_EVENT"], "event_end");
        assert_eq!(env["HARK_SCORE"], "0.5");
        assert_eq!(env["HARK_END"], "2.25");
    }

    #[test]
    fn defaults_and_unknown_keys() {
        #[derive(Deserialize)]
        struct File {
            hooks: Vec<HookSettings>,
        }
        let f: File =
            toml::from_str("[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\n")
                .unwrap();
        let h = &f.hooks[0];
        assert_eq!(h.on, [HookEvent::EventStart]);
        assert_eq!((h.cooldown, h.timeout, h.max_concurrent), (0.0, 10.0, 1));
        let bad =
            "[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\nshell = true\n";
        assert_eq!(ignored::<File>(bad), ["hooks.0.shell"]);
        let bad = "[[hooks]]\nname = \"a\"\nlabels = [\"Knock\"]\ncommand = [\"true\"]\non = [\"start\"]\n";
        assert!(toml::from_str::<File>(bad).is_err());
    }

    #[test]
    fn example_config_is_valid() {
        #[derive(Deserialize)]
        struct File {
            hooks: Vec<HookSettings>,
        }
        let f: File = toml::from_str(include_str!("../config/hooks.example.toml"))
            .unwrap_or_else(|e| panic!("config/hooks.example.toml: {e}"));
        assert!(f.hooks.len() >= 3);
        validate_hooks(&f.hooks).unwrap();
    }

    /// Keys serde ignored while deserializing `text`: `config::load` reports these as unknown.
    fn ignored<T: serde::de::DeserializeOwned>(text: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let _: T =
            serde_ignored::deserialize(toml::Deserializer::new(text), |p| keys.push(p.to_string()))
                .unwrap();
        keys
    }
}
