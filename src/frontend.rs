//! The log-mel feature front end: audio samples in, `[n_mels, frames]` log-mel features out,
//! reproducing librosa (`stft` → `filters.mel` → `power_to_db`/`amplitude_to_db` or `log`) and,
//! for YAMNet, TensorFlow's framing and mel matrix, to well within 1e-3.
//!
//! It owns the feature spec (the keys a model's front end is described by), its validation,
//! the mel filter bank, the STFT and the whole-window steps (top-dB clipping, normalisation), in
//! batch ([`MelFrontend::compute`], [`MelFrontend::compute_into`]) and streaming
//! ([`StreamingFrontend`]) form; the `*_into` forms allocate nothing in steady state. Everything
//! is computed in f64 and handed out as f32. It must not do I/O beyond [`FeatureSpec::from_file`],
//! must not resample or know where samples come from, and must not know about models: the
//! sample rate in the spec is a promise the caller keeps.
//!
//! Streaming and batch agree frame for frame: with `center = false` a streamed signal yields
//! exactly the frames of [`MelFrontend::compute`] (before the whole-window steps). With
//! `center = true` the stream is taken to start at sample 0, so the left padding is applied once
//! at stream start; the right padding is never applied (a stream has no end), so the streamed
//! frames equal the batch frames that do not reach into the right padding.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ndarray::{s, Array2, ArrayBase, ArrayView2, ArrayViewMut2, DataMut, Ix2};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};
use serde::{Deserialize, Serialize};

/// What can go wrong describing or loading a front end.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// A key of the feature spec has a value the front end cannot honour.
    #[error(
        "{}feature spec: {key} = {value} {problem}; {allowed}",
        .file.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default()
    )]
    InvalidSpec {
        /// The spec file, when the spec came from one.
        file: Option<PathBuf>,
        /// The spec key, as written in the file.
        key: &'static str,
        /// The value given, as it would be written.
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What to use instead.
        allowed: String,
    },
    /// The spec file could not be read.
    #[error("cannot read feature spec file {path}")]
    ReadSpec {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The spec file is not TOML, or has a missing, unknown or mistyped key.
    #[error("feature spec file {path} is not a valid TOML feature spec")]
    ParseToml {
        path: PathBuf,
        source: toml::de::Error,
    },
    /// The spec file is not JSON, or has a missing, unknown or mistyped key.
    #[error("feature spec file {path} is not a valid JSON feature spec")]
    ParseJson {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Result alias for this module.
pub type Result<T, E = FrontendError> = std::result::Result<T, E>;

/// Analysis window. Only the periodic Hann window (`scipy.signal.get_window("hann", N)`,
/// `0.5 - 0.5 cos(2πn/N)`) is needed by the models hark runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Periodic Hann, `"hann"`.
    Hann,
}

/// How `center = true` pads the signal's ends (as `numpy.pad` modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PadMode {
    /// Zeros.
    Constant,
    /// Mirror without repeating the edge sample (`[3 2 | 1 2 3 4]`).
    Reflect,
}

/// Where a frame's samples and window sit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// librosa: frames are `n_fft` samples with the `win_length` window centred inside them;
    /// frames = 1 + (N - n_fft) / hop.
    #[default]
    Librosa,
    /// TensorFlow (`tf.signal.stft`): frames are `win_length` samples, windowed from their first
    /// sample and zero-padded on the right to `n_fft`; frames = 1 + (N - win_length) / hop.
    Tf,
}

/// Mel scale and filter construction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelScale {
    /// librosa's default (Slaney's Auditory Toolbox): linear below 1 kHz, logarithmic above.
    Slaney,
    /// librosa with `htk=True`: 2595 log10(1 + f/700); triangles linear in Hz.
    Htk,
    /// `tf.signal.linear_to_mel_weight_matrix`: 1127 ln(1 + f/700), triangles linear in mel,
    /// DC bin zeroed. Never area-normalised, so it requires `mel_norm = "none"`.
    HtkTf,
}

/// Area normalisation of the mel triangles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MelNorm {
    /// Each triangle scaled by 2 / (its width in Hz), librosa's `norm="slaney"`.
    Slaney,
    /// Peak 1, librosa's `norm=None`.
    None,
}

/// How mel energies become log features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogKind {
    /// Decibels as librosa: `power_to_db` for power 2, `amplitude_to_db` for power 1, using
    /// `db_ref`, `db_amin` and `db_top`.
    Db,
    /// Natural log: ln(mel + ln_offset).
    Ln,
}

/// Normalisation over a whole window of features (all bands and frames together).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Features are used as they come out of the log.
    #[default]
    None,
    /// `x -= min(x); x /= max(|x|) + 1` (ml-sound-classifier's "samplewise" normalisation).
    SamplewiseMinmax,
    /// `(x - mean) / (std + 1e-8)`, population std.
    Zscore,
}

fn default_db_ref() -> f64 {
    1.0
}
fn default_db_amin() -> f64 {
    1e-10
}
fn default_ln_offset() -> f64 {
    1e-6
}

/// Everything that defines a model's feature front end. Field names are the keys of the spec
/// file (and of the golden `cases.json` configs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Hz; samples handed to the front end must already be at this rate.
    pub sample_rate: u32,
    /// FFT size; the spectrum has n_fft/2 + 1 bins.
    pub n_fft: usize,
    /// Window length in samples, <= n_fft.
    pub win_length: usize,
    /// Samples between frame starts.
    pub hop_length: usize,
    /// Analysis window; only `"hann"`.
    pub window: Window,
    /// Pad n_fft/2 samples on each side so frame t is centred on sample t·hop (librosa's
    /// `center`). Streaming applies only the left padding, once, at stream start.
    pub center: bool,
    /// How `center` pads: `"constant"` (zeros) or `"reflect"`.
    pub pad_mode: PadMode,
    /// `"librosa"` (default) or `"tf"` (YAMNet); see [`Framing`].
    #[serde(default)]
    pub framing: Framing,
    /// Number of mel bands, the feature dimension.
    pub n_mels: usize,
    /// Lowest mel edge, Hz.
    pub fmin: f64,
    /// Highest mel edge, Hz; at most sample_rate / 2.
    pub fmax: f64,
    /// `"slaney"`, `"htk"` or `"htk_tf"`; see [`MelScale`].
    pub mel_scale: MelScale,
    /// `"slaney"` or `"none"`; see [`MelNorm`].
    pub mel_norm: MelNorm,
    /// Exponent applied to the STFT magnitude: 1 (magnitude) or 2 (power).
    pub power: f64,
    /// `"db"` or `"ln"`; see [`LogKind`].
    pub log: LogKind,
    /// `log = "db"`: reference the dB values are relative to (librosa's `ref`), in the units of
    /// the mel energies (power or amplitude). Default 1.0.
    #[serde(default = "default_db_ref")]
    pub db_ref: f64,
    /// `log = "db"`: floor applied to the mel energies (and to `db_ref`) before the log, in their
    /// units (librosa's `amin`). Default 1e-10, i.e. -100 dB for power.
    #[serde(default = "default_db_amin")]
    pub db_amin: f64,
    /// `log = "db"`: clip everything more than this many dB below the window's maximum
    /// (librosa's `top_db`). Absent or null: no clipping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_top: Option<f64>,
    /// `log = "ln"`: offset added before the natural log so silence stays finite. Default 1e-6,
    /// far below any real mel energy; YAMNet uses 0.001 and its spec says so.
    #[serde(default = "default_ln_offset")]
    pub ln_offset: f64,
    /// Whole-window normalisation: `"none"` (default), `"samplewise_minmax"` or `"zscore"`.
    #[serde(default)]
    pub normalize: Normalize,
}

impl FeatureSpec {
    /// Checks that every key has a value the front end can honour. The error names the key, the
    /// value given and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &'static str, value: String, problem: String, allowed: String| {
            Err(FrontendError::InvalidSpec {
                file: None,
                key,
                value,
                problem,
                allowed,
            })
        };
        let positive = |key: &'static str, value: usize| {
            if value == 0 {
                bad(
                    key,
                    "0".into(),
                    "is zero".into(),
                    "use a positive whole number".into(),
                )
            } else {
                Ok(())
            }
        };
        positive("sample_rate", self.sample_rate as usize)?;
        positive("n_fft", self.n_fft)?;
        positive("win_length", self.win_length)?;
        positive("hop_length", self.hop_length)?;
        positive("n_mels", self.n_mels)?;
        if self.win_length > self.n_fft {
            return bad(
                "win_length",
                self.win_length.to_string(),
                format!("is longer than n_fft = {}", self.n_fft),
                format!("use a value between 1 and {} (n_fft)", self.n_fft),
            );
        }
        let nyquist = f64::from(self.sample_rate) / 2.0;
        if !self.fmin.is_finite() || self.fmin < 0.0 {
            return bad(
                "fmin",
                self.fmin.to_string(),
                "is not a frequency".into(),
                format!("use a value >= 0 and below fmax = {}", self.fmax),
            );
        }
        if !self.fmax.is_finite() || self.fmax <= 0.0 {
            return bad(
                "fmax",
                self.fmax.to_string(),
                "is not a positive frequency".into(),
                format!("use a value above fmin and <= {nyquist} (sample_rate / 2)"),
            );
        }
        if self.fmax > nyquist {
            return bad(
                "fmax",
                self.fmax.to_string(),
                format!("is above the Nyquist frequency {nyquist} (sample_rate / 2)"),
                format!("use a value <= {nyquist}"),
            );
        }
        if self.fmin >= self.fmax {
            return bad(
                "fmin",
                self.fmin.to_string(),
                format!("is not below fmax = {}", self.fmax),
                format!("use a value >= 0 and below {}", self.fmax),
            );
        }
        if self.power != 1.0 && self.power != 2.0 {
            return bad(
                "power",
                self.power.to_string(),
                "is not supported".into(),
                "use 1 (magnitude) or 2 (power)".into(),
            );
        }
        if self.mel_scale == MelScale::HtkTf && self.mel_norm != MelNorm::None {
            return bad(
                "mel_norm",
                "\"slaney\"".into(),
                "cannot be combined with mel_scale = \"htk_tf\" (TensorFlow's mel matrix is never area-normalised)".into(),
                "use mel_norm = \"none\"".into(),
            );
        }
        if !(self.db_ref.is_finite() && self.db_ref > 0.0) {
            return bad(
                "db_ref",
                self.db_ref.to_string(),
                "is not a positive number".into(),
                "use a value > 0 (librosa's default is 1.0)".into(),
            );
        }
        if !(self.db_amin.is_finite() && self.db_amin > 0.0) {
            return bad(
                "db_amin",
                self.db_amin.to_string(),
                "is not a positive number".into(),
                "use a small value > 0 such as 1e-10".into(),
            );
        }
        if let Some(top) = self.db_top {
            if !(top.is_finite() && top >= 0.0) {
                return bad(
                    "db_top",
                    top.to_string(),
                    "is not a non-negative number".into(),
                    "use a value >= 0 (such as 80), or leave it out for no clipping".into(),
                );
            }
        }
        if !(self.ln_offset.is_finite() && self.ln_offset > 0.0) {
            return bad(
                "ln_offset",
                self.ln_offset.to_string(),
                "is not a positive number (ln of silence would be -inf)".into(),
                "use a small value > 0 such as 0.001".into(),
            );
        }
        Ok(())
    }

    /// Loads and validates a spec: JSON when the file name ends in `.json`, TOML otherwise.
    /// Every error names the file.
    pub fn from_file(path: &Path) -> Result<FeatureSpec> {
        let text = std::fs::read_to_string(path).map_err(|source| FrontendError::ReadSpec {
            path: path.to_path_buf(),
            source,
        })?;
        let is_json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let spec: FeatureSpec = if is_json {
            serde_json::from_str(&text).map_err(|source| FrontendError::ParseJson {
                path: path.to_path_buf(),
                source,
            })?
        } else {
            toml::from_str(&text).map_err(|source| FrontendError::ParseToml {
                path: path.to_path_buf(),
                source,
            })?
        };
        spec.validate().map_err(|e| match e {
            FrontendError::InvalidSpec {
                key,
                value,
                problem,
                allowed,
                ..
            } => FrontendError::InvalidSpec {
                file: Some(path.to_path_buf()),
                key,
                value,
                problem,
                allowed,
            },
            other => other,
        })?;
        Ok(spec)
    }

    /// Number of spectrum bins, n_fft/2 + 1.
    pub fn n_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Samples one frame covers: n_fft (librosa framing) or win_length (tf framing).
    pub fn frame_len(&self) -> usize {
        match self.framing {
            Framing::Librosa => self.n_fft,
            Framing::Tf => self.win_length,
        }
    }

    /// Samples of padding `center = true` adds on each side (n_fft/2 in both framings, as
    /// librosa and YAMNet's reference do).
    fn center_pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mel scale and filters (librosa.core.convert / librosa.filters.mel, TF's mel matrix)
// ---------------------------------------------------------------------------------------------

/// Slaney scale constants, as librosa spells them (kept as expressions so the f64 rounding is
/// the same as librosa's).
const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// librosa.hz_to_mel for one frequency (`htk` selects 2595·log10(1 + f/700)).
fn hz_to_mel(f: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + f / 700.0).log10();
    }
    let min_log_mel = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
    if f >= SLANEY_MIN_LOG_HZ {
        min_log_mel + (f / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
    } else {
        f / SLANEY_F_SP
    }
}

/// librosa.mel_to_hz for one mel value.
fn mel_to_hz(m: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    }
    let min_log_mel = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
    if m >= min_log_mel {
        SLANEY_MIN_LOG_HZ * (slaney_logstep() * (m - min_log_mel)).exp()
    } else {
        SLANEY_F_SP * m
    }
}

/// numpy.linspace(start, stop, num) with its rounding: start + i·step, last point exactly stop.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// The mel filter bank `[n_mels, n_fft/2 + 1]` for a spec: librosa.filters.mel for the slaney
/// and htk scales (with norm slaney or none), tf.signal.linear_to_mel_weight_matrix for htk_tf.
/// Computed in f64, rounded to f32 at the end.
pub fn mel_filters(spec: &FeatureSpec) -> Array2<f32> {
    mel_filters_f64(spec).mapv(|w| w as f32)
}

fn mel_filters_f64(spec: &FeatureSpec) -> Array2<f64> {
    match spec.mel_scale {
        MelScale::Slaney => librosa_mel(spec, false),
        MelScale::Htk => librosa_mel(spec, true),
        MelScale::HtkTf => tf_mel(spec),
    }
}

fn librosa_mel(spec: &FeatureSpec, htk: bool) -> Array2<f64> {
    let n_mels = spec.n_mels;
    let n_bins = spec.n_bins();
    let sr = f64::from(spec.sample_rate);
    // librosa.fft_frequencies is np.fft.rfftfreq(n_fft, 1/sr): k · (1 / (n_fft · (1/sr))).
    let bin_hz = 1.0 / (spec.n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * bin_hz).collect();
    let mel_f: Vec<f64> = linspace(
        hz_to_mel(spec.fmin, htk),
        hz_to_mel(spec.fmax, htk),
        n_mels + 2,
    )
    .into_iter()
    .map(|m| mel_to_hz(m, htk))
    .collect();

    let mut weights = Array2::<f64>::zeros((n_mels, n_bins));
    for i in 0..n_mels {
        let (lo, ce, up) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        // librosa: lower = -(mel_f[i] - f) / fdiff[i], upper = (mel_f[i+2] - f) / fdiff[i+1].
        let norm = match spec.mel_norm {
            MelNorm::Slaney => 2.0 / (up - lo),
            MelNorm::None => 1.0,
        };
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = -(lo - f) / (ce - lo);
            let upper = (up - f) / (up - ce);
            weights[[i, k]] = lower.min(upper).max(0.0) * norm;
        }
    }
    weights
}

fn tf_mel(spec: &FeatureSpec) -> Array2<f64> {
    let hz_to_mel_tf = |f: f64| 1127.0 * (f / 700.0).ln_1p();
    let n_bins = spec.n_bins();
    let bin_mels: Vec<f64> = linspace(0.0, f64::from(spec.sample_rate) / 2.0, n_bins)
        .into_iter()
        .map(hz_to_mel_tf)
        .collect();
    let edges = linspace(
        hz_to_mel_tf(spec.fmin),
        hz_to_mel_tf(spec.fmax),
        spec.n_mels + 2,
    );
    let mut weights = Array2::<f64>::zeros((spec.n_mels, n_bins));
    for i in 0..spec.n_mels {
        let (lo, ce, up) = (edges[i], edges[i + 1], edges[i + 2]);
        // Bin 0 (DC) stays zero: TensorFlow drops it before building the triangles.
        for (k, &m) in bin_mels.iter().enumerate().skip(1) {
            let w = ((m - lo) / (ce - lo)).min((up - m) / (up - ce));
            weights[[i, k]] = w.max(0.0);
        }
    }
    weights
}

/// One mel band as its run of non-zero weights, so a frame costs O(total triangle width)
/// rather than O(n_mels · n_bins).
#[derive(Debug, Clone)]
struct Band {
    first_bin: usize,
    weights: Vec<f64>,
}

fn sparse_bands(filters: &Array2<f64>) -> Vec<Band> {
    filters
        .rows()
        .into_iter()
        .map(|row| {
            let first = row.iter().position(|&w| w != 0.0);
            let last = row.iter().rposition(|&w| w != 0.0);
            match (first, last) {
                (Some(a), Some(b)) => Band {
                    first_bin: a,
                    weights: row.iter().skip(a).take(b - a + 1).copied().collect(),
                },
                // librosa keeps empty bands (and warns); they give the floor value.
                _ => Band {
                    first_bin: 0,
                    weights: Vec::new(),
                },
            }
        })
        .collect()
}

/// Σ a·b over two equally long slices, in four interleaved partial sums so the compiler can
/// keep them in one vector register (a plain `.sum()` must add strictly in order).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let mut rest: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f64; 4];
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    rest += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    rest
}

/// Σ f(x) over a matrix, row by row in four interleaved partial sums (as [`dot`]), so it
/// vectorizes; the same additions in the same order whatever the matrix's strides, so a window
/// normalises to the same bits in either layout.
fn sum_rows<S: ndarray::Data<Elem = f32>>(x: &ArrayBase<S, Ix2>, f: impl Fn(f32) -> f64) -> f64 {
    let mut total = 0.0;
    for row in x.rows() {
        let mut acc = [0.0f64; 4];
        let mut rest = 0.0;
        match row.as_slice() {
            Some(row) => {
                let chunks = row.chunks_exact(4);
                rest = chunks.remainder().iter().map(|&v| f(v)).sum();
                for c in chunks {
                    for i in 0..4 {
                        acc[i] += f(c[i]);
                    }
                }
            }
            None => {
                let whole = row.len() / 4 * 4;
                for (j, &v) in row.iter().enumerate() {
                    if j < whole {
                        acc[j % 4] += f(v);
                    } else {
                        rest += f(v);
                    }
                }
            }
        }
        total += rest + ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
    total
}

/// 10 / ln 10: decibels per neper of power, so 10·log10(x) = DB_PER_LN · ln(x).
const DB_PER_LN: f64 = 10.0 / std::f64::consts::LN_10;

/// True for the x [`ln_normal`] is defined for: positive, finite, not subnormal (false for NaN).
#[inline(always)]
fn is_positive_normal(x: f64) -> bool {
    (f64::MIN_POSITIVE..=f64::MAX).contains(&x)
}

/// ln(x) for a positive normal x (see [`is_positive_normal`]; anything else gives garbage),
/// within ~1e-15 of the library's ln. Free of branches and calls, so a loop over a frame's bands
/// vectorizes, where the library's ln costs a call per band (a fifth of a frame's time).
///
/// x = m·2^e with m in [√½, √2); ln m = 2·atanh(s) with s = (m - 1)/(m + 1), |s| <= 0.172, from
/// its series 2s·(1 + s²/3 + s⁴/5 + ...) up to s¹⁶/17 (the next term is below 1e-16).
#[inline(always)]
fn ln_normal(x: f64) -> f64 {
    const EXP_MASK: u64 = 0x7ff;
    const MANTISSA_MASK: u64 = (1 << 52) - 1;
    const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
    // 2^52 as bits and value: or-ing an integer below 2^52 into its mantissa and subtracting
    // 2^52 converts it to f64 without an integer-to-float instruction (SSE2 has none for u64).
    const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let bits = x.to_bits();
    let biased = f64::from_bits(TWO_52_BITS | ((bits >> 52) & EXP_MASK)) - TWO_52;
    let m = f64::from_bits((bits & MANTISSA_MASK) | ONE_BITS);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = biased - 1023.0 + if big { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let series = 1.0
        + z * (1.0 / 3.0
            + z * (1.0 / 5.0
                + z * (1.0 / 7.0
                    + z * (1.0 / 9.0
                        + z * (1.0 / 11.0
                            + z * (1.0 / 13.0 + z * (1.0 / 15.0 + z * (1.0 / 17.0))))))));
    e * std::f64::consts::LN_2 + 2.0 * s * series
}

/// Periodic Hann of length n (scipy's `get_window("hann", n)`, which is all ones for n = 1).
fn periodic_hann(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// The window as it multiplies a frame: for librosa framing the win_length window centred in
/// n_fft samples (`(n_fft - win_length) / 2` zeros on the left, as librosa.util.pad_center);
/// for tf framing just the win_length window.
fn frame_window(spec: &FeatureSpec) -> Vec<f64> {
    let hann = periodic_hann(spec.win_length);
    match spec.framing {
        Framing::Tf => hann,
        Framing::Librosa => {
            let mut w = vec![0.0; spec.n_fft];
            let left = (spec.n_fft - spec.win_length) / 2;
            w[left..left + spec.win_length].copy_from_slice(&hann);
            w
        }
    }
}

/// Index into a signal of length n for padded position `i` (may be out of range), with
/// numpy.pad's `reflect` semantics, including its repeated reflection when the padding is longer
/// than the signal. `n` must be > 0.
fn reflect_index(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let r = i.rem_euclid(period) as usize;
    if r >= n {
        period as usize - r
    } else {
        r
    }
}

/// Sample `j` of the signal with `pad` samples added on each side, as numpy.pad does.
///
/// librosa (>= 0.10) pads the two ends of the signal separately, which is the same as padding the
/// whole signal except in one corner: with reflect padding and hop >= n_fft - n_fft/2, the tail
/// piece librosa pads can be shorter than the padding, so numpy reflects it twice and the last
/// frame's final few samples differ. Those samples sit under the window's near-zero tail (and
/// streaming never computes right-padded frames), so hark keeps the plain definition.
fn padded_sample(samples: &[f32], pad: usize, mode: PadMode, j: usize) -> f32 {
    let n = samples.len();
    match j.checked_sub(pad) {
        Some(i) if i < n => samples[i],
        _ => match mode {
            PadMode::Constant => 0.0,
            PadMode::Reflect => samples[reflect_index(j as isize - pad as isize, n)],
        },
    }
}

/// The whole padded signal (the front end only ever pads its ends, see `log_mel_frames_into`).
#[cfg(test)]
fn pad_signal(samples: &[f32], pad: usize, mode: PadMode) -> Vec<f32> {
    (0..samples.len() + 2 * pad)
        .map(|j| padded_sample(samples, pad, mode, j))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The front end
// ---------------------------------------------------------------------------------------------

/// Frames `compute_into` computes before writing them out together.
const BLOCK: usize = 16;

/// Caller-owned work buffers for [`MelFrontend::compute_into`], so that computing window after
/// window allocates nothing once the buffers have grown to the window's size. Make one with
/// [`MelFrontend::scratch`]; a scratch made for another spec still works (it is resized, which
/// allocates once).
pub struct FrameScratch {
    /// The windowed frame, zero-padded to n_fft (the FFT's input, overwritten by it).
    input: Vec<f64>,
    spectrum: Vec<Complex<f64>>,
    fft: Vec<Complex<f64>>,
    /// |X|^power per bin.
    bins: Vec<f64>,
    /// One frame's mel energies, then what their log is taken of.
    energies: Vec<f64>,
    /// BLOCK frames' log-mel values, frames-first, before they are copied into the caller's
    /// (maybe strided) output.
    column: Vec<f32>,
    /// The center-padded ends of the signal: about 2·(n_fft/2 + frame length) samples.
    padded: Vec<f32>,
}

impl fmt::Debug for FrameScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameScratch")
            .field("n_fft", &self.input.len())
            .field("padded_capacity", &self.padded.capacity())
            .finish_non_exhaustive()
    }
}

/// A validated spec with everything precomputed: window, filter bank, FFT plan. Cheap to clone
/// (the plan is shared).
#[derive(Clone)]
pub struct MelFrontend {
    spec: FeatureSpec,
    /// Multiplies a frame sample by sample; length = spec.frame_len().
    window: Vec<f64>,
    bands: Arc<Vec<Band>>,
    fft: Arc<dyn RealToComplex<f64>>,
    /// 10·log10(max(amin, ref)) in the units the dB path works in, subtracted from every value.
    db_ref_offset: f64,
    /// The CPU has AVX2, so frames run through [`frame_avx2`](Self::frame_avx2).
    #[cfg(target_arch = "x86_64")]
    avx2: bool,
    /// db_amin², the floor of the amplitude dB path (whose log is taken of mel²).
    db_amin_sq: f64,
    /// What the dB path's log is at least taken of: amin (power), amin² (amplitude).
    db_floor_arg: f64,
    /// The dB value of that floor (10·log10(db_floor_arg) - db_ref_offset), computed with the
    /// library's log10 so silence gives exactly librosa's value.
    db_floor: f64,
}

impl fmt::Debug for MelFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MelFrontend")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl MelFrontend {
    /// Validates the spec and precomputes the window, mel filters and FFT plan.
    pub fn new(spec: FeatureSpec) -> Result<Self> {
        spec.validate()?;
        let window = frame_window(&spec);
        let bands = Arc::new(sparse_bands(&mel_filters_f64(&spec)));
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(spec.n_fft);
        // amplitude_to_db is power_to_db of the squares, with ref and amin squared too.
        let db_ref_offset = if spec.power == 2.0 {
            10.0 * spec.db_ref.max(spec.db_amin).log10()
        } else {
            10.0 * (spec.db_ref * spec.db_ref)
                .max(spec.db_amin * spec.db_amin)
                .log10()
        };
        let db_amin_sq = spec.db_amin * spec.db_amin;
        let db_floor_arg = if spec.power == 2.0 {
            spec.db_amin
        } else {
            db_amin_sq
        };
        let db_floor = 10.0 * db_floor_arg.log10() - db_ref_offset;
        Ok(Self {
            spec,
            window,
            bands,
            fft,
            db_ref_offset,
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            db_amin_sq,
            db_floor_arg,
            db_floor,
        })
    }

    /// The validated spec this front end computes.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Samples `frame_log_mel` expects: n_fft (librosa framing) or win_length (tf framing).
    pub fn frame_len(&self) -> usize {
        self.window.len()
    }

    /// Bands per frame.
    pub fn n_mels(&self) -> usize {
        self.spec.n_mels
    }

    /// Work buffers for [`compute_into`](Self::compute_into), sized for this spec. Keep it and
    /// pass it to every call.
    pub fn scratch(&self) -> FrameScratch {
        FrameScratch {
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            fft: self.fft.make_scratch_vec(),
            bins: vec![0.0; self.spec.n_bins()],
            energies: vec![0.0; self.spec.n_mels],
            column: vec![0.0; self.spec.n_mels * BLOCK],
            padded: Vec::new(),
        }
    }

    /// Resizes a scratch made for another spec (allocates); a no-op for one made by
    /// [`scratch`](Self::scratch).
    fn fit_scratch(&self, s: &mut FrameScratch) {
        if s.input.len() != self.spec.n_fft
            || s.fft.len() != self.fft.get_scratch_len()
            || s.column.len() != self.spec.n_mels * BLOCK
        {
            let padded = std::mem::take(&mut s.padded);
            *s = FrameScratch {
                padded,
                ..self.scratch()
            };
        }
    }

    /// Whole-signal features `[n_mels, frames]`, including center padding, top-dB clipping and
    /// normalisation: the same numbers as librosa (or YAMNet's reference for tf framing).
    /// A signal too short for one frame gives `[n_mels, 0]`. Allocates its result and work
    /// buffers; [`compute_into`](Self::compute_into) does not.
    pub fn compute(&self, samples: &[f32]) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.spec.n_mels, self.num_frames(samples.len())));
        self.compute_into(samples, &mut self.scratch(), out.view_mut());
        out
    }

    /// [`compute`](Self::compute) into `out`, which must be `[n_mels, num_frames(samples.len())]`
    /// (the same numbers, bit for bit). Allocates nothing after the first call with `scratch`
    /// (the padded ends of the signal are built in it; their size does not depend on the
    /// signal's length).
    ///
    /// `out` may have any strides: for a frames-first `[frames, n_mels]` array `a`, pass
    /// `a.view_mut().reversed_axes()`.
    ///
    /// # Panics
    /// If `out` has another shape.
    pub fn compute_into(
        &self,
        samples: &[f32],
        scratch: &mut FrameScratch,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        self.log_mel_frames_into(samples, scratch, &mut out);
        self.normalize(&mut out);
    }

    /// Log-mel frames of a whole signal before the whole-window steps, into `out`.
    fn log_mel_frames_into(
        &self,
        samples: &[f32],
        scratch: &mut FrameScratch,
        out: &mut ArrayViewMut2<'_, f32>,
    ) {
        let n_frames = self.num_frames(samples.len());
        assert_eq!(
            out.dim(),
            (self.spec.n_mels, n_frames),
            "compute_into: output is {:?}, {} samples give [n_mels, frames] = [{}, {}]",
            out.dim(),
            samples.len(),
            self.spec.n_mels,
            n_frames
        );
        if n_frames == 0 {
            return;
        }
        self.fit_scratch(scratch);
        let (n, n_mels) = (samples.len(), self.spec.n_mels);
        let (frame_len, hop, pad) = (
            self.frame_len(),
            self.spec.hop_length,
            self.spec.center_pad(),
        );
        // Center padding: frames that reach into it are cut from a padded copy of just the
        // signal's two ends, P[..head_end] ++ P[tail_start..] (P the padded signal); the others
        // read the samples themselves.
        let padded_len = n + 2 * pad;
        let mut head_end = padded_len.min(pad + frame_len);
        let mut tail_start = (pad + n).saturating_sub(frame_len);
        if head_end >= tail_start {
            (head_end, tail_start) = (padded_len, padded_len);
        }
        let mut edges = std::mem::take(&mut scratch.padded);
        edges.clear();
        if pad > 0 {
            let at = |j| padded_sample(samples, pad, self.spec.pad_mode, j);
            edges.extend((0..head_end).map(at));
            edges.extend((tail_start..padded_len).map(at));
        }
        // Frames are computed BLOCK at a time into the scratch, frames-first, then written to
        // `out` row by row: in the usual [n_mels, frames] layout a frame's column would touch
        // n_mels cache lines (and pages) for one value each.
        let mut block = std::mem::take(&mut scratch.column);
        for t0 in (0..n_frames).step_by(BLOCK) {
            let b = BLOCK.min(n_frames - t0);
            for (i, column) in block.chunks_exact_mut(n_mels).take(b).enumerate() {
                let start = (t0 + i) * hop;
                let frame = if start >= pad && start + frame_len <= pad + n {
                    &samples[start - pad..][..frame_len]
                } else if start + frame_len <= head_end {
                    &edges[start..][..frame_len]
                } else {
                    &edges[head_end + (start - tail_start)..][..frame_len]
                };
                self.frame_into(frame, column, scratch);
            }
            let frames = ArrayView2::from_shape((b, n_mels), &block[..b * n_mels])
                .expect("the block holds b frames of n_mels values");
            out.slice_mut(s![.., t0..t0 + b]).assign(&frames.t());
        }
        scratch.column = block;
        scratch.padded = edges;
    }

    /// Log-mel frames of a whole signal before the whole-window steps.
    #[cfg(test)]
    fn log_mel_frames(&self, samples: &[f32]) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.spec.n_mels, self.num_frames(samples.len())));
        self.log_mel_frames_into(samples, &mut self.scratch(), &mut out.view_mut());
        out
    }

    /// Log-mel of one frame, without top-dB clipping or normalisation (both are whole-window
    /// steps, see [`normalize`](Self::normalize)). `frame` is exactly the samples the frame
    /// covers ([`frame_len`](Self::frame_len)); `out` receives n_mels values.
    /// Allocates its FFT buffers per call; [`StreamingFrontend`] keeps its own instead.
    ///
    /// # Panics
    /// If `frame.len() != frame_len()` or `out.len() != n_mels`.
    pub fn frame_log_mel(&self, frame: &[f32], out: &mut [f32]) {
        let mut scratch = self.scratch();
        self.frame_into(frame, out, &mut scratch);
    }

    fn frame_into(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        assert_eq!(
            frame.len(),
            self.window.len(),
            "frame_log_mel: frame has {} samples, the spec's frames have {}",
            frame.len(),
            self.window.len()
        );
        assert_eq!(
            out.len(),
            self.spec.n_mels,
            "frame_log_mel: output has room for {} bands, the spec has n_mels = {}",
            out.len(),
            self.spec.n_mels
        );
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: frame_avx2 needs AVX2, which MelFrontend::new found on this CPU.
            unsafe { self.frame_avx2(frame, out, s) };
            return;
        }
        self.frame(frame, out, s);
    }

    /// [`frame`](Self::frame) compiled for AVX2: its loops run four f64 lanes wide instead of
    /// SSE2's two. The arithmetic, and so every result bit, is the same (Rust never fuses or
    /// reorders floating-point operations).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn frame_avx2(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        self.frame(frame, out, s);
    }

    /// The body of [`frame_into`](Self::frame_into), inlined into each instruction-set variant.
    #[inline(always)]
    fn frame(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        // Tf framing zero-pads the win_length frame on the right up to n_fft.
        let (windowed, tail) = s.input.split_at_mut(frame.len());
        for ((x, &y), &w) in windowed.iter_mut().zip(frame).zip(&self.window) {
            *x = f64::from(y) * w;
        }
        tail.fill(0.0);
        self.fft
            .process_with_scratch(&mut s.input, &mut s.spectrum, &mut s.fft)
            .expect("FFT buffers are sized by the plan itself");
        // Two loops rather than a branch inside one: the compiler would otherwise compute both
        // sides for every bin (hypot included). sqrt(re² + im²) is |X| to within an ulp.
        if self.spec.power == 2.0 {
            for (b, c) in s.bins.iter_mut().zip(&s.spectrum) {
                *b = c.re * c.re + c.im * c.im;
            }
        } else {
            for (b, c) in s.bins.iter_mut().zip(&s.spectrum) {
                *b = (c.re * c.re + c.im * c.im).sqrt();
            }
        }
        for (e, band) in s.energies.iter_mut().zip(self.bands.iter()) {
            let bins = &s.bins[band.first_bin..band.first_bin + band.weights.len()];
            *e = self.log_arg(dot(&band.weights, bins));
        }
        self.log_bands(&s.energies, out);
    }

    /// The features of a frame's `log_arg`s: one pass per log kind, which the compiler
    /// vectorizes ([`ln_normal`] is branch-free), then the rare values it does not cover go
    /// through the library's logarithms.
    #[inline(always)]
    fn log_bands(&self, args: &[f64], out: &mut [f32]) {
        match self.spec.log {
            LogKind::Ln => {
                for (o, &x) in out.iter_mut().zip(args) {
                    *o = ln_normal(x) as f32;
                }
            }
            LogKind::Db => {
                for (o, &x) in out.iter_mut().zip(args) {
                    *o = self.db_of_normal(x) as f32;
                }
            }
        }
        for (o, &x) in out.iter_mut().zip(args) {
            if !is_positive_normal(x) {
                *o = self.log_of_any(x) as f32;
            }
        }
    }

    /// The log feature of one band energy, as [`frame_log_mel`](Self::frame_log_mel) computes it
    /// (before the rounding to f32).
    #[cfg(test)]
    fn log(&self, energy: f64) -> f64 {
        let x = self.log_arg(energy);
        match self.spec.log {
            _ if !is_positive_normal(x) => self.log_of_any(x),
            LogKind::Ln => ln_normal(x),
            LogKind::Db => self.db_of_normal(x),
        }
    }

    /// What the log is taken of: mel + ln_offset (ln); max(mel, amin) (power_to_db); or, as
    /// librosa.amplitude_to_db is power_to_db(S², ref², amin²), max(mel², amin²).
    #[inline(always)]
    fn log_arg(&self, energy: f64) -> f64 {
        match self.spec.log {
            LogKind::Ln => energy + self.spec.ln_offset,
            // max() as a comparison (same result, NaN included), which vectorizes better.
            LogKind::Db => {
                let (x, floor) = if self.spec.power == 2.0 {
                    (energy, self.spec.db_amin)
                } else {
                    (energy * energy, self.db_amin_sq)
                };
                if x > floor {
                    x
                } else {
                    floor
                }
            }
        }
    }

    /// 10·log10(x) - 10·log10(ref) for a positive normal `log_arg` x. The floor (x = amin,
    /// silence) gives exactly the library's value, and nothing goes below it ([`ln_normal`] may
    /// differ from the library in the last bits). Comparisons rather than max(), so a loop over
    /// bands vectorizes.
    #[inline(always)]
    fn db_of_normal(&self, x: f64) -> f64 {
        let db = DB_PER_LN * ln_normal(x) - self.db_ref_offset;
        if x <= self.db_floor_arg || db < self.db_floor {
            self.db_floor
        } else {
            db
        }
    }

    /// The same for any `log_arg` (zero, subnormal, infinite or NaN ones included), with the
    /// library's logarithms.
    fn log_of_any(&self, x: f64) -> f64 {
        match self.spec.log {
            LogKind::Ln => x.ln(),
            LogKind::Db => 10.0 * x.log10() - self.db_ref_offset,
        }
    }

    /// The whole-window steps, in place on `[n_mels, frames]` log-mel features: top-dB clipping
    /// (`log = "db"` with `db_top` set: values below the matrix maximum minus db_top are raised
    /// to it) and then `normalize`. Both look at the whole matrix, so they belong to a window,
    /// not a frame; `frame_log_mel` for each frame followed by this equals `compute` (for
    /// `center = false`). Statistics are taken in f64. Works on an owned array or a (mutable,
    /// possibly strided) view alike.
    pub fn normalize<S: DataMut<Elem = f32>>(&self, x: &mut ArrayBase<S, Ix2>) {
        if x.is_empty() {
            return;
        }
        let top_db = match (self.spec.log, self.spec.db_top) {
            (LogKind::Db, Some(top)) => Some(top),
            _ => None,
        };
        // Clipping raises everything below the floor to it: the floor is then the new minimum
        // if it is above the old one, and the maximum does not change. So minmax needs one pass
        // for both statistics and one to write, with the clipping folded into the write.
        let (min, max) = x.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
        let floor = match top_db {
            Some(top) => (f64::from(max) - top) as f32,
            None => f32::NEG_INFINITY,
        };
        match self.spec.normalize {
            Normalize::None => {
                if top_db.is_some() {
                    x.mapv_inplace(|v| v.max(floor));
                }
            }
            Normalize::SamplewiseMinmax => {
                let min = f64::from(min.max(floor));
                // max |x - min| over the clipped values, all >= min.
                let scale = (f64::from(max) - min) + 1.0;
                x.mapv_inplace(|v| ((f64::from(v.max(floor)) - min) / scale) as f32);
            }
            Normalize::Zscore => {
                if top_db.is_some() {
                    x.mapv_inplace(|v| v.max(floor));
                }
                let n = x.len() as f64;
                let mean = sum_rows(x, f64::from) / n;
                let var = sum_rows(x, |v| (f64::from(v) - mean).powi(2)) / n;
                let denom = var.sqrt() + 1e-8;
                x.mapv_inplace(|v| ((f64::from(v) - mean) / denom) as f32);
            }
        }
    }

    /// Frames `compute` makes from `n_samples` samples (with the spec's center padding):
    /// 1 + (padded - frame_len) / hop, or 0 when the padded signal is shorter than one frame
    /// or empty.
    pub fn num_frames(&self, n_samples: usize) -> usize {
        if n_samples == 0 {
            return 0;
        }
        let padded = n_samples + 2 * self.spec.center_pad();
        let frame_len = self.frame_len();
        if padded < frame_len {
            0
        } else {
            1 + (padded - frame_len) / self.spec.hop_length
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// Log-mel frames computed one hop at a time from a sample stream. Frames are kept (until
/// [`discard_before`](Self::discard_before)) so that overlapping windows re-use them instead of
/// recomputing; only the whole-window steps are redone per [`window`](Self::window).
///
/// With `center = true` the stream is taken to start at sample 0: the left padding (zeros, or
/// the reflection of samples 1..=n_fft/2, which waits for those samples) is applied once at
/// stream start and after [`reset`](Self::reset); no right padding is ever applied.
pub struct StreamingFrontend {
    frontend: MelFrontend,
    scratch: FrameScratch,
    /// Samples from the next frame's first sample on (padded-stream coordinates).
    pending: Vec<f32>,
    /// Incoming samples to drop before the next frame starts (when hop > frame length).
    to_skip: usize,
    /// False while a reflect-padded stream waits for the samples its left padding mirrors.
    started: bool,
    /// Kept log-mel frames, oldest first, n_mels values each, before the whole-window steps:
    /// contiguous, so a window is one transposing copy. Its capacity is reused, so once it holds
    /// as many frames as the caller keeps between [`discard_before`](Self::discard_before)
    /// calls, pushing allocates nothing.
    frames: Vec<f32>,
}

impl StreamingFrontend {
    /// A stream at its start (see [`reset`](Self::reset)).
    pub fn new(frontend: MelFrontend) -> Self {
        let scratch = frontend.scratch();
        let mut s = Self {
            frontend,
            scratch,
            pending: Vec::new(),
            to_skip: 0,
            started: false,
            frames: Vec::new(),
        };
        s.reset();
        s
    }

    /// The front end whose frames this stream computes.
    pub fn frontend(&self) -> &MelFrontend {
        &self.frontend
    }

    /// Appends samples and computes every frame they complete. Allocates nothing once its
    /// buffers have reached their steady size (the pending samples stay below one frame plus
    /// the largest push; the kept frames are bounded by [`discard_before`](Self::discard_before)).
    pub fn push(&mut self, samples: &[f32]) {
        let mut samples = samples;
        if !self.started {
            self.pending.extend_from_slice(samples);
            samples = &[];
            let pad = self.frontend.spec.center_pad();
            if self.pending.len() <= pad {
                return;
            }
            // Mirror samples pad..=1 in front, as numpy.pad(mode="reflect") would: append them
            // in that order, then rotate them to the front.
            for i in (1..=pad).rev() {
                let v = self.pending[i];
                self.pending.push(v);
            }
            self.pending.rotate_right(pad);
            self.started = true;
        }
        let skip = self.to_skip.min(samples.len());
        self.to_skip -= skip;
        self.pending.extend_from_slice(&samples[skip..]);

        let frame_len = self.frontend.frame_len();
        let hop = self.frontend.spec.hop_length;
        let n_mels = self.frontend.spec.n_mels;
        let mut start = 0;
        while start + frame_len <= self.pending.len() {
            let end = self.frames.len();
            self.frames.resize(end + n_mels, 0.0);
            self.frontend.frame_into(
                &self.pending[start..start + frame_len],
                &mut self.frames[end..],
                &mut self.scratch,
            );
            start += hop;
        }
        if start > self.pending.len() {
            self.to_skip = start - self.pending.len();
            self.pending.clear();
        } else {
            self.pending.drain(..start);
        }
    }

    /// Frames computed and still kept.
    pub fn frames_available(&self) -> usize {
        self.frames.len() / self.frontend.spec.n_mels
    }

    /// The last `n_frames` frames as `[n_mels, n_frames]`, with the whole-window steps (top-dB
    /// clipping, normalisation) applied over this window alone; None if fewer are kept.
    /// Allocates the result; [`window_into`](Self::window_into) does not.
    pub fn window(&self, n_frames: usize) -> Option<Array2<f32>> {
        let mut out = Array2::<f32>::zeros((self.frontend.spec.n_mels, n_frames));
        self.window_into(out.view_mut()).then_some(out)
    }

    /// [`window`](Self::window) into `out`, whose shape `[n_mels, n_frames]` says how many
    /// frames are wanted (the same numbers, bit for bit); allocates nothing. Returns false, and
    /// leaves `out` untouched, if fewer than n_frames frames are kept.
    ///
    /// `out` may have any strides: for a frames-first `[n_frames, n_mels]` array `a` (as some
    /// models take), pass `a.view_mut().reversed_axes()`; each frame is then written
    /// contiguously.
    ///
    /// # Panics
    /// If `out` does not have n_mels rows.
    pub fn window_into(&self, mut out: ArrayViewMut2<'_, f32>) -> bool {
        let n_mels = self.frontend.spec.n_mels;
        assert_eq!(
            out.nrows(),
            n_mels,
            "window_into: output has {} rows, the spec has n_mels = {n_mels}",
            out.nrows()
        );
        let n_frames = out.ncols();
        let available = self.frames_available();
        if n_frames > available {
            return false;
        }
        let kept = ArrayView2::from_shape(
            (n_frames, n_mels),
            &self.frames[(available - n_frames) * n_mels..],
        )
        .expect("the kept frames end with n_frames frames of n_mels values");
        out.assign(&kept.t());
        self.frontend.normalize(&mut out);
        true
    }

    /// Drops all but the newest `keep_last` frames, so memory stays bounded (the kept frames move
    /// to the front of their storage, which is kept for the frames pushed next).
    pub fn discard_before(&mut self, keep_last: usize) {
        let available = self.frames_available();
        if available > keep_last {
            let n_mels = self.frontend.spec.n_mels;
            self.frames.drain(..(available - keep_last) * n_mels);
        }
    }

    /// Forgets all samples and frames; the next push starts a new stream (left padding again).
    pub fn reset(&mut self) {
        self.frames.clear();
        self.pending.clear();
        self.to_skip = 0;
        let spec = &self.frontend.spec;
        self.started = true;
        if spec.center {
            match spec.pad_mode {
                PadMode::Constant => self.pending.resize(spec.center_pad(), 0.0),
                PadMode::Reflect => self.started = spec.center_pad() == 0,
            }
        }
    }
}

impl fmt::Debug for StreamingFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingFrontend")
            .field("frontend", &self.frontend)
            .field("frames_available", &self.frames_available())
            .field("pending_samples", &self.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FeatureSpec {
        FeatureSpec {
            sample_rate: 16000,
            n_fft: 512,
            win_length: 400,
            hop_length: 160,
            window: Window::Hann,
            center: false,
            pad_mode: PadMode::Constant,
            framing: Framing::Librosa,
            n_mels: 64,
            fmin: 125.0,
            fmax: 7500.0,
            mel_scale: MelScale::Htk,
            mel_norm: MelNorm::None,
            power: 1.0,
            log: LogKind::Ln,
            db_ref: 1.0,
            db_amin: 1e-10,
            db_top: None,
            ln_offset: 0.001,
            normalize: Normalize::None,
        }
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn mel_scales_match_librosa_reference_values() {
        // librosa docs: hz_to_mel(60) = 0.9, mel_to_hz(3) = 200, htk hz_to_mel(60) = 92.6818...
        assert!(close(hz_to_mel(60.0, false), 0.9, 1e-12));
        assert!(close(mel_to_hz(3.0, false), 200.0, 1e-12));
        assert!(close(hz_to_mel(60.0, true), 92.681858131657, 1e-12));
        // Slaney is logarithmic above 1 kHz: 1 kHz is 15 mel, 6.4 kHz is 15 + 27 mel.
        assert!(close(hz_to_mel(6400.0, false), 42.0, 1e-12));
        for f in [0.0, 20.0, 999.0, 1000.0, 4321.0, 22050.0] {
            for htk in [false, true] {
                assert!(
                    close(mel_to_hz(hz_to_mel(f, htk), htk), f, 1e-12),
                    "{f} {htk}"
                );
            }
        }
    }

    #[test]
    fn linspace_ends_exactly_on_stop() {
        let v = linspace(0.1, 0.7, 7);
        assert_eq!(v.len(), 7);
        assert_eq!(v[0], 0.1);
        assert_eq!(v[6], 0.7);
        assert!(close(v[3], 0.4, 1e-15));
        assert_eq!(linspace(2.0, 5.0, 1), vec![2.0]);
    }

    #[test]
    fn periodic_hann_starts_at_zero_and_peaks_mid_window() {
        let w = periodic_hann(8);
        assert_eq!(w[0], 0.0);
        assert!(close(w[4], 1.0, 1e-15));
        assert!(close(w[2], 0.5, 1e-15));
        assert!(close(w[1], w[7], 1e-15), "periodic: symmetric about N/2");
    }

    #[test]
    fn librosa_window_is_centred_in_the_fft_frame() {
        let w = frame_window(&spec());
        assert_eq!(w.len(), 512);
        // (512 - 400) / 2 = 56 zeros on the left, then the 400-sample Hann.
        assert!(w[..57].iter().all(|&v| v == 0.0));
        assert!(w[57] > 0.0);
        assert!(close(w[56 + 200], 1.0, 1e-15));
        assert!(w[456..].iter().all(|&v| v == 0.0));
        let tf = frame_window(&FeatureSpec {
            framing: Framing::Tf,
            ..spec()
        });
        assert_eq!(tf.len(), 400);
    }

    #[test]
    fn reflect_padding_matches_numpy_including_repeated_reflection() {
        // np.pad([1,2,3], 5, mode="reflect") and np.pad([1,2,3,4], (2, 9) ...) both sides 2.
        assert_eq!(
            pad_signal(&[1.0, 2.0, 3.0], 5, PadMode::Reflect),
            vec![2., 1., 2., 3., 2., 1., 2., 3., 2., 1., 2., 3., 2.]
        );
        assert_eq!(
            pad_signal(&[1.0, 2.0, 3.0, 4.0], 2, PadMode::Reflect),
            vec![3., 2., 1., 2., 3., 4., 3., 2.]
        );
        assert_eq!(pad_signal(&[5.0], 2, PadMode::Reflect), vec![5.0; 5]);
        assert_eq!(
            pad_signal(&[1.0, 2.0], 2, PadMode::Constant),
            vec![0., 0., 1., 2., 0., 0.]
        );
    }

    #[test]
    fn htk_filters_are_unit_peak_triangles_and_tf_drops_dc() {
        let f = mel_filters_f64(&spec());
        assert_eq!(f.dim(), (64, 257));
        for row in f.rows() {
            let max = row.iter().copied().fold(0.0, f64::max);
            assert!(max > 0.5 && max <= 1.0, "peak {max}");
        }
        let tf = mel_filters_f64(&FeatureSpec {
            mel_scale: MelScale::HtkTf,
            ..spec()
        });
        assert!(tf.column(0).iter().all(|&w| w == 0.0));
    }

    #[test]
    fn slaney_norm_gives_each_triangle_area_about_one_in_hz_units() {
        // Slaney norm scales a triangle to area 1 over Hz: sum(w) * bin_hz ~ 1.
        let s = FeatureSpec {
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            n_fft: 4096,
            win_length: 4096,
            ..spec()
        };
        let f = mel_filters_f64(&s);
        let bin_hz = 16000.0 / 4096.0;
        for row in f.rows().into_iter().skip(10) {
            let area = row.sum() * bin_hz;
            assert!((area - 1.0).abs() < 0.05, "area {area}");
        }
    }

    #[test]
    fn frame_counts_follow_librosa() {
        let fe = MelFrontend::new(spec()).unwrap();
        assert_eq!(fe.num_frames(16000), 1 + (16000 - 512) / 160);
        assert_eq!(fe.num_frames(511), 0);
        assert_eq!(fe.num_frames(512), 1);
        let tf = MelFrontend::new(FeatureSpec {
            framing: Framing::Tf,
            ..spec()
        })
        .unwrap();
        assert_eq!(tf.num_frames(15600), 96);
        let centred = MelFrontend::new(FeatureSpec {
            center: true,
            ..spec()
        })
        .unwrap();
        assert_eq!(centred.num_frames(16000), 1 + 16000 / 160);
        assert_eq!(centred.num_frames(0), 0);
    }

    #[test]
    fn sine_energy_lands_in_the_band_around_its_frequency() {
        let fe = MelFrontend::new(spec()).unwrap();
        let frame: Vec<f32> = (0..512)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16000.0).sin() as f32)
            .collect();
        let mut out = vec![0.0; 64];
        fe.frame_log_mel(&frame, &mut out);
        let loudest = (0..64).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        let edges = linspace(hz_to_mel(125.0, true), hz_to_mel(7500.0, true), 66);
        let centre_hz = mel_to_hz(edges[loudest + 1], true);
        assert!(
            (centre_hz - 1000.0).abs() < 100.0,
            "loudest band at {centre_hz} Hz"
        );
    }

    #[test]
    fn db_uses_amin_floor_and_top_db_clips_over_the_whole_matrix() {
        let s = FeatureSpec {
            power: 2.0,
            log: LogKind::Db,
            db_top: Some(80.0),
            ..spec()
        };
        let fe = MelFrontend::new(s).unwrap();
        assert_eq!(fe.log(0.0), -100.0);
        assert!(close(fe.log(100.0), 20.0, 1e-12));
        let mut x = Array2::from_shape_vec((2, 2), vec![10.0, -100.0, -50.0, -75.0]).unwrap();
        fe.normalize(&mut x);
        assert_eq!(x.as_slice().unwrap(), &[10.0, -70.0, -50.0, -70.0]);

        let amp = MelFrontend::new(FeatureSpec {
            power: 1.0,
            log: LogKind::Db,
            db_amin: 1e-5,
            ..spec()
        })
        .unwrap();
        assert!(
            close(amp.log(10.0), 20.0, 1e-12),
            "amplitude dB is 20 log10"
        );
        assert!(close(amp.log(0.0), -100.0, 1e-12));
    }

    #[test]
    fn normalizations_match_their_numpy_definitions() {
        let minmax = MelFrontend::new(FeatureSpec {
            normalize: Normalize::SamplewiseMinmax,
            ..spec()
        })
        .unwrap();
        let mut x = Array2::from_shape_vec((1, 3), vec![-4.0, 0.0, 2.0]).unwrap();
        minmax.normalize(&mut x);
        // x - min = [0, 4, 6]; / (6 + 1)
        let want = [0.0, 4.0 / 7.0, 6.0 / 7.0];
        for (a, b) in x.iter().zip(want) {
            assert!(close(f64::from(*a), b, 1e-7));
        }

        let z = MelFrontend::new(FeatureSpec {
            normalize: Normalize::Zscore,
            ..spec()
        })
        .unwrap();
        let mut x = Array2::from_shape_vec((2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        z.normalize(&mut x);
        let std = 1.25f64.sqrt();
        let want = [-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std];
        for (a, b) in x.iter().zip(want) {
            assert!(close(f64::from(*a), b, 1e-6));
        }
        // A constant window (silence) stays finite.
        let mut x = Array2::from_elem((2, 3), -100.0f32);
        z.normalize(&mut x);
        assert!(x.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn validation_names_the_key_value_and_allowed_range() {
        let err = FeatureSpec {
            fmax: 9000.0,
            ..spec()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "feature spec: fmax = 9000 is above the Nyquist frequency 8000 (sample_rate / 2); use a value <= 8000"
        );
        let err = FeatureSpec {
            mel_scale: MelScale::HtkTf,
            mel_norm: MelNorm::Slaney,
            ..spec()
        }
        .validate()
        .unwrap_err();
        assert!(matches!(
            err,
            FrontendError::InvalidSpec {
                key: "mel_norm",
                ..
            }
        ));
        assert!(spec().validate().is_ok());
    }

    #[test]
    fn front_ends_can_move_to_the_worker_thread() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MelFrontend>();
        send_sync::<StreamingFrontend>();
    }

    /// A deterministic test signal: a rising tone plus pseudo-random noise.
    fn test_signal(n: usize) -> Vec<f32> {
        let mut x = 12345u32;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (x >> 8) as f32 / (1u32 << 24) as f32 - 0.5;
                let t = i as f64 / 16000.0;
                (0.5 * (2.0 * std::f64::consts::PI * (200.0 + 900.0 * t) * t).sin()) as f32
                    + 0.1 * noise
            })
            .collect()
    }

    /// A centred (reflect-padded, dB with top-dB clipping, z-scored) and a non-centred spec.
    fn centred_and_not() -> [FeatureSpec; 3] {
        let centred = FeatureSpec {
            center: true,
            pad_mode: PadMode::Reflect,
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            power: 2.0,
            log: LogKind::Db,
            db_top: Some(80.0),
            normalize: Normalize::Zscore,
            ..spec()
        };
        let constant = FeatureSpec {
            pad_mode: PadMode::Constant,
            normalize: Normalize::SamplewiseMinmax,
            ..centred.clone()
        };
        [centred, constant, spec()]
    }

    #[test]
    fn compute_into_equals_compute_in_both_layouts_and_reuses_its_scratch() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let mut scratch = fe.scratch();
            // The padded ends do not grow with the signal.
            for n in [16000, 4000, 700, 100] {
                let signal = test_signal(n);
                let want = fe.compute(&signal);
                let mut got = Array2::from_elem(want.dim(), f32::NAN);
                fe.compute_into(&signal, &mut scratch, got.view_mut());
                assert_eq!(got, want, "center {} n {n}", s.center);
                let mut frames_first = Array2::from_elem((want.ncols(), s.n_mels), f32::NAN);
                let capacity = scratch.padded.capacity();
                fe.compute_into(
                    &signal,
                    &mut scratch,
                    frames_first.view_mut().reversed_axes(),
                );
                assert_eq!(frames_first.t(), want, "frames first, n {n}");
                assert_eq!(scratch.padded.capacity(), capacity, "padding reused");
            }
        }
        // A scratch made for another spec is resized rather than misused.
        let small = MelFrontend::new(spec()).unwrap();
        let big = MelFrontend::new(FeatureSpec {
            n_fft: 1024,
            win_length: 1024,
            n_mels: 40,
            ..spec()
        })
        .unwrap();
        let signal = test_signal(8000);
        let mut scratch = small.scratch();
        let want = big.compute(&signal);
        let mut got = Array2::zeros(want.dim());
        big.compute_into(&signal, &mut scratch, got.view_mut());
        assert_eq!(got, want);
    }

    #[test]
    fn padding_only_the_ends_gives_the_frames_of_the_whole_padded_signal() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let pad = s.center_pad();
            // Shorter than the padding (repeated reflection), about one frame, and long.
            for n in [
                1, 2, 5, 100, 255, 256, 257, 400, 511, 512, 513, 700, 1000, 4000,
            ] {
                let signal = test_signal(n);
                let padded = pad_signal(&signal, pad, s.pad_mode);
                let got = fe.log_mel_frames(&signal);
                let mut column = vec![0.0; s.n_mels];
                for t in 0..got.ncols() {
                    let start = t * s.hop_length;
                    fe.frame_log_mel(&padded[start..start + fe.frame_len()], &mut column);
                    assert_eq!(
                        got.column(t).to_vec(),
                        column,
                        "center {} n {n} t {t}",
                        s.center
                    );
                }
            }
        }
    }

    #[test]
    fn ln_normal_matches_the_library_ln_across_the_whole_range() {
        let mut x = f64::MIN_POSITIVE;
        while x < f64::MAX / 1.37 {
            for v in [x, x * 1.0001, x * std::f64::consts::SQRT_2, x * 1.4143] {
                let (got, want) = (ln_normal(v), v.ln());
                assert!(
                    (got - want).abs() <= 4e-15 * want.abs().max(1.0),
                    "ln {v}: {got} vs {want}"
                );
            }
            x *= 1.37;
        }
        assert_eq!(ln_normal(1.0), 0.0);
        assert!(!is_positive_normal(0.0) && !is_positive_normal(f64::NAN));
        assert!(!is_positive_normal(f64::INFINITY) && !is_positive_normal(1e-310));
        // Values ln_normal does not cover go through the library: silence in the ln path with a
        // subnormal offset, and NaN, stay what they were.
        let fe = MelFrontend::new(FeatureSpec {
            ln_offset: 1e-310,
            ..spec()
        })
        .unwrap();
        let mut out = [0.0f32; 3];
        fe.log_bands(&[1e-310, f64::NAN, 2.0], &mut out);
        assert_eq!(out[0], (1e-310f64).ln() as f32);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 2f64.ln() as f32);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_frames_equal_the_portable_frames_bit_for_bit() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s).unwrap();
            if !fe.avx2 {
                eprintln!("SKIPPED: no AVX2 on this CPU");
                return;
            }
            let portable = MelFrontend {
                avx2: false,
                ..fe.clone()
            };
            let signal = test_signal(8000);
            assert_eq!(fe.compute(&signal), portable.compute(&signal));
        }
    }

    #[test]
    #[should_panic(expected = "compute_into: output is")]
    fn compute_into_rejects_an_output_of_the_wrong_shape() {
        let fe = MelFrontend::new(spec()).unwrap();
        let mut out = Array2::zeros((64, 3));
        fe.compute_into(&test_signal(16000), &mut fe.scratch(), out.view_mut());
    }

    #[test]
    fn window_into_equals_window_in_both_layouts() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let mut st = StreamingFrontend::new(fe);
            for chunk in test_signal(16000).chunks(160) {
                st.push(chunk);
            }
            let available = st.frames_available();
            for n in [0, 1, 17, available] {
                let want = st.window(n).unwrap();
                let mut got = Array2::from_elem((s.n_mels, n), f32::NAN);
                assert!(st.window_into(got.view_mut()));
                assert_eq!(got, want, "center {} n {n}", s.center);
                let mut frames_first = Array2::from_elem((n, s.n_mels), f32::NAN);
                assert!(st.window_into(frames_first.view_mut().reversed_axes()));
                assert_eq!(frames_first.t(), want);
            }
            let mut too_many = Array2::from_elem((s.n_mels, available + 1), 7.0f32);
            assert!(!st.window_into(too_many.view_mut()));
            assert!(too_many.iter().all(|&v| v == 7.0), "left untouched");
            assert!(st.window(available + 1).is_none());
        }
    }

    #[test]
    fn streaming_buffers_stop_growing_once_steady() {
        for s in centred_and_not() {
            let hop = s.hop_length;
            let mut st = StreamingFrontend::new(MelFrontend::new(s).unwrap());
            let signal = test_signal(64000);
            let mut out = Array2::zeros((64, 96));
            let mut steady = None;
            // 48 frames per push, 96 kept, as YAMNet's 0.96 s window at a 0.48 s hop.
            for (i, chunk) in signal.chunks(48 * hop).enumerate() {
                st.push(chunk);
                st.window_into(out.view_mut());
                st.discard_before(96);
                let caps = (st.pending.capacity(), st.frames.capacity());
                if i == 3 {
                    steady = Some(caps);
                } else if i > 3 && chunk.len() == 48 * hop {
                    assert_eq!(Some(caps), steady, "push {i}");
                }
            }
            assert!(steady.is_some());
        }
    }

    #[test]
    fn streaming_with_large_hop_skips_samples_between_frames() {
        let s = FeatureSpec {
            n_fft: 64,
            win_length: 64,
            hop_length: 100,
            n_mels: 8,
            fmin: 0.0,
            fmax: 8000.0,
            ..spec()
        };
        let fe = MelFrontend::new(s).unwrap();
        let signal: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let batch = fe.log_mel_frames(&signal);
        let mut st = StreamingFrontend::new(fe);
        for chunk in signal.chunks(37) {
            st.push(chunk);
        }
        assert_eq!(st.frames_available(), batch.ncols());
        let streamed = st.window(batch.ncols()).unwrap();
        assert_eq!(streamed, batch);
    }
}
