//! The consumer's loop: a sequence of named steps over the sample buffer, repeated until the
//! stream ends, a stop is asked for, the device is lost or a reload asks for a rebuild.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ringbuf::traits::{Consumer as _, Observer as _};

use super::buffer::WindowSpan;
use super::consumer::Consumer;
use super::settings::LiveSettings;
use super::watch::{Arrivals, SilenceWatch};
use super::PipelineError;
use crate::audio::StreamResampler;
use crate::capture::Capture;
use crate::record::Record;
use crate::shutdown::Shutdown;

/// How close to completing its next window the consumer polls the ring every millisecond
/// instead of every five: a device period plus the resampler's look-ahead.
const NEAR_WINDOW: Duration = Duration::from_millis(30);

/// Messages the consumer takes while it runs. `R` is the caller's rebuild payload (a new
/// model and settings): the pipeline hands it back untouched in [`Outcome::Rebuild`].
#[derive(Debug)]
pub enum ConsumerCommand<R> {
    /// New live settings (config reload).
    Settings(Box<LiveSettings>),
    /// Stop this pipeline so the caller can build another (model, device or window changed).
    Rebuild(R),
}

/// Why [`consume`] returned.
#[derive(Debug)]
pub enum Outcome<R> {
    /// The file or stdin ended; open events were closed and a final status sent.
    Ended,
    /// A stop was asked for; open events were closed and a final status sent.
    Stopped,
    /// The capture device failed or went away; reopen it and call [`consume`] again with the same
    /// consumer (stream time continues).
    DeviceLost,
    /// A reload asked for a new pipeline. Open events were closed.
    Rebuild(R),
}

/// What the consumer loop calls that is not a record: for the service layer (watchdog pings)
/// and for tests that inject faults.
pub trait Supervisor {
    /// Called once per loop iteration, whether or not a window ran.
    fn tick(&mut self) {}
    /// Called before each window is scored; `windows` were scored before it.
    fn before_window(&mut self, _windows: u64) {}
    /// The model's raw scores (before smoothing; all zero for a gated window) for the window
    /// from `start` to `end` seconds: what `hark classify` prints per window.
    fn scored(&mut self, _start: f64, _end: f64, _raw: &[f32]) {}
    /// Mono samples at the capture rate `rate`, as they leave the capture ring (before
    /// resampling); the first is absolute sample `first` of the stream at that rate (stream
    /// seconds × `rate`). For the clips' pre-roll.
    fn captured(&mut self, _first: u64, _rate: u32, _samples: &[f32]) {}
}

impl Supervisor for () {}

/// One capture's worth of the stream: the resampler and the scratch blocks that carry samples
/// from the ring into the consumer's buffer.
struct Piece {
    resampler: StreamResampler,
    capture_rate: u32,
    model_rate: u32,
    /// Absolute sample (model rate) where this piece began.
    start: u64,
    /// The same position at the capture rate.
    capture_start: u64,
    /// Output samples still to drop for the resampler's filter delay.
    to_discard: usize,
    scratch: Vec<f32>,
    resampled: Vec<f32>,
    /// Capture samples taken from the ring.
    taken: u64,
    arrivals: Arrivals,
    silence: SilenceWatch,
    last_status: Instant,
    /// The windows of the batch being scored (`Consumer::batch` > 1), and their arrival times.
    spans: Vec<WindowSpan>,
    captured: Vec<Option<u64>>,
}

impl Piece {
    fn start(consumer: &mut Consumer, capture: &Capture) -> Result<Piece, PipelineError> {
        let model_rate = consumer.model.sample_rate();
        let rate = capture.sample_rate;
        let resampler =
            StreamResampler::new(rate, model_rate).map_err(|source| PipelineError::Resampler {
                rate,
                model_rate,
                source,
            })?;
        let start = consumer
            .buffer
            .begin_piece(consumer.model.hop_samples() as u64);
        consumer.reset_streaming();
        let scratch = vec![0f32; (rate as usize / 10).max(1024)];
        // Sized once for the most a turn can bring (a scratch-full, or the whole ring on top of
        // a window), so the steady state never reallocates them.
        let to_model = |n: usize| (n as f64 * model_rate as f64 / rate as f64).ceil() as usize;
        let block = resampler.block_len();
        let live = consumer.model.window_samples()
            + to_model(capture.consumer.capacity().get())
            + (consumer.settings.pipeline.max_backlog * model_rate as f64) as usize
            + 2 * block;
        // The buffer holds at most as much already-used audio as live audio.
        consumer.buffer.reserve_total(2 * live);
        Ok(Piece {
            to_discard: resampler.delay(),
            resampled: Vec::with_capacity(to_model(scratch.len()) + block),
            resampler,
            capture_rate: rate,
            model_rate,
            start,
            capture_start: (start as f64 * rate as f64 / model_rate as f64).round() as u64,
            scratch,
            taken: 0,
            arrivals: Arrivals::default(),
            silence: SilenceWatch::new(consumer.settings.pipeline.silence_timeout),
            last_status: Instant::now(),
            spans: Vec::new(),
            captured: Vec::new(),
        })
    }

    /// Resample `n` samples of the scratch block into the consumer's buffer, dropping the
    /// filter's delay first.
    fn resample_scratch(&mut self, n: usize, consumer: &mut Consumer) {
        self.resampled.clear();
        self.resampler
            .process(&self.scratch[..n], &mut self.resampled);
        let skip = self.to_discard.min(self.resampled.len());
        self.to_discard -= skip;
        consumer.buffer.push(&self.resampled[skip..]);
    }

    /// Take what the ring holds at the start of the turn, so it never fills while we have
    /// work queued, but a producer faster than us cannot keep us here. Returns the count.
    fn drain(
        &mut self,
        consumer: &mut Consumer,
        capture: &mut Capture,
        supervisor: &mut dyn Supervisor,
    ) -> usize {
        let mut got = 0;
        let mut budget = capture.consumer.occupied_len();
        while budget > 0 {
            let take = budget.min(self.scratch.len());
            let n = capture.consumer.pop_slice(&mut self.scratch[..take]);
            if n == 0 {
                break;
            }
            budget -= n;
            got += n;
            let first = self.capture_start + self.taken;
            supervisor.captured(first, self.capture_rate, &self.scratch[..n]);
            self.taken += n as u64;
            self.silence.saw(&self.scratch[..n]);
            self.resample_scratch(n, consumer);
        }
        self.arrivals.take(&mut capture.arrivals);
        got
    }

    /// At the end of a file: push the resampler's tail out with silence so the last window
    /// is complete, and cut the buffer where the input ended.
    fn flush_tail(&mut self, consumer: &mut Consumer) {
        if self.model_rate == self.capture_rate {
            return;
        }
        let target = self.start + self.to_model(self.taken as f64).round() as u64;
        // The drained scratch block serves as the silence.
        self.scratch.fill(0.0);
        while consumer.buffer.end() < target {
            self.resample_scratch(self.scratch.len(), consumer);
        }
        consumer.buffer.truncate_at(target);
    }

    fn to_model(&self, capture_samples: f64) -> f64 {
        capture_samples * self.model_rate as f64 / self.capture_rate as f64
    }

    /// Score every complete window, unless asked to stop: then only the one in flight finishes.
    /// Batched (lossless sources only), windows go `batch` at a time, and a smaller batch only
    /// `at_end`.
    fn score_windows(
        &mut self,
        consumer: &mut Consumer,
        (shutdown, at_end): (&Shutdown, bool),
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        if consumer.batch > 1 && consumer.lossless {
            return self.score_batches(consumer, (shutdown, at_end), supervisor, emit);
        }
        let window = consumer.model.window_samples();
        let hop = consumer.model.hop_samples() as u64;
        while !shutdown.is_triggered() {
            let Some(span) = consumer.buffer.next_span(window) else {
                break;
            };
            let captured_us = self.captured_at(&span, window);
            supervisor.before_window(consumer.counters.windows);
            consumer.score_span(span, captured_us, supervisor, emit)?;
            consumer.buffer.advance(span, window, hop);
        }
        Ok(())
    }

    /// [`score_windows`](Self::score_windows), `consumer.batch` windows per model call.
    fn score_batches(
        &mut self,
        consumer: &mut Consumer,
        (shutdown, at_end): (&Shutdown, bool),
        supervisor: &mut dyn Supervisor,
        emit: &mut dyn FnMut(Record),
    ) -> Result<(), PipelineError> {
        let window = consumer.model.window_samples();
        let hop = consumer.model.hop_samples() as u64;
        while !shutdown.is_triggered() {
            let mut spans = std::mem::take(&mut self.spans);
            consumer
                .buffer
                .spans(window, hop, consumer.batch, &mut spans);
            if spans.is_empty() || (spans.len() < consumer.batch && !at_end) {
                self.spans = spans;
                break;
            }
            self.captured.clear();
            for span in &spans {
                let at = self.captured_at(span, window);
                self.captured.push(at);
            }
            supervisor.before_window(consumer.counters.windows);
            let scored = consumer.score_spans(&spans, &self.captured, supervisor, emit);
            for span in &spans {
                consumer.buffer.advance(*span, window, hop);
            }
            self.spans = spans;
            scored?;
        }
        Ok(())
    }

    /// When the capture sample that completed the window at `span` entered the ring.
    fn captured_at(&mut self, span: &WindowSpan, window: usize) -> Option<u64> {
        let newest = self.to_capture((span.start + window as u64 - self.start) as f64);
        self.arrivals.at(newest.ceil() as u64)
    }

    fn to_capture(&self, model_samples: f64) -> f64 {
        model_samples * self.capture_rate as f64 / self.model_rate as f64
    }

    /// Silence reports and the periodic status.
    fn report(&mut self, consumer: &Consumer, source: &str, emit: &mut dyn FnMut(Record)) {
        if let Some(msg) = self.silence.check() {
            tracing::warn!(source = %source, "{msg}");
            emit(consumer.status(consumer.position(), Some(msg)));
        }
        let every = consumer.settings.pipeline.status_interval;
        if self.last_status.elapsed().as_secs_f64() >= every {
            self.last_status = Instant::now();
            emit(consumer.status(consumer.position(), None));
        }
    }
}

/// Run the consumer on `capture` until the source ends (files, stdin), `shutdown` is
/// triggered, the device is lost, or a command asks for a rebuild.
///
/// Records go to `emit` in order: for each window its `prediction`, then its events; a
/// `status` every `status_interval`; a final `status` when the stream ends or stops.
pub fn consume<R>(
    consumer: &mut Consumer,
    capture: &mut Capture,
    shutdown: &Shutdown,
    commands: Option<&mpsc::Receiver<ConsumerCommand<R>>>,
    supervisor: &mut dyn Supervisor,
    emit: &mut dyn FnMut(Record),
) -> Result<Outcome<R>, PipelineError> {
    let mut piece = Piece::start(consumer, capture)?;
    loop {
        supervisor.tick();
        if let Some(r) = take_commands(consumer, commands, emit) {
            return Ok(Outcome::Rebuild(r));
        }
        let stopping = shutdown.is_triggered();
        let ended = capture.stats.ended.load(Ordering::Acquire);
        let got = piece.drain(consumer, capture, supervisor);
        let at_end = ended && capture.consumer.occupied_len() == 0;
        if at_end {
            piece.flush_tail(consumer);
        }
        note_overruns(consumer, capture);
        skip_when_behind(consumer);
        piece.score_windows(consumer, (shutdown, at_end), supervisor, emit)?;
        if at_end || stopping {
            return end_stream(consumer, at_end, stopping, supervisor, emit);
        }
        if device_lost(consumer, capture, &piece) {
            return Ok(lose_device(consumer, capture, emit));
        }
        piece.report(consumer, &capture.name, emit);
        if got == 0 {
            nap(consumer);
        }
    }
}

/// Apply new settings; a rebuild request ends this pipeline with its events closed.
fn take_commands<R>(
    consumer: &mut Consumer,
    commands: Option<&mpsc::Receiver<ConsumerCommand<R>>>,
    emit: &mut dyn FnMut(Record),
) -> Option<R> {
    let rx = commands?;
    while let Ok(msg) = rx.try_recv() {
        match msg {
            ConsumerCommand::Settings(s) => consumer.set_settings(*s),
            ConsumerCommand::Rebuild(r) => {
                let at = consumer.position();
                consumer.finish(at, emit);
                return Some(r);
            }
        }
    }
    None
}

fn note_overruns(consumer: &mut Consumer, capture: &Capture) {
    let overruns = capture.stats.overruns.load(Ordering::Relaxed);
    if overruns > consumer.counters.overruns {
        tracing::warn!(
            overruns = overruns - consumer.counters.overruns,
            source = %capture.name,
            "capture ring overflow: samples lost"
        );
        consumer.counters.overruns = overruns;
    }
}

/// Fallen behind: jump to the newest window that is complete, counting what we skip.
fn skip_when_behind(consumer: &mut Consumer) {
    if consumer.lossless {
        return;
    }
    let rate = consumer.model.sample_rate() as f64;
    let max_backlog = (consumer.settings.pipeline.max_backlog * rate) as u64;
    let window = consumer.model.window_samples() as u64;
    let hop = consumer.model.hop_samples() as u64;
    let skipped = consumer.buffer.skip_when_behind(window, hop, max_backlog);
    if skipped > 0 {
        consumer.counters.skipped_windows += skipped;
        tracing::warn!(skipped, "consumer behind real time: skipping windows");
        consumer.reset_streaming();
    }
}

/// The stream ended or a stop was asked for: score a stream shorter than one window once,
/// close open events and send the final status. A stop wins over an end seen at once.
fn end_stream<R>(
    consumer: &mut Consumer,
    at_end: bool,
    stopping: bool,
    supervisor: &mut dyn Supervisor,
    emit: &mut dyn FnMut(Record),
) -> Result<Outcome<R>, PipelineError> {
    let end_at = consumer.buffer.end() as f64 / consumer.model.sample_rate() as f64;
    if at_end && !consumer.buffer.ran_any && !consumer.buffer.buf.is_empty() {
        consumer.score_short_tail(supervisor, emit)?;
    }
    consumer.finish(end_at, emit);
    let msg = if stopping { "stopping" } else { "end of input" };
    emit(consumer.status(end_at, Some(msg.into())));
    Ok(if stopping {
        Outcome::Stopped
    } else {
        Outcome::Ended
    })
}

/// The device reported its loss, or delivered no samples for `stall_timeout`.
fn device_lost(consumer: &Consumer, capture: &Capture, piece: &Piece) -> bool {
    let stalled = consumer
        .stall_timeout
        .is_some_and(|t| piece.silence.last_sample.elapsed() >= t);
    if stalled {
        tracing::warn!(device = %capture.name, "no samples from the capture device; treating it as lost");
    }
    stalled || capture.stats.device_lost.load(Ordering::Acquire)
}

/// Sounds cannot be heard through an outage: end open events where audio stopped.
fn lose_device<R>(
    consumer: &mut Consumer,
    capture: &Capture,
    emit: &mut dyn FnMut(Record),
) -> Outcome<R> {
    tracing::warn!(device = %capture.name, "capture device lost");
    let at = consumer.position();
    consumer.finish(at, emit);
    emit(consumer.status(
        at,
        Some(format!("capture device {} lost; reopening", capture.name)),
    ));
    Outcome::DeviceLost
}

/// Poll finely only when the next window is about to complete, so its prediction leaves
/// within a millisecond of its last sample, and coarsely the rest of the time.
fn nap(consumer: &Consumer) {
    let window = consumer.model.window_samples() as u64;
    let missing = consumer.buffer.missing(window);
    let due_in = missing as f64 / consumer.model.sample_rate() as f64;
    let nap = if due_in < NEAR_WINDOW.as_secs_f64() {
        Duration::from_millis(1)
    } else {
        Duration::from_millis(5)
    };
    std::thread::sleep(nap);
}
