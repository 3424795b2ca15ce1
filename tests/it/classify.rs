//! `hark classify` at any length: it streams each file through `hark run`'s pipeline, so its
//! scores are today's and `hark run`'s, its memory does not grow with the recording, its
//! `--events` are the events `hark run` publishes, it runs files on several jobs in input
//! order, walks folders, survives bad files, and writes each output format's layout.

use crate::common::tools::noise_wav;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hark::model::{LoadOptions, Model};
use serde_json::Value;

use crate::common::cli::{hark, json_lines, stderr, stdout};
use crate::common::hark::{command, manifest_dir, write_config};
use crate::common::shared::recordings_or_skip;
use crate::common::wav;

fn classify(args: &[&str]) -> std::process::Output {
    hark(&[&["--log", "warn", "classify"], args].concat())
}

fn classify_ok(args: &[&str]) -> Vec<Value> {
    let o = classify(args);
    assert!(o.status.success(), "classify {args:?}: {}", stderr(&o));
    json_lines(&o)
}

/// `hark run --input FILE --exit-at-end --fast --print json` with `config`: every record.
fn run_records(file: &Path, config: &Path) -> Vec<Value> {
    let o = command()
        .args([
            "--log",
            "warn",
            "run",
            "--fast",
            "--exit-at-end",
            "--no-socket",
        ])
        .args(["--print", "json", "--config"])
        .arg(config)
        .arg("--input")
        .arg(file)
        .output()
        .unwrap();
    assert!(o.status.success(), "run: {}", stderr(&o));
    json_lines(&o)
}

fn windows(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|v| v.get("top").is_some()).collect()
}

/// Asserts that the streamed windows of `classify --json -k 5` are `whole`'s, bit for bit.
fn assert_same_windows(
    streamed: &[&Value],
    whole: &[hark::windowing::WindowScores],
    model: &Model,
) {
    assert_eq!(streamed.len(), whole.len());
    for (s, w) in streamed.iter().zip(whole) {
        assert_eq!(
            s["start"].as_f64().unwrap(),
            (w.start * 1000.0).round() / 1000.0
        );
        let top = hark::windowing::top_k(&w.scores, model.labels(), 5);
        for (a, b) in s["top"].as_array().unwrap().iter().zip(&top) {
            assert_eq!(a["label"], b.label.as_str());
            assert_eq!(a["score"].as_f64().unwrap() as f32, b.score);
        }
    }
}

#[test]
fn streaming_scores_equal_the_whole_file_path_and_hark_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = noise_wav(dir.path(), "noise.wav", 7);
    let f = file.to_str().unwrap();
    let one_lines = classify_ok(&["--json", "-k", "5", "--batch", "1", f]);
    let streamed = windows(&one_lines);
    assert_eq!(streamed.len(), 13, "7 s, 1 s windows every 0.5 s");
    // What classify computed before it streamed: the whole file decoded, then every window,
    // one at a time or 8 per model call (the default --batch, grouped from the start alike).
    let mut model = Model::load(
        &manifest_dir().join("models/ced-tiny.toml"),
        &LoadOptions::default(),
    )
    .unwrap();
    let samples = hark::audio::load_mono(&file, model.sample_rate()).unwrap();
    let whole = hark::windowing::classify_samples(&mut model, &samples, 1).unwrap();
    assert_same_windows(&streamed, &whole, &model);
    let batched_lines = classify_ok(&["--json", "-k", "5", f]);
    let whole8 = hark::windowing::classify_samples(&mut model, &samples, 8).unwrap();
    assert_same_windows(&windows(&batched_lines), &whole8, &model);
    // `hark run` without smoothing publishes the same scores for the same windows.
    let config = write_config(dir.path(), "raw.toml", "[smoothing]\nmethod = \"none\"\n");
    let records = run_records(&file, &config);
    let predictions: Vec<&Value> = records
        .iter()
        .filter(|r| r["type"] == "prediction")
        .collect();
    assert_eq!(predictions.len(), streamed.len());
    for (p, s) in predictions.iter().zip(&streamed) {
        assert_eq!(p["start"], s["start"]);
        assert_eq!(p["end"], s["end"]);
        let (pt, st) = (p["top"].as_array().unwrap(), s["top"].as_array().unwrap());
        assert_eq!(pt.len(), st.len());
        for (a, b) in pt.iter().zip(st) {
            assert_eq!(a["label"], b["label"], "at {}", s["start"]);
            let score = |v: &Value| v["score"].as_f64().unwrap() as f32;
            assert_eq!(score(a), score(b), "at {}", s["start"]);
        }
    }
}

#[test]
fn a_file_shorter_than_a_window_gets_one_padded_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("short.wav");
    wav::write_sine(&file, 22_050, 0.3, 880.0, 0.5);
    let lines = classify_ok(&["--json", file.to_str().unwrap()]);
    let w = windows(&lines);
    assert_eq!(w.len(), 1, "{lines:?}");
    assert_eq!(w[0]["start"], 0.0);
    assert!(lines.last().unwrap().get("summary").is_some());
}

/// The peak resident set size (`VmHWM` in /proc) of `hark classify FILE`, in KiB, polled
/// until the child exits.
fn classify_peak_kib(file: &Path) -> u64 {
    let mut child = command()
        .args(["--log", "warn", "classify", "--json", "-j", "1"])
        .arg(file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let path = format!("/proc/{}/status", child.id());
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut peak = 0;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "classify {} failed", file.display());
            return peak;
        }
        assert!(Instant::now() < deadline, "classify did not finish");
        let hwm = std::fs::read_to_string(&path).ok().and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        });
        peak = peak.max(hwm.unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn peak_memory_does_not_grow_with_the_recording_length() {
    let dir = tempfile::tempdir().unwrap();
    let short = noise_wav(dir.path(), "two_minutes.wav", 120);
    let long = noise_wav(dir.path(), "twenty_minutes.wav", 1200);
    let (short_kib, long_kib) = (classify_peak_kib(&short), classify_peak_kib(&long));
    eprintln!("classify peak RSS: 2 min {short_kib} KiB, 20 min {long_kib} KiB");
    // The 20-minute file as mono f32 at 16 kHz alone would be 77 MB.
    assert!(
        long_kib < short_kib + 10 * 1024,
        "20 min peaks at {long_kib} KiB, 2 min at {short_kib} KiB"
    );
}

/// The events of `hark run`'s `event_end` records, as (label, group, start, end, peak).
fn event_tuples(lines: &[Value], end_type: Option<&str>) -> Vec<(Value, Value, f64, f64, f32)> {
    lines
        .iter()
        .filter(|v| end_type.is_none_or(|t| v["type"] == t))
        .filter(|v| v.get("peak").is_some())
        .map(|v| {
            let f = |k: &str| v[k].as_f64().unwrap();
            (
                v["label"].clone(),
                v["group"].clone(),
                f("start"),
                f("end"),
                f("peak") as f32,
            )
        })
        .collect()
}

#[test]
fn events_equal_what_hark_run_publishes_for_the_shared_recordings() {
    let Some(recordings) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "defaults.toml", "");
    let mut total = 0;
    for name in [
        "first_alert_7010b.wav",
        "fireworks.wav",
        "dog_bark_34541_clip_001.wav",
    ] {
        let file = recordings.join(name);
        let run = event_tuples(&run_records(&file, &config), Some("event_end"));
        let events = |batch: &str| {
            let lines = classify_ok(&[
                "--events",
                "--json",
                "--batch",
                batch,
                "--config",
                config.to_str().unwrap(),
                file.to_str().unwrap(),
            ]);
            event_tuples(&lines, None)
        };
        let got = events("1");
        assert_eq!(got, run, "{name}");
        total += got.len();
        // Batched (the default), the same events; peaks within the batched kernels' rounding.
        let batched = events("8");
        assert_eq!(batched.len(), run.len(), "{name}");
        for (b, r) in batched.iter().zip(&run) {
            assert_eq!((&b.0, &b.1, b.2, b.3), (&r.0, &r.1, r.2, r.3), "{name}");
            assert!((b.4 - r.4).abs() < 1e-5, "{name}: peak {} vs {}", b.4, r.4);
        }
    }
    assert!(total > 0, "no events at all: the comparison proved nothing");
}

#[test]
fn jobs_keep_input_order_folders_are_walked_and_bad_files_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("archive");
    std::fs::create_dir_all(audio.join("night2")).unwrap();
    for (i, name) in ["b.wav", "a.wav", "night2/c.wav", "d.wav"]
        .iter()
        .enumerate()
    {
        wav::write_sine(
            &audio.join(name),
            16_000,
            1.0 + i as f32,
            300.0 * (i + 1) as f32,
            0.4,
        );
    }
    std::fs::write(audio.join("broken.wav"), b"RIFF....WAVE not really").unwrap();
    std::fs::write(audio.join("notes.txt"), b"not audio, not picked").unwrap();
    let arg = audio.to_str().unwrap();
    let one = classify(&["--json", "-j", "1", arg]);
    let two = classify(&["--json", "-j", "2", arg]);
    for o in [&one, &two] {
        assert!(!o.status.success(), "a corrupt file must fail the run");
        let err = stderr(o);
        assert_eq!(
            err.lines().filter(|l| l.contains("broken.wav")).count(),
            1,
            "{err}"
        );
    }
    assert_eq!(stdout(&one), stdout(&two));
    let files: Vec<String> = json_lines(&one)
        .iter()
        .filter(|v| v.get("summary").is_some())
        .map(|v| {
            v["file"]
                .as_str()
                .unwrap()
                .strip_prefix(arg)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(files, ["/a.wav", "/b.wav", "/d.wav", "/night2/c.wav"]);
}

#[test]
fn each_format_has_its_layout_and_label_files_appear_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tone.wav");
    wav::write_sine(&file, 16_000, 2.0, 1000.0, 0.5);
    let f = file.to_str().unwrap();
    let csv = stdout(&classify(&["--format", "csv", "-k", "2", f]));
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "file,start,end,rank,label,score");
    assert_eq!(rows.len(), 1 + 3 * 2, "{csv}");
    assert!(rows[1].starts_with(&format!("{f},0,1,1,")), "{csv}");
    let out = dir.path().join("labels");
    for (format, name) in [("audacity", "tone.txt"), ("raven", "tone.selections.txt")] {
        let o = classify(&["--format", format, "--out", out.to_str().unwrap(), f]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).is_empty());
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
        if format == "audacity" {
            assert_eq!(rows.len(), 3, "{text}");
            assert!(rows.iter().all(|r| r.len() == 3), "{text}");
            assert_eq!(rows[1][0].parse::<f64>().unwrap(), 0.5);
        } else {
            assert_eq!(
                rows[0][..5],
                [
                    "Selection",
                    "View",
                    "Channel",
                    "Begin Time (s)",
                    "End Time (s)"
                ]
            );
            assert_eq!(rows.len(), 4, "{text}");
            assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{text}");
            assert_eq!(rows[2][..3], ["2", "Spectrogram 1", "1"]);
        }
    }
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    // Beside the input when no --out is given.
    let o = classify(&["--format", "audacity", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(dir.path().join("tone.txt").exists());
}
