//! Capture: the producer end of the pipeline.
//!
//! Owns the audio sources — an input device through cpal, a decoded file, raw PCM from stdin
//! or any other reader — behind the small [`Source`] trait. Each source turns its audio into
//! f32 mono samples at its own native rate and pushes them into a lock-free SPSC ring
//! ([`ringbuf::HeapRb`]), counting in [`CaptureStats`] what did not fit. The consumer's side of
//! the ring comes back as a [`Capture`], whose drop stops the source.
//!
//! Architecture invariant: the device callback only converts into a preallocated scratch
//! buffer, pushes into the ring and bumps atomics — it never allocates, locks, blocks or logs
//! (the pattern of cpal's `examples/feedback.rs`). This module does no resampling, windowing or
//! feature work: rate conversion belongs to the consumer (`pipeline`), so every source reports
//! its native rate in [`Capture::sample_rate`].
//!
//! The files follow the data: `ring` (the write end every source pushes into), `worker` (the
//! thread a file or reader source runs on, and its stop signal), `device` (cpal, its callback,
//! device loss), `host` (which audio API: `capture.host`), `pulse` (hark's own PulseAudio
//! record stream), `file`, `raw` (PCM from stdin or a reader), `list` (`hark devices`).

mod device;
mod file;
mod host;
mod list;
#[cfg(feature = "pulseaudio")]
mod pulse;
mod raw;
mod ring;
mod worker;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8};
use std::sync::Arc;

use cpal::SampleFormat;
use ringbuf::traits::Observer;
use ringbuf::HeapCons;

use crate::audio::AudioError;

pub use device::DeviceSource;
pub use file::FileSource;
pub use host::HostChoice;
pub use list::{list_all_hosts, list_devices, DeviceInfo, HostDevices};
pub use raw::{ReaderSource, StdinSource};
pub use ring::{Arrival, RingSink};
pub use worker::{OnDrop, StopSignal};

use worker::Worker;

/// Result alias for this module.
pub type Result<T, E = CaptureError> = std::result::Result<T, E>;

/// Why a source could not be started.
///
/// Like `audio::AudioError`, each message says what failed, on what, and (where there is a
/// choice) what to do, with the cause included, so it can be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// There is no usable default capture device (no sound card, or ALSA's `default` cannot be
    /// opened). Recover by naming a device or by reading a file or stdin instead.
    #[error(
        "no audio capture device found; use --input FILE to read a file or --input - to read \
         raw PCM from stdin, or --device NAME (see `hark devices`)"
    )]
    NoDevice,
    /// `--device` matched no capture device. The message lists the ones that exist.
    #[error(
        "no capture device matches {query:?}; available capture devices: {available} \
         (see `hark devices`)"
    )]
    DeviceNotFound {
        query: String,
        /// Comma-separated `id (name)` list, or "none".
        available: String,
    },
    /// The audio host could not list its devices (on Linux: ALSA is not working at all).
    #[error("cannot list audio capture devices: {0}")]
    Enumerate(#[source] cpal::Error),
    /// `capture.host` names a host this binary was built without.
    #[error(
        "capture.host = {0:?}: this hark was built without that host (cargo feature `{0}`); \
         use \"auto\" or \"alsa\""
    )]
    HostNotBuilt(HostChoice),
    /// The host named by `capture.host` is not running or refused us (no sound server).
    #[error(
        "cannot use audio host {host}: {source}; is its sound server running for this user? \
         (capture.host = \"auto\" falls back to ALSA)"
    )]
    Host {
        host: HostChoice,
        #[source]
        source: cpal::Error,
    },
    /// The device exists but would not report an input configuration (busy, permission, …).
    #[error(
        "cannot query the input configuration of capture device {device:?}: {source}; check \
         that no other program holds it and that you may use audio devices (the `audio` group)"
    )]
    DeviceConfig {
        device: String,
        #[source]
        source: cpal::Error,
    },
    /// The device's default input format is one hark cannot convert (DSD).
    #[error(
        "capture device {device:?} delivers {format} samples, which hark cannot convert; pick \
         another device (e.g. a plughw: one, which converts)"
    )]
    UnsupportedFormat {
        device: String,
        format: SampleFormat,
    },
    /// cpal refused to build the input stream with the chosen configuration.
    #[error("cannot open a capture stream on {device:?} with {config}: {source}")]
    BuildStream {
        device: String,
        config: String,
        #[source]
        source: cpal::Error,
    },
    /// The stream was built but would not start.
    #[error("cannot start the capture stream on {device:?}: {source}")]
    PlayStream {
        device: String,
        #[source]
        source: cpal::Error,
    },
    /// The input file could not be read or decoded; the message names the file.
    #[error(transparent)]
    Decode(#[from] AudioError),
    /// Raw PCM input was described with an impossible rate or channel count.
    #[error("invalid raw PCM input: {0}")]
    RawInput(String),
    /// The ring length asked for is not a positive, finite number of seconds.
    #[error("invalid ring capacity {0} s; it must be a positive, finite number of seconds")]
    RingCapacity(f32),
    /// The OS would not give us a thread for the source.
    #[error("cannot start the capture thread for {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: io::Error,
    },
    /// The source's thread died before it reported whether the stream started (it panicked;
    /// the panic message has been printed).
    #[error("the capture thread for {0} stopped before the stream started")]
    ThreadExited(String),
}

/// Counters shared between a source and the consumer. Atomics only, so the device callback can
/// update them without locking; all counts are in mono samples.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Samples dropped because the ring was full: the consumer fell behind real time.
    pub overruns: AtomicU64,
    /// Samples that made it into the ring.
    pub delivered: AtomicU64,
    /// The source has nothing more to give (end of file or stdin, or a read error there).
    /// Never set by a device: a device ends only by failing, see `device_lost`.
    pub ended: AtomicBool,
    /// Errors reported while running: cpal stream errors (including xruns it recovered from),
    /// read errors on stdin.
    pub errors: AtomicU64,
    /// The device went away or its stream became invalid; it will deliver nothing more until
    /// it is opened again. Set by the cpal error callback so a supervisor can reopen it.
    pub device_lost: AtomicBool,
    /// Kind of the latest cpal stream error, encoded by `error_kind_code` (0 = none yet).
    last_error: AtomicU8,
}

/// A place audio comes from. Starting it hands back the consumer's side of its ring.
pub trait Source: Send {
    /// Short human description for logs ("default device", "file x.wav", "stdin (s16le, …)").
    fn describe(&self) -> String;
    /// Starts producing into a ring of `ring_capacity_seconds` at the source's native rate.
    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture>;
}

/// The consumer's side of a running source. Dropping it stops the source (and, for a device,
/// closes the stream), so keep it alive as long as you read from `consumer`.
pub struct Capture {
    /// Mono f32 samples at `sample_rate`, oldest first.
    pub consumer: HeapCons<f32>,
    /// When the samples arrived, one mark per push, oldest first.
    pub arrivals: HeapCons<Arrival>,
    pub stats: Arc<CaptureStats>,
    /// The source's native rate; the consumer resamples if it needs another.
    pub sample_rate: u32,
    /// What is being captured (device name, file path, "stdin"), for logs and status.
    pub name: String,
    _worker: Worker,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("name", &self.name)
            .field("sample_rate", &self.sample_rate)
            .field("buffered", &self.consumer.occupied_len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}
