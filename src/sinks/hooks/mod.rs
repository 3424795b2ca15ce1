//! Hooks: run the user's programs when a sound event starts or ends.
//!
//! A sink: a dispatcher task on the tokio runtime takes event records from the fan-out,
//! matches them against the configured hooks, applies each hook's cooldown and concurrency
//! limit, and spawns the program directly — no shell — in a process group of its own, with
//! the event in `HARK_*` environment variables and the JSON record on stdin (`process`).
//! Output lines (the first hundred of a run, control characters escaped) and the exit status
//! are logged under the hook's name; a hook that outlives its timeout has its whole process
//! group killed, and when a run ends every process it started is ended too, including those
//! that left its group (`orphans`: hark is a child subreaper).
//!
//! Architecture invariant: the record's label never reaches a program's argv. Health:
//! `runs`, `failed` (non-zero exit, killed or not started), `skipped` (cooldown or
//! concurrency limit).

mod orphans;
mod process;
mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::record::Record;
use crate::sinks::{SinkContext, SinkHealth};
use process::Run;
pub use settings::{hook_env, validate_hooks, HookSettings};

/// Longest output line logged as one line; the rest of a longer line is cut.
const OUTPUT_LINE_MAX: usize = 4096;
/// Output lines of one run that are logged; the rest are counted in one line at its end.
const OUTPUT_LINES: usize = 100;
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

    pub(crate) fn of(rec: &Record) -> Option<HookEvent> {
        match rec {
            Record::EventStart { .. } => Some(HookEvent::EventStart),
            Record::EventEnd { .. } => Some(HookEvent::EventEnd),
            _ => None,
        }
    }
}

/// The counters this sink reports in `status`.
pub const COUNTERS: &[&str] = &["runs", "failed", "skipped"];

/// Start the dispatcher on the current tokio runtime. It ends when the fan-out is done (or
/// shortly after a stop), letting running hooks finish for up to two seconds and then killing
/// the process groups of those still running. Hooks that fail validation are logged and left
/// out (the config is validated before this, so that only happens with a bad reload).
pub fn start(ctx: SinkContext<Vec<HookSettings>>) -> JoinHandle<()> {
    orphans::become_subreaper();
    tokio::spawn(dispatch(ctx))
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
        if let Err(e) = s.validate(0) {
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

async fn dispatch(mut ctx: SinkContext<Vec<HookSettings>>) {
    let mut hooks = build(&ctx.settings.borrow_and_update(), Vec::new());
    let health = ctx.health().clone();
    let (kill, killed) = watch::channel(false);
    let mut running = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            Ok(()) = ctx.settings.changed() => {
                hooks = build(&ctx.settings.borrow_and_update(), hooks);
                info!(hooks = hooks.len(), "hooks reloaded");
            }
            Some(_) = running.join_next(), if !running.is_empty() => {}
            rec = ctx.records.next() => match rec {
                Some(rec) => start_runs(&mut hooks, &rec, &mut running, &killed, &health),
                None => break,
            },
        }
    }
    finish_runs(running, kill).await;
    // Nothing any run started outlives hark.
    let _ = tokio::task::spawn_blocking(|| orphans::sweep(&orphans::Marked::AllRuns)).await;
}

/// Let running hooks finish for a while, then kill the groups of those still running.
async fn finish_runs(mut running: JoinSet<()>, kill: watch::Sender<bool>) {
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
    health: &Arc<SinkHealth>,
) {
    let (Some(event), Some(label)) = (HookEvent::of(rec), rec.label()) else {
        return;
    };
    let now = Instant::now();
    let mut payload = None;
    for hook in hooks.iter_mut() {
        if !hook.settings.matches(event, label, rec.group()) {
            continue;
        }
        // A group is one sound: its cooldown does not depend on which label led it.
        let key = (rec.event_name().unwrap_or(label).to_owned(), event);
        let cooldown = Duration::from_secs_f64(hook.settings.cooldown);
        if let Some(last) = hook.last_run.get(&key) {
            if now.duration_since(*last) < cooldown {
                debug!(hook = %hook.name, label, "hook in cooldown; event skipped");
                health.add("skipped", 1);
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
            health.add("skipped", 1);
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
            health: health.clone(),
        };
        running.spawn(run.execute(permit, killed.clone()));
    }
}
