//! The model stage: an ONNX model plus its manifest, run through ONNX Runtime.
//!
//! `Model::load` reads a manifest, loads the labels and the ONNX session, and checks that the
//! three agree (input rank and fixed dims, label count) before anything runs. `Model::predict`
//! turns one window of mono samples at the model's rate into one score per label in 0..1.
//! This module does no audio I/O; the thread that calls `predict` owns the model (ort sessions
//! need `&mut` to run), so there is never a lock around it.
//!
//! The files: `find` (which manifest a name means, reading labels), `manifest`, `runtime`
//! (finding ONNX Runtime), `load` (loading and checking the graph against the manifest), `run`
//! (the preallocated tensors and every way of predicting), `info` (`hark model info`).

mod find;
mod info;
mod load;
pub mod manifest;
mod run;
pub mod runtime;

use std::path::PathBuf;

use ort::session::Session;

pub use find::{model_dirs, read_labels, resolve, DEFAULT_MODEL};
pub use info::ModelInfo;
pub use manifest::{Axis, FrontendKind, HeadSection, Manifest, OutputKind};
pub use run::postprocess;
pub use runtime::RuntimeError;

use crate::frontend::MelFrontend;
use crate::validate::Problems;
use load::InputPlan;
use run::Io;

/// Errors of the model stage. Each names the file involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("model {0:?} not found; give a manifest (.toml), a folder holding one, or the name of a model under {1}")]
    NotFound(String, String),
    #[error("manifest {}: {msg}", path.display())]
    Manifest { path: PathBuf, msg: String },
    /// A manifest value is out of range or inconsistent with another.
    #[error("manifest {}: {problems}", path.display())]
    InvalidManifest { path: PathBuf, problems: Problems },
    /// `--window` / `--hop` (or `model.window` / `model.hop`) made a valid manifest invalid.
    #[error("manifest {}: after overrides (window {window:?}, hop {hop:?}): {problems}", path.display())]
    Overrides {
        path: PathBuf,
        window: Option<f64>,
        hop: Option<f64>,
        problems: Problems,
    },
    #[error("labels file {}: {msg}", path.display())]
    Labels { path: PathBuf, msg: String },
    #[error("model {}: {msg}", path.display())]
    Onnx { path: PathBuf, msg: String },
    #[error("model {} does not match its manifest {}: {msg}", model.display(), manifest.display())]
    Mismatch {
        model: PathBuf,
        manifest: PathBuf,
        msg: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// How to load a model: where ONNX Runtime is and how many threads inference may use.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Explicit path of libonnxruntime.so (config `model.onnxruntime`); None = search.
    pub onnxruntime: Option<PathBuf>,
    /// Intra-op threads for ONNX Runtime. One keeps a Raspberry Pi's other cores for capture.
    pub threads: usize,
    /// Window length in seconds instead of the manifest's (waveform models only).
    pub window: Option<f64>,
    /// Hop in seconds instead of the manifest's.
    pub hop: Option<f64>,
    /// After starting ONNX Runtime and after building the session, page out the clean file
    /// pages that did so (`crate::memory`): code that runs once, about 10 MB of ONNX Runtime's.
    /// For the daemon, which then holds what inference uses; a one-shot command would only read
    /// them back (`hark classify` of ten files took 0.2-0.3 s longer with it, BENCHMARKS.md 3b).
    pub page_out_after_load: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            onnxruntime: None,
            threads: 1,
            window: None,
            hop: None,
            page_out_after_load: false,
        }
    }
}

/// A loaded model, ready to run. Owned by exactly one thread.
pub struct Model {
    manifest: Manifest,
    manifest_path: PathBuf,
    labels: Vec<String>,
    session: Session,
    input_name: String,
    output_name: String,
    plan: InputPlan,
    /// One window's input and output, allocated once: steady-state inference allocates nothing.
    io: Io,
    /// The model takes several windows per call (a dynamic batch dimension first in both its
    /// input and its output), which offline classification uses.
    batchable: bool,
    /// The base model of a two-stage model (manifest `[head]`): it hears the audio, this
    /// model's session only maps its scores to the head's labels.
    base: Option<Box<Model>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("manifest", &self.manifest_path)
            .field("labels", &self.labels.len())
            .finish()
    }
}

impl Model {
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn sample_rate(&self) -> u32 {
        self.manifest.sample_rate
    }

    pub fn window_samples(&self) -> usize {
        self.manifest.window_samples()
    }

    pub fn hop_samples(&self) -> usize {
        self.manifest.hop_samples()
    }

    /// The log-mel front end, for log-mel models.
    pub fn mel_frontend(&self) -> Option<&MelFrontend> {
        match &self.plan {
            InputPlan::LogMel { frontend, .. } => Some(frontend.as_ref()),
            InputPlan::Waveform { .. } => None,
            InputPlan::Embedding { .. } => self.base.as_ref()?.mel_frontend(),
        }
    }

    /// Frames per window, for log-mel models.
    pub fn frames(&self) -> Option<usize> {
        match &self.plan {
            InputPlan::LogMel { frames, .. } => Some(*frames),
            InputPlan::Waveform { .. } => None,
            InputPlan::Embedding { .. } => self.base.as_ref()?.frames(),
        }
    }

    /// Whether `predict_batch` really batches (the model has a dynamic batch dimension).
    pub fn batchable(&self) -> bool {
        self.batchable
    }
}
