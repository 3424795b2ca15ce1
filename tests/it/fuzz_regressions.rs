//! Every input the fuzz targets (`fuzz/`) found crashing, replayed on stable through the same
//! entry point (`hark::front_door`): each must now end in `Ok` or `Err`, never a panic or an
//! abort. The inputs live in `tests/fixtures/fuzz/<target>/`, one file each, named by what
//! they found; `fuzz/README.md` says how they are made.

use std::path::{Path, PathBuf};

use crate::common::hark::manifest_dir;

/// The files of `tests/fixtures/fuzz/<target>/`, sorted (a `.gitkeep` or README aside).
fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = manifest_dir().join("tests/fixtures/fuzz").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n != ".gitkeep" && n != "README.md")
        })
        .collect();
    files.sort();
    files
}

/// Runs `door` on every input of `target`; it returns whether the input was accepted, which
/// is printed (either is fine: the point is that it returns).
fn replay(target: &str, door: impl Fn(&Path) -> bool) {
    for input in inputs(target) {
        let accepted = door(&input);
        eprintln!(
            "{target}: {} -> {}",
            input.display(),
            if accepted { "Ok" } else { "Err" }
        );
    }
}

fn text(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned()
}

#[test]
fn fuzz_audio_inputs_end_in_ok_or_err() {
    replay("audio", |p| hark::front_door::audio_file(p).is_ok());
}

#[test]
fn fuzz_npy_inputs_end_in_ok_or_err() {
    replay("npy", |p| {
        hark::front_door::npy_bytes(&std::fs::read(p).unwrap()).is_ok()
    });
}

#[test]
fn fuzz_spec_inputs_end_in_ok_or_err() {
    // As the target does: the first byte chooses JSON (odd) or TOML.
    replay("spec", |p| {
        let bytes = std::fs::read(p).unwrap();
        let Some((&first, rest)) = bytes.split_first() else {
            return false;
        };
        let text = String::from_utf8_lossy(rest);
        hark::front_door::spec_text(&text, first & 1 == 1).is_ok()
    });
}

#[test]
fn fuzz_manifest_inputs_end_in_ok_or_err() {
    replay("manifest", |p| {
        hark::front_door::manifest_text(&text(p)).is_ok()
    });
}

#[test]
fn fuzz_config_inputs_end_in_ok_or_err() {
    replay("config", |p| hark::front_door::config_file(p).is_ok());
}

#[test]
fn fuzz_request_inputs_end_in_ok_or_err() {
    let labels = vec![
        "Knock".to_owned(),
        "Speech".to_owned(),
        "Sine wave".to_owned(),
    ];
    replay("request", |p| {
        let line = std::fs::read(p).unwrap();
        hark::front_door::request_line(&line, &labels) | hark::front_door::request_line(&line, &[])
    });
}

fn labels() -> Vec<String> {
    vec![
        "Knock".to_owned(),
        "Speech".to_owned(),
        "Sine wave".to_owned(),
    ]
}

#[test]
fn fuzz_mqtt_command_inputs_end_in_ok_or_err() {
    let labels = labels();
    replay("mqtt_command", |p| {
        hark::front_door::mqtt_command(&std::fs::read(p).unwrap(), &labels)
    });
}

#[test]
fn fuzz_http_query_inputs_end_in_a_status() {
    // As the target does: once without a token, once with one. A target that is a URI gets
    // an answer from the router; only one that is not may get none.
    let labels = labels();
    replay("http_query", |p| {
        let target = std::fs::read(p).unwrap();
        let open = hark::front_door::http_target(&target, None, &labels);
        let guarded = hark::front_door::http_target(&target, Some("fuzz-token"), &labels);
        eprintln!("http_query: {} -> {open:?} {guarded:?}", p.display());
        assert_eq!(open.is_some(), guarded.is_some(), "{}", p.display());
        open.is_some_and(|s| s < 400)
    });
}

#[test]
fn http_query_hostile_targets_get_these_answers_from_the_router() {
    // The answer each hand-made hostile target gets from the router, without a token and from
    // a server that wants one (only `?token=fuzz-token` passes that guard).
    let labels = labels();
    let expected: &[(&str, Option<u16>, Option<u16>)] = &[
        ("hostile-limit-2-pow-64", Some(400), Some(401)),
        ("hostile-limit-negative-and-nan", Some(400), Some(401)),
        ("hostile-since-year-9999999999", Some(400), Some(401)),
        ("hostile-percent-invalid-utf8", Some(400), Some(401)),
        ("hostile-stream-unknown-key", Some(400), Some(401)),
        ("hostile-clip-dot-dot", Some(404), Some(401)),
        ("hostile-clip-nul", Some(404), Some(401)),
        ("hostile-10000-ampersands", Some(200), Some(401)),
        ("hostile-token-query", Some(200), Some(200)),
        // Not a URI (raw bytes above 0x7f; longer than `http::Uri` takes): the HTTP layer
        // refuses it before the router.
        ("hostile-raw-invalid-utf8", None, None),
        ("hostile-100000-byte-label", None, None),
    ];
    let dir = manifest_dir().join("tests/fixtures/fuzz/http_query");
    for (name, open, guarded) in expected {
        let target = std::fs::read(dir.join(name)).unwrap();
        let got = (
            hark::front_door::http_target(&target, None, &labels),
            hark::front_door::http_target(&target, Some("fuzz-token"), &labels),
        );
        assert_eq!(got, (*open, *guarded), "{name}");
    }
}
