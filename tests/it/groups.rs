//! The default `[groups]` (issue 16, chosen in docs/defaults.md): one sound makes one event.
//! The real binary with the built-in config on real recordings gives one event per smoke alarm
//! and per barking dog, where the same config with the groups turned off
//! (`tests/fixtures/config/groups_off.toml`: the defaults as they were before the groups) gives
//! the two or three events at once it gave before; `hark model info` lists the default groups;
//! `hark check-config` accepts the default config and refuses a label in two groups.
//!
//! Tests that need `../shared` print `SKIPPED:` and pass when it is absent (a fresh clone).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::hark::{command, manifest_dir, model_window_and_hop, write_config, HarkRun};
use crate::common::shared::{recordings_or_skip, shared_or_skip};
use crate::common::tools::sox;
use hark::record::Record;

/// Generous bound for a lossless run over a recording of under a minute (they take ~1 s).
const FAST_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The groups `config/hark.toml` ships and the event type of docs/defaults.md each stands for.
const DEFAULT_GROUPS: [&str; 8] = [
    "baby_cry",
    "dog",
    "doorbell",
    "glass",
    "knock",
    "scream",
    "siren",
    "smoke_alarm",
];

/// UrbanSound8K dog_bark clips (4 s each) on which the measurements of docs/defaults.md saw
/// "Dog", "Bark" and "Bow-wow" all make an event without groups, and one `dog` event with them.
const DOG_CLIPS: [&str; 5] = [
    "audio/fold1/101415-3-0-2.wav",
    "audio/fold1/114587-3-0-2.wav",
    "audio/fold1/72579-3-0-0.wav",
    "audio/fold1/89212-3-0-0.wav",
    "audio/fold10/100795-3-0-0.wav",
];
const DOG_CLIP_SECONDS: f64 = 4.0;
/// Silence before each dog clip: longer than `decision.hold` plus the window, so that each
/// clip is one bark episode whose events have ended before the next begins.
const DOG_GAP_SECONDS: f64 = 3.0;

/// The config that turns the built-in groups off and restores the thresholds from before them.
fn groups_off() -> PathBuf {
    manifest_dir().join("tests/fixtures/config/groups_off.toml")
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hark-groups-")
        .tempdir()
        .expect("create a temporary directory")
}

/// One event as the tests compare them.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    group: Option<String>,
    label: String,
    start: f64,
    /// `end` of its `event_end` (every event of a run to the end has one).
    end: f64,
}

/// Every event of a `hark run --input FILE --fast --exit-at-end` with `config`.
fn events(config: &Path, input: &Path) -> Vec<Event> {
    let finished = HarkRun::new(config)
        .arg("--input")
        .arg(input)
        .args(&["--fast", "--exit-at-end"])
        .run_to_end(FAST_RUN_TIMEOUT);
    finished.assert_success();
    let end_of = |wanted: u64| {
        finished.records.iter().find_map(|r| match r {
            Record::EventEnd { id, end, .. } if *id == wanted => Some(*end),
            _ => None,
        })
    };
    finished
        .records
        .iter()
        .filter_map(|r| match r {
            Record::EventStart {
                id,
                group,
                label,
                start,
                ..
            } => Some(Event {
                group: group.clone(),
                label: label.clone(),
                start: *start,
                end: end_of(*id).unwrap_or_else(|| panic!("event {id} never ended")),
            }),
            _ => None,
        })
        .collect()
}

/// How many of `events` started while an earlier one of them was still open.
fn started_while_another_was_open(events: &[Event]) -> usize {
    let mut open_until = f64::NEG_INFINITY;
    let mut n = 0;
    for e in events {
        if e.start < open_until {
            n += 1;
        }
        open_until = open_until.max(e.end);
    }
    n
}

#[test]
fn a_smoke_alarm_is_one_group_event_where_groups_off_gives_two_label_events() {
    let Some(recordings) = recordings_or_skip() else {
        return;
    };
    let dir = tempdir();
    let wav = recordings.join("first_alert_7010b.wav");
    let (_, hop) = model_window_and_hop();
    let near = |a: f64, b: f64| (a - b).abs() <= hop + 1e-9;

    let grouped = events(&write_config(dir.path(), "defaults.toml", ""), &wav);
    assert_eq!(grouped.len(), 1, "one event for one alarm: {grouped:?}");
    let alarm = &grouped[0];
    assert_eq!(alarm.group.as_deref(), Some("smoke_alarm"), "{alarm:?}");
    assert_eq!(alarm.label, "Smoke detector, smoke alarm", "{alarm:?}");
    assert!(near(alarm.start, 15.0), "{alarm:?}");

    // Before the groups: the same beeps as "Smoke detector, smoke alarm" at 15.0 s and, while
    // that is still open, "Fire alarm" at 18.0 s.
    let labels = events(&groups_off(), &wav);
    let seen: Vec<(Option<&str>, &str)> = labels
        .iter()
        .map(|e| (e.group.as_deref(), e.label.as_str()))
        .collect();
    assert_eq!(
        seen,
        [(None, "Smoke detector, smoke alarm"), (None, "Fire alarm")],
        "{labels:?}"
    );
    assert!(near(labels[0].start, 15.0), "{labels:?}");
    assert!(near(labels[1].start, 18.0), "{labels:?}");
    assert_eq!(started_while_another_was_open(&labels), 1, "{labels:?}");
}

/// `DOG_CLIPS` joined into one recording, each after `DOG_GAP_SECONDS` of silence, and where
/// each clip lies in it.
fn barking_dogs(dir: &Path, clips: &Path) -> (PathBuf, Vec<(f64, f64)>) {
    let out = dir.join("dogs.wav");
    let mut args: Vec<String> = DOG_CLIPS
        .iter()
        .map(|c| clips.join(c).to_str().expect("a UTF-8 path").to_owned())
        .collect();
    args.push(out.to_str().expect("a UTF-8 path").to_owned());
    args.push("pad".into());
    // `pad LENGTH@POSITION` inserts silence at POSITION seconds of the joined clips.
    for i in 0..DOG_CLIPS.len() {
        args.push(format!("{DOG_GAP_SECONDS}@{}", i as f64 * DOG_CLIP_SECONDS));
    }
    sox(&args);
    let spans = (0..DOG_CLIPS.len())
        .map(|i| {
            let start = DOG_GAP_SECONDS + i as f64 * (DOG_GAP_SECONDS + DOG_CLIP_SECONDS);
            (start, start + DOG_CLIP_SECONDS)
        })
        .collect();
    (out, spans)
}

/// The events of each clip: those whose onset window overlaps it most.
fn per_clip(events: &[Event], spans: &[(f64, f64)], window: f64) -> Vec<Vec<Event>> {
    let mut out = vec![Vec::new(); spans.len()];
    for e in events {
        let overlap = |&(a, b): &(f64, f64)| (e.start + window).min(b) - e.start.max(a);
        let (i, best) = spans
            .iter()
            .map(overlap)
            .enumerate()
            .max_by(|x, y| x.1.total_cmp(&y.1))
            .expect("at least one clip");
        assert!(best > 0.0, "an event in the silence between clips: {e:?}");
        out[i].push(e.clone());
    }
    out
}

#[test]
fn a_barking_dog_is_one_dog_event_per_episode_where_groups_off_gives_several_at_once() {
    let Some(clips) = shared_or_skip("data/datasets/urbansound8k_subset") else {
        return;
    };
    let dir = tempdir();
    let (wav, spans) = barking_dogs(dir.path(), &clips);
    let (window, _) = model_window_and_hop();

    let grouped = events(&write_config(dir.path(), "defaults.toml", ""), &wav);
    for (i, clip) in per_clip(&grouped, &spans, window).iter().enumerate() {
        assert_eq!(clip.len(), 1, "clip {i} ({}): {clip:?}", DOG_CLIPS[i]);
        let dog = &clip[0];
        assert_eq!(dog.group.as_deref(), Some("dog"), "{dog:?}");
        assert!(["Bark", "Bow-wow"].contains(&dog.label.as_str()), "{dog:?}");
    }
    assert_eq!(started_while_another_was_open(&grouped), 0, "{grouped:?}");

    // Groups off: "Dog", "Bark" and "Bow-wow" each make an event, two or more at once on
    // every clip.
    let labels = events(&groups_off(), &wav);
    for (i, clip) in per_clip(&labels, &spans, window).iter().enumerate() {
        assert!(
            clip.iter().all(
                |e| e.group.is_none() && ["Dog", "Bark", "Bow-wow"].contains(&e.label.as_str())
            ),
            "clip {i}: {clip:?}"
        );
        assert!(
            started_while_another_was_open(clip) >= 1,
            "clip {i} ({}): no two events at once: {clip:?}",
            DOG_CLIPS[i]
        );
    }
}

/// `hark model info` (text, then JSON) with `config`.
fn model_info(config: &Path) -> (String, serde_json::Value) {
    let text = command()
        .args(["--log", "warn", "model", "info", "--config"])
        .arg(config)
        .output()
        .expect("run hark model info");
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let json = command()
        .args(["--log", "warn", "model", "info", "--json", "--config"])
        .arg(config)
        .output()
        .expect("run hark model info --json");
    assert!(
        json.status.success(),
        "{}",
        String::from_utf8_lossy(&json.stderr)
    );
    let value = serde_json::from_slice(&json.stdout).expect("model info --json is JSON");
    (String::from_utf8_lossy(&text.stdout).into_owned(), value)
}

/// `[groups]` of the built-in config, as written in config/hark.toml.
fn builtin_groups() -> toml::Table {
    let text = std::fs::read_to_string(manifest_dir().join("config/hark.toml"))
        .expect("read config/hark.toml");
    let config: toml::Table = toml::from_str(&text).expect("config/hark.toml is TOML");
    config["groups"]
        .as_table()
        .expect("config/hark.toml has [groups]")
        .clone()
}

#[test]
fn model_info_lists_the_default_groups_and_none_when_they_are_off() {
    let dir = tempdir();
    let builtin = builtin_groups();
    let names: Vec<&str> = builtin.keys().map(String::as_str).collect();
    assert_eq!(
        names, DEFAULT_GROUPS,
        "the default groups changed: update this test and docs/defaults.md"
    );

    let (text, json) = model_info(&write_config(dir.path(), "defaults.toml", ""));
    for (name, labels) in &builtin {
        let labels: Vec<&str> = labels
            .as_array()
            .expect("a group is a list of labels")
            .iter()
            .map(|l| l.as_str().expect("a label"))
            .collect();
        let line = format!("  {name} = {}", labels.join(", "));
        assert!(
            text.lines().any(|l| l == line),
            "no line {line:?} in:\n{text}"
        );
        assert_eq!(json["groups"][name], serde_json::json!(labels), "{json}");
    }

    let (text, json) = model_info(&groups_off());
    assert!(text.lines().any(|l| l == "groups:      none"), "{text}");
    assert_eq!(json["groups"], serde_json::json!({}), "{json}");
}

/// `hark check-config FILE`: (success, stdout, stderr).
fn check_config(file: &Path) -> (bool, String, String) {
    let o = command()
        .args(["--log", "warn", "check-config"])
        .arg(file)
        .output()
        .expect("run hark check-config");
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_the_defaults_and_the_groups_off_config() {
    let dir = tempdir();
    for (file, dog) in [
        (
            manifest_dir().join("config/hark.toml"),
            r#"dog = ["Bark", "Bow-wow"]"#,
        ),
        (
            write_config(dir.path(), "empty.toml", ""),
            r#"dog = ["Bark", "Bow-wow"]"#,
        ),
        (groups_off(), "dog = []"),
    ] {
        let (ok, stdout, stderr) = check_config(&file);
        assert!(ok, "{} refused: {stderr}", file.display());
        assert!(
            stdout.lines().any(|l| l.starts_with(dog)),
            "{}: no {dog:?} among the effective values:\n{stdout}",
            file.display()
        );
    }
}

#[test]
fn check_config_refuses_a_label_in_two_groups_naming_both() {
    let dir = tempdir();
    // "Bark" is in the built-in group "dog" already.
    let file = write_config(dir.path(), "hark.toml", "[groups]\nwoof = [\"Bark\"]\n");
    let (ok, _, stderr) = check_config(&file);
    assert!(!ok, "a label in two groups was accepted");
    assert!(
        stderr.contains("groups.\"woof\" = \"Bark\": is already in group \"dog\""),
        "{stderr}"
    );

    // Two groups of the user's own.
    let file = write_config(
        dir.path(),
        "hark.toml",
        "[groups]\npets = [\"Cat\", \"Meow\"]\nanimals = [\"Meow\"]\n",
    );
    let (ok, _, stderr) = check_config(&file);
    assert!(!ok, "a label in two groups was accepted");
    assert!(
        stderr.contains("groups.\"pets\" = \"Meow\": is already in group \"animals\""),
        "{stderr}"
    );
}

#[test]
fn check_config_refuses_an_override_of_a_label_in_a_default_group() {
    let dir = tempdir();
    let file = write_config(
        dir.path(),
        "hark.toml",
        "[decision.labels.\"Bark\"]\non = 0.4\n",
    );
    let (ok, _, stderr) = check_config(&file);
    assert!(!ok, "an override of a grouped label was accepted");
    assert!(
        stderr.contains("\"Bark\" is in group \"dog\"")
            && stderr.contains("decision.labels.\"dog\""),
        "{stderr}"
    );
}
