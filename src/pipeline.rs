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
use crate::capture::Arrival;
use crate::capture::Capture;
use crate::decision::{Decider, DecisionSettings};
use crate::frontend::StreamingFrontend;
use crate::model::Model;
use crate::record::{micros_rfc3339, now_rfc3339, Record};
use crate::smoothing::{Smoother, SmoothingSettings};
use crate::windowing::top_k;

/// How close to completing its next window the consumer polls the ring every millisecond
/// instead of every five: a device period plus the resampler's block.
const NEAR_WINDOW: Duration = Duration::from_millis(30);

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
#[serde(default)]
pub struct PipelineSettings {
    /// Labels in each `prediction` record.
    pub top_k: usize,
    /// Skip inference while the window's level is below this many dBFS (None: never).
    pub level_gate: Option<f32>,
    /// Seconds between `status` records.
    pub status_interval: f64,
    /// Seconds of audio the consumer may fall behind before it skips windows to catch up.
    pub max_backlog: f64,
    /// Report a capture that delivers no samples, or only exact zeros, for this many seconds
    /// (None: never).
    pub silence_timeout: Option<f64>,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            top_k: 5,
            level_gate: None,
            status_interval: 10.0,
            max_backlog: 2.0,
            silence_timeout: Some(60.0),
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
        if let Some(t) = self.silence_timeout {
            if !(t.is_finite() && t > 0.0) {
                return Err(format!(
                    "pipeline.silence_timeout = {t}: must be a positive number of seconds"
                ));
            }
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
    /// Replace the model and settings (config reload that changed the model, device or window).
    Rebuild(Box<Rebuild>),
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
    /// Where the stream stands; survives device reopenings.
    stream: Stream,
    /// A device silent (no samples at all) this long is treated as lost; None for sources
    /// that may legitimately pause (files, stdin).
    stall_timeout: Option<Duration>,
    /// Fault injection for tests of the service layer (see `Stall`).
    stall: Option<Stall>,
    /// The source waits for us instead of dropping samples (a file read as fast as possible),
    /// so falling behind loses nothing and no window is skipped.
    lossless: bool,
    /// The scores of a gated window (all zero), kept so that gating allocates nothing.
    gated_scores: Vec<f32>,
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
            stream: Stream::default(),
            stall: Stall::from_env(),
            stall_timeout: None,
            gated_scores: vec![0.0; labels.len()],
        }
    }

    /// Treat a device that delivers no samples for `timeout` as lost.
    pub fn set_stall_timeout(&mut self, timeout: Option<Duration>) {
        self.stall_timeout = timeout;
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
        captured_us: Option<u64>,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let rate = self.model.sample_rate() as f64;
        let t0 = start as f64 / rate;
        let t1 = (start as usize + self.model.window_samples()) as f64 / rate;
        let level = level_dbfs(samples);
        self.stream.last_level = level;
        if let Some(s) = &mut self.streaming {
            s.push(stream);
        }
        let gated = self.settings.pipeline.level_gate.is_some_and(|g| level < g);
        if let Some(stall) = &self.stall {
            if self.counters.windows == stall.after_windows {
                tracing::warn!(
                    seconds = stall.seconds,
                    "HARK_FAULT_STALL: wedging the consumer"
                );
                std::thread::sleep(Duration::from_secs_f64(stall.seconds));
            }
        }
        let began = Instant::now();
        let raw: &[f32] = if gated {
            self.counters.gated_windows += 1;
            &self.gated_scores
        } else {
            let frames = self.model.frames();
            match (&mut self.streaming, frames) {
                (Some(s), Some(n)) if s.frames_available() >= n => {
                    let scores = self.model.predict_stream(s)?.expect("enough frames");
                    s.discard_before(n);
                    scores
                }
                _ => self.model.predict(samples)?,
            }
        };
        self.counters.inference += began.elapsed();
        self.counters.windows += 1;
        // The wall clock when the scores are known: what a subscriber's latency is measured from.
        let time = now_rfc3339();
        let smoothed = self.smoother.push(raw);
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
            captured: captured_us.map(micros_rfc3339),
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

    fn status(&self, at: f64, message: Option<String>) -> Record {
        let level = self.stream.last_level;
        let c = &self.counters;
        Record::Status {
            start: round_ms(at),
            time: now_rfc3339(),
            overruns: c.overruns,
            windows: c.windows,
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

/// Fault injection: `HARK_FAULT_STALL=N:SECONDS` wedges the consumer for SECONDS before its
/// window N, so tests can watch systemd's watchdog pings stop. Never set in production.
#[derive(Debug, Clone, Copy)]
struct Stall {
    after_windows: u64,
    seconds: f64,
}

impl Stall {
    fn from_env() -> Option<Stall> {
        let v = std::env::var("HARK_FAULT_STALL").ok()?;
        let (n, s) = v.split_once(':')?;
        Some(Stall {
            after_windows: n.parse().ok()?,
            seconds: s.parse().ok()?,
        })
    }
}

/// Why [`run`] returned.
#[derive(Debug)]
pub enum Outcome {
    /// The file or stdin ended; open events were closed and a final status sent.
    Ended,
    /// `stop` was set; open events were closed and a final status sent.
    Stopped,
    /// The capture device failed or went away; reopen it and call [`run`] again with the same
    /// consumer (stream time continues).
    DeviceLost,
    /// A reload asked for a new pipeline (model, device or window changed). Open events were
    /// closed.
    Rebuild(Box<Rebuild>),
}

/// A new pipeline's parts, prepared (and checked) before the old one is torn down.
pub struct Rebuild {
    pub model: Model,
    pub settings: crate::config::Settings,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuild")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// Where the stream stands, kept across device reopenings so that time keeps running.
#[derive(Debug, Default)]
struct Stream {
    /// Samples at the model's rate; buf[0] is absolute sample `buf_start`.
    buf: Vec<f32>,
    buf_start: u64,
    next_start: u64,
    ran_any: bool,
    last_level: f32,
}

impl Consumer {
    /// Stream position in seconds.
    pub fn position(&self) -> f64 {
        self.stream.next_start as f64 / self.model.sample_rate() as f64
    }

    /// Continue stream time at `seconds` (a rebuilt pipeline continues the old one's clock).
    pub fn seek(&mut self, seconds: f64) {
        let pos = (seconds * self.model.sample_rate() as f64).round() as u64;
        self.stream = Stream {
            buf_start: pos,
            next_start: pos,
            ..Stream::default()
        };
        self.fed_upto = pos;
    }

    /// A `status` record now, with a message.
    pub fn status_record(&self, message: Option<String>) -> Record {
        self.status(self.position(), message)
    }
}

/// Run the consumer on `capture` until the source ends (files, stdin), `stop` is set, the
/// device is lost, or a reload asks for a rebuild.
///
/// Records go to `emit` in order: for each window its `prediction`, then its events; a
/// `status` every `status_interval`; a final `status` when the stream ends or stops.
pub fn run(
    consumer: &mut Consumer,
    capture: &mut Capture,
    stop: &AtomicBool,
    control: Option<&mpsc::Receiver<Control>>,
    supervisor: &mut dyn Supervisor,
    emit: &mut dyn FnMut(Record),
) -> Result<Outcome, PipelineError> {
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
    // A new capture starts a new piece of the stream: what was buffered from the previous one
    // cannot be continued seamlessly, so the next window starts fresh at the current position.
    let piece_start = {
        let st = &mut consumer.stream;
        let pos = st.next_start.max(st.buf_start + st.buf.len() as u64);
        let pos = pos.div_ceil(hop) * hop;
        st.buf.clear();
        st.buf_start = pos;
        st.next_start = pos;
        consumer.fed_upto = pos;
        if let Some(s) = &mut consumer.streaming {
            s.reset();
        }
        pos
    };
    // The resampler's filter delay: drop that many output samples so times match the input.
    let mut to_discard = resampler.delay();
    let mut scratch = vec![0f32; (capture.sample_rate as usize / 10).max(1024)];
    // Sized once for the most a turn can bring (a scratch-full, or the whole ring on top of a
    // window), so the steady state never reallocates them.
    let to_model =
        |n: usize| (n as f64 * model_rate as f64 / capture.sample_rate as f64).ceil() as usize;
    let block = resampler.block_len();
    let mut resampled: Vec<f32> = Vec::with_capacity(to_model(scratch.len()) + block);
    let live = window
        + to_model(capture.consumer.capacity().get())
        + (consumer.settings.pipeline.max_backlog * model_rate as f64) as usize
        + 2 * block;
    // The buffer holds at most as much already-used audio as live audio (see below).
    let most_buffered = 2 * live;
    consumer
        .stream
        .buf
        .reserve(most_buffered.saturating_sub(consumer.stream.buf.len()));
    let mut total_in: u64 = 0;
    let mut last_status = Instant::now();
    let max_backlog = (consumer.settings.pipeline.max_backlog * model_rate as f64) as u64;
    let mut silence = SilenceWatch::new(consumer.settings.pipeline.silence_timeout);
    let mut arrivals = Arrivals::default();

    loop {
        supervisor.tick();
        if let Some(rx) = control {
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Control::Settings(s) => consumer.set_settings(*s),
                    Control::Rebuild(r) => {
                        let at = consumer.position();
                        consumer.finish(at, emit);
                        return Ok(Outcome::Rebuild(r));
                    }
                }
            }
        }
        let stopping = stop.load(Ordering::Relaxed);
        let ended = capture.stats.ended.load(Ordering::Acquire);

        // Drain what the ring holds at the start of the turn, so it never fills while we have
        // work queued, but a producer faster than us cannot keep us here.
        let mut got = 0;
        let mut budget = capture.consumer.occupied_len();
        while budget > 0 {
            let take = budget.min(scratch.len());
            let n = capture.consumer.pop_slice(&mut scratch[..take]);
            budget -= n;
            if n == 0 {
                break;
            }
            got += n;
            total_in += n as u64;
            silence.saw(&scratch[..n]);
            resampled.clear();
            resampler.process(&scratch[..n], &mut resampled);
            let skip = to_discard.min(resampled.len());
            to_discard -= skip;
            consumer.stream.buf.extend_from_slice(&resampled[skip..]);
        }
        arrivals.take(&mut capture.arrivals);
        let at_end = ended && capture.consumer.occupied_len() == 0;
        let st = &mut consumer.stream;
        if at_end && model_rate != capture.sample_rate {
            // Flush the resampler's tail so the last window of a file is complete.
            let target = piece_start
                + (total_in as f64 * model_rate as f64 / capture.sample_rate as f64).round() as u64;
            // Silence pushes the tail out of the filter; the drained scratch block serves.
            scratch.fill(0.0);
            while st.buf_start + (st.buf.len() as u64) < target {
                resampled.clear();
                resampler.process(&scratch, &mut resampled);
                let skip = to_discard.min(resampled.len());
                to_discard -= skip;
                st.buf.extend_from_slice(&resampled[skip..]);
            }
            st.buf
                .truncate(target.saturating_sub(st.buf_start) as usize);
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
        let st = &mut consumer.stream;
        let buf_end = st.buf_start + st.buf.len() as u64;
        if !consumer.lossless && buf_end > st.next_start + window as u64 + max_backlog {
            let newest = (buf_end - window as u64 - st.next_start) / hop * hop + st.next_start;
            let skipped = (newest - st.next_start) / hop;
            consumer.counters.skipped_windows += skipped;
            tracing::warn!(skipped, "consumer behind real time: skipping windows");
            st.next_start = newest;
            if let Some(s) = &mut consumer.streaming {
                s.reset();
            }
            consumer.fed_upto = newest;
        }

        // Every complete window, unless asked to stop: then only the one in flight finishes.
        while !stop.load(Ordering::Relaxed) {
            let st = &consumer.stream;
            if st.buf_start + (st.buf.len() as u64) < st.next_start + window as u64 {
                break;
            }
            let next = st.next_start;
            let a = (next - st.buf_start) as usize;
            let w_end = a + window;
            let fed = (consumer.fed_upto.max(st.buf_start) - st.buf_start) as usize;
            // The capture sample that completed this window, and when it entered the ring.
            let newest = (next + window as u64 - piece_start) as f64 * capture.sample_rate as f64
                / model_rate as f64;
            let captured_us = arrivals.at(newest.ceil() as u64);
            // Lend the buffer to `window` instead of copying the window out of it.
            let buf = std::mem::take(&mut consumer.stream.buf);
            let scored = consumer.window(
                next,
                &buf[a..w_end],
                &buf[fed.min(w_end)..w_end],
                captured_us,
                emit,
            );
            consumer.stream.buf = buf;
            scored?;
            consumer.fed_upto = next + window as u64;
            let st = &mut consumer.stream;
            st.ran_any = true;
            st.next_start += hop;
            // Keep only what later windows (and the streaming front end) still need. The dead
            // prefix is cut once it is at least as long as what stays, so each sample is moved
            // about once, instead of the whole backlog every hop.
            let keep_from = st.next_start.min(consumer.fed_upto);
            let drop = ((keep_from - st.buf_start) as usize).min(st.buf.len());
            if 2 * drop >= st.buf.len() {
                st.buf.drain(..drop);
                st.buf_start += drop as u64;
            }
        }

        if at_end || stopping {
            let st = &consumer.stream;
            let end_at = (st.buf_start + st.buf.len() as u64) as f64 / model_rate as f64;
            if at_end && !st.ran_any && !st.buf.is_empty() {
                // Shorter than one window: score it once, zero-padded, as `hark classify` does.
                let start = st.buf_start;
                let tail = std::mem::take(&mut consumer.stream.buf);
                consumer.window(start, &tail, &tail, None, emit)?;
            }
            consumer.finish(end_at, emit);
            let msg = if stopping { "stopping" } else { "end of input" };
            emit(consumer.status(end_at, Some(msg.into())));
            return Ok(if stopping {
                Outcome::Stopped
            } else {
                Outcome::Ended
            });
        }

        let stalled = consumer
            .stall_timeout
            .is_some_and(|t| silence.last_sample.elapsed() >= t);
        if stalled {
            tracing::warn!(device = %capture.name, "no samples from the capture device; treating it as lost");
        }
        if stalled || capture.stats.device_lost.load(Ordering::Acquire) {
            tracing::warn!(device = %capture.name, "capture device lost");
            // Sounds cannot be heard through an outage: end open events where audio stopped.
            let at = consumer.position();
            consumer.finish(at, emit);
            emit(consumer.status(
                consumer.position(),
                Some(format!("capture device {} lost; reopening", capture.name)),
            ));
            return Ok(Outcome::DeviceLost);
        }

        if let Some(msg) = silence.check() {
            tracing::warn!(source = %capture.name, "{msg}");
            emit(consumer.status(consumer.position(), Some(msg)));
        }

        if last_status.elapsed().as_secs_f64() >= consumer.settings.pipeline.status_interval {
            last_status = Instant::now();
            emit(consumer.status(consumer.position(), None));
        }

        if got == 0 {
            // Poll finely only when the next window is about to complete, so its prediction
            // leaves within a millisecond of its last sample, and coarsely the rest of the time.
            let st = &consumer.stream;
            let missing =
                (st.next_start + window as u64).saturating_sub(st.buf_start + st.buf.len() as u64);
            let due_in = missing as f64 / model_rate as f64;
            let nap = if due_in < NEAR_WINDOW.as_secs_f64() {
                Duration::from_millis(1)
            } else {
                Duration::from_millis(5)
            };
            std::thread::sleep(nap);
        }
    }
}

/// The capture's arrival marks the consumer has taken from the ring and still needs.
#[derive(Debug)]
struct Arrivals {
    marks: std::collections::VecDeque<Arrival>,
}

impl Default for Arrivals {
    fn default() -> Self {
        // Room for every mark the ring can hold, so taking them never reallocates.
        Arrivals {
            marks: std::collections::VecDeque::with_capacity(512),
        }
    }
}

impl Arrivals {
    /// Move the ring's new marks here, forgetting the oldest ones if there is no room.
    fn take(&mut self, ring: &mut ringbuf::HeapCons<Arrival>) {
        while let Some(mark) = ring.try_pop() {
            if self.marks.len() == self.marks.capacity() {
                self.marks.pop_front();
            }
            self.marks.push_back(mark);
        }
    }

    /// Wall-clock microseconds at which capture sample number `sample` (1-based count of
    /// samples the ring received) arrived; marks before it are dropped, as later windows end
    /// later. None when no mark covers it (a zero-padded tail, or marks that were dropped).
    fn at(&mut self, sample: u64) -> Option<u64> {
        while self.marks.front().is_some_and(|m| m.end < sample) {
            self.marks.pop_front();
        }
        self.marks.front().map(|m| m.wall_us)
    }
}

/// Reports a capture that delivers no samples, or only exact digital silence, for too long.
#[derive(Debug)]
struct SilenceWatch {
    timeout: Option<Duration>,
    last_sample: Instant,
    last_sound: Instant,
    reported: bool,
}

impl SilenceWatch {
    fn new(timeout: Option<f64>) -> SilenceWatch {
        SilenceWatch {
            timeout: timeout.map(Duration::from_secs_f64),
            last_sample: Instant::now(),
            last_sound: Instant::now(),
            reported: false,
        }
    }

    fn saw(&mut self, x: &[f32]) {
        let now = Instant::now();
        self.last_sample = now;
        if x.iter().any(|v| *v != 0.0) {
            self.last_sound = now;
            self.reported = false;
        }
    }

    /// A message once per episode of no samples or digital silence.
    fn check(&mut self) -> Option<String> {
        let timeout = self.timeout?;
        if self.reported {
            return None;
        }
        let msg = if self.last_sample.elapsed() >= timeout {
            format!(
                "no samples from the capture device for {} s",
                timeout.as_secs_f64()
            )
        } else if self.last_sound.elapsed() >= timeout {
            format!(
                "the capture device delivered only digital silence (exact zeros) for {} s; is it muted or disconnected?",
                timeout.as_secs_f64()
            )
        } else {
            return None;
        };
        self.reported = true;
        Some(msg)
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
