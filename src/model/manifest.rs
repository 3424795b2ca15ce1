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
use crate::frontend::{FeatureSpec, Framing, FrontendError};
use crate::validate::{Checked, Invalid, Problems};

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
    pub head: Option<HeadSection>,
}

/// The `[head]` section of a two-stage model: the ONNX file named by `model` takes the
/// base model's output (its scores, or an internal layer the base exposes, one value per base
/// "label") as its input `[1, base labels]`.
///
/// The top-level `sample_rate`, `window`, `hop` and `frontend` must describe the base model
/// (a head cannot change what the base hears); `labels` are the head's classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSection {
    /// The base model's manifest, relative to this manifest's folder. `hark train` copies the
    /// base next to the head so that the model folder can be moved as a whole.
    pub base: PathBuf,
}

fn default_true() -> bool {
    true
}

/// Longest manifest read (1 MiB; real ones are under 2 KiB): `model.name` may name any file.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The text of `path`, refused past [`MAX_MANIFEST_BYTES`] rather than read without end.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(std::io::Error::other(format!(
            "it is longer than {MAX_MANIFEST_BYTES} bytes, far more than a manifest"
        )));
    }
    Ok(text)
}

impl Manifest {
    /// Parse a manifest's TOML (without validating it). The error says where the text is
    /// wrong and why, but never quotes it: `model.name` may point at a file that is not a
    /// manifest at all (`/etc/shadow`), whose lines must not reach a log.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(text.len()));
            let before = text.get(..at).unwrap_or_default();
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!(
                "not a manifest: TOML error at line {line}, column {column}: {}",
                e.message()
            )
        })
    }

    /// Parse and validate a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ModelError> {
        let text = read_bounded(path).map_err(|e| ModelError::Manifest {
            path: path.to_path_buf(),
            msg: format!("cannot read it: {e}"),
        })?;
        let m: Manifest = Manifest::parse(&text).map_err(|msg| ModelError::Manifest {
            path: path.to_path_buf(),
            msg,
        })?;
        m.validate()
            .map_err(|problems| ModelError::InvalidManifest {
                path: path.to_path_buf(),
                problems,
            })?;
        Ok(m)
    }

    /// Check the values that do not need the ONNX file. Every independent problem is
    /// reported; a check that needs an earlier value to be sound is skipped when it is not.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        let rate_ok = (8_000..=192_000).contains(&self.sample_rate);
        if !rate_ok {
            problems.push(
                Invalid::new("sample_rate", self.sample_rate, "is out of range")
                    .allowed("8000 to 192000 Hz"),
            );
        }
        let hop_ok = self.hop.is_finite() && self.hop > 0.0;
        if !hop_ok {
            problems.push(Invalid::new(
                "hop",
                self.hop,
                "must be a positive number of seconds",
            ));
        }
        problems.absorb(self.validate_frontend());
        if rate_ok && hop_ok && self.hop_samples() == 0 {
            problems.push(
                Invalid::new("hop", format!("{} s", self.hop), "is less than one sample")
                    .allowed(format!("at least {} s", 1.0 / f64::from(self.sample_rate))),
            );
        }
        problems.into_result()
    }

    /// The window (waveform models) or the frames, spec and window (log-mel models).
    fn validate_frontend(&self) -> Checked {
        let seconds = "a positive number of seconds";
        match &self.frontend {
            FrontendKind::Waveform => match self.window {
                Some(w) if w.is_finite() && w > 0.0 => Ok(()),
                Some(w) => Err(Invalid::new("window", w, format!("must be {seconds}")).into()),
                None => Err(
                    Invalid::new("window", "(missing)", "waveform models need it")
                        .allowed(seconds)
                        .into(),
                ),
            },
            FrontendKind::LogMel { frames, spec, .. } => {
                if *frames == 0 {
                    return Err(Invalid::new("frontend.frames", 0, "must be at least 1").into());
                }
                spec.validate().map_err(spec_problem)?;
                if spec.sample_rate != self.sample_rate {
                    return Err(Invalid::new(
                        "frontend.spec.sample_rate",
                        spec.sample_rate,
                        format!("differs from sample_rate = {}", self.sample_rate),
                    )
                    .allowed("the same rate as sample_rate")
                    .into());
                }
                if let Some(w) = self.window {
                    let derived = self.window_samples() as f64 / self.sample_rate as f64;
                    if (w - derived).abs() * self.sample_rate as f64 > 1.0 {
                        return Err(Invalid::new(
                            "window",
                            format!("{w} s"),
                            format!("does not match frontend.frames = {frames}, which needs {derived} s"),
                        )
                        .allowed("leave window out or make them agree")
                        .into());
                    }
                }
                Ok(())
            }
        }
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

/// A feature spec problem as a manifest problem, keyed under `frontend.spec`.
fn spec_problem(e: FrontendError) -> Problems {
    match e {
        FrontendError::InvalidSpec { problem, .. } => Invalid {
            key: format!("frontend.spec.{}", problem.key),
            ..problem
        }
        .into(),
        other => Invalid::new("frontend.spec", "(see problem)", other.to_string()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waveform(extra: &str) -> Manifest {
        toml::from_str(&format!(
            "name = \"t\"\nmodel = \"m.onnx\"\nlabels = \"l.txt\"\noutput = \"probabilities\"\n\
             {extra}\n[frontend]\nkind = \"waveform\"\n"
        ))
        .unwrap()
    }

    fn keys(p: &Problems) -> Vec<&str> {
        p.0.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn a_sound_waveform_manifest_passes() {
        let m = waveform("sample_rate = 16000\nwindow = 1.0\nhop = 0.5");
        assert_eq!(m.validate(), Ok(()));
        assert_eq!((m.window_samples(), m.hop_samples()), (16_000, 8_000));
    }

    #[test]
    fn every_independent_problem_is_named_by_its_key() {
        let m = waveform("sample_rate = 4000\nwindow = -1.0\nhop = 0.0");
        let p = m.validate().unwrap_err();
        assert_eq!(keys(&p), ["sample_rate", "hop", "window"]);
        assert!(
            p.to_string()
                .contains("window = -1: must be a positive number of seconds"),
            "{p}"
        );
        let missing = waveform("sample_rate = 16000\nhop = 0.5").validate();
        assert_eq!(keys(&missing.unwrap_err()), ["window"]);
    }

    #[test]
    fn a_hop_shorter_than_one_sample_is_refused() {
        let m = waveform("sample_rate = 16000\nwindow = 1.0\nhop = 0.00001");
        let p = m.validate().unwrap_err();
        assert_eq!(keys(&p), ["hop"]);
        assert!(p.to_string().contains("less than one sample"), "{p}");
    }
}
