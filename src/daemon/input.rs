//! Where audio comes from: opening the source `hark run` was given, and reopening a lost
//! device with backoff.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::audio::RawFormat;
use crate::capture::{Capture, DeviceSource, FileSource, Source, StdinSource};
use crate::config::Settings;
use crate::pipeline::Supervisor;
use crate::shutdown::Shutdown;

/// How long opening a file may take before hark says it is waiting for it (a FIFO with no
/// writer, a stalled network file system).
const OPEN_PATIENCE: Duration = Duration::from_secs(1);

/// Where audio comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A capture device by name or substring; None = the configured or default device.
    Device(Option<String>),
    /// A file played at real time (or as fast as possible with `realtime: false`).
    File { path: PathBuf, realtime: bool },
    /// Raw PCM on stdin.
    Stdin {
        rate: u32,
        format: RawFormat,
        channels: u16,
    },
}

impl Input {
    /// Sources that wait for the consumer instead of dropping samples: a file read as fast as
    /// possible, and stdin (the pipe pushes back on its writer). Skipping windows there would
    /// throw away audio that is already here.
    pub fn is_lossless(&self) -> bool {
        matches!(
            self,
            Input::File {
                realtime: false,
                ..
            } | Input::Stdin { .. }
        )
    }

    /// How long a device may deliver nothing before it is reopened (devices only).
    pub fn stall_timeout(&self, settings: &Settings) -> Option<Duration> {
        let t = settings.capture.stall_timeout;
        (matches!(self, Input::Device(_)) && t > 0.0).then(|| Duration::from_secs_f64(t))
    }

    /// Build and start the source this input names.
    pub fn open(&self, settings: &Settings) -> anyhow::Result<Capture> {
        let source: Box<dyn Source> = match self {
            Input::Device(name) => Box::new(DeviceSource {
                host: settings.capture.host,
                device: name.clone().or_else(|| settings.capture.device.clone()),
                period: (settings.capture.period > 0.0).then_some(settings.capture.period),
            }),
            Input::File { path, realtime } => Box::new(FileSource {
                path: path.clone(),
                realtime: *realtime,
            }),
            Input::Stdin {
                rate,
                format,
                channels,
            } => Box::new(StdinSource {
                rate: *rate,
                format: *format,
                channels: *channels,
            }),
        };
        let described = source.describe();
        source
            .start(settings.capture.ring_seconds)
            .with_context(|| format!("starting capture from {described}"))
    }

    /// [`open`](Self::open), but a file is opened on a thread of its own, so that a FIFO
    /// whose writer has not come (or has written nothing yet) does not hold up a stop: after
    /// [`OPEN_PATIENCE`] it logs that it is waiting, and a stop returns `None`, leaving the
    /// blocked thread to end with the process.
    pub fn open_until_stopped(
        &self,
        settings: &Settings,
        shutdown: &Shutdown,
    ) -> anyhow::Result<Option<Capture>> {
        let Input::File { path, .. } = self else {
            return self.open(settings).map(Some);
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let (input, settings) = (self.clone(), settings.clone());
        std::thread::Builder::new()
            .name("hark-open".into())
            .spawn(move || {
                let _ = tx.send(input.open(&settings));
            })
            .context("starting the thread that opens the input")?;
        let started = std::time::Instant::now();
        let mut told = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(result) => return result.map(Some),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the thread opening {} ended without a word", path.display())
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if shutdown.is_triggered() {
                tracing::info!(path = %path.display(), "stopped while waiting for the input");
                return Ok(None);
            }
            if !told && started.elapsed() >= OPEN_PATIENCE {
                told = true;
                tracing::warn!(path = %path.display(), "waiting for data on {}", path.display());
                super::systemd::status(&format!("waiting for data on {}", path.display()));
            }
        }
    }

    /// Reopen a lost device with exponential backoff until it is back or a stop is asked for.
    pub fn reopen(
        &self,
        settings: &Settings,
        shutdown: &Shutdown,
        watchdog: &mut dyn Supervisor,
    ) -> Option<Capture> {
        let mut backoff = Duration::from_millis(250);
        let mut attempts = 0u32;
        while !shutdown.is_triggered() {
            attempts += 1;
            match self.open(settings) {
                Ok(c) => {
                    tracing::info!(attempts, device = %c.name, "capture device reopened");
                    return Some(c);
                }
                Err(e) => {
                    tracing::warn!(attempts, retry_in_ms = backoff.as_millis() as u64, error = %crate::logging::error_chain(&e), "capture device not available");
                    super::systemd::status(&format!(
                        "waiting for the capture device (attempt {attempts})"
                    ));
                }
            }
            // Sleep in small steps: keep the watchdog fed and notice a stop at once.
            let step = Duration::from_millis(20);
            if shutdown.sleep(backoff, step, &mut || watchdog.tick()) {
                return None;
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        None
    }
}
