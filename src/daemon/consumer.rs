//! The consumer thread: owns the model and runs the pipeline over the capture, through device
//! losses and rebuilds, publishing every record into the sinks' fan-out.

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
            taps,
        } = self;
        let mut emit = |r: Record| fanout.publish(r);
        let mut supervisor = DaemonSupervisor::from_env().with_heartbeat(taps.heartbeat.clone());
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
                    consumer = new_consumer(model, &new, &input, &taps);
                    consumer.seek(position);
                    settings = new;
                    tracing::info!(model = %consumer.model().manifest().name, "pipeline rebuilt");
                }
            }
        }
    }
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
