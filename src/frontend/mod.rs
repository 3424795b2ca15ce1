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
//!
//! Files: `spec` ([`FeatureSpec`] and its checks), `filters` (mel filter bank, window), `mel`
//! (the batch [`MelFrontend`]), `frames` (the per-frame math, portable and AVX2), `stream`
//! ([`StreamingFrontend`]).

mod filters;
mod frames;
mod mel;
mod spec;
mod stream;
#[cfg(test)]
mod test_util;

use std::path::PathBuf;

use crate::validate::Invalid;

pub use filters::mel_filters;
pub use mel::{FrameScratch, MelFrontend};
pub use spec::{FeatureSpec, Framing, LogKind, MelNorm, MelScale, Normalize, PadMode, Window};
pub use stream::StreamingFrontend;

/// What can go wrong describing or loading a front end.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    /// A key of the feature spec has a value the front end cannot honour.
    #[error(
        "{}feature spec: {problem}",
        .file.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default()
    )]
    InvalidSpec {
        /// The spec file, when the spec came from one.
        file: Option<PathBuf>,
        /// The key, the value given, what is wrong with it and what is allowed.
        problem: Invalid,
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
