//! What `hark model info` and the socket's `hello` say about a loaded model.

use std::path::{Path, PathBuf};

use super::load::{float_shape, InputPlan};
use super::{Model, OutputKind};

/// A description of a loaded model for `hark model info` and the socket's `hello`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub manifest: PathBuf,
    pub model: PathBuf,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub frontend: String,
    pub sample_rate: u32,
    pub window: f64,
    pub hop: f64,
    pub output: OutputKind,
    pub multi_label: bool,
    pub labels: usize,
    pub first_labels: Vec<String>,
    /// The base model of a two-stage model, whose scores feed this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Box<ModelInfo>>,
}

impl Model {
    /// Describe the model for `hark model info`.
    pub fn info(&self) -> ModelInfo {
        let describe = |o: &ort::value::Outlet| {
            format!(
                "{} {:?}",
                o.name(),
                float_shape(o.dtype()).unwrap_or_default()
            )
        };
        let base = self.base.as_ref().map(|b| Box::new(b.info()));
        let frontend = match &self.plan {
            InputPlan::Waveform { .. } => "waveform".to_string(),
            InputPlan::Embedding { dim, .. } => match &base {
                Some(b) => format!(
                    "{}, then base model {} ({}) whose {dim} outputs feed this head",
                    b.frontend,
                    b.name,
                    b.manifest.display()
                ),
                None => format!("{dim} outputs of a base model"),
            },
            InputPlan::LogMel {
                frontend,
                layout,
                frames,
            } => {
                let s = frontend.spec();
                format!(
                    "log_mel: {} mels x {frames} frames, layout {layout:?}, n_fft {}, hop {} samples",
                    s.n_mels, s.n_fft, s.hop_length
                )
            }
        };
        ModelInfo {
            name: self.manifest.name.clone(),
            manifest: self.manifest_path.clone(),
            model: self
                .manifest_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&self.manifest.model),
            inputs: self.session.inputs().iter().map(describe).collect(),
            outputs: self.session.outputs().iter().map(describe).collect(),
            frontend,
            sample_rate: self.manifest.sample_rate,
            window: self.manifest.window_seconds(),
            hop: self.manifest.hop,
            output: self.manifest.output,
            multi_label: self.manifest.multi_label,
            labels: self.labels.len(),
            first_labels: self.labels.iter().take(10).cloned().collect(),
            base,
        }
    }
}
