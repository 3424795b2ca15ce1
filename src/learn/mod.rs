//! Learning: `hark train` (a detector for the user's own sounds, trained on top of the
//! default model) and `hark eval` (measuring a model on labelled clips).
//!
//! Owns datasets ([`dataset`]: which file is which class and recording), embeddings from the
//! base model ([`extract`] runs a model over every window of every clip, on worker threads;
//! [`onnx::expose_embedding`] exposes the input of its final dense layer), group/fold-honest
//! splits ([`split`]), the head ([`fit`]: logistic regression or a small MLP; [`held_out`]:
//! fitted and tested per round), writing the
//! head as ONNX ([`onnx`]) into a model folder ([`model_dir`]), and metrics ([`metrics`]).
//! [`train`] and [`eval`] are the two flows.
//!
//! Must not: put windows of one recording on both sides of a split (a recording's windows
//! overlap and share the room and the microphone, so that would measure memory). Touches no
//! capture, socket or hooks.

pub mod dataset;
pub mod eval;
pub mod extract;
pub mod fit;
pub mod held_out;
pub mod metrics;
pub mod model_dir;
pub mod onnx;
pub mod split;
pub mod train;

pub use eval::{evaluate, EvalError, EvalOptions, EvalReport};
pub use held_out::{RoundResult, TrainOn};
pub use metrics::{ClipScore, Metrics, Progress};
pub use train::{train, Approach, Embedding, TrainError, TrainOptions, TrainReport};
