//! The consumer: from captured samples to records.
//!
//! One thread owns everything here: it drains the capture ring, resamples to the model's rate,
//! keeps the model's window, and every hop computes the front end (streaming for log-mel
//! models: frames already computed are reused), runs the model, smooths the scores, decides
//! when sounds start and stop, and hands records to a sink. It never blocks on its sinks (they
//! are the socket hub, hooks and stdout, each of which queues) and never waits on the capture
//! callback: the ring is its only link to the producer.
//!
//! Architecture invariant: the consumer skips windows rather than let the capture ring
//! overflow; memory is bounded by `max_backlog`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer as _, Observer as _};
use serde::{Deserialize, Serialize};

use crate::audio::StreamResampler;
use crate::capture::Capture;
use crate::classify::top_k;
use crate::decision::{Decider, DecisionSettings};
use crate::frontend::StreamingFrontend;
use crate::model::Model;
use crate::record::{now_rfc3339, Record};
use crate::smoothing::{Smoother, SmoothingSettings};

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

/// The `[pipeline]` settings: what the consumer reports and how it keeps up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSettings {
    /// Labels in each `prediction` record.
    pub top_k: usize,
    /// Skip inference while the window's level is below this many dBFS (None: never).
    pub level_gate: Option<f32>,
    /// Seconds between `status` records.
    pub status_interval: f64,
    /// Seconds of audio the consumer may fall behind before it skips windows to catch up.
    pub max_backlog: f64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            top_k: 5,
            level_gate: None,
            status_interval: 10.0,
            max_backlog: 2.0,
        }
    }
}

impl PipelineSettings {
    /// Check every value; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.top_k == 0 {
            return Err("pipeline.top_k = 0: must be at least 1".into());
        }
        if let Some(g) = self.level_gate {
            if !(g.is_finite() && (-200.0..=0.0).contains(&g)) {
                return Err(format!(
                    "pipeline.level_gate = {g}: must be a level in dBFS between -200 and 0"
                ));
            }
        }
        if !(self.status_interval.is_finite() && self.status_interval > 0.0) {
            return Err(format!(
                "pipeline.status_interval = {}: must be a positive number of seconds",
                self.status_interval
            ));
        }
        if !(self.max_backlog.is_finite() && self.max_backlog > 0.0) {
            return Err(format!(
                "pipeline.max_backlog = {}: must be a positive number of seconds",
                self.max_backlog
            ));
        }
        Ok(())
    }
}

/// Everything the consumer uses that a config reload may change while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveSettings {
    pub pipeline: PipelineSettings,
    pub smoothing: SmoothingSettings,
    pub decision: DecisionSettings,
}

impl LiveSettings {
    /// Check every value against the model's labels; messages name the key.
    pub fn validate(&self, labels: &[String]) -> Result<(), String> {
        self.pipeline.validate()?;
        self.smoothing.validate()?;
        self.decision.validate(labels)
    }
}

/// Counters the consumer keeps, reported in `status` records and at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    pub windows: u64,
    pub skipped_windows: u64,
    pub gated_windows: u64,
    pub overruns: u64,
    /// Total time spent in front end + model, for the mean per window.
    pub inference: Duration,
}

/// Messages the consumer takes while it runs.
#[derive(Debug)]
pub enum Control {
    /// New live settings (config reload).
    Settings(Box<LiveSettings>),
}

/// RMS level of `x` in dBFS (-120 for silence).
pub fn level_dbfs(x: &[f32]) -> f32 {
    if x.is_empty() {
        return -120.0;
    }
    let ms = x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / x.len() as f64;
    if ms <= 1e-12 {
        -120.0
    } else {
        (10.0 * ms.log10()) as f32
    }
}

/// The consumer's state. Built on the thread that runs it.
pub struct Consumer {
    model: Model,
    settings: LiveSettings,
    smoother: Smoother,
    decider: Decider,
    /// Streaming front end, for log-mel models whose hop is a whole number of frames.
    streaming: Option<StreamingFrontend>,
    /// Absolute index (at the model's rate) of the next sample the streaming front end needs.
    fed_upto: u64,
    counters: Counters,
    /// The source waits for us instead of dropping samples (a file read as fast as possible),
    /// so falling behind loses nothing and no window is skipped.
    lossless: bool,
}

impl Consumer {
    pub fn new(model: Model, settings: LiveSettings) -> Consumer {
        let labels = model.labels().to_vec();
        let streaming = model.mel_frontend().and_then(|fe| {
            let spec = fe.spec();
            let hop_frames_whole = model.hop_samples() % spec.hop_length == 0;
            // Centered frames pad each window; a stream has no window edges, so those models
            // take the batch front end per window to score exactly as `hark classify` does.
            (hop_frames_whole && !spec.center).then(|| StreamingFrontend::new(fe.clone()))
        });
        Consumer {
            smoother: Smoother::new(&settings.smoothing, labels.len()),
            decider: Decider::new(&settings.decision, &labels),
            model,
            settings,
            streaming,
            fed_upto: 0,
            counters: Counters::default(),
            lossless: false,
        }
    }

    /// Never skip windows: the source blocks rather than drops when the ring is full.
    pub fn set_lossless(&mut self, lossless: bool) {
        self.lossless = lossless;
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Apply new live settings; open events stay open.
    pub fn set_settings(&mut self, s: LiveSettings) {
        self.smoother.set_settings(&s.smoothing);
        self.decider.set_settings(&s.decision);
        self.settings = s;
    }

    /// Score one window that starts at absolute sample `start` (model rate) and emit records.
    /// `samples` is the window (possibly shorter at the end of a stream); `fresh` holds the
    /// samples from `fed_upto` to the window's end, for the streaming front end.
    fn window(
        &mut self,
        start: u64,
        samples: &[f32],
        stream: &[f32],
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let rate = self.model.sample_rate() as f64;
        let t0 = start as f64 / rate;
        let t1 = (start as usize + self.model.window_samples()) as f64 / rate;
        let level = level_dbfs(samples);
        let time = now_rfc3339();
        if let Some(s) = &mut self.streaming {
            s.push(stream);
        }
        let gated = self.settings.pipeline.level_gate.is_some_and(|g| level < g);
        let began = Instant::now();
        let raw = if gated {
            self.counters.gated_windows += 1;
            vec![0.0; self.model.labels().len()]
        } else {
            let frames = self.model.frames();
            match (&mut self.streaming, frames) {
                (Some(s), Some(n)) if s.frames_available() >= n => {
                    let feats = s.window(n).expect("enough frames");
                    s.discard_before(n);
                    self.model.predict_features(feats.view())?
                }
                _ => self.model.predict(samples)?,
            }
        };
        self.counters.inference += began.elapsed();
        self.counters.windows += 1;
        let smoothed = self.smoother.push(&raw);
        let top = if gated {
            Vec::new()
        } else {
            top_k(smoothed, self.model.labels(), self.settings.pipeline.top_k)
        };
        let events = self.decider.update(t0, t1, smoothed, &time);
        emit(Record::Prediction {
            start: round_ms(t0),
            end: round_ms(t1),
            time,
            top,
            level_db: (level * 10.0).round() / 10.0,
            gated,
        });
        for e in events {
            emit(e);
        }
        Ok(())
    }

    /// Close open events at stream position `at` seconds.
    pub fn finish(&mut self, at: f64, emit: &mut dyn FnMut(Record)) {
        for e in self.decider.finish(at, &now_rfc3339()) {
            emit(e);
        }
    }

    fn status(&self, at: f64, level: f32, message: Option<String>) -> Record {
        let c = &self.counters;
        Record::Status {
            start: round_ms(at),
            time: now_rfc3339(),
            overruns: c.overruns,
            skipped_windows: c.skipped_windows,
            inference_ms: if c.windows > 0 {
                (c.inference.as_secs_f64() * 1000.0 / c.windows as f64) as f32
            } else {
                0.0
            },
            level_db: level,
            message,
        }
    }
}

fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Hooks the consumer loop calls that are not records: for the service layer (watchdog pings).
pub trait Supervisor {
    /// Called once per loop iteration, whether or not a window ran.
    fn tick(&mut self) {}
}

impl Supervisor for () {}

/// Run the consumer until the source ends (files, stdin) or `stop` is set.
///
/// Returns the counters. Records go to `emit` in order: for each window its `prediction`,
/// then its events; a `status` every `status_interval`; a final `status` at the end.
pub fn run(
    consumer: &mut Consumer,
    capture: &mut Capture,
    stop: &AtomicBool,
    control: Option<&mpsc::Receiver<Control>>,
    supervisor: &mut dyn Supervisor,
    emit: &mut dyn FnMut(Record),
) -> Result<Counters, PipelineError> {
    let model_rate = consumer.model.sample_rate();
    let window = consumer.model.window_samples();
    let hop = consumer.model.hop_samples() as u64;
    let mut resampler =
        StreamResampler::new(capture.sample_rate, model_rate).map_err(|source| {
            PipelineError::Resampler {
                rate: capture.sample_rate,
                model_rate,
                source,
            }
        })?;
    // The resampler's filter delay: drop that many output samples so times match the input.
    let mut to_discard = resampler.delay();
    let mut scratch = vec![0f32; (capture.sample_rate as usize / 10).max(1024)];
    let mut resampled: Vec<f32> = Vec::new();
    // Samples at the model's rate; buf[0] is absolute sample `buf_start`.
    let mut buf: Vec<f32> = Vec::with_capacity(window * 4);
    let mut buf_start: u64 = 0;
    let mut next_start: u64 = 0;
    let mut total_in: u64 = 0;
    let mut last_level = -120.0;
    let mut last_status = Instant::now();
    let max_backlog = (consumer.settings.pipeline.max_backlog * model_rate as f64) as u64;
    let mut ran_any = false;

    loop {
        supervisor.tick();
        if let Some(rx) = control {
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Control::Settings(s) => consumer.set_settings(*s),
                }
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        let ended = capture.stats.ended.load(Ordering::Acquire);

        // Drain the ring completely each turn, so it never fills while we have work queued.
        let mut got = 0;
        loop {
            let n = capture.consumer.pop_slice(&mut scratch);
            if n == 0 {
                break;
            }
            got += n;
            total_in += n as u64;
            resampled.clear();
            resampler.process(&scratch[..n], &mut resampled);
            let skip = to_discard.min(resampled.len());
            to_discard -= skip;
            buf.extend_from_slice(&resampled[skip..]);
        }
        let at_end = ended && capture.consumer.occupied_len() == 0;
        if at_end && model_rate != capture.sample_rate {
            // Flush the resampler's tail so the last window of a file is complete.
            let expected =
                (total_in as f64 * model_rate as f64 / capture.sample_rate as f64).round() as u64;
            let zeros = vec![0f32; capture.sample_rate as usize];
            while buf_start + (buf.len() as u64) < expected {
                resampled.clear();
                resampler.process(&zeros, &mut resampled);
                let skip = to_discard.min(resampled.len());
                to_discard -= skip;
                buf.extend_from_slice(&resampled[skip..]);
            }
            buf.truncate((expected - buf_start) as usize);
        }

        let overruns = capture.stats.overruns.load(Ordering::Relaxed);
        if overruns > consumer.counters.overruns {
            tracing::warn!(
                overruns = overruns - consumer.counters.overruns,
                source = %capture.name,
                "capture ring overflow: samples lost"
            );
            consumer.counters.overruns = overruns;
        }

        // Fallen behind: jump to the newest window that is complete, counting what we skip.
        let buf_end = buf_start + buf.len() as u64;
        if !consumer.lossless && buf_end > next_start + window as u64 + max_backlog {
            let newest = (buf_end - window as u64 - next_start) / hop * hop + next_start;
            let skipped = (newest - next_start) / hop;
            consumer.counters.skipped_windows += skipped;
            tracing::warn!(skipped, "consumer behind real time: skipping windows");
            next_start = newest;
            if let Some(s) = &mut consumer.streaming {
                s.reset();
            }
            consumer.fed_upto = next_start;
        }

        // Every complete window.
        while buf_start + buf.len() as u64 >= next_start + window as u64 {
            let a = (next_start - buf_start) as usize;
            let w_end = a + window;
            let fed = (consumer.fed_upto.max(buf_start) - buf_start) as usize;
            let (win, fresh) = (&buf[a..w_end], &buf[fed.min(w_end)..w_end]);
            last_level = level_dbfs(win);
            consumer.window(next_start, win, fresh, emit)?;
            consumer.fed_upto = next_start + window as u64;
            ran_any = true;
            next_start += hop;
            // Keep only what later windows (and the streaming front end) still need.
            let keep_from = next_start.min(consumer.fed_upto);
            let drop = (keep_from - buf_start) as usize;
            buf.drain(..drop.min(buf.len()));
            buf_start += drop as u64;
        }

        if at_end || stopping {
            let end_at = (buf_start + buf.len() as u64) as f64 / model_rate as f64;
            if at_end && !ran_any && !buf.is_empty() {
                // Shorter than one window: score it once, zero-padded, as `hark classify` does.
                let tail = buf.clone();
                consumer.window(buf_start, &tail, &[], emit)?;
                last_level = level_dbfs(&tail);
            }
            consumer.finish(end_at, emit);
            emit(consumer.status(
                end_at,
                last_level,
                Some(if stopping { "stopping" } else { "end of input" }.into()),
            ));
            return Ok(consumer.counters.clone());
        }

        if last_status.elapsed().as_secs_f64() >= consumer.settings.pipeline.status_interval {
            last_status = Instant::now();
            let at = next_start as f64 / model_rate as f64;
            emit(consumer.status(at, last_level, None));
        }

        if got == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A stop flag shared with signal handlers.
pub fn stop_flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_of_full_scale_sine_is_about_minus_three_db() {
        let x: Vec<f32> = (0..16000)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16000.0).sin())
            .collect();
        assert!((level_dbfs(&x) + 3.01).abs() < 0.05, "{}", level_dbfs(&x));
        assert_eq!(level_dbfs(&[0.0; 100]), -120.0);
    }

    #[test]
    fn settings_validation_names_keys() {
        let s = PipelineSettings {
            top_k: 0,
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("pipeline.top_k"));
        let s = PipelineSettings {
            level_gate: Some(10.0),
            ..Default::default()
        };
        assert!(s.validate().unwrap_err().contains("pipeline.level_gate"));
    }
}
