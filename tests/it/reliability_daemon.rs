//! Issue 19, the running daemon: hooks that leave processes behind or flood the log, control
//! characters in what hark prints and logs, and a panic in each part of the daemon. Real
//! `hark run` processes on a generated tone (sox): CED-tiny hears "Sine wave" in it, the one
//! label listened to, so every run has one event at a known time without shared recordings.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::common::daemon::{hark_run, kind, Daemon};
use crate::common::tools::{require, sox};

/// Only the tone's label, with thresholds well below its smoothed score (about 0.7).
const TONE_ONLY: &str = "[decision]\nlisten = [\"Sine wave\"]\non = 0.5\noff = 0.3\n";

/// 1 s of silence, 3 s of a 1 kHz tone at half scale, 1 s of silence: 16 kHz mono, built once.
fn tone() -> &'static Path {
    static TONE: OnceLock<PathBuf> = OnceLock::new();
    TONE.get_or_init(|| {
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let work = tempfile::tempdir_in(target).unwrap();
        let p = |n: &str| work.path().join(n).to_str().unwrap().to_owned();
        let fmt = ["-r", "16000", "-c", "1", "-b", "16"];
        sox(&[&["-n"], &fmt[..], &[&p("sil.wav"), "trim", "0", "1"]].concat());
        sox(&[
            &["-n"],
            &fmt[..],
            &[&p("sine.wav"), "synth", "3", "sine", "1000", "vol", "0.5"],
        ]
        .concat());
        sox(&[p("sil.wav"), p("sine.wav"), p("sil.wav"), p("tone.wav")]);
        let out = target.join("reliability-tone.wav");
        std::fs::rename(p("tone.wav"), &out).unwrap();
        out
    })
}

/// A `[[hooks]]` entry on the tone's start running `sh -c SCRIPT`, with `extra` keys.
fn sh_hook(name: &str, script: &str, extra: &str) -> String {
    format!(
        "\n[[hooks]]\nname = \"{name}\"\nlabels = [\"Sine wave\"]\ncommand = [\"sh\", \"-c\", {script:?}]\n{extra}\n"
    )
}

/// Pids of live (not zombie) processes whose command line is exactly `argv` (`setsid` execs
/// its program, so `setsid sleep N` shows as `sleep N`).
fn live_processes(argv: &[&str]) -> Vec<i32> {
    let wanted: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit(')')
                    .next()
                    .is_some_and(|r| !r.trim_start().starts_with('Z'))
            })
        })
        .collect()
}

/// Waits up to `timeout` for no live process to run `argv`; returns those still running.
fn gone_within(argv: &[&str], timeout: Duration) -> Vec<i32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = live_processes(argv);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kill_all(pids: &[i32]) {
    for &pid in pids {
        // SAFETY: kill(2) has no memory-safety preconditions; these are the test's own leftovers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[test]
fn hook_background_and_setsid_children_are_ended_when_the_hook_exits_via_subreaper_sweep() {
    require("sh");
    let dir = tempfile::tempdir().unwrap();
    // Distinct durations: other tests' sleeps are not these.
    let bg = ["sleep", "99996"];
    let config = TONE_ONLY.to_owned()
        + &sh_hook(
            "leaves-children",
            "sleep 99996 & setsid sleep 99997 & echo started",
            "",
        );
    let mut daemon = Daemon::start(&config, tone(), &dir.path().join("hark.sock"), false);
    daemon.wait_for_log(
        Duration::from_secs(20),
        &["hook finished", "leaves-children"],
    );
    let left = [
        gone_within(&bg, Duration::from_secs(3)),
        gone_within(&["sleep", "99997"], Duration::from_secs(3)),
    ]
    .concat();
    kill_all(&left);
    assert!(
        left.is_empty(),
        "left running after the hook exited: {left:?}; stderr:\n{}",
        daemon.stderr()
    );
    daemon.terminate();
}

#[test]
fn hook_children_are_ended_when_the_hook_times_out_and_none_survive_hark() {
    require("sh");
    let dir = tempfile::tempdir().unwrap();
    let config = TONE_ONLY.to_owned()
        + &sh_hook(
            "times-out",
            "sleep 99995 & setsid sleep 99994 & sleep 99993",
            "timeout = 1.0",
        );
    let mut daemon = Daemon::start(&config, tone(), &dir.path().join("hark.sock"), false);
    daemon.wait_for_log(
        Duration::from_secs(20),
        &["killing hook's process group", "times-out"],
    );
    let mut left = Vec::new();
    for d in ["99995", "99994", "99993"] {
        left.extend(gone_within(&["sleep", d], Duration::from_secs(3)));
    }
    kill_all(&left);
    assert!(
        left.is_empty(),
        "left running after the timeout: {left:?}; stderr:\n{}",
        daemon.stderr()
    );
    daemon.terminate();
}

#[test]
fn hook_children_still_running_at_harks_exit_are_ended() {
    require("sh");
    let dir = tempfile::tempdir().unwrap();
    // The hook itself runs past hark's stop; its setsid child would outlive it.
    let config = TONE_ONLY.to_owned()
        + &sh_hook(
            "outlives-hark",
            "setsid sleep 99992 & sleep 99991",
            "timeout = 600.0",
        );
    let mut daemon = Daemon::start(&config, tone(), &dir.path().join("hark.sock"), false);
    daemon.wait_for(Duration::from_secs(20), |v| kind(v) == "event_start");
    assert!(gone_within(&["sleep", "99991"], Duration::ZERO).len() <= 1);
    std::thread::sleep(Duration::from_millis(500));
    daemon.terminate();
    let mut left = Vec::new();
    for d in ["99992", "99991"] {
        left.extend(gone_within(&["sleep", d], Duration::from_secs(2)));
    }
    kill_all(&left);
    assert!(
        left.is_empty(),
        "outlived hark: {left:?}; stderr:\n{}",
        daemon.stderr()
    );
}

#[test]
fn hook_output_of_100_mb_logs_at_most_100_lines_then_a_count_by_output_budget() {
    require("sh");
    let dir = tempfile::tempdir().unwrap();
    // 100 MB in lines of 100 bytes: a million lines.
    let line = "x".repeat(99);
    let config = TONE_ONLY.to_owned()
        + &sh_hook(
            "floods",
            &format!("yes {line} | head -c 100000000"),
            "timeout = 60.0",
        );
    let mut daemon = Daemon::start(&config, tone(), &dir.path().join("hark.sock"), false);
    let summary = daemon.wait_for_log(
        Duration::from_secs(60),
        &["hook output not logged", "floods"],
    );
    daemon.terminate();
    let stderr = daemon.stderr();
    let logged = stderr
        .lines()
        .filter(|l| l.contains("hook output") && l.contains("stdout") && !l.contains("not logged"))
        .count();
    assert_eq!(logged, 100, "lines of output logged");
    assert!(summary.contains("lines=999900"), "{summary}");
    assert!(summary.contains("bytes=99990000"), "{summary}");
    assert!(
        stderr.len() < 1_000_000,
        "hark logged {} bytes",
        stderr.len()
    );
}

#[test]
fn hook_output_control_characters_are_escaped_in_the_log() {
    require("sh");
    let dir = tempfile::tempdir().unwrap();
    let config = TONE_ONLY.to_owned()
        + &sh_hook(
            "forges",
            r"printf 'ok\rFAKE ERROR forged line\033[2J\n'",
            "",
        );
    let mut daemon = Daemon::start(&config, tone(), &dir.path().join("hark.sock"), false);
    let line = daemon.wait_for_log(Duration::from_secs(20), &["hook output", "forges"]);
    daemon.terminate();
    assert!(
        line.contains(r"ok\rFAKE ERROR forged line\x1b[2J"),
        "{line:?}"
    );
    let raw = daemon.stderr();
    assert!(
        !raw.contains('\r') && !raw.contains('\x1b'),
        "raw control characters in the log"
    );
}

// ---------------------------------------------------------------------------------------------
// A panic in each part of the daemon

/// Runs hark on the tone with `HARK_FAULT_PANIC=part` and asserts the issue's contract: a
/// non-zero exit, a log line naming the part, and no socket file left behind.
fn panic_in(part: &str) -> String {
    panic_in_reading(part, tone())
}

/// [`panic_in`], reading `input`; returns hark's stderr.
fn panic_in_reading(part: &str, input: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hark.sock");
    let mut command = hark_run(TONE_ONLY, input, &socket, false);
    command.env("HARK_FAULT_PANIC", part);
    let mut daemon = Daemon::spawn(command, &socket);
    let status = daemon.wait_exit(Duration::from_secs(30));
    let stderr = daemon.stderr();
    assert!(
        !status.success(),
        "{part}: exit {status}; stderr:\n{stderr}"
    );
    assert_ne!(status.code(), Some(0), "{part}: {stderr}");
    assert!(
        stderr.contains(&format!("injected panic in the {part}")),
        "{part}: {stderr}"
    );
    // A sink is named in the error line that stops hark; the consumer in hark's last words.
    let named = stderr.lines().any(|l| {
        (l.contains("ERROR") && l.contains("sink=") && l.contains(part))
            || l.contains(&format!("the {part} thread panicked"))
    });
    assert!(named, "{part}: no error line naming it:\n{stderr}");
    assert!(!socket.exists(), "{part}: the socket file was left behind");
    stderr
}

#[test]
fn panic_in_socket_sink_exits_non_zero_naming_it_and_removes_the_socket() {
    panic_in("socket");
}

#[test]
fn panic_in_hooks_sink_exits_non_zero_naming_it_and_removes_the_socket() {
    panic_in("hooks");
}

#[test]
fn panic_in_stdout_sink_exits_non_zero_naming_it_and_removes_the_socket() {
    panic_in("stdout");
}

#[test]
fn panic_in_mqtt_sink_exits_non_zero_naming_it_and_removes_the_socket() {
    panic_in("mqtt");
}

#[test]
fn panic_in_consumer_exits_non_zero_naming_it_and_removes_the_socket() {
    panic_in("consumer");
}

/// Issue 19: panics symphonia raises are caught quietly (the panic hook stays silent while
/// hark decodes through symphonia); a panic anywhere else still reaches the hook and prints.
/// The input is FLAC, so hark opened it through the quiet path before the consumer panics.
#[test]
fn quiet_caught_decoder_panics_leave_other_panics_printed_by_the_hook() {
    let flac = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability-tone.flac");
    sox(&[tone().to_str().unwrap(), flac.to_str().unwrap()]);
    let stderr = panic_in_reading("consumer", &flac);
    assert!(
        stderr.contains("panicked at") && stderr.contains("injected panic in the consumer"),
        "the consumer's panic was not printed by the panic hook:\n{stderr}"
    );
}
