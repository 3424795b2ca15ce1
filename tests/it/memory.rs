//! Memory of `hark run` over a file: it must not grow with the file's length.
//!
//! The file source decodes a block at a time (`audio::AudioReader`), so a long recording costs
//! what a short one does: the ring plus a block. These tests run the real binary with `--fast`
//! on a 10-second and a 10-minute WAV, synthesized with sox into a temporary directory, and
//! compare the peak resident set sizes the kernel reports for each child (`ru_maxrss` from
//! wait4(2)). Decoding the whole file first made the 10-minute run ~220 MB larger.
//!
//! What is measured is each child's own peak, reported for its pid alone, so this shares the
//! `it` binary with other tests: they neither add to it nor reap its children.

use crate::common::tools::noise_wav;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::hark::{command, write_config};

/// How much more the 10-minute run may peak at than the 10-second one. Holding the long file
/// even once as mono f32 would take 106 MB; allocator and model noise is well under this.
const MAX_GROWTH_KIB: i64 = 10 * 1024;

/// Generous bound for scoring 10 minutes of audio with `--fast` (~10 s on a small machine).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs `hark run --input INPUT --fast --exit-at-end --no-socket --print none` to its end and
/// returns the child's peak resident set size in KiB. Panics if it fails or hangs.
fn peak_rss_kib(config: &Path, input: &Path, log: &Path) -> i64 {
    // The developer's shell must not change the run (see common::hark::command).
    let mut command = command();
    command
        .args(["--log", "warn", "run", "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .args(["--fast", "--exit-at-end", "--no-socket", "--print", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).expect("create the log file"));
    // Reaped below with wait4(2) rather than `Child::wait`, which cannot report the rusage.
    #[allow(clippy::zombie_processes)]
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let pid = child.id() as libc::pid_t;
    let log_text = || std::fs::read_to_string(log).unwrap_or_default();
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut status = 0;
    // SAFETY: rusage is plain old data, for which all zeroes is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: wait4 on our own child, not reaped by anyone else (`child` is never waited
        // on), with pointers to live locals.
        let reaped = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if reaped == pid {
            break;
        }
        assert_eq!(reaped, 0, "wait4: {}", std::io::Error::last_os_error());
        if Instant::now() >= deadline {
            // SAFETY: kill and reap our own child, still unreaped, so it cannot outlive the test.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            panic!(
                "hark did not finish within {RUN_TIMEOUT:?}; stderr:\n{}",
                log_text()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "hark failed (wait status {status:#x}); stderr:\n{}",
        log_text()
    );
    // Linux reports ru_maxrss in KiB.
    usage.ru_maxrss
}

#[test]
fn file_input_peak_memory_does_not_grow_with_the_file_length() {
    let dir = tempfile::Builder::new()
        .prefix("hark-memory-")
        .tempdir()
        .expect("create a temporary directory");
    let config = write_config(dir.path(), "defaults.toml", "");
    let short = noise_wav(dir.path(), "ten_seconds.wav", 10);
    let long = noise_wav(dir.path(), "ten_minutes.wav", 600);
    let short_kib = peak_rss_kib(&config, &short, &dir.path().join("short.log"));
    let long_kib = peak_rss_kib(&config, &long, &dir.path().join("long.log"));
    eprintln!("peak RSS: 10 s file {short_kib} KiB, 10 min file {long_kib} KiB");
    assert!(
        long_kib - short_kib <= MAX_GROWTH_KIB,
        "a 10-minute file peaks at {long_kib} KiB, {} KiB above a 10-second one ({short_kib} KiB); \
         the file source must stream, not hold the file",
        long_kib - short_kib
    );
}
