//! `hark classify` and the person at the terminal: a progress bar on stderr only when stderr is
//! a terminal (a real pseudo-terminal from util-linux's `script`), and Ctrl-C (a real SIGINT)
//! stops it promptly with exit code 130, leaving no half-written label file behind.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::cli::stderr;
use crate::common::hark::{command, manifest_dir};
use crate::common::tools::{noise_wav, require};

/// What only a progress bar writes: its text, and the carriage returns and escape sequences
/// that redraw it.
fn has_bar_bytes(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    text.contains("real time") || bytes.contains(&b'\r') || bytes.contains(&0x1b)
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let file = noise_wav(dir.path(), "noise.wav", 30);
    let o = command()
        .env("TERM", "xterm")
        .args(["--log", "warn", "classify", "--json", "-j", "1"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!o.stdout.is_empty());
    assert!(!has_bar_bytes(&o.stderr), "stderr: {:?}", stderr(&o));
    assert!(!has_bar_bytes(&o.stdout));
}

/// `hark classify ARGS` inside `script`, whose pseudo-terminal is the child's stdin, stdout
/// and stderr; returns everything the terminal showed.
fn classify_on_a_terminal(args: &[&str]) -> Vec<u8> {
    require("script");
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut line = quote(env!("CARGO_BIN_EXE_hark"));
    for a in ["--log", "warn", "classify"].iter().chain(args) {
        line.push(' ');
        line.push_str(&quote(a));
    }
    let o = Command::new("script")
        .current_dir(manifest_dir())
        .env("TERM", "xterm")
        .args(["-qec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "script -qec {line}: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    o.stdout
}

#[test]
fn a_terminal_gets_a_progress_bar_with_position_speed_and_eta() {
    let dir = tempfile::tempdir().unwrap();
    let file = noise_wav(dir.path(), "noise.wav", 30);
    let out = dir.path().join("labels");
    let shown = classify_on_a_terminal(&[
        "-j",
        "1",
        "--format",
        "audacity",
        "--out",
        out.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&shown);
    let bar = text
        .split(['\r', '\n'])
        .find(|l| l.contains("noise.wav [") && l.contains("x real time"))
        .unwrap_or_else(|| panic!("no progress bar on the terminal: {text:?}"));
    assert!(bar.contains("/0:00:30"), "{bar}");
    assert!(bar.contains("ETA"), "{bar}");
    // The bar is on stderr only: the label file holds label rows and nothing else.
    let labels = std::fs::read_to_string(out.join("noise.txt")).unwrap();
    assert_eq!(labels.lines().count(), 59, "{labels}");
    assert!(!has_bar_bytes(labels.as_bytes()));
    // --no-progress draws nothing even there.
    let quiet = classify_on_a_terminal(&["--no-progress", "--json", file.to_str().unwrap()]);
    assert!(!String::from_utf8_lossy(&quiet).contains("real time"));
}

/// Names of the files in `dir`.
fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ctrl_c_stops_promptly_with_130_and_leaves_no_half_written_label_file() {
    let dir = tempfile::tempdir().unwrap();
    // Ten minutes take several seconds to classify: long enough to be interrupted midway.
    let long = noise_wav(dir.path(), "long.wav", 600);
    let out = dir.path().join("labels");
    let mut child = command()
        .args(["--log", "warn", "classify", "-j", "1", "--format", "raven"])
        .arg("--out")
        .arg(&out)
        .arg(&long)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the label file is being written under its temporary name.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !names(&out).iter().any(|n| n.ends_with(".partial")) {
        assert!(Instant::now() < deadline, "no .partial file appeared");
        assert!(child.try_wait().unwrap().is_none(), "classify ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child, which has not been reaped (it is waited on below).
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let sent = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "classify did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let stopped_in = sent.elapsed();
    let o = child.wait_with_output().unwrap();
    eprintln!("classify stopped {stopped_in:?} after SIGINT");
    assert_eq!(status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(
        names(&out),
        Vec::<String>::new(),
        "no partial, no half file"
    );
    let err = stderr(&o);
    assert!(err.contains("interrupted"), "{err}");
    assert!(err.contains("long.wav"), "{err}");
}
