//! External programs the tests run (sox, espeak-ng, cp, ...) and processes they watch.

use std::ffi::OsStr;
use std::process::Command;

/// Runs `command` to its end; panics with its stderr if it cannot start or fails.
pub fn run(mut command: Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?} (is it installed? see scripts/setup.sh): {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs sox with `args`; panics with its stderr if it fails.
pub fn sox<S: AsRef<OsStr>>(args: &[S]) {
    let mut command = Command::new("sox");
    command.args(args);
    run(command);
}

/// True while `pid` is a live process: not gone, not a zombie waiting for its reaper.
pub fn alive(pid: u32) -> bool {
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

/// The resident set size of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The middle value of `values` (the upper one of the two middle values for an even count).
pub fn median(values: &[f64]) -> f64 {
    assert!(!values.is_empty(), "the median of nothing");
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
