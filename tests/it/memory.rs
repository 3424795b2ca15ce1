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
//!
//! And the code that only loading needs is not resident while the daemon runs: ONNX Runtime's
//! operator-schema registration and graph building are paged out after loading
//! (`hark::memory`), at start and again after a reload that rebuilds the model.

use crate::common::tools::noise_wav;
use std::fs::File;
use std::path::Path;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::hark::{command, write_config, Daemon, HarkRun};
use crate::common::slow::emulated;
use hark::record::Record;

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

/// A temporary directory for one test's config, input and logs.
fn test_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hark-memory-")
        .tempdir()
        .expect("create a temporary directory")
}

#[test]
fn file_input_peak_memory_does_not_grow_with_the_file_length() {
    let dir = test_dir();
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

/// The most of `libonnxruntime.so`'s mapped size that may be resident while the daemon scores a
/// file. Without paging out, this test measured 19,204 of 28,668 KiB (67%); with it, 8,524 KiB
/// (30%): what inference reads back (BENCHMARKS.md section 3b).
const MAX_ORT_RESIDENT_PERCENT: u64 = 50;

/// Resident and mapped KiB of the mappings of `pid` whose file path contains `name`.
fn mapped_kib(pid: libc::pid_t, name: &str) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("read smaps");
    let (mut rss, mut size, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        let kib: u64 = fields.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        match first {
            "Size:" if inside => size += kib,
            "Rss:" if inside => rss += kib,
            // Every other line is `Key: value`; a mapping's header is `start-end perms offset
            // dev inode [path]`.
            key if !key.ends_with(':') => {
                inside = line
                    .split_whitespace()
                    .nth(5)
                    .is_some_and(|p| p.contains(name))
            }
            _ => {}
        }
    }
    (rss, size)
}

/// A copy of the ONNX Runtime library hark would load, in `dir`. The kernel does not page out
/// pages that other processes map too, and the other tests of this binary run `hark` at the
/// same time from the same library file; a private copy is mapped by this daemon alone.
fn private_onnx_runtime(dir: &Path) -> std::path::PathBuf {
    let found = hark::model::runtime::candidates(None)
        .into_iter()
        .find(|p| p.exists())
        .expect("an ONNX Runtime library (scripts/setup.sh fetches it)");
    let copy = dir.join("libonnxruntime.so");
    std::fs::copy(&found, &copy)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", found.display(), copy.display()));
    copy
}

/// Starts `hark run` in real time on a minute of noise with `config`, on its own copy of ONNX
/// Runtime, and waits for `windows` predictions.
fn scoring_daemon(config: &Path, input: &Path, windows: usize) -> Daemon {
    let dir = config
        .parent()
        .expect("the config is in the test's directory");
    let mut daemon = HarkRun::new(config)
        .env("ORT_DYLIB_PATH", private_onnx_runtime(dir))
        .arg("--input")
        .arg(input)
        .spawn();
    // Windows scored in real time: inference has read back the code it runs.
    for _ in 0..windows {
        daemon
            .wait_for(Duration::from_secs(30), |r| r.kind() == "prediction")
            .expect("hark run scores the file");
    }
    daemon
}

/// Fails unless at most [`MAX_ORT_RESIDENT_PERCENT`] of ONNX Runtime's mappings are resident
/// in `daemon`; `when` names the moment.
fn assert_ort_mostly_paged_out(daemon: &Daemon, when: &str) {
    let (rss, size) = mapped_kib(daemon.pid(), "libonnxruntime");
    eprintln!("libonnxruntime {when}: {rss} KiB resident of {size} KiB mapped");
    assert!(size > 0, "ONNX Runtime is not mapped in hark run");
    if emulated() {
        // Under qemu-user the mappings are the emulator's; not measured there.
        return;
    }
    assert!(
        rss * 100 <= size * MAX_ORT_RESIDENT_PERCENT,
        "{when}: {rss} KiB of ONNX Runtime's {size} KiB are resident while hark run scores a \
         file, more than {MAX_ORT_RESIDENT_PERCENT}%: the pages that loading touched were not \
         paged out"
    );
}

#[test]
fn onnx_runtime_code_that_only_loading_needs_is_not_resident_while_the_daemon_scores() {
    let dir = test_dir();
    let config = write_config(dir.path(), "defaults.toml", "");
    let input = noise_wav(dir.path(), "one_minute.wav", 60);
    let daemon = scoring_daemon(&config, &input, 4);
    assert_ort_mostly_paged_out(&daemon, "after start");
    daemon.terminate(Duration::from_secs(10)).assert_success();
}

#[test]
fn a_reload_that_rebuilds_the_model_pages_out_again_and_scoring_goes_on_at_the_new_hop() {
    let dir = test_dir();
    let config = write_config(dir.path(), "hark.toml", "[model]\nhop = 0.5\n");
    let input = noise_wav(dir.path(), "one_minute.wav", 60);
    let mut daemon = scoring_daemon(&config, &input, 3);
    // A new hop is a new model: loaded on the reload path while the consumer scores.
    write_config(dir.path(), "hark.toml", "[model]\nhop = 0.25\n");
    // SAFETY: kill(2) on the pid of the running child.
    assert_eq!(unsafe { libc::kill(daemon.pid(), libc::SIGHUP) }, 0);
    let starts = |d: &Daemon| -> Vec<f64> {
        d.records()
            .iter()
            .filter_map(|r| match r {
                Record::Prediction { start, .. } => Some(*start),
                _ => None,
            })
            .collect()
    };
    let mut quarter_hops = 0;
    while quarter_hops < 4 {
        daemon
            .wait_for(Duration::from_secs(30), |r| r.kind() == "prediction")
            .expect("hark run goes on scoring after the reload");
        let s = starts(&daemon);
        quarter_hops = s
            .windows(2)
            .filter(|w| (w[1] - w[0] - 0.25).abs() < 1e-6)
            .count();
    }
    assert_ort_mostly_paged_out(&daemon, "after the reload");
    daemon.terminate(Duration::from_secs(10)).assert_success();
}
