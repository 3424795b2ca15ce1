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

/// `scripts/test-tools.txt`: every program the tests run, with its Debian package.
pub const TOOLS_LIST: &str = include_str!("../../scripts/test-tools.txt");

/// `(program, package)` for every entry of [`TOOLS_LIST`].
pub fn tools() -> Vec<(&'static str, &'static str)> {
    TOOLS_LIST
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut words = l.split_whitespace();
            let program = words.next().expect("a program");
            let package = words
                .next()
                .unwrap_or_else(|| panic!("scripts/test-tools.txt: {program:?} has no package"));
            (program, package)
        })
        .collect()
}

/// Whether `program` is an executable file on `PATH`.
pub fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// Fails the test, naming the Debian package, when `program` is not installed; a missing tool
/// is never a silent skip.
pub fn require(program: &str) {
    let package = tools()
        .into_iter()
        .find(|(p, _)| *p == program)
        .map(|(_, pkg)| pkg)
        .unwrap_or_else(|| {
            panic!("{program} is not in scripts/test-tools.txt; add it with its package")
        });
    assert!(
        on_path(program),
        "`{program}` is not installed: apt-get install {package} (scripts/setup.sh --test installs every package of scripts/test-tools.txt)"
    );
}

/// `secs` seconds of pink noise at 44.1 kHz mono 16-bit, as `dir/name`: the rate of most
/// recordings (so the resampler runs) and broadband (so every window is scored).
pub fn noise_wav(dir: &std::path::Path, name: &str, secs: u32) -> std::path::PathBuf {
    let path = dir.join(name);
    let out = path.to_str().expect("a UTF-8 temporary path");
    let secs = secs.to_string();
    sox(&[
        "-n",
        "-r",
        "44100",
        "-c",
        "1",
        "-b",
        "16",
        out,
        "synth",
        &secs,
        "pinknoise",
        "vol",
        "0.3",
    ]);
    path
}
