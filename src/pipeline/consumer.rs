//! The consumer's state and what it does with one window: front end, model, smoothing,
//! decision, records.

use std::time::{Duration, Instant};

use super::buffer::{SampleBuffer, WindowSpan};
use super::decision::Decider;
use super::run::Supervisor;
use super::settings::LiveSettings;
use super::smoothing::Smoother;
use super::tap::{self, Taps};
use super::PipelineError;
use crate::frontend::{MelFrontend, StreamingFrontend};
use crate::model::Model;
use crate::record::{micros_rfc3339, now_rfc3339, Record};
use crate::windowing::top_k;

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

pub(crate) fn round_ms(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The consumer's state. Built on the thread that runs it.
pub struct Consumer {
    pub(crate) model: Model,
    pub(crate) settings: LiveSettings,
    smoother: Smoother,
    decider: Decider,
    /// Streaming front end, for log-mel models whose hop is a whole number of frames.
    pub(crate) streaming: Option<StreamingFrontend>,
    pub(crate) counters: Counters,
    /// Where the stream stands; survives device reopenings.
    pub(crate) buffer: SampleBuffer,
    last_level: f32,
    /// A device silent (no samples at all) this long is treated as lost; None for sources
    /// that may legitimately pause (files, stdin).
    pub(crate) stall_timeout: Option<Duration>,
    /// The source waits for us instead of dropping samples (a file read as fast as possible),
    /// so falling behind loses nothing and no window is skipped.
    pub(crate) lossless: bool,
    /// The scores of a gated window (all zero), kept so that gating allocates nothing.
    gated_scores: Vec<f32>,
    /// Observers beyond the records (the web page), with the front end that draws its
    /// spectrogram; None when nobody taps (`hark classify`, tests).
    taps: Option<Tapping>,
    /// Windows per model call when lossless (`hark classify --batch`); 1 scores each window
    /// as it completes, as `hark run` does.
    pub(crate) batch: usize,
    /// Each window of the batch being scored: its level and where its scores are.
    batch_plan: Vec<(f32, Scored)>,
}

/// Where a window's raw scores are.
#[derive(Debug, Clone, Copy)]
enum Scored {
    /// Below the level gate: all zero, the model did not run.
    Gated,
    /// The model's last prediction.
    Model,
    /// A row of the model's last batch.
    Batch(usize),
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
            decider: Decider::with_groups(&settings.decision, &settings.groups, &labels),
            model,
            settings,
            streaming,
            counters: Counters::default(),
            buffer: SampleBuffer::default(),
            last_level: 0.0,
            lossless: false,
            stall_timeout: None,
            gated_scores: vec![0.0; labels.len()],
            taps: None,
            batch: 1,
            batch_plan: Vec::new(),
        }
    }

    /// Score up to `windows` windows per model call, for a lossless source only (offline:
    /// `hark classify`). Windows are grouped from the start of the stream, `windows` at a
    /// time, so a file gets the same groups, and the same scores, on every run.
    pub fn set_batch(&mut self, windows: usize) {
        self.batch = windows.max(1);
    }

    /// Share inference times and, while watched, spectrogram columns through `taps`.
    pub fn set_taps(&mut self, taps: Taps) {
        let display = tap::display_frontend(self.model.mel_frontend(), self.model.sample_rate());
        self.taps = Some(Tapping {
            taps,
            display,
            hop: self.model.hop_samples(),
        });
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

    /// The model back, to build the next consumer with (`hark classify` keeps one session per
    /// job across files).
    pub fn into_model(self) -> Model {
        self.model
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Apply new live settings; open events stay open.
    pub fn set_settings(&mut self, s: LiveSettings) {
        self.smoother.set_settings(&s.smoothing);
        self.decider.set_settings_and_groups(&s.decision, &s.groups);
        self.settings = s;
    }

    /// Stream position in seconds.
    pub fn position(&self) -> f64 {
        self.buffer.next as f64 / self.model.sample_rate() as f64
    }

    /// Continue stream time at `seconds` (a rebuilt pipeline continues the old one's clock).
    pub fn seek(&mut self, seconds: f64) {
        let pos = (seconds * self.model.sample_rate() as f64).round() as u64;
        self.buffer = SampleBuffer::at(pos);
    }

    /// A `status` record now, with a message.
    pub fn status_record(&self, message: Option<String>) -> Record {
        self.status(self.position(), message)
    }

    /// Forget what the streaming front end was fed (the stream jumped).
    pub(crate) fn reset_streaming(&mut self) {
        if let Some(s) = &mut self.streaming {
            s.reset();
        }
    }

    /// Score the buffer's window at `span` and emit its records, lending the buffer to the
    /// front end instead of copying the window out of it.
    pub(crate) fn score_span(
        &mut self,
        span: WindowSpan,
        captured_us: Option<u64>,
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let buf = std::mem::take(&mut self.buffer.buf);
        let scored = self.window(
            span.start,
            (&buf[span.from..span.to], &buf[span.fresh..span.to]),
            captured_us,
            supervisor,
            emit,
        );
        self.buffer.buf = buf;
        scored
    }

    /// Score a stream shorter than one window once, zero-padded, as `hark classify` does.
    pub(crate) fn score_short_tail(
        &mut self,
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let start = self.buffer.start;
        let tail = std::mem::take(&mut self.buffer.buf);
        self.window(start, (&tail, &tail), None, supervisor, emit)
    }

    /// Score the windows at `spans` (consecutive, all in the buffer) in one model call and emit
    /// their records in order; `captured` holds each one's arrival time.
    pub(crate) fn score_spans(
        &mut self,
        spans: &[WindowSpan],
        captured: &[Option<u64>],
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let buf = std::mem::take(&mut self.buffer.buf);
        let scored = self.batch_of(&buf, spans, captured, supervisor, emit);
        self.buffer.buf = buf;
        scored
    }

    fn batch_of(
        &mut self,
        buf: &[f32],
        spans: &[WindowSpan],
        captured: &[Option<u64>],
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let began = Instant::now();
        self.batch_plan.clear();
        let mut rows = 0;
        for span in spans {
            let samples = &buf[span.from..span.to];
            let level = self.feed(samples, &buf[span.fresh..span.to]);
            let scored = if self.gated(level) {
                Scored::Gated
            } else {
                push_to_batch(&mut self.model, &mut self.streaming, samples)?;
                rows += 1;
                Scored::Batch(rows - 1)
            };
            self.batch_plan.push((level, scored));
        }
        self.model.batch_run()?;
        self.counters.inference += began.elapsed();
        for (i, span) in spans.iter().enumerate() {
            let (level, scored) = self.batch_plan[i];
            let at = captured.get(i).copied().flatten();
            self.publish(span.start, level, scored, at, supervisor, emit);
        }
        Ok(())
    }

    /// Score one window that starts at absolute sample `start` (model rate) and emit records.
    /// `samples` is the window (possibly shorter at the end of a stream); `fresh` holds the
    /// samples the streaming front end has not seen, up to the window's end.
    fn window(
        &mut self,
        start: u64,
        (samples, fresh): (&[f32], &[f32]),
        captured_us: Option<u64>,
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let level = self.feed(samples, fresh);
        let began = Instant::now();
        let scored = if self.gated(level) {
            Scored::Gated
        } else {
            infer(&mut self.model, &mut self.streaming, samples)?;
            Scored::Model
        };
        let took = began.elapsed();
        self.counters.inference += took;
        if let Some(t) = &self.taps {
            let t0 = start as f64 / self.model.sample_rate() as f64;
            t.feed(
                t0,
                samples,
                (!matches!(scored, Scored::Gated)).then_some(took),
            );
        }
        self.publish(start, level, scored, captured_us, supervisor, emit);
        Ok(())
    }

    /// A window's level (dBFS), noted; its fresh samples go to the streaming front end.
    fn feed(&mut self, samples: &[f32], fresh: &[f32]) -> f32 {
        let level = level_dbfs(samples);
        self.last_level = level;
        if let Some(s) = &mut self.streaming {
            s.push(fresh);
        }
        level
    }

    fn gated(&self, level: f32) -> bool {
        self.settings.pipeline.level_gate.is_some_and(|g| level < g)
    }

    /// After the model: report the raw scores, smooth, decide, and emit the window's
    /// prediction and events.
    fn publish(
        &mut self,
        start: u64,
        level: f32,
        scored: Scored,
        captured_us: Option<u64>,
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) {
        let rate = self.model.sample_rate() as f64;
        let t0 = start as f64 / rate;
        let t1 = (start as usize + self.model.window_samples()) as f64 / rate;
        let raw: &[f32] = match scored {
            Scored::Gated => &self.gated_scores,
            Scored::Model => self.model.last_scores(),
            Scored::Batch(row) => self.model.batch_scores(row),
        };
        let gated = matches!(scored, Scored::Gated);
        self.counters.gated_windows += u64::from(gated);
        self.counters.windows += 1;
        supervisor.scored(t0, t1, raw);
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
    }

    /// Close open events at stream position `at` seconds.
    pub fn finish(&mut self, at: f64, emit: &mut dyn FnMut(Record)) {
        for e in self.decider.finish(at, &now_rfc3339()) {
            emit(e);
        }
    }

    pub(crate) fn status(&self, at: f64, message: Option<String>) -> Record {
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
            level_db: self.last_level,
            message,
            sinks: None,
        }
    }
}

/// The consumer's taps, with what feeding them needs.
struct Tapping {
    taps: Taps,
    /// The front end that draws the spectrogram.
    display: Option<MelFrontend>,
    /// Samples per hop at the model's rate.
    hop: usize,
}

impl Tapping {
    /// The inference time of a scored window, and while someone watches, the spectrogram's
    /// columns of the window's newest hop (starting at stream second `t0`).
    fn feed(&self, t0: f64, samples: &[f32], took: Option<Duration>) {
        if let Some(took) = took {
            self.taps.inference.observe(took);
        }
        let watched = self.taps.spectrum.watched();
        if let Some(fe) = self.display.as_ref().filter(|_| watched) {
            self.taps
                .spectrum
                .send(tap::columns(fe, samples, self.hop, t0));
        }
    }
}

/// Run the model on one window (its scores are then the model's last): from the streaming
/// front end's frames when it has enough, else from the window's samples.
fn infer(
    model: &mut Model,
    streaming: &mut Option<StreamingFrontend>,
    samples: &[f32],
) -> Result<(), PipelineError> {
    match (streaming, model.frames()) {
        (Some(s), Some(n)) if s.frames_available() >= n => {
            model.predict_stream(s)?.expect("enough frames");
            s.discard_before(n);
        }
        _ => {
            model.predict(samples)?;
        }
    }
    Ok(())
}

/// Add one window to the model's batch, from the same input [`infer`] would use.
fn push_to_batch(
    model: &mut Model,
    streaming: &mut Option<StreamingFrontend>,
    samples: &[f32],
) -> Result<(), PipelineError> {
    match (streaming, model.frames()) {
        (Some(s), Some(n)) if s.frames_available() >= n => {
            assert!(model.batch_push_stream(s)?, "enough frames");
            s.discard_before(n);
        }
        _ => model.batch_push(samples)?,
    }
    Ok(())
}
