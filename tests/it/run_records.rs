//! `hark run --print json`: the records' shape, and the level gate.

use std::path::PathBuf;

use crate::common::hark::command;
use crate::common::wav;

/// A 3 s test signal: 1 s of a loud 1 kHz tone, 1 s of near-silence, 1 s of the tone.
fn tone_silence_tone(dir: &std::path::Path) -> PathBuf {
    let path = dir.join("tst.wav");
    let samples = (0..48_000).map(|i| {
        let amp = if (16_000..32_000).contains(&i) {
            0.0005
        } else {
            0.5
        };
        amp * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin()
    });
    wav::write_i16(&path, 16_000, samples);
    path
}

fn run_json(input: &std::path::Path, config: Option<&std::path::Path>) -> Vec<serde_json::Value> {
    run_json_paced(input, config, true)
}

/// `hark run` on a file, as fast as it goes (`fast`) or at real time like a device.
fn run_json_paced(
    input: &std::path::Path,
    config: Option<&std::path::Path>,
    fast: bool,
) -> Vec<serde_json::Value> {
    let mut cmd = command();
    cmd.args(["--log", "warn", "run"]);
    if fast {
        cmd.arg("--fast");
    }
    cmd.args(["--exit-at-end", "--no-socket", "--print", "json", "--input"])
        .arg(input);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn every_record_has_type_start_and_an_rfc3339_time() {
    let dir = tempfile::tempdir().unwrap();
    let recs = run_json(&tone_silence_tone(dir.path()), None);
    let predictions: Vec<_> = recs.iter().filter(|r| r["type"] == "prediction").collect();
    // 3 s, 1 s windows every 0.5 s: windows at 0, 0.5, ..., 2.0.
    assert_eq!(predictions.len(), 5);
    for (i, p) in predictions.iter().enumerate() {
        assert_eq!(p["start"].as_f64().unwrap(), i as f64 * 0.5);
        assert_eq!(p["top"].as_array().unwrap().len(), 5, "top_k default");
        assert!(p["level_db"].as_f64().unwrap() < 0.0);
    }
    for r in &recs {
        assert!(r["start"].is_number(), "{r}");
        let t = r["time"].as_str().unwrap();
        chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    let last = recs.last().unwrap();
    assert_eq!(last["type"], "status");
    assert_eq!(last["message"], "end of input");
}

#[test]
fn level_gate_skips_quiet_windows_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gate.toml");
    std::fs::write(&cfg, "[pipeline]\nlevel_gate = -40.0\n").unwrap();
    let recs = run_json(&tone_silence_tone(dir.path()), Some(&cfg));
    let p: Vec<_> = recs.iter().filter(|r| r["type"] == "prediction").collect();
    let gated: Vec<bool> = p.iter().map(|r| r["gated"] == true).collect();
    // Only the window covering 1..2 s lies wholly in the quiet part (-75 dBFS).
    assert_eq!(gated, vec![false, false, true, false, false], "{p:?}");
    let quiet = p[2];
    assert!(quiet["top"].as_array().unwrap().is_empty());
    assert!(quiet["level_db"].as_f64().unwrap() < -40.0);
}

fn rfc3339(v: &serde_json::Value) -> chrono::DateTime<chrono::FixedOffset> {
    let t = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn predictions_carry_when_their_audio_arrived_and_status_counts_windows() {
    let dir = tempfile::tempdir().unwrap();
    // At real time, as a device delivers: the window's last sample arrives, then it is scored.
    let recs = run_json_paced(&tone_silence_tone(dir.path()), None, false);
    let predictions: Vec<_> = recs.iter().filter(|r| r["type"] == "prediction").collect();
    assert_eq!(predictions.len(), 5);
    let mut arrivals = Vec::new();
    for p in &predictions {
        let captured = rfc3339(&p["captured"]);
        // `time` has millisecond precision, `captured` microseconds.
        let latency = (rfc3339(&p["time"]) - captured).num_microseconds().unwrap();
        assert!(
            (-1000..500_000).contains(&latency),
            "scores {latency} us after the audio arrived: {p}"
        );
        arrivals.push(captured);
    }
    // Windows end every hop (0.5 s) of audio, which a real-time source delivers 0.5 s apart.
    for pair in arrivals.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((400..=600).contains(&gap), "windows arrived {gap} ms apart");
    }
    let last = recs.last().unwrap();
    assert_eq!(last["type"], "status");
    assert_eq!(last["windows"], 5, "{last}");
    assert!(last["inference_ms"].as_f64().unwrap() > 0.0, "{last}");
}
