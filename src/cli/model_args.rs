//! The flags that choose a model and how to load it, shared by `hark classify` and
//! `hark model info`.

use std::path::PathBuf;

use clap::Args;

use crate::model::{self, LoadOptions, Model};

/// Which model to load and how.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model: a manifest (.toml), a folder holding one, or a name under models/.
    #[arg(long, short = 'm', default_value = model::DEFAULT_MODEL)]
    pub model: String,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, third_party/onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Threads ONNX Runtime may use for one inference.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Window length in seconds instead of the manifest's (waveform models).
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<f64>,
    /// Hop between windows in seconds instead of the manifest's.
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
}

impl ModelArgs {
    /// Resolve and load the model.
    pub fn load(&self) -> anyhow::Result<Model> {
        let path = model::resolve(&self.model)?;
        let opts = LoadOptions {
            onnxruntime: self.onnxruntime.clone(),
            threads: self.threads,
            window: self.window,
            hop: self.hop,
            ..LoadOptions::default()
        };
        Ok(Model::load(&path, &opts)?)
    }
}
