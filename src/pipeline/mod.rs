//! The consumer: from captured samples to records.
//!
//! One thread owns everything here: it drains the capture ring, resamples to the model's rate,
//! keeps the model's window, and every hop computes the front end (streaming for log-mel
//! models: frames already computed are reused), runs the model, smooths the scores, decides
//! when sounds start and stop, and hands records to an `emit` callback. It never blocks on
//! what receives them (the daemon's fan-out to the sinks only queues) and never waits on the
//! capture callback: the ring is its only link to the producer.
//!
//! - `run`: the loop, as named steps (drain, flush the tail, skip when behind, score the
//!   windows, end of stream, device loss, reports, nap).
//! - `buffer`: the samples and stream positions the windows are cut from.
//! - `consumer`: the consumer's state and the scoring of one window.
//! - `smoothing`, `decision`: the pure stages after the model.
//! - `settings`: `[pipeline]` and the live settings a reload may change.
//! - `watch`: arrival marks (latency) and the silence watchdog.
//! - `tap`: what observers see besides records (heartbeat, inference times, spectrogram
//!   columns), free when nobody looks.
//!
//! Architecture invariant: the consumer skips windows rather than let the capture ring
//! overflow; memory is bounded by `max_backlog`. Must not: know about sinks, the config
//! loader or the wire format.

mod buffer;
mod consumer;
pub mod decision;
mod run;
mod settings;
pub mod smoothing;
pub mod tap;
mod watch;

pub use consumer::{level_dbfs, Consumer, Counters};
pub use run::{consume, ConsumerCommand, Outcome, Supervisor};
pub use settings::{LiveSettings, PipelineSettings};
pub use settings::{MAX_INTERVAL_SECONDS, MAX_WINDOW_SECONDS};

/// Errors that stop the consumer.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("capture at {rate} Hz cannot be converted to the model's {model_rate} Hz: {source}")]
    Resampler {
        rate: u32,
        model_rate: u32,
        source: crate::audio::AudioError,
    },
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
}
