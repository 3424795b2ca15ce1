//! The aarch64 build against this one: the cross-built `hark` (with the aarch64 wheel's ONNX
//! Runtime) runs under `qemu-aarch64-static` and classifies every real recording with CED-tiny
//! (waveform in, its front end inside the ONNX graph) and with the YAMNet backbone (hark's own
//! log-mel front end); every window's top label must be this build's (but for a near-tie of the
//! top two, [`TIE`]), and every one of the labels' scores close to it. ONNX Runtime's kernels
//! differ between x86 and NEON, so the scores are not bit-equal; the test prints the largest,
//! median and mean difference and the share above 1e-3.
//!
//! The issue asked for 1e-3; measured, that is not met and cannot be: on this x86 machine alone
//! CED-tiny's scores move by up to 0.0127 between ONNX Runtime's unoptimized graph and the
//! optimized one hark uses (fusions of its int8-weight MatMuls), and the aarch64 build's
//! optimized graph is another such variant (docs/raspberry-pi.md, section 7). So the test holds
//! what was measured with margin: every top label equal but near-ties (at most
//! [`SHARE_FLIPPED`] of the windows), every score within [`TOLERANCE`], at most
//! [`SHARE_ABOVE_1E_3`] of them more than 1e-3 apart.
//!
//! `scripts/test-aarch64.sh` builds the aarch64 side and sets `HARK_TEST_AARCH64_HARK` (the
//! binary), `HARK_TEST_AARCH64_ORT` (its libonnxruntime.so) and `QEMU_LD_PREFIX` /
//! `QEMU_CPU` (the emulator's sysroot and CPU). Without them this says `SKIPPED:` and passes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::cli::{json_lines, stderr};
use crate::common::hark::command;
use crate::common::shared::recordings_or_skip;
use crate::common::tools::require;

/// Largest score difference allowed between the two builds (measured on the ten recordings,
/// Cortex-A72: CED-tiny 0.0441 in 244 windows, median 6e-8; YAMNet 0.0058 in 254, median 0).
const TOLERANCE: f64 = 0.1;

/// Share of scores allowed more than 1e-3 apart (measured: CED-tiny 0.98%, YAMNet 0.08%).
const SHARE_ABOVE_1E_3: f64 = 0.02;

/// How close (on x86_64) the two top scores of a window must be for the builds to disagree on
/// the top label. Measured: one window of 244 with CED-tiny, unlabeled_New_Recording_61.wav at
/// 1 s: Tick-tock 0.1982 and Music 0.1948 on x86_64, Music 0.1981 and Tick-tock 0.1960 on
/// aarch64 (a gap of 0.0033 that the kernels' differences, up to 0.044 elsewhere, can flip).
const TIE: f64 = 0.01;

/// Share of the windows allowed such a near-tie flip (measured: 1 of 244).
const SHARE_FLIPPED: f64 = 0.01;

/// Every label of the larger model (CED-tiny 527, YAMNet 521), so each window lists them all.
const ALL_LABELS: &str = "527";

/// The cross-built binary and its ONNX Runtime, when `scripts/test-aarch64.sh` set them.
fn aarch64_side() -> Option<(PathBuf, PathBuf)> {
    let found = std::env::var_os("HARK_TEST_AARCH64_HARK")
        .zip(std::env::var_os("HARK_TEST_AARCH64_ORT"))
        .map(|(b, o)| (PathBuf::from(b), PathBuf::from(o)));
    if found.is_none() {
        eprintln!(
            "SKIPPED: HARK_TEST_AARCH64_HARK / HARK_TEST_AARCH64_ORT not set (scripts/test-aarch64.sh sets them)"
        );
    }
    found
}

/// `hark classify --json -k 527 ARGS FILES` on this build.
fn classify_here(args: &[&str], files: &[PathBuf]) -> Output {
    command()
        .args(["--log", "warn", "classify", "--json", "-k", ALL_LABELS])
        .args(args)
        .args(files)
        .output()
        .expect("run hark")
}

/// The same with the aarch64 binary under qemu (sysroot and CPU from `QEMU_LD_PREFIX` /
/// `QEMU_CPU`, which the child inherits).
fn classify_aarch64(bin: &Path, ort: &Path, args: &[&str], files: &[PathBuf]) -> Output {
    require("qemu-aarch64-static");
    let mut qemu = Command::new("qemu-aarch64-static");
    qemu.current_dir(crate::common::hark::manifest_dir())
        .arg(bin)
        .args(["--log", "warn", "classify", "--json", "-k", ALL_LABELS])
        .args(["--onnxruntime", ort.to_str().unwrap()])
        .args(args)
        .args(files);
    qemu.output().expect("run qemu-aarch64-static")
}

/// Every window has the same top label on both builds, except a near-tie: there the aarch64
/// build's top label must score within [`TIE`] of the top one on this build, and at most
/// [`SHARE_FLIPPED`] of the windows may be such. Returns how many were.
fn top_labels_agree(
    args: &[&str],
    here: &Windows,
    here_tops: &[(String, u64, String)],
    there_tops: &[(String, u64, String)],
) -> usize {
    assert_eq!(here_tops.len(), there_tops.len(), "{args:?}: window counts");
    let mut flipped = 0;
    for (x86, arm) in here_tops.iter().zip(there_tops) {
        assert_eq!((&x86.0, x86.1), (&arm.0, arm.1), "{args:?}: windows differ");
        if x86.2 == arm.2 {
            continue;
        }
        let scores = &here[&(x86.0.clone(), x86.1)];
        let gap = scores[&x86.2] - scores[&arm.2];
        eprintln!(
            "{args:?}: {} at {} ms: top label {} on x86_64, {} on aarch64, {gap:.4} apart on x86_64",
            x86.0, x86.1, x86.2, arm.2
        );
        assert!(
            gap <= TIE,
            "{args:?}: {} at {} ms: top label {} on x86_64 but {} on aarch64, {gap} below it",
            x86.0,
            x86.1,
            x86.2,
            arm.2
        );
        flipped += 1;
    }
    assert!(
        flipped as f64 <= SHARE_FLIPPED * here_tops.len() as f64,
        "{args:?}: {flipped} of {} windows have another top label",
        here_tops.len()
    );
    flipped
}

/// (file, start) → that window's scores by label.
type Windows = HashMap<(String, u64), HashMap<String, f64>>;

fn windows(o: &Output, what: &str) -> (Windows, Vec<(String, u64, String)>) {
    assert!(o.status.success(), "{what}: {}", stderr(o));
    let mut all = Windows::new();
    let mut tops = Vec::new();
    for line in json_lines(o).iter().filter(|v| v.get("top").is_some()) {
        let key = (
            line["file"].as_str().unwrap().to_owned(),
            (line["start"].as_f64().unwrap() * 1000.0).round() as u64,
        );
        let top: &Vec<Value> = line["top"].as_array().unwrap();
        tops.push((
            key.0.clone(),
            key.1,
            top[0]["label"].as_str().unwrap().to_owned(),
        ));
        let scores = top
            .iter()
            .map(|t| {
                (
                    t["label"].as_str().unwrap().to_owned(),
                    t["score"].as_f64().unwrap(),
                )
            })
            .collect();
        all.insert(key, scores);
    }
    (all, tops)
}

/// Compares both builds on `files` with model arguments `args`: the same windows, the same top
/// label in each, every score within [`TOLERANCE`]. Returns (windows, largest difference).
fn compare(bin: &Path, ort: &Path, args: &[&str], files: &[PathBuf]) -> (usize, f64) {
    let (here, here_tops) = windows(&classify_here(args, files), "x86_64 classify");
    let (there, there_tops) = windows(
        &classify_aarch64(bin, ort, args, files),
        "aarch64 classify under qemu",
    );
    assert_eq!(here.len(), there.len(), "{args:?}: window counts differ");
    let flipped = top_labels_agree(args, &here, &here_tops, &there_tops);
    let mut worst = (0.0f64, String::new());
    let mut all = Vec::new();
    for (key, scores) in &here {
        let other = there
            .get(key)
            .unwrap_or_else(|| panic!("{args:?}: aarch64 has no window {key:?}"));
        assert_eq!(scores.len(), other.len(), "{key:?}: label counts differ");
        for (label, score) in scores {
            let d = (score - other[label]).abs();
            all.push(d);
            if d > worst.0 {
                worst = (d, format!("{} at {} ms, {label}", key.0, key.1));
            }
        }
    }
    let total = all.len();
    let share = all.iter().filter(|&&d| d > 1e-3).count() as f64 / total as f64;
    all.sort_by(f64::total_cmp);
    eprintln!(
        "aarch64 vs x86_64 {args:?}: {} windows, {flipped} with the top two swapped in a near-tie, the rest with the same top label; score differences: largest {:.3e} ({}), median {:.1e}, mean {:.1e}, {:.2}% of {total} more than 1e-3",
        here.len(),
        worst.0,
        worst.1,
        all[total / 2],
        all.iter().sum::<f64>() / total as f64,
        100.0 * share
    );
    assert!(
        share <= SHARE_ABOVE_1E_3,
        "{args:?}: {:.2}% of the scores differ by more than 1e-3",
        100.0 * share
    );
    assert!(
        worst.0 <= TOLERANCE,
        "{args:?}: score difference {:.3e} > {TOLERANCE} ({})",
        worst.0,
        worst.1
    );
    (here.len(), worst.0)
}

fn recordings() -> Option<Vec<PathBuf>> {
    let dir = recordings_or_skip()?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    files.sort();
    Some(files)
}

#[test]
fn aarch64_ced_tiny_top_labels_equal_x86_and_scores_stay_close_on_every_recording() {
    let Some((bin, ort)) = aarch64_side() else {
        return;
    };
    let Some(files) = recordings() else { return };
    let (n, _) = compare(&bin, &ort, &[], &files);
    assert!(n >= 200, "the ten recordings give {n} windows");
}

#[test]
fn aarch64_yamnet_top_labels_equal_x86_and_scores_stay_close_through_its_log_mel_front_end() {
    let Some((bin, ort)) = aarch64_side() else {
        return;
    };
    let Some(files) = recordings() else { return };
    let (n, _) = compare(
        &bin,
        &ort,
        &["-m", "tests/fixtures/yamnet/yamnet.toml"],
        &files,
    );
    assert!(n >= 200, "the ten recordings give {n} windows");
}
