//! What a hook leaves behind: every process a run starts inherits `HARK_HOOK_RUN=<token>` in
//! its environment (including those that call `setsid` or leave the hook's process group), and
//! hark is a child subreaper, so orphans are re-parented to hark rather than to init. When a
//! run ends, [`sweep`] kills every process still carrying the run's token, and those descended
//! from one, and reaps them; at hark's stop it sweeps every run's.
//!
//! What escapes: a descendant that clears its environment (`env -i`) *and* outlives the
//! process it came from, since then nothing links it to the hook.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tracing::{debug, warn};

/// The environment variable that marks a run's processes.
pub(super) const RUN_VAR: &str = "HARK_HOOK_RUN";

/// Rounds of scanning and killing: a process may fork while its siblings are being killed.
const SWEEP_ROUNDS: usize = 8;

/// Make this process the reaper of its orphaned descendants (Linux 3.4+), so that a hook's
/// double-forked or `setsid` children stay hark's descendants.
pub(super) fn become_subreaper() {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes integers only and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        warn!(error = %e, "cannot become a child subreaper; a hook's orphans go to init");
    }
}

/// A new run's token, unique in this process: `<hark's pid>.<n>`.
pub(super) fn run_token() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// Which processes a sweep ends.
#[derive(Debug, Clone)]
pub(super) enum Marked {
    /// One run's: `HARK_HOOK_RUN=<token>`.
    Run(String),
    /// Every run of this hark.
    AllRuns,
}

impl Marked {
    fn matches(&self, entry: &[u8]) -> bool {
        let Some(value) = entry
            .strip_prefix(RUN_VAR.as_bytes())
            .and_then(|e| e.strip_prefix(b"="))
        else {
            return false;
        };
        match self {
            Marked::Run(token) => value == token.as_bytes(),
            Marked::AllRuns => value
                .strip_prefix(std::process::id().to_string().as_bytes())
                .is_some_and(|rest| rest.first() == Some(&b'.')),
        }
    }
}

/// A process as `/proc/<pid>/stat` shows it.
#[derive(Debug, Clone, Copy)]
struct Proc {
    pid: i32,
    ppid: i32,
    zombie: bool,
}

/// Kill every live process `marked` names, and their descendants, then reap those that are
/// hark's children. Blocking (it reads `/proc` and waits briefly): call it off the runtime.
/// Returns how many processes were killed.
pub(super) fn sweep(marked: &Marked) -> usize {
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for _ in 0..SWEEP_ROUNDS {
        let procs = scan();
        let targets = targets(&procs, marked, me);
        if targets.is_empty() {
            break;
        }
        for &pid in &targets {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        killed.extend_from_slice(&targets);
        std::thread::sleep(Duration::from_millis(10));
    }
    killed.sort_unstable();
    killed.dedup();
    reap(&killed);
    if !killed.is_empty() {
        debug!(
            ?marked,
            killed = killed.len(),
            "ended a hook's leftover processes"
        );
    }
    killed.len()
}

/// Live processes carrying the mark, and every live descendant of one.
fn targets(procs: &[Proc], marked: &Marked, me: i32) -> Vec<i32> {
    let mut targets: Vec<i32> = procs
        .iter()
        .filter(|p| !p.zombie && p.pid != me && carries(p.pid, marked))
        .map(|p| p.pid)
        .collect();
    // Descendants whose environment was cleared, while their parent chain still holds.
    let mut grew = true;
    while grew {
        grew = false;
        for p in procs {
            if !p.zombie && p.pid != me && targets.contains(&p.ppid) && !targets.contains(&p.pid) {
                targets.push(p.pid);
                grew = true;
            }
        }
    }
    targets
}

/// Reap the killed processes that are this process's children (orphans re-parented to a
/// subreaper); others (still some other process's children) are reaped by their parents.
fn reap(killed: &[i32]) {
    let mut left: Vec<i32> = killed.to_vec();
    for _ in 0..50 {
        left.retain(|&pid| {
            let mut status = 0;
            // SAFETY: waitpid writes only to `status`, a valid local.
            let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            rc == 0 // still running (SIGKILL not delivered yet): try again
        });
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether `pid`'s environment carries the mark. A process that cannot be read (gone, or
/// another user's) does not.
fn carries(pid: i32, marked: &Marked) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|&b| b == 0).any(|e| marked.matches(e)))
}

/// Every process in `/proc` with its parent and whether it is a zombie.
fn scan() -> Vec<Proc> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // "pid (comm) S ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
        let mut rest = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
        let state = rest.next()?;
        let ppid = rest.next()?.parse().ok()?;
        Some(Proc {
            pid,
            ppid,
            zombie: state == "Z" || state == "X",
        })
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mark_matches_its_own_run_or_every_run_of_this_process() {
        let me = std::process::id();
        let entry = format!("{RUN_VAR}={me}.7");
        assert!(Marked::Run(format!("{me}.7")).matches(entry.as_bytes()));
        assert!(!Marked::Run(format!("{me}.70")).matches(entry.as_bytes()));
        assert!(Marked::AllRuns.matches(entry.as_bytes()));
        assert!(!Marked::AllRuns.matches(format!("{RUN_VAR}={me}7.1").as_bytes()));
        assert!(!Marked::AllRuns.matches(format!("X{RUN_VAR}={me}.1").as_bytes()));
    }
}
