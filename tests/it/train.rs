//! `hark train` and `hark eval` end to end, with the real ONNX Runtime and the real CED-tiny.
//!
//! The tests make their own dataset: sine tones, white noise and espeak-ng speech (sox and
//! espeak-ng), a few seconds per class, with extra clips kept out of training. They check that
//! the trained model classifies those clips, that it round-trips through `hark model info`,
//! `hark classify` and `hark eval`, that the head ONNX hark writes computes what the trainer
//! computed, and that every bad input gets a plain answer. Tests on `../shared/data` skip
//! visibly when it is absent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use hark::learn::fit::{self, FitOptions, Transform};
use hark::model::{LoadOptions, Model};

use crate::common::cli::{hark, hark_json, json_lines, stderr, stdout};
use crate::common::hark::{command, manifest_dir};
use crate::common::shared::shared_or_skip;
use crate::common::tools::{run, sox};

fn ced_tiny() -> PathBuf {
    manifest_dir().join("models/ced-tiny.toml")
}

/// `seconds` of sox's `synth` effect `what` (`["sine", "300", "vol", "0.5"]`), 16 kHz mono.
fn synth(path: &Path, seconds: f32, what: &[&str]) {
    let seconds = seconds.to_string();
    let head = [
        "-n",
        "-r",
        "16000",
        "-c",
        "1",
        path.to_str().unwrap(),
        "synth",
        &seconds,
    ];
    sox(&[&head[..], what].concat());
}

fn tone(path: &Path, seconds: f32, freq: u32) {
    synth(path, seconds, &["sine", &freq.to_string(), "vol", "0.5"]);
}

fn noise(path: &Path, seconds: f32, vol: f32) {
    synth(path, seconds, &["whitenoise", "vol", &vol.to_string()]);
}

fn speech(path: &Path, voice: &str, words: &str) {
    let mut espeak = Command::new("espeak-ng");
    espeak.args(["-v", voice, "-w"]).arg(path).arg(words);
    run(espeak);
}

/// `hark classify --model MODEL CLIP` must say it heard `label` first.
#[track_caller]
fn assert_heard(model: &Path, clip: &Path, label: &str) {
    let out = hark(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        clip.to_str().unwrap(),
    ]);
    assert!(
        stdout(&out).contains(&format!("heard: {label}")),
        "{}: expected to hear {label}:\n{}{}",
        clip.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// The synthesized dataset: `train/` (a folder per class, 5 recordings each) and `held_out/`
/// (2 other recordings per class). Class names are AudioSet labels, so CED-tiny itself can
/// be evaluated on them too. Made once per test run.
fn dataset() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        remove_stale_data(&tmp);
        let dir = tmp.join(format!("train_data_{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sentences = [
            ("en", "the washing machine has finished its cycle"),
            ("en-us", "somebody is ringing the door bell right now"),
            ("en-gb-scotland", "please close the window before you leave"),
            ("en", "seven eight nine ten eleven twelve"),
            ("en-us", "the kettle is boiling in the kitchen"),
            ("en-gb-scotland", "a dog is barking in the garden"),
            ("en", "it is raining again this afternoon"),
        ];
        for (split, range) in [("train", 0..5), ("held_out", 5..7)] {
            let d = dir.join(split);
            for c in ["sine_wave", "white_noise", "speech"] {
                std::fs::create_dir_all(d.join(c)).unwrap();
            }
            for i in range {
                tone(
                    &d.join(format!("sine_wave/tone{i}.wav")),
                    2.0,
                    [300, 500, 800, 1200, 2000, 400, 1500][i],
                );
                noise(
                    &d.join(format!("white_noise/noise{i}.wav")),
                    2.0,
                    0.1 + 0.07 * i as f32,
                );
                let (voice, words) = sentences[i];
                speech(&d.join(format!("speech/talk{i}.wav")), voice, words);
            }
        }
        dir
    })
}

/// Remove the data of earlier test runs (their process is gone); a run going on at the same
/// time keeps its own.
fn remove_stale_data(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("train_data_") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Train on the synthesized dataset once; later tests reuse the model folder.
fn trained() -> &'static (PathBuf, serde_json::Value) {
    static MODEL: OnceLock<(PathBuf, serde_json::Value)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let data = dataset();
        let out = data.join("model");
        let report = hark_json(&[
            "train",
            data.join("train").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--base",
            ced_tiny().to_str().unwrap(),
            "--json",
        ]);
        (out, report)
    })
}

#[test]
fn training_reports_honest_metrics_and_classifies_held_out_clips() {
    let (model, report) = trained();
    for key in ["accuracy", "balanced_accuracy", "per_class", "confusion"] {
        assert!(report.get(key).is_some(), "no {key} in {report}");
    }
    assert_eq!(
        report["classes"],
        serde_json::json!(["sine_wave", "speech", "white_noise"])
    );
    // Five recordings per class, each its own group: 5-fold cross-validation.
    assert!(
        report["split"].as_str().unwrap().contains("5-fold"),
        "{}",
        report["split"]
    );
    assert!(report["accuracy"].as_f64().unwrap() >= 0.9, "{report}");
    assert_eq!(report["confusion"].as_array().unwrap().len(), 3);
    assert!(report["export_max_diff"].as_f64().unwrap() < 1e-4);
    // The default embedding is CED-tiny's last hidden layer (192 values), read from a copy of
    // CED-tiny that exposes it.
    assert!(
        report["embedding"].as_str().unwrap().contains("192 values"),
        "{report}"
    );
    for f in [
        "manifest.toml",
        "head.onnx",
        "labels.txt",
        "base/ced-tiny-embedding.toml",
        "base/ced-tiny-embedding.onnx",
        "report.json",
    ] {
        assert!(model.join(f).is_file(), "{f} missing");
    }

    // Clips the model never saw, through `hark eval`.
    let held_out = dataset().join("held_out");
    let eval = hark_json(&[
        "eval",
        model.to_str().unwrap(),
        held_out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(eval["accuracy"].as_f64(), Some(1.0), "{eval}");
    assert_eq!(eval["per_class"][0]["recall"].as_f64(), Some(1.0));
}

#[test]
fn trained_model_round_trips_through_model_info_and_classify() {
    let (model, _) = trained();
    let info = hark(&[
        "model",
        "info",
        "--model",
        model.to_str().unwrap(),
        "--json",
    ]);
    assert!(info.status.success(), "{}", stderr(&info));
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["labels"], 3);
    assert_eq!(info["multi_label"], false);
    assert_eq!(info["base"]["name"], "ced-tiny-embedding");
    assert_eq!(info["base"]["labels"], 192);
    assert_eq!(info["base"]["output"], "embedding");
    assert!(
        info["inputs"][0].as_str().unwrap().contains("[1, 192]"),
        "{info}"
    );

    let plain = hark(&["model", "info", "--model", model.to_str().unwrap()]);
    assert!(
        stdout(&plain).contains("base model ced-tiny-embedding"),
        "{}",
        stdout(&plain)
    );

    // `hark classify` on a held-out speech clip: every window's best label is speech.
    let clip = dataset().join("held_out/speech/talk5.wav");
    let out = hark(&[
        "classify",
        "--model",
        model.to_str().unwrap(),
        "--json",
        clip.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = json_lines(&out);
    let summary = lines.last().unwrap();
    assert_eq!(summary["summary"][0]["label"], "speech", "{summary}");
    let tone = dataset().join("held_out/sine_wave/tone6.wav");
    assert_heard(model, &tone, "sine_wave");
}

/// `hark run --model DIR` on the built-in config: the built-in AudioSet listen list does not
/// apply to a model of your own classes, so hark listens for every one of its labels.
#[test]
fn trained_model_runs_in_the_daemon_on_the_default_config() {
    let (model, _) = trained();
    let clip = dataset().join("held_out/sine_wave/tone6.wav");
    let out = command()
        .args([
            "--log",
            "warn",
            "run",
            "--no-socket",
            "--fast",
            "--exit-at-end",
            "--print",
            "json",
        ])
        .arg("--model")
        .arg(model)
        .arg("--input")
        .arg(&clip)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let records = json_lines(&out);
    let predictions: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "prediction")
        .collect();
    // 2 s at 1 s windows every 0.5 s.
    assert_eq!(predictions.len(), 3);
    for p in &predictions {
        assert_eq!(p["top"][0]["label"], "sine_wave", "{p}");
    }
    let starts: Vec<_> = records
        .iter()
        .filter(|r| r["type"] == "event_start")
        .collect();
    assert_eq!(starts.len(), 1, "{records:?}");
    assert_eq!(starts[0]["label"], "sine_wave");
    assert!(
        stderr(&out).contains("listening for every label"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn moved_model_folder_still_works() {
    let (model, _) = trained();
    let moved = dataset().join("moved/elsewhere");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&moved);
    let mut cp = Command::new("cp");
    cp.arg("-r").arg(model).arg(&moved);
    run(cp);
    let clip = dataset().join("held_out/white_noise/noise5.wav");
    assert_heard(&moved, &clip, "white_noise");
}

#[test]
fn head_onnx_written_by_hark_computes_what_the_trainer_computes() {
    // An MLP head (ReLU in the graph) on random-ish CED scores, written and loaded through
    // Model::load as a two-stage model, must give the same probabilities as TrainedHead::predict_proba.
    let mut base = Model::load(&ced_tiny(), &LoadOptions::default()).unwrap();
    let clips = [
        dataset().join("train/sine_wave/tone0.wav"),
        dataset().join("train/speech/talk0.wav"),
        dataset().join("train/white_noise/noise0.wav"),
    ];
    let mut rows = Vec::new();
    let mut windows = Vec::new();
    for (label, c) in clips.iter().enumerate() {
        let audio = hark::audio::load_mono(c, 16_000).unwrap();
        let w = audio[..16_000].to_vec();
        rows.extend(base.predict(&w).unwrap());
        windows.push((label, w));
    }
    let x = ndarray::Array2::from_shape_vec((3, 527), rows).unwrap();
    let opts = FitOptions {
        hidden: 16,
        epochs: 50,
        transform: Transform::Logit { eps: 1e-4 },
        ..FitOptions::default()
    };
    let head = fit::fit(x.view(), &[0, 1, 2], &[1.0; 3], 3, &opts, &mut |_, _| {});

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("head.onnx"),
        hark::learn::onnx::encode_head(&head, "test"),
    )
    .unwrap();
    std::fs::write(dir.path().join("labels.txt"), "a\nb\nc\n").unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        format!(
            "name = \"t\"\nmodel = \"head.onnx\"\nlabels = \"labels.txt\"\nsample_rate = 16000\nwindow = 1.0\nhop = 0.5\noutput = \"probabilities\"\nmulti_label = false\n[frontend]\nkind = \"waveform\"\n[head]\nbase = {:?}\n",
            ced_tiny()
        ),
    )
    .unwrap();
    let mut two_stage =
        Model::load(&dir.path().join("manifest.toml"), &LoadOptions::default()).unwrap();
    let want = head.predict_proba(x.view());
    for (i, (_, w)) in windows.iter().enumerate() {
        let got = two_stage.predict(w).unwrap();
        for (g, e) in got.iter().zip(want.row(i)) {
            assert!(
                (g - e).abs() < 1e-5,
                "window {i}: {got:?} vs {:?}",
                want.row(i)
            );
        }
    }
}

#[test]
fn a_head_whose_base_is_missing_names_the_key_and_the_path() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("head.onnx"), b"not used").unwrap();
    std::fs::write(dir.path().join("labels.txt"), "a\nb\n").unwrap();
    std::fs::write(
        dir.path().join("manifest.toml"),
        "name = \"t\"\nmodel = \"head.onnx\"\nlabels = \"labels.txt\"\nsample_rate = 16000\nwindow = 1.0\nhop = 0.5\noutput = \"probabilities\"\n[frontend]\nkind = \"waveform\"\n[head]\nbase = \"base/gone.toml\"\n",
    )
    .unwrap();
    let e = Model::load(&dir.path().join("manifest.toml"), &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("head.base") && e.contains("gone.toml"), "{e}");
}

#[test]
fn ced_tiny_itself_can_be_evaluated_on_classes_named_like_its_labels() {
    // sine_wave, white_noise and speech are AudioSet labels ("Sine wave", ...): zero-shot.
    let eval = hark_json(&[
        "eval",
        ced_tiny().to_str().unwrap(),
        dataset().join("held_out").to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(eval["clips"], 6);
    assert!(eval["accuracy"].as_f64().unwrap() >= 0.8, "{eval}");
}

/// A scratch dataset for one bad-input test.
fn scratch(name: &str) -> PathBuf {
    let d = dataset().join("bad").join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_class(from: &str, to: &Path, n: usize) {
    std::fs::create_dir_all(to).unwrap();
    let src = dataset().join("train").join(from);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().take(n) {
        std::fs::copy(f, to.join(f.file_name().unwrap())).unwrap();
    }
}

/// `hark train DATA --out DATA/out EXTRA`, which must fail (`what` names the case): its stderr.
#[track_caller]
fn train_fails(what: &str, data: &Path, extra: &[&str]) -> String {
    let out_dir = data.join("out");
    let mut args = vec![
        "train",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = hark(&args);
    assert!(
        !out.status.success(),
        "{what}: expected failure, got:\n{}",
        stdout(&out)
    );
    stderr(&out)
}

/// A dataset `hark train` must refuse: what `build` puts into a scratch folder of that name, the
/// extra arguments, and what the error must say.
struct BadDataset {
    case: &'static str,
    build: fn(&Path),
    args: &'static [&'static str],
    needles: &'static [&'static str],
}

const BAD_DATASETS: &[BadDataset] = &[
    BadDataset {
        case: "empty_class",
        build: |d| {
            copy_class("speech", &d.join("speech"), 2);
            std::fs::create_dir_all(d.join("doorbell")).unwrap();
        },
        args: &[],
        needles: &["doorbell", "is empty"],
    },
    BadDataset {
        case: "one_class",
        build: |d| copy_class("speech", &d.join("speech"), 3),
        args: &[],
        needles: &["single class (speech)", "background"],
    },
    BadDataset {
        case: "all_broken",
        build: |d| {
            copy_class("speech", &d.join("speech"), 3);
            std::fs::create_dir_all(d.join("doorbell")).unwrap();
            std::fs::write(d.join("doorbell/ring.wav"), b"not audio").unwrap();
        },
        args: &["-q", "--max-unreadable", "100"],
        needles: &["no readable clips left in class doorbell"],
    },
];

/// An empty class folder is refused by name; a single class is refused with what to add; a class
/// whose files all fail to decode is named.
#[test]
fn bad_datasets_are_refused_naming_the_class_and_what_to_do() {
    for bad in BAD_DATASETS {
        let d = scratch(bad.case);
        (bad.build)(&d);
        let e = train_fails(bad.case, &d, bad.args);
        for n in bad.needles {
            assert!(e.contains(n), "{}: stderr lacks {n:?}: {e}", bad.case);
        }
    }
}

#[test]
fn unreadable_files_are_listed_and_skipped_up_to_a_limit() {
    let d = scratch("unreadable");
    copy_class("speech", &d.join("speech"), 5);
    copy_class("sine_wave", &d.join("sine_wave"), 5);
    std::fs::write(
        d.join("speech/broken.wav"),
        b"RIFF but not really a wave file",
    )
    .unwrap();
    let out = d.join("out");
    let report = hark_json(&[
        "train",
        d.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
        "-q",
    ]);
    let skipped = report["unreadable"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{report}");
    assert_eq!(skipped[0]["file"], "speech/broken.wav");
    assert_eq!(report["readable_clips"], 10);

    // Three broken files of 13 is above a 10% limit: an error that lists them.
    std::fs::write(d.join("sine_wave/empty.wav"), b"").unwrap();
    std::fs::write(d.join("sine_wave/notes.txt"), b"recorded on tuesday").unwrap();
    let e = train_fails("3 broken files of 13", &d, &["-q"]);
    assert!(
        e.contains("3 of 13 files could not be read")
            && e.contains("notes.txt")
            && e.contains("--max-unreadable"),
        "{e}"
    );
}

#[test]
fn clips_shorter_than_a_window_are_padded_and_reported_with_the_scores_as_embedding() {
    let d = scratch("short");
    copy_class("speech", &d.join("speech"), 3);
    std::fs::create_dir_all(d.join("sine_wave")).unwrap();
    for (i, f) in [300, 700, 1100].iter().enumerate() {
        tone(&d.join(format!("sine_wave/blip{i}.wav")), 0.3, *f);
    }
    let out = hark(&[
        "train",
        d.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
        // The other embedding: CED-tiny's 527 scores as log-odds, CED-tiny itself as base.
        "--embedding",
        "logit-scores",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("3 clip(s) shorter than the 1 s window were zero-padded"),
        "{}",
        stderr(&out)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["padded"].as_array().unwrap().len(), 3);
    assert_eq!(report["embedding"], "scores as log-odds");
    assert!(d.join("out/base/ced-tiny.onnx").is_file());
}

#[test]
fn a_dataset_too_small_to_hold_out_says_so_and_no_eval_still_trains() {
    let d = scratch("tiny");
    copy_class("speech", &d.join("speech"), 1);
    copy_class("white_noise", &d.join("white_noise"), 1);
    let e = train_fails("one clip per class", &d, &["-q"]);
    assert!(
        e.contains("too small for a held-out split") && e.contains("--no-eval"),
        "{e}"
    );
    let report = hark_json(&[
        "train",
        d.to_str().unwrap(),
        "--out",
        d.join("out").to_str().unwrap(),
        "--no-eval",
        "--json",
        "-q",
    ]);
    assert_eq!(report["accuracy"], serde_json::Value::Null);
    assert!(d.join("out/head.onnx").is_file());
}

#[test]
fn eval_refuses_a_model_without_the_dataset_classes() {
    let d = scratch("mismatch");
    copy_class("speech", &d.join("speech"), 1);
    copy_class("speech", &d.join("my_doorbell"), 1);
    let out = hark(&["eval", "ced-tiny", d.to_str().unwrap()]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(
        e.contains("no label for the dataset's classes my_doorbell"),
        "{e}"
    );
}

#[test]
fn fire_alarm_tinyml_alarm_is_recalled_on_held_out_recordings() {
    let Some(ds) = shared_or_skip("data/datasets") else {
        return;
    };
    let out = dataset().join("fire_alarm_model");
    let report = hark_json(&[
        "train",
        ds.join("fire_alarm_tinyml").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--classes",
        "alarm,background",
        // Edge Impulse sample ids: `.s1`/`.s2` files are parts of one recording.
        "--group-pattern",
        r"^[^/]+/([^.]+\.[^.]+)",
        "--json",
        "-q",
    ]);
    let alarm = &report["per_class"][0];
    assert_eq!(alarm["label"], "alarm");
    assert!(alarm["recall"].as_f64().unwrap() >= 0.8, "{report}");
    assert!(
        report["balanced_accuracy"].as_f64().unwrap() >= 0.75,
        "{report}"
    );
}

#[test]
fn an_out_folder_that_is_not_a_model_is_left_alone() {
    let d = scratch("out_taken");
    copy_class("speech", &d.join("speech"), 2);
    copy_class("white_noise", &d.join("white_noise"), 2);
    let taken = dataset().join("bad/taken_out");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("thesis.txt"), b"precious").unwrap();
    let out = hark(&[
        "train",
        d.to_str().unwrap(),
        "--out",
        taken.to_str().unwrap(),
        "--no-eval",
        "-q",
    ]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert!(e.contains("is not a hark model"), "{e}");
    assert_eq!(
        std::fs::read(taken.join("thesis.txt")).unwrap(),
        b"precious"
    );
    assert!(!taken.join("head.onnx").exists());
}
