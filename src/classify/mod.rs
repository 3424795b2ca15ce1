//! Offline classification of recordings at any length: `hark classify`.
//!
//! Each file goes through the same path as `hark run --input FILE --fast`: a lossless
//! [`crate::capture::FileSource`] decodes a block at a time into a ring, and
//! [`crate::pipeline::consume`] resamples, cuts windows at the daemon's offsets, runs the model,
//! smooths and decides. So memory does not grow with a recording's length, the per-window
//! scores are the ones `hark run` computes, and events are the ones it would publish (bit for
//! bit with a batch of 1; batched, the model scores several windows per call, grouped from the
//! file's start, and the scores agree to about 1e-6).
//!
//! - `file`: one file through the pipeline, reporting each window's raw scores and each event.
//! - `summary`: which labels were heard, gathered window by window.
//! - `jobs`: many files over several threads, one model (ONNX session) per thread, results in
//!   input order; walking a folder for audio files.
//!
//! Must not: format output (the command line does), or know about sockets, hooks or config
//! files (it takes the settings it is given).

mod file;
mod jobs;
mod summary;

pub use file::{classify_file, ClassifyError, FileReport, Found, OfflineSettings};
pub use jobs::{audio_files, classify_files, Formatter, JobMessage, Progress};
pub use summary::{Heard, Summarizer};
