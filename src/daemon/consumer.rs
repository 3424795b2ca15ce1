//! The consumer thread: owns the model and runs the pipeline over the capture, through device
//! losses and rebuilds, publishing every record into the sinks' fan-out. The clips sink's
//! recorder sits on this thread too: it sees the capture-rate samples (through the
//! supervisor) and the event records on their way out.

use std::cell::RefCell;
use std::sync::{mpsc, Arc};

use anyhow::Context;
use tokio::sync::watch;

use super::signals::{Rebuild, ToConsumer};
use super::systemd::DaemonSupervisor;
use super::Input;
use crate::capture::Capture;
use crate::config::Settings;
use crate::model::Model;
use crate::pipeline::tap::Taps;
use crate::pipeline::{self, Consumer, Outcome};
use crate::record::Record;
use crate::shutdown::Shutdown;
use crate::sinks::clips::{ClipTap, Recorder};
use crate::sinks::{Fanout, RunningModel};

/// What the consumer thread owns.
pub(super) struct ConsumerThread {
    pub(super) input: Input,
    pub(super) settings: Settings,
    pub(super) model: Model,
    pub(super) capture: Capture,
    pub(super) fanout: Fanout,
    pub(super) model_info: watch::Sender<Arc<RunningModel>>,
    pub(super) commands: mpsc::Receiver<ToConsumer>,
    pub(super) shutdown: Shutdown,
    /// The clips sink's end on this thread; None when it was not started.
    pub(super) clips: Option<ClipTap>,
    pub(super) taps: Taps,
}

impl ConsumerThread {
    /// Start the thread `hark-consumer`.
    pub(super) fn spawn(self) -> anyhow::Result<std::thread::JoinHandle<anyhow::Result<()>>> {
        std::thread::Builder::new()
            .name("hark-consumer".into())
            .spawn(move || self.consume_until_done())
            .context("starting the consumer thread")
    }

    /// Run until the input ends, a stop is asked for, or a lost device cannot be reopened
    /// before a stop.
    fn consume_until_done(self) -> anyhow::Result<()> {
        let ConsumerThread {
            input,
            mut settings,
            model,
            mut capture,
            fanout,
            model_info,
            commands,
            shutdown,
            clips,
            taps,
        } = self;
        // Shared by `emit` and the supervisor, which the pipeline never calls one inside the other.
        let recorder = RefCell::new(Recorder::new(clips, ring_slack(&model, &settings)));
        let mut emit = |r: Record| fanout.publish(recorder.borrow_mut().on_record(r));
        let mut daemon = DaemonSupervisor::from_env().with_heartbeat(taps.heartbeat.clone());
        let mut supervisor = Tapped {
            inner: &mut daemon,
            clips: &recorder,
        };
        let mut consumer = new_consumer(model, &settings, &input, &taps);
        super::systemd::ready(&format!("listening on {}", capture.name));
        loop {
            taps.set_source(&capture.name);
            tracing::info!(
                source = %capture.name,
                rate = capture.sample_rate,
                model = %consumer.model().manifest().name,
                "listening"
            );
            let outcome = pipeline::consume(
                &mut consumer,
                &mut capture,
                &shutdown,
                Some(&commands),
                &mut supervisor,
                &mut emit,
            )?;
            match outcome {
                Outcome::Ended | Outcome::Stopped => {
                    recorder.borrow_mut().flush();
                    log_finished(&consumer);
                    return Ok(());
                }
                Outcome::DeviceLost => {
                    drop(capture);
                    let Some(c) = input.reopen(&settings, &shutdown, &mut supervisor) else {
                        return Ok(());
                    };
                    let back = format!("capture device {} is back", c.name);
                    emit(consumer.status_record(Some(back)));
                    capture = c;
                }
                Outcome::Rebuild(r) => {
                    let Rebuild {
                        model,
                        settings: new,
                    } = *r;
                    model_info.send_replace(Arc::new(super::model_info(&model, &new.groups)));
                    if new.capture != settings.capture {
                        drop(capture);
                        let reopened = input.reopen(&new, &shutdown, &mut supervisor);
                        let Some(c) = reopened else { return Ok(()) };
                        capture = c;
                    }
                    let position = consumer.position();
                    recorder.borrow_mut().set_slack(ring_slack(&model, &new));
                    consumer = new_consumer(model, &new, &input, &taps);
                    consumer.seek(position);
                    settings = new;
                    tracing::info!(model = %consumer.model().manifest().name, "pipeline rebuilt");
                }
            }
        }
    }
}

/// What the daemon's loop gives the pipeline as its supervisor: the service layer's, plus the
/// clips' tap on the captured samples.
struct Tapped<'a> {
    inner: &'a mut DaemonSupervisor,
    clips: &'a RefCell<Recorder>,
}

impl pipeline::Supervisor for Tapped<'_> {
    fn tick(&mut self) {
        self.inner.tick();
    }

    fn before_window(&mut self, windows: u64) {
        self.inner.before_window(windows);
    }

    fn captured(&mut self, first: u64, rate: u32, samples: &[f32]) {
        self.clips.borrow_mut().captured(first, rate, samples);
    }
}

/// Seconds the clips' pre-roll ring keeps beyond `pre_roll`: how far the newest sample can be
/// past an event's first window when its `event_start` is decided (a window and a hop, the
/// longest `min_duration`, a full capture ring drained at once, and the backlog).
fn ring_slack(model: &Model, settings: &Settings) -> f64 {
    let rate = model.sample_rate() as f64;
    let d = &settings.decision;
    let min_duration = d
        .labels
        .values()
        .filter_map(|r| r.min_duration)
        .fold(d.min_duration, f64::max);
    (model.window_samples() + model.hop_samples()) as f64 / rate
        + min_duration
        + settings.capture.ring_seconds as f64
        + settings.pipeline.max_backlog
}

fn new_consumer(model: Model, settings: &Settings, input: &Input, taps: &Taps) -> Consumer {
    let mut consumer = Consumer::new(model, settings.live());
    consumer.set_taps(taps.clone());
    consumer.set_lossless(input.is_lossless());
    consumer.set_stall_timeout(input.stall_timeout(settings));
    consumer
}

fn log_finished(consumer: &Consumer) {
    let c = consumer.counters();
    tracing::info!(
        windows = c.windows,
        skipped = c.skipped_windows,
        overruns = c.overruns,
        "input finished"
    );
}
