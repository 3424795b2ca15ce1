//! The log-mel front end against librosa: every golden case under `tests/fixtures/golden/`
//! (made by `make_golden.py` there), the mel filter banks, streaming against batch, spec
//! validation and loading, and — when `../shared` is present — YAMNet's own reference log-mel.
//!
//! Run with `cargo test --release --test it frontend_golden -- --nocapture` to see the worst
//! errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hark::frontend::{
    mel_filters, FeatureSpec, FrontendError, LogKind, MelFrontend, Normalize, PadMode,
    StreamingFrontend,
};
use hark::npy;
use ndarray::{s, Array2};

use crate::common::shared::shared_or_skip;

const FEATURE_TOL: f32 = 1e-3;
const FILTER_TOL: f32 = 1e-6;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

struct Case {
    name: String,
    config: String,
    input: PathBuf,
    expected: PathBuf,
    shape: Vec<usize>,
}

struct Golden {
    configs: BTreeMap<String, FeatureSpec>,
    cases: Vec<Case>,
}

fn golden() -> Golden {
    let dir = golden_dir();
    let text = std::fs::read_to_string(dir.join("cases.json")).expect("read cases.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse cases.json");
    // The configs deserialize straight into FeatureSpec: its keys are the golden file's keys.
    let configs = json["configs"]
        .as_object()
        .expect("configs")
        .iter()
        .map(|(name, c)| {
            let spec: FeatureSpec = serde_json::from_value(c.clone())
                .unwrap_or_else(|e| panic!("config {name} is not a FeatureSpec: {e}"));
            spec.validate()
                .unwrap_or_else(|e| panic!("config {name}: {e}"));
            (name.clone(), spec)
        })
        .collect();
    let cases = json["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|c| Case {
            name: c["name"].as_str().unwrap().to_string(),
            config: c["config"].as_str().unwrap().to_string(),
            input: dir.join(c["input"].as_str().unwrap()),
            expected: dir.join(c["expected"].as_str().unwrap()),
            shape: c["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
        })
        .collect();
    Golden { configs, cases }
}

fn read(path: &Path) -> (Vec<usize>, Vec<f32>) {
    npy::read_f32(path).unwrap_or_else(|e| panic!("{e}"))
}

fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
    assert_eq!(a.dim(), b.dim());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn spec(name: &str) -> FeatureSpec {
    golden().configs[name].clone()
}

fn input(config: &str, signal: &str) -> Vec<f32> {
    read(&golden_dir().join(format!("cases/{config}__{signal}__input.npy"))).1
}

/// The spec without its whole-window steps, so compute() gives the raw log-mel frames.
fn raw(spec: &FeatureSpec) -> FeatureSpec {
    FeatureSpec {
        db_top: None,
        normalize: Normalize::None,
        ..spec.clone()
    }
}

fn stream(fe: &MelFrontend, signal: &[f32], chunk: usize) -> StreamingFrontend {
    let mut st = StreamingFrontend::new(fe.clone());
    for c in signal.chunks(chunk) {
        st.push(c);
    }
    st
}

#[test]
fn every_golden_case_matches_librosa_within_1e_3() {
    let g = golden();
    assert_eq!(g.cases.len(), 24);
    let mut worst: BTreeMap<&str, (f32, &str)> = BTreeMap::new();
    for case in &g.cases {
        let fe = MelFrontend::new(g.configs[&case.config].clone()).unwrap();
        let (_, samples) = read(&case.input);
        let (shape, expected) = read(&case.expected);
        assert_eq!(shape, case.shape, "{}", case.name);
        let expected = Array2::from_shape_vec((shape[0], shape[1]), expected).unwrap();
        let got = fe.compute(&samples);
        assert_eq!(got.dim(), expected.dim(), "{}: shape", case.name);
        let err = max_abs_diff(&got, &expected);
        let w = worst.entry(case.config.as_str()).or_insert((0.0, ""));
        if err >= w.0 {
            *w = (err, case.name.as_str());
        }
    }
    for (config, (err, case)) in &worst {
        println!("{config:>9}: worst max |hark - librosa| = {err:.3e} ({case})");
    }
    for (config, (err, case)) in &worst {
        assert!(
            *err <= FEATURE_TOL,
            "{config}: {case} differs by {err} > {FEATURE_TOL}"
        );
    }
}

#[test]
fn mel_filter_banks_match_librosa_within_1e_6() {
    let g = golden();
    for (name, spec) in &g.configs {
        let (shape, expected) = read(&golden_dir().join(format!("cases/{name}__mel_filters.npy")));
        let expected = Array2::from_shape_vec((shape[0], shape[1]), expected).unwrap();
        let got = mel_filters(spec);
        let err = max_abs_diff(&got, &expected);
        println!("{name:>9}: mel filters {shape:?}, max |hark - librosa| = {err:.3e}");
        assert!(err <= FILTER_TOL, "{name}: filters differ by {err}");
    }
}

#[test]
fn streamed_frames_equal_batch_frames_for_any_chunk_size() {
    for config in ["htk16k", "yamnet", "fsd2018", "small16k"] {
        // center = false: the stream is the whole signal, so every batch frame is streamed.
        let spec = FeatureSpec {
            center: false,
            ..spec(config)
        };
        let fe = MelFrontend::new(spec).unwrap();
        let signal = input(config, "alarm_beeps");
        let batch = fe.compute(&signal);
        for chunk in [1, 7, 160, 347, 1000, 4096, signal.len()] {
            let st = stream(&fe, &signal, chunk);
            assert_eq!(
                st.frames_available(),
                batch.ncols(),
                "{config} chunk {chunk}"
            );
            // The window over every frame gets the same whole-window steps as compute().
            let streamed = st.window(batch.ncols()).unwrap();
            let err = max_abs_diff(&streamed, &batch);
            assert!(err <= 1e-5, "{config} chunk {chunk}: {err}");
        }
    }
}

#[test]
fn centred_stream_matches_batch_frames_that_do_not_reach_the_right_padding() {
    // fsd2018 pads with zeros, small16k reflects.
    for config in ["fsd2018", "small16k"] {
        let spec = raw(&spec(config));
        assert!(spec.center);
        let fe = MelFrontend::new(spec.clone()).unwrap();
        let signal = input(config, "sweep");
        let batch = fe.compute(&signal);
        let pad = spec.n_fft / 2;
        let interior = (0..batch.ncols())
            .take_while(|t| t * spec.hop_length + spec.n_fft <= pad + signal.len())
            .count();
        assert!(
            interior > batch.ncols() / 2,
            "{config}: most frames are interior"
        );
        for chunk in [1, 100, 513, 5000] {
            let st = stream(&fe, &signal, chunk);
            assert_eq!(st.frames_available(), interior, "{config} chunk {chunk}");
            let streamed = st.window(interior).unwrap();
            let err = max_abs_diff(&streamed, &batch.slice(s![.., ..interior]).to_owned());
            assert!(err <= 1e-5, "{config} chunk {chunk}: {err}");
        }
    }
}

#[test]
fn window_applies_top_db_and_normalization_over_that_window_only() {
    let spec = FeatureSpec {
        center: false,
        ..spec("fsd2018")
    };
    assert_eq!(spec.log, LogKind::Db);
    assert!(spec.db_top.is_some());
    let fe = MelFrontend::new(spec.clone()).unwrap();
    let raw_fe = MelFrontend::new(raw(&spec)).unwrap();
    let signal = input("fsd2018", "alarm_beeps");
    let raw_frames = raw_fe.compute(&signal);
    let mut st = stream(&fe, &signal, 4410);
    let n = 40;
    let mut want = raw_frames
        .slice(s![.., raw_frames.ncols() - n..])
        .to_owned();
    fe.normalize(&mut want);
    assert_eq!(st.window(n).unwrap(), want);
    assert!(st.window(raw_frames.ncols() + 1).is_none());

    // Discarding old frames keeps the newest ones, so the window is unchanged.
    st.discard_before(n);
    assert_eq!(st.frames_available(), n);
    assert_eq!(st.window(n).unwrap(), want);

    st.reset();
    assert_eq!(st.frames_available(), 0);
    st.push(&signal);
    assert_eq!(st.frames_available(), raw_frames.ncols());
}

#[test]
fn frame_log_mel_then_normalize_equals_compute() {
    let spec = FeatureSpec {
        center: false,
        ..spec("small16k")
    };
    let fe = MelFrontend::new(spec.clone()).unwrap();
    let signal = input("small16k", "noise");
    let batch = fe.compute(&signal);
    let mut frames = Array2::<f32>::zeros(batch.dim());
    let mut col = vec![0.0; spec.n_mels];
    for t in 0..batch.ncols() {
        let start = t * spec.hop_length;
        fe.frame_log_mel(&signal[start..start + fe.frame_len()], &mut col);
        frames
            .column_mut(t)
            .assign(&ndarray::ArrayView1::from(&col));
    }
    fe.normalize(&mut frames);
    assert_eq!(frames, batch);
    assert_eq!(fe.num_frames(signal.len()), batch.ncols());
}

fn invalid(change: impl FnOnce(&mut FeatureSpec)) -> String {
    let mut s = spec("htk16k");
    change(&mut s);
    let err = s.validate().expect_err("spec should be rejected");
    assert!(MelFrontend::new(s).is_err());
    err.to_string()
}

#[test]
fn validation_errors_name_the_key_the_value_and_what_is_allowed() {
    let cases: Vec<(String, &[&str])> = vec![
        (
            invalid(|s| s.fmax = 9000.0),
            &["fmax = 9000", "Nyquist", "8000"],
        ),
        (
            invalid(|s| s.win_length = 1024),
            &["win_length = 1024", "n_fft = 512", "between 1 and 512"],
        ),
        (
            invalid(|s| s.hop_length = 0),
            &["hop_length = 0", "from 1 to 65536"],
        ),
        (invalid(|s| s.n_mels = 0), &["n_mels = 0"]),
        (invalid(|s| s.n_fft = 0), &["n_fft = 0"]),
        (invalid(|s| s.sample_rate = 0), &["sample_rate = 0"]),
        (
            invalid(|s| s.fmin = 7500.0),
            &["fmin = 7500", "not below fmax = 7500"],
        ),
        (invalid(|s| s.fmin = -1.0), &["fmin = -1"]),
        (
            invalid(|s| s.power = 3.0),
            &["power = 3", "1 (magnitude) or 2"],
        ),
        (invalid(|s| s.db_top = Some(-10.0)), &["db_top = -10"]),
        (invalid(|s| s.db_amin = 0.0), &["db_amin = 0"]),
        (invalid(|s| s.ln_offset = 0.0), &["ln_offset = 0"]),
    ];
    for (msg, wanted) in cases {
        assert!(msg.starts_with("feature spec: "), "{msg}");
        for w in wanted {
            assert!(msg.contains(w), "{msg:?} should mention {w:?}");
        }
    }
}

#[test]
fn spec_files_load_as_toml_or_json_and_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let toml_path = dir.path().join("yamnet.toml");
    std::fs::write(
        &toml_path,
        r#"
sample_rate = 16000
n_fft = 512
win_length = 400
hop_length = 160
window = "hann"
center = false
pad_mode = "constant"
framing = "tf"
n_mels = 64
fmin = 125
fmax = 7500
mel_scale = "htk_tf"
mel_norm = "none"
power = 1
log = "ln"
ln_offset = 0.001
"#,
    )
    .unwrap();
    let loaded = FeatureSpec::from_file(&toml_path).unwrap();
    assert_eq!(loaded, spec("yamnet"));

    let json_path = dir.path().join("fsd.json");
    std::fs::write(&json_path, serde_json::to_string(&spec("fsd2018")).unwrap()).unwrap();
    assert_eq!(FeatureSpec::from_file(&json_path).unwrap(), spec("fsd2018"));

    // Defaults: no framing/normalize/db keys means librosa framing, no normalisation, librosa's
    // ref 1.0 and amin 1e-10, no top_db clipping.
    let text = std::fs::read_to_string(&toml_path)
        .unwrap()
        .replace("framing = \"tf\"\n", "")
        .replace("mel_scale = \"htk_tf\"", "mel_scale = \"htk\"");
    std::fs::write(&toml_path, text).unwrap();
    let d = FeatureSpec::from_file(&toml_path).unwrap();
    assert_eq!(d.framing, hark::frontend::Framing::Librosa);
    assert_eq!(d.normalize, Normalize::None);
    assert_eq!((d.db_ref, d.db_amin, d.db_top), (1.0, 1e-10, None));
    assert_eq!(d.pad_mode, PadMode::Constant);

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "sample_rate = 16000\nhop = 3\n").unwrap();
    let err = FeatureSpec::from_file(&bad).unwrap_err();
    assert!(matches!(err, FrontendError::ParseToml { .. }));
    assert!(err.to_string().contains("bad.toml"), "{err}");

    let nyq = dir.path().join("nyq.json");
    let mut s = spec("small16k");
    s.fmax = 9000.0;
    std::fs::write(&nyq, serde_json::to_string(&s).unwrap()).unwrap();
    let msg = FeatureSpec::from_file(&nyq).unwrap_err().to_string();
    assert!(
        msg.contains("nyq.json") && msg.contains("fmax = 9000"),
        "{msg}"
    );

    let missing = FeatureSpec::from_file(&dir.path().join("nope.toml")).unwrap_err();
    assert!(matches!(missing, FrontendError::ReadSpec { .. }));
    assert!(missing.to_string().contains("nope.toml"));
}

#[test]
fn features_written_as_npy_read_back_unchanged() {
    let fe = MelFrontend::new(spec("yamnet")).unwrap();
    let x = fe.compute(&input("yamnet", "sweep"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.npy");
    npy::write_f32(&path, &[x.nrows(), x.ncols()], x.as_slice().unwrap()).unwrap();
    let (shape, data) = npy::read_f32(&path).unwrap();
    assert_eq!(shape, vec![x.nrows(), x.ncols()]);
    assert_eq!(data, x.as_slice().unwrap());
}

#[test]
fn yamnet_features_match_yamnet_reference_log_mel() {
    let Some(dir) = shared_or_skip("data/models/yamnet/golden") else {
        return;
    };
    let fe = MelFrontend::new(spec("yamnet")).unwrap();
    for name in ["fireworks", "smoke_alarm", "quiet_room"] {
        let (_, wave) = read(&dir.join(format!("{name}_waveform_16k.npy")));
        let (shape, reference) = read(&dir.join(format!("{name}_log_mel_reference.npy")));
        assert_eq!(shape, vec![96, 64], "{name}");
        let reference = Array2::from_shape_vec((96, 64), reference).unwrap();
        let got = fe.compute(&wave).t().to_owned();
        let err = max_abs_diff(&got, &reference);
        println!("YAMNet {name:>11}: max |hark - reference| = {err:.3e}");
        assert!(err <= FEATURE_TOL, "{name}: {err}");
    }
}
