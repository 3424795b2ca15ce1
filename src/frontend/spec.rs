//! The feature spec: the keys a model's front end is described by, read from TOML or JSON,
//! and the checks that every value is one the front end can honour.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{FrontendError, Result};

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
    pub(super) fn center_pad(&self) -> usize {
        if self.center {
            self.n_fft / 2
        } else {
            0
        }
    }
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
}
