//! The feature spec: the keys a model's front end is described by, read from TOML or JSON,
//! and the checks that every value is one the front end can honour.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FrontendError, Result};
use crate::validate::Invalid;

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
    /// value given and what is allowed; it is the first of [`check`](Self::check)'s problems.
    pub fn validate(&self) -> Result<()> {
        self.check().map_err(|problem| FrontendError::InvalidSpec {
            file: None,
            problem,
        })
    }

    /// The checks of [`validate`](Self::validate), without a file: the first bad key, as an
    /// [`Invalid`] whose key is the spec key as written (a caller that embeds the spec in a
    /// larger file can prefix it).
    pub fn check(&self) -> std::result::Result<(), Invalid> {
        SPEC_CHECKS.iter().try_for_each(|check| check(self))
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
        spec.check().map_err(|problem| FrontendError::InvalidSpec {
            file: Some(path.to_path_buf()),
            problem,
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
    pub(super) fn center_pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }
}

/// One check of a spec: the first bad value it finds.
type SpecCheck = fn(&FeatureSpec) -> std::result::Result<(), Invalid>;

/// The checks [`FeatureSpec::check`] runs, in order; the first that fails is reported. Later
/// checks may rely on earlier ones (the frequency checks on a positive sample rate).
const SPEC_CHECKS: &[SpecCheck] = &[
    check_sizes,
    check_win_length,
    check_fmin,
    check_fmax,
    check_fmin_below_fmax,
    check_power,
    check_mel_norm,
    check_db_ref,
    check_db_amin,
    check_db_top,
    check_ln_offset,
];

/// Largest `n_fft` (and so `win_length`): 65,536 samples is 4 s at 16 kHz, far past any
/// front end in use, and bounds the FFT plan and frame buffers a spec makes hark allocate.
pub const MAX_N_FFT: usize = 1 << 16;
/// Largest `n_mels`: 1,024 bands (models use 32 to 128); bounds the filter bank.
pub const MAX_N_MELS: usize = 1024;
/// Largest `hop_length`: one frame per 65,536 samples at the sparsest.
pub const MAX_HOP_LENGTH: usize = 1 << 16;

/// The counts: each a whole number in its range, named with the range when it is not.
fn check_sizes(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    use crate::audio::{MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
    [
        (
            "sample_rate",
            s.sample_rate as usize,
            MIN_SAMPLE_RATE as usize,
            MAX_SAMPLE_RATE as usize,
        ),
        ("n_fft", s.n_fft, 1, MAX_N_FFT),
        ("win_length", s.win_length, 1, MAX_N_FFT),
        ("hop_length", s.hop_length, 1, MAX_HOP_LENGTH),
        ("n_mels", s.n_mels, 1, MAX_N_MELS),
    ]
    .into_iter()
    .try_for_each(|(key, value, min, max)| {
        if (min..=max).contains(&value) {
            return Ok(());
        }
        let problem = if value == 0 {
            "is zero"
        } else {
            "is out of range"
        };
        Err(Invalid::new(key, value, problem)
            .allowed(format!("a whole number from {min} to {max}")))
    })
}

fn check_win_length(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    if s.win_length > s.n_fft {
        return Err(Invalid::new(
            "win_length",
            s.win_length,
            format!("is longer than n_fft = {}", s.n_fft),
        )
        .allowed(format!("between 1 and {} (n_fft)", s.n_fft)));
    }
    Ok(())
}

fn nyquist(s: &FeatureSpec) -> f64 {
    f64::from(s.sample_rate) / 2.0
}

fn check_fmin(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    if !s.fmin.is_finite() || s.fmin < 0.0 {
        return Err(Invalid::new("fmin", s.fmin, "is not a frequency")
            .allowed(format!("at least 0 and below fmax = {}", s.fmax)));
    }
    Ok(())
}

fn check_fmax(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    let nyquist = nyquist(s);
    if !s.fmax.is_finite() || s.fmax <= 0.0 {
        return Err(
            Invalid::new("fmax", s.fmax, "is not a positive frequency").allowed(format!(
                "above fmin and at most {nyquist} (sample_rate / 2)"
            )),
        );
    }
    if s.fmax > nyquist {
        return Err(Invalid::new(
            "fmax",
            s.fmax,
            format!("is above the Nyquist frequency {nyquist} (sample_rate / 2)"),
        )
        .allowed(format!("at most {nyquist}")));
    }
    Ok(())
}

fn check_fmin_below_fmax(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    if s.fmin >= s.fmax {
        return Err(
            Invalid::new("fmin", s.fmin, format!("is not below fmax = {}", s.fmax))
                .allowed(format!("at least 0 and below {}", s.fmax)),
        );
    }
    Ok(())
}

fn check_power(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    if s.power != 1.0 && s.power != 2.0 {
        return Err(Invalid::new("power", s.power, "is not supported")
            .allowed("1 (magnitude) or 2 (power)"));
    }
    Ok(())
}

fn check_mel_norm(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    if s.mel_scale == MelScale::HtkTf && s.mel_norm != MelNorm::None {
        return Err(Invalid::new(
            "mel_norm",
            "\"slaney\"",
            "cannot be combined with mel_scale = \"htk_tf\" (TensorFlow's mel matrix is never area-normalised)",
        )
        .allowed("\"none\""));
    }
    Ok(())
}

/// `value` must be finite and above 0.
fn positive(
    key: &str,
    value: f64,
    problem: &str,
    allowed: &str,
) -> std::result::Result<(), Invalid> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Invalid::new(key, value, problem).allowed(allowed))
    }
}

fn check_db_ref(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    positive(
        "db_ref",
        s.db_ref,
        "is not a positive number",
        "above 0 (librosa's default is 1.0)",
    )
}

fn check_db_amin(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    positive(
        "db_amin",
        s.db_amin,
        "is not a positive number",
        "a small value above 0, such as 1e-10",
    )
}

fn check_db_top(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    match s.db_top {
        Some(top) if !(top.is_finite() && top >= 0.0) => {
            Err(Invalid::new("db_top", top, "is not a non-negative number")
                .allowed("at least 0 (such as 80), or leave it out for no clipping"))
        }
        _ => Ok(()),
    }
}

fn check_ln_offset(s: &FeatureSpec) -> std::result::Result<(), Invalid> {
    positive(
        "ln_offset",
        s.ln_offset,
        "is not a positive number (ln of silence would be -inf)",
        "a small value above 0, such as 0.001",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::test_util::spec;

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
            "feature spec: fmax = 9000: is above the Nyquist frequency 8000 (sample_rate / 2) (allowed: at most 8000)"
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
            FrontendError::InvalidSpec { file: None, problem } if problem.key == "mel_norm"
        ));
        assert!(spec().validate().is_ok());
    }
}
