//! The model manifest: a TOML file beside an ONNX file that says how to feed it and read it.
//!
//! The manifest is what makes a model usable by hark without code: sample rate, window and
//! hop, the front end (raw waveform, or log-mel with a full feature spec), the input layout
//! where the ONNX shape alone does not reveal it, and what the output means. This module
//! parses and validates the manifest on its own; checking it against the ONNX graph is
//! `Model::load`'s job.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;
use crate::frontend::{FeatureSpec, Framing};

/// What the model's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// Scores already in 0..1 (a sigmoid or softmax is inside the graph).
    Probabilities,
    /// Logits: hark applies a sigmoid per label (multi-label models).
    LogitsSigmoid,
    /// Logits: hark applies a softmax over labels (single-label models).
    LogitsSoftmax,
    /// Not scores: the values of an internal layer, passed on unchanged. Only useful as the
    /// base of a head (`hark train` writes such a base); its "labels" merely number the values.
    Embedding,
}

/// One axis of a log-mel model's input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// A batch axis of size 1.
    Batch,
    /// A channel axis of size 1 (NCHW / NHWC image layouts).
    Channel,
    Mels,
    Frames,
}

/// How audio becomes the model's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum FrontendKind {
    /// Raw mono samples in [-1, 1], shape `[batch, samples]` or `[samples]`.
    Waveform,
    /// Log-mel features from hark's front end.
    LogMel {
        /// Frames per model window.
        frames: usize,
        /// Input axes in order, for layouts the ONNX shape does not reveal (e.g.
        /// `["frames", "mels"]`, unbatched). Absent: read from the ONNX input shape.
        #[serde(default)]
        layout: Option<Vec<Axis>>,
        spec: FeatureSpec,
    },
}

/// The manifest as written in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Short name shown in `hello`, logs and `hark model info`.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// The ONNX file, relative to the manifest's folder.
    pub model: PathBuf,
    /// Labels: a CSV with a `display_name` column (AudioSet's class_labels_indices.csv), or
    /// a text file with one label per line. Relative to the manifest's folder.
    pub labels: PathBuf,
    /// Sample rate the model expects, in Hz.
    pub sample_rate: u32,
    /// Window length in seconds. For log-mel models it follows from `frames` and may be left out.
    #[serde(default)]
    pub window: Option<f64>,
    /// Default hop between windows, in seconds.
    pub hop: f64,
    pub output: OutputKind,
    /// Multi-label (independent scores per label) or single-label (one class per window).
    #[serde(default = "default_true")]
    pub multi_label: bool,
    /// Name of the input to feed; default: the model's only input.
    #[serde(default)]
    pub input_name: Option<String>,
    /// Name of the output to read; default: the model's first output.
    #[serde(default)]
    pub output_name: Option<String>,
    pub frontend: FrontendKind,
    /// Why the window and hop were chosen, and other notes; not used by hark.
    #[serde(default)]
    pub notes: Option<String>,
    /// Present when `model` is a head trained on another model's output (`hark train`): hark
    /// then runs the base model on each window and feeds its output to `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<Head>,
}

/// The `[head]` section of a two-stage model: the ONNX file named by `model` takes the
/// base model's output (its scores, or an internal layer the base exposes, one value per base
/// "label") as its input `[1, base labels]`.
///
/// The top-level `sample_rate`, `window`, `hop` and `frontend` must describe the base model
/// (a head cannot change what the base hears); `labels` are the head's classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// The base model's manifest, relative to this manifest's folder. `hark train` copies the
    /// base next to the head so that the model folder can be moved as a whole.
    pub base: PathBuf,
}

fn default_true() -> bool {
    true
}

impl Manifest {
    /// Parse and validate a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::Manifest {
            path: path.to_path_buf(),
            msg: format!("cannot read it: {e}"),
        })?;
        let m: Manifest = toml::from_str(&text).map_err(|e| ModelError::Manifest {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        m.validate().map_err(|msg| ModelError::Manifest {
            path: path.to_path_buf(),
            msg,
        })?;
        Ok(m)
    }

    /// Check the values that do not need the ONNX file.
    pub fn validate(&self) -> Result<(), String> {
        if !(8_000..=192_000).contains(&self.sample_rate) {
            return Err(format!(
                "sample_rate = {} is out of range; use 8000..=192000 Hz",
                self.sample_rate
            ));
        }
        if !(self.hop.is_finite() && self.hop > 0.0) {
            return Err(format!(
                "hop = {} must be a positive number of seconds",
                self.hop
            ));
        }
        match &self.frontend {
            FrontendKind::Waveform => match self.window {
                Some(w) if w.is_finite() && w > 0.0 => {}
                Some(w) => {
                    return Err(format!("window = {w} must be a positive number of seconds"))
                }
                None => return Err("window is missing; waveform models need it (seconds)".into()),
            },
            FrontendKind::LogMel { frames, spec, .. } => {
                if *frames == 0 {
                    return Err("frontend.frames = 0; must be at least 1".into());
                }
                spec.validate().map_err(|e| format!("frontend.spec: {e}"))?;
                if spec.sample_rate != self.sample_rate {
                    return Err(format!(
                        "frontend.spec.sample_rate = {} differs from sample_rate = {}; they must be equal",
                        spec.sample_rate, self.sample_rate
                    ));
                }
                if let Some(w) = self.window {
                    let derived = self.window_samples() as f64 / self.sample_rate as f64;
                    if (w - derived).abs() * self.sample_rate as f64 > 1.0 {
                        return Err(format!(
                            "window = {w} s does not match frontend.frames = {frames}, which needs {derived} s; leave window out or make them agree"
                        ));
                    }
                }
            }
        }
        let hop = self.hop_samples();
        if hop == 0 {
            return Err(format!("hop = {} s is less than one sample", self.hop));
        }
        Ok(())
    }

    /// Samples per model window at the model's rate.
    pub fn window_samples(&self) -> usize {
        match &self.frontend {
            FrontendKind::Waveform => {
                (self.window.unwrap_or(0.0) * self.sample_rate as f64).round() as usize
            }
            FrontendKind::LogMel { frames, spec, .. } => samples_for_frames(spec, *frames),
        }
    }

    /// Samples per hop at the model's rate.
    pub fn hop_samples(&self) -> usize {
        (self.hop * self.sample_rate as f64).round() as usize
    }

    /// Window length in seconds.
    pub fn window_seconds(&self) -> f64 {
        self.window_samples() as f64 / self.sample_rate as f64
    }
}

/// Samples needed for `frames` frames of `spec`.
pub fn samples_for_frames(spec: &FeatureSpec, frames: usize) -> usize {
    let frame_len = match spec.framing {
        Framing::Librosa => spec.n_fft,
        Framing::Tf => spec.win_length,
    };
    if spec.center {
        // Centered frames are padded by n_fft/2 each side: frames = 1 + n / hop.
        (frames - 1) * spec.hop_length
    } else {
        (frames - 1) * spec.hop_length + frame_len
    }
}
