//! Configuration through the real binary: the four layers (built-in defaults < config file <
//! `HARK_<SECTION>__<KEY>` environment < command-line flags), each shown to beat the one below,
//! and every validation check: a bad value fails `hark check-config` with a message naming the
//! key and the value; an unknown key is a warning, and an error with `--strict`. Decision and
//! hook labels need the model's label list, so they are checked when `hark run` starts.
//!
//! Every child gets a config file written by the test (so `/etc/hark/hark.toml` never takes
//! part) and an environment without `HARK_*`, `RUST_LOG` or systemd variables
//! (`common::hark::command`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::common::hark::{command as hark, manifest_dir};
use crate::common::wav;

/// What a finished child said.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// A scratch directory with a config file in it.
struct Scratch {
    dir: TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write a test file");
        p
    }

    /// Two seconds of a quiet 440 Hz tone, 16 kHz mono: enough for three 1 s windows.
    fn wav(&self) -> PathBuf {
        let p = self.dir.path().join("tone.wav");
        wav::write_sine(&p, 16_000, 2.0, 440.0, 0.05);
        p
    }
}

/// `hark check-config FILE [--strict]` with extra environment variables.
fn check_config(file: &Path, env: &[(&str, &str)], strict: bool) -> Run {
    let mut cmd = hark();
    cmd.arg("check-config").arg(file);
    if strict {
        cmd.arg("--strict");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hark check-config").into()
}

/// The value and origin `check-config` printed for a dotted key (`decision.on`), from lines
/// like `on = 0.5     # from default` under `[decision]`.
fn effective(stdout: &str, key: &str) -> Option<(String, String)> {
    let mut section = String::new();
    for line in stdout.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.trim_matches(|c| c == '[' || c == ']').replace('"', "");
            continue;
        }
        let Some((lhs, rest)) = t.split_once('=') else {
            continue;
        };
        let name = lhs.trim();
        let full = if section.is_empty() {
            name.to_string()
        } else {
            format!("{section}.{name}")
        };
        if full != key {
            continue;
        }
        let (value, origin) = rest.rsplit_once("# from ")?;
        return Some((value.trim().to_string(), origin.trim().to_string()));
    }
    None
}

/// Asserts that `key` is printed as the number `want` and came from `origin`; `what` names the
/// case. Numbers are compared, not text: an f32 setting prints as its f64 widening (0.7 →
/// 0.699999988...).
#[track_caller]
fn assert_number(what: &str, run: &Run, key: &str, want: f64, origin: &str) {
    assert!(run.ok(), "{what}: check-config failed: {}", run.stderr);
    let (value, from) = effective(&run.stdout, key)
        .unwrap_or_else(|| panic!("{what}: {key} not in the output:\n{}", run.stdout));
    let got: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("{what}: {key} = {value} is not a number"));
    assert!(
        (got - want).abs() < 1e-6,
        "{what}: {key} = {got}, expected {want}\n{}",
        run.stdout
    );
    assert_eq!(from, origin, "{what}: origin of {key}\n{}", run.stdout);
}

// --- layers ---------------------------------------------------------------------------

/// A number from the documented defaults built into the binary (`config/hark.toml`), so the
/// tests follow tuning of the defaults.
fn default_number(section: &str, key: &str) -> f64 {
    let defaults: toml::Value = hark::config::DEFAULT_TOML.parse().expect("defaults parse");
    let v = &defaults[section][key];
    v.as_float()
        .or_else(|| v.as_integer().map(|i| i as f64))
        .unwrap_or_else(|| panic!("{section}.{key} is not a number in the defaults"))
}

/// What `check-config` must print for a dotted key: its number (`None`: the built-in
/// default) and the layer it came from.
type Printed = (&'static str, Option<f64>, &'static str);

/// The layers below the flags, as `check-config` sees them: a config file and environment
/// variables, and what must come out.
struct Layers {
    case: &'static str,
    file: &'static str,
    env: &'static [(&'static str, &'static str)],
    printed: &'static [Printed],
}

const LAYERS: &[Layers] = &[
    Layers {
        case: "an empty file leaves every value at its default",
        file: "",
        env: &[],
        printed: &[
            ("decision.on", None, "default"),
            ("smoothing.windows", None, "default"),
        ],
    },
    Layers {
        case: "the file beats the defaults key by key",
        file: "[decision]\non = 0.6\n[smoothing]\nwindows = 5\n",
        env: &[],
        printed: &[
            ("decision.on", Some(0.6), "file"),
            ("smoothing.windows", Some(5.0), "file"),
            // A key the file does not set keeps its default, even in a section the file touches.
            ("decision.off", None, "default"),
        ],
    },
    Layers {
        case: "the environment beats the file and the defaults",
        file: "[decision]\non = 0.6\noff = 0.2\n[smoothing]\nwindows = 5\n",
        env: &[("HARK_DECISION__ON", "0.7"), ("HARK_PIPELINE__TOP_K", "9")],
        printed: &[
            ("decision.on", Some(0.7), "env"),    // env over file
            ("pipeline.top_k", Some(9.0), "env"), // env over default
            ("decision.off", Some(0.2), "file"),  // file, env silent
            ("smoothing.windows", Some(5.0), "file"),
            ("decision.hold", None, "default"),
        ],
    },
];

#[test]
fn each_layer_beats_the_one_below_in_check_config() {
    for layers in LAYERS {
        let s = Scratch::new();
        let run = check_config(&s.file("hark.toml", layers.file), layers.env, false);
        for &(key, number, origin) in layers.printed {
            let want = number.unwrap_or_else(|| {
                let (section, name) = key.split_once('.').unwrap();
                default_number(section, name)
            });
            assert_number(layers.case, &run, key, want, origin);
        }
        // A layer that sets nothing is the origin of nothing.
        for (layer, empty) in [
            ("file", layers.file.is_empty()),
            ("env", layers.env.is_empty()),
        ] {
            assert!(
                !(empty && run.stdout.contains(&format!("# from {layer}"))),
                "{}: a value from the empty {layer} layer:\n{}",
                layers.case,
                run.stdout
            );
        }
    }
}

#[test]
fn an_environment_list_replaces_the_listened_labels() {
    let s = Scratch::new();
    let run = check_config(
        &s.file("hark.toml", "[decision]\nlisten = [\"Siren\"]\n"),
        &[("HARK_DECISION__LISTEN", "Dog,Knock")],
        false,
    );
    assert!(run.ok(), "{}", run.stderr);
    let (value, origin) = effective(&run.stdout, "decision.listen").expect("decision.listen");
    assert_eq!(value, r#"["Dog", "Knock"]"#);
    assert_eq!(origin, "env");
}

#[test]
fn flags_are_reported_as_the_top_layer_by_the_library() {
    use hark::config::{describe, load, Origin, Sources};
    let s = Scratch::new();
    let file = s.file("hark.toml", "[decision]\non = 0.6\n[model]\nhop = 0.75\n");
    let loaded = load(&Sources {
        file: Some(file),
        // The environment layer is exercised through the binary; reading this process's
        // environment here would make the test depend on the shell that runs it.
        env: false,
        flags: vec![
            ("decision.on".into(), 0.9.into()),
            ("model.hop".into(), 0.25.into()),
        ],
        strict: true,
    })
    .expect("load");
    assert!((loaded.settings.decision.on - 0.9).abs() < 1e-6);
    assert_eq!(loaded.settings.model.hop, Some(0.25));
    assert_eq!(loaded.origins.get("decision.on"), Some(&Origin::Flag));
    assert_eq!(loaded.origins.get("decision.off"), Some(&Origin::Default));
    let text = describe(&loaded);
    let (_, origin) = effective(&text, "decision.on").expect("decision.on printed");
    assert_eq!(origin, "flag", "{text}");
}

/// `hark run --fast --exit-at-end --no-socket --print PRINT --config CONFIG` over the scratch
/// directory's tone.
fn run_over_the_tone(s: &Scratch, config: &Path, print: &str) -> Command {
    let mut cmd = hark();
    cmd.args([
        "--log",
        "warn",
        "run",
        "--fast",
        "--exit-at-end",
        "--no-socket",
    ])
    .args(["--print", print, "--config"])
    .arg(config)
    .arg("--input")
    .arg(s.wav());
    cmd
}

/// Steps between the starts of the `prediction` records `hark run --print json` printed.
fn prediction_steps(stdout: &str) -> Vec<f64> {
    let starts: Vec<f64> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["type"] == "prediction")
        .map(|v| v["start"].as_f64().expect("prediction start"))
        .collect();
    starts.windows(2).map(|w| w[1] - w[0]).collect()
}

/// `hark run` over a 2 s file with the hop set by some layers, returning the hop it used
/// (read off the prediction records).
fn hop_used(
    s: &Scratch,
    file_hop: Option<f64>,
    env_hop: Option<&str>,
    flag_hop: Option<&str>,
) -> f64 {
    let config = s.file(
        "run.toml",
        &file_hop.map_or(String::new(), |h| format!("[model]\nhop = {h}\n")),
    );
    let mut cmd = run_over_the_tone(s, &config, "json");
    if let Some(h) = env_hop {
        cmd.env("HARK_MODEL__HOP", h);
    }
    if let Some(h) = flag_hop {
        cmd.args(["--hop", h]);
    }
    let run: Run = cmd.output().expect("run hark run").into();
    assert!(run.ok(), "hark run failed: {}", run.stderr);
    let steps = prediction_steps(&run.stdout);
    assert!(
        !steps.is_empty(),
        "fewer than two predictions:\n{}",
        run.stdout
    );
    let hop = steps[0];
    assert!(
        steps.iter().all(|s| (s - hop).abs() < 1e-3),
        "uneven steps {steps:?}"
    );
    hop
}

#[test]
fn each_layer_beats_the_one_below_in_what_hark_run_does() {
    let s = Scratch::new();
    // model.hop is unset by default: the model's manifest decides. Each layer's value differs
    // from it and from the others.
    let manifest: toml::Value =
        std::fs::read_to_string(manifest_dir().join("models/ced-tiny.toml"))
            .expect("read models/ced-tiny.toml")
            .parse()
            .expect("manifest parses");
    let manifest_hop = manifest["hop"].as_float().expect("hop in the manifest");
    assert!(![0.75, 0.4, 0.25].contains(&manifest_hop));
    let close = |a: f64, b: f64| (a - b).abs() < 1e-3;
    let default = hop_used(&s, None, None, None);
    assert!(close(default, manifest_hop), "default hop {default}");
    let file = hop_used(&s, Some(0.75), None, None);
    assert!(close(file, 0.75), "file over default: {file}");
    let env = hop_used(&s, Some(0.75), Some("0.4"), None);
    assert!(close(env, 0.4), "env over file: {env}");
    let flag = hop_used(&s, Some(0.75), Some("0.4"), Some("0.25"));
    assert!(close(flag, 0.25), "flag over env: {flag}");
}

// --- validation -----------------------------------------------------------------------

/// A config that must fail `check-config` with a message naming `key` and `value`.
fn assert_rejected(toml: &str, env: &[(&str, &str)], key: &str, value: &str) {
    let s = Scratch::new();
    let run = check_config(&s.file("hark.toml", toml), env, false);
    assert!(
        !run.ok() && run.code.is_some(),
        "accepted (exit {:?}) although {key} = {value} is invalid:\n{toml}\n{}",
        run.code,
        run.stdout
    );
    assert!(
        run.stderr.contains(key) && run.stderr.contains(value),
        "the message should name {key} and {value:?}:\n{}",
        run.stderr
    );
}

macro_rules! rejects {
    ($($name:ident: $toml:expr, $key:expr, $value:expr;)*) => {$(
        #[test]
        fn $name() {
            assert_rejected($toml, &[], $key, $value);
        }
    )*};
}

rejects! {
    rejects_decision_on_above_one: "[decision]\non = 1.5\n", "decision.on", "1.5";
    rejects_decision_off_below_zero: "[decision]\noff = -0.1\n", "decision.off", "-0.1";
    rejects_decision_off_above_on: "[decision]\non = 0.3\noff = 0.4\n", "decision.off", "0.4";
    rejects_negative_decision_min_duration: "[decision]\nmin_duration = -1.0\n", "decision.min_duration", "-1";
    rejects_negative_decision_hold: "[decision]\nhold = -0.5\n", "decision.hold", "-0.5";
    rejects_a_label_threshold_above_one: "[decision.labels.\"Dog\"]\non = 2.0\n", "Dog", "2";
    rejects_a_string_where_a_number_belongs: "[decision]\non = \"high\"\n", "decision.on", "high";
    rejects_zero_smoothing_windows: "[smoothing]\nwindows = 0\n", "smoothing.windows", "0";
    rejects_zero_ema_alpha: "[smoothing]\nema_alpha = 0.0\n", "smoothing.ema_alpha", "0";
    rejects_an_unknown_smoothing_method: "[smoothing]\nmethod = \"median\"\n", "smoothing.method", "median";
    rejects_zero_top_k: "[pipeline]\ntop_k = 0\n", "pipeline.top_k", "0";
    rejects_a_negative_top_k: "[pipeline]\ntop_k = -1\n", "pipeline.top_k", "-1";
    rejects_a_level_gate_above_zero_dbfs: "[pipeline]\nlevel_gate = 5.0\n", "pipeline.level_gate", "5";
    rejects_a_negative_status_interval: "[pipeline]\nstatus_interval = -1.0\n", "pipeline.status_interval", "-1";
    rejects_a_zero_max_backlog: "[pipeline]\nmax_backlog = 0.0\n", "pipeline.max_backlog", "0";
    rejects_a_negative_silence_timeout: "[pipeline]\nsilence_timeout = -1.0\n", "pipeline.silence_timeout", "-1";
    rejects_zero_ring_seconds: "[capture]\nring_seconds = 0.0\n", "capture.ring_seconds", "0";
    rejects_a_capture_period_over_a_second: "[capture]\nperiod = 2.0\n", "capture.period", "2";
    rejects_a_negative_capture_period: "[capture]\nperiod = -0.1\n", "capture.period", "-0.1";
    rejects_zero_model_threads: "[model]\nthreads = 0\n", "model.threads", "0";
    rejects_a_negative_model_hop: "[model]\nhop = -1.0\n", "model.hop", "-1";
    rejects_a_zero_model_window: "[model]\nwindow = 0.0\n", "model.window", "0";
    rejects_a_socket_mode_that_is_not_octal: "[socket]\nmode = \"999\"\n", "socket.mode", "999";
    rejects_zero_max_subscribers: "[socket]\nmax_subscribers = 0\n", "socket.max_subscribers", "0";
    rejects_a_zero_socket_queue: "[socket]\nqueue = 0\n", "socket.queue", "0";
    rejects_a_hook_with_an_empty_command:
        "[[hooks]]\nname = \"x\"\nlabels = [\"Dog\"]\ncommand = []\n", "hooks[0].command", "empty";
    rejects_a_negative_hook_cooldown:
        "[[hooks]]\nname = \"x\"\nlabels = [\"Dog\"]\ncommand = [\"true\"]\ncooldown = -1.0\n",
        "hooks[0].cooldown", "-1";
}

#[test]
fn a_bad_value_from_the_environment_is_rejected_naming_its_key() {
    assert_rejected(
        "",
        &[("HARK_SMOOTHING__WINDOWS", "0")],
        "smoothing.windows",
        "0",
    );
}

// --- unknown keys ---------------------------------------------------------------------

#[test]
fn an_unknown_key_is_a_warning_naming_it() {
    let s = Scratch::new();
    let file = s.file("hark.toml", "[decision]\non = 0.6\nthreshold = 0.3\n");
    let run = check_config(&file, &[], false);
    assert!(
        run.ok(),
        "an unknown key should only warn without --strict:\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("decision.threshold"),
        "the warning should name decision.threshold:\n{}",
        run.stderr
    );
    // The known keys of the same file still apply.
    assert_number("an unknown key", &run, "decision.on", 0.6, "file");
}

#[test]
fn an_unknown_section_is_a_warning_naming_it() {
    let s = Scratch::new();
    let run = check_config(
        &s.file("hark.toml", "[microphone]\nname = \"USB\"\n"),
        &[],
        false,
    );
    assert!(run.ok(), "{}", run.stderr);
    assert!(run.stderr.contains("microphone"), "{}", run.stderr);
}

#[test]
fn an_unknown_key_is_an_error_with_strict() {
    let s = Scratch::new();
    let file = s.file("hark.toml", "[decision]\nthreshold = 0.3\n");
    let run = check_config(&file, &[], true);
    assert!(
        !run.ok(),
        "--strict accepted an unknown key:\n{}",
        run.stdout
    );
    assert!(run.stderr.contains("threshold"), "{}", run.stderr);
}

#[test]
fn environment_variables_that_are_not_config_keys_are_left_alone() {
    // HARK_LOG is --log's variable and HARK_MODEL_DIR is where models are searched: neither
    // is a HARK_<SECTION>__<KEY>, so neither may break (or warn about) the configuration.
    let s = Scratch::new();
    let run = check_config(
        &s.file("hark.toml", ""),
        &[("HARK_LOG", "warn"), ("HARK_MODEL_DIR", "/nonexistent")],
        true,
    );
    assert!(
        run.ok(),
        "HARK_LOG / HARK_MODEL_DIR were taken for config keys:\n{}",
        run.stderr
    );
}

// --- labels, checked when hark run starts ----------------------------------------------

/// `hark run` over a short file with `toml` as its config; must fail naming `key` and `label`.
fn assert_run_rejects_label(toml: &str, key: &str, label: &str) {
    let s = Scratch::new();
    let config = s.file("hark.toml", toml);
    let run: Run = run_over_the_tone(&s, &config, "none")
        .output()
        .expect("run hark run")
        .into();
    assert!(!run.ok(), "hark run accepted the unknown label {label:?}");
    assert!(
        run.stderr.contains(key) && run.stderr.contains(label),
        "the message should name {key} and {label:?}:\n{}",
        run.stderr
    );
}

#[test]
fn hark_run_rejects_an_unknown_listened_label() {
    assert_run_rejects_label(
        "[decision]\nlisten = [\"Knok\"]\n",
        "decision.listen",
        "Knok",
    );
}

#[test]
fn hark_run_rejects_a_per_label_rule_for_an_unknown_label() {
    assert_run_rejects_label(
        "[decision.labels.\"Smoke detector\"]\non = 0.3\n",
        "decision.labels",
        "Smoke detector",
    );
}

#[test]
fn hark_run_rejects_a_hook_on_an_unknown_label() {
    assert_run_rejects_label(
        "[[hooks]]\nname = \"bell\"\nlabels = [\"Doorbel\"]\ncommand = [\"true\"]\n",
        "hooks[0].labels",
        "Doorbel",
    );
}
