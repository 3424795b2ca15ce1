//! Every numeric setting has a documented, enforced range, the same for `check-config`,
//! start-up and SIGHUP: each key below is tried with 1.5, 0, -1, 2^31, 2^63 - 1, NaN, inf and a
//! string. A value inside the range must pass `hark check-config` and run (`hark run` on a
//! short file); any other must fail, naming the key and what is allowed.

use std::path::Path;
use std::process::Output;

use crate::common::cli::{hark, stderr};
use crate::common::hark::{command, write_config};
use crate::common::wav::write_sine;

/// The values every key is tried with, as TOML.
const VALUES: [&str; 8] = [
    "1.5",
    "0",
    "-1",
    "2147483648",
    "9223372036854775807",
    "nan",
    "inf",
    "\"x\"",
];

/// A key, where it lives, and its documented range (inclusive; `low_open` excludes the low
/// end).
struct Key {
    section: &'static str,
    name: &'static str,
    low: f64,
    low_open: bool,
    high: f64,
    whole: bool,
}

const fn key(section: &'static str, name: &'static str, low: f64, high: f64) -> Key {
    Key {
        section,
        name,
        low,
        low_open: false,
        high,
        whole: false,
    }
}

const fn above(k: Key) -> Key {
    Key {
        low_open: true,
        ..k
    }
}

const fn whole(k: Key) -> Key {
    Key { whole: true, ..k }
}

const KEYS: &[Key] = &[
    whole(key("model", "threads", 1.0, 64.0)),
    above(key("model", "window", 0.0, 60.0)),
    above(key("model", "hop", 0.0, 60.0)),
    key("capture", "ring_seconds", 0.1, 60.0),
    key("capture", "stall_timeout", 0.0, 86_400.0),
    key("capture", "period", 0.0, 1.0),
    whole(key("pipeline", "top_k", 1.0, 1000.0)),
    key("pipeline", "level_gate", -200.0, 0.0),
    above(key("pipeline", "status_interval", 0.0, 86_400.0)),
    above(key("pipeline", "max_backlog", 0.0, 60.0)),
    above(key("pipeline", "silence_timeout", 0.0, 86_400.0)),
    whole(key("smoothing", "windows", 1.0, 1000.0)),
    above(key("smoothing", "ema_alpha", 0.0, 1.0)),
    // `on` must also be at least `off` (0.35 by default), `off` at most `on` (0.5).
    key("decision", "on", 0.35, 1.0),
    key("decision", "off", 0.0, 0.5),
    key("decision", "min_duration", 0.0, 3600.0),
    key("decision", "hold", 0.0, 3600.0),
    whole(key("socket", "max_subscribers", 1.0, 4096.0)),
    whole(key("socket", "queue", 1.0, 65_536.0)),
    key("clips", "pre_roll", 0.0, 30.0),
    key("clips", "post_roll", 0.0, 30.0),
    above(key("clips", "max_length", 0.0, 600.0)),
    key("clips", "max_age", 0.0, 315_360_000.0),
    whole(key("clips", "queue", 1.0, 64.0)),
    // Also a string with K/M/G/T or a percent (tests/it/clips.rs, the unit tests).
    whole(key("clips", "max_disk", 0.0, 1_125_899_906_842_624.0)),
    whole(key("clips", "min_free", 0.0, 1_125_899_906_842_624.0)),
    whole(key("http", "max_clients", 1.0, 1024.0)),
    above(key("http", "stall_timeout", 0.0, 3600.0)),
];

impl Key {
    fn path(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }

    /// Whether TOML `value` is inside the documented range.
    fn allows(&self, value: &str) -> bool {
        let Ok(v) = value.parse::<f64>() else {
            return false;
        };
        let low_ok = if self.low_open {
            v > self.low
        } else {
            v >= self.low
        };
        let whole_ok = !self.whole || !value.contains('.');
        v.is_finite() && low_ok && v <= self.high && whole_ok
    }
}

fn check_config(file: &Path) -> Output {
    hark(&["check-config", "--strict", file.to_str().unwrap()])
}

#[test]
fn every_numeric_key_is_enforced_to_its_documented_range() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("tone.wav");
    write_sine(&wav, 16_000, 2.0, 440.0, 0.1);
    let mut ran = 0;
    for k in KEYS {
        for value in VALUES {
            let case = format!("{} = {value}", k.path());
            let file = write_config(
                dir.path(),
                "case.toml",
                &format!("[{}]\n{} = {value}\n", k.section, k.name),
            );
            let out = check_config(&file);
            if k.allows(value) {
                assert!(
                    out.status.success(),
                    "{case}: in range, refused: {}",
                    stderr(&out)
                );
                let run = command()
                    .args(["--log", "error", "run", "--no-socket", "--print", "none"])
                    .arg("--config")
                    .arg(&file)
                    .arg("--input")
                    .arg(&wav)
                    .args(["--exit-at-end", "--fast"])
                    .output()
                    .expect("run hark");
                assert!(
                    run.status.success(),
                    "{case}: accepted but does not run: {}",
                    stderr(&run)
                );
                ran += 1;
            } else {
                let err = stderr(&out);
                assert!(!out.status.success(), "{case}: out of range, accepted");
                assert!(
                    err.contains(k.name),
                    "{case}: the error does not name the key: {err}"
                );
                let says_what =
                    err.contains("allowed") || err.contains("must") || err.contains("expected");
                assert!(
                    says_what,
                    "{case}: the error does not say what is allowed: {err}"
                );
            }
        }
    }
    assert!(ran > 5, "some values were inside their ranges ({ran})");
}
