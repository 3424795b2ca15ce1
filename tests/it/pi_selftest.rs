//! `scripts/pi-selftest.sh`, the checklist a Raspberry Pi owner runs, run here against the real
//! binary: its synthesized smoke alarm through `hark run`, then live capture from a microphone,
//! played by a private PulseAudio server (the monitor of its null sink, through ALSA's `pulse`
//! PCM, as in `lifecycle::`), and the report it prints.

use std::process::Command;

use crate::common::hark::manifest_dir;
use crate::common::pulse::{self, PulseServer};
use crate::common::tools::{noise_wav, require};

#[test]
fn pi_selftest_hears_its_alarm_measures_live_capture_and_passes() {
    PulseServer::require();
    require("bash");
    let server = PulseServer::start();
    let dir = tempfile::tempdir().unwrap();
    // Pink noise keeps the null sink rendering (an idle sink's monitor delivers no samples).
    let noise = noise_wav(dir.path(), "noise.wav", 40);
    let _player = server.play(&noise);
    let config = dir.path().join("empty.toml");
    std::fs::write(&config, "").unwrap();

    let mut command = Command::new("bash");
    command
        .current_dir(manifest_dir())
        .arg("scripts/pi-selftest.sh")
        .args(["--device", pulse::ALSA_DEVICE, "--seconds", "6"])
        .arg("--config")
        .arg(&config)
        .env("HARK", env!("CARGO_BIN_EXE_hark"));
    server.apply_env(&mut command);
    let out = command.output().expect("run bash scripts/pi-selftest.sh");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pi-selftest failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.starts_with("```\n") && report.trim_end().ends_with("```"));
    assert!(report.contains("result: passed"), "{report}");
    let heard = report
        .lines()
        .find(|l| l.starts_with("recording: heard"))
        .unwrap_or_else(|| panic!("no recording line:\n{report}"));
    assert!(
        heard.contains("Smoke detector, smoke alarm") && heard.contains("Beep, bleep"),
        "{heard}"
    );
    // Six seconds of live capture: 1 s windows every 0.5 s, with their level, CPU and latency.
    let live = report
        .lines()
        .find(|l| l.starts_with("live:") && l.contains("windows in"))
        .unwrap_or_else(|| panic!("no live line:\n{report}"));
    let windows: u32 = live
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no window count in {live}"));
    assert!(windows >= 6, "{live}");
    for needle in [
        "% of one core",
        "ms/window",
        "latency capture->record p50",
        "level dBFS",
    ] {
        assert!(live.contains(needle), "{live} lacks {needle}");
    }
    assert!(!live.contains("nan"), "{live}");
}
