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

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample, SupportedBufferSize};
use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};
use tracing::{debug, info, warn};

use crate::audio::{self, AudioError, RawFormat};

/// File and reader sources push in blocks of this length, like a device with 10 ms periods,
/// so the consumer sees the same granularity whatever the source.
const CHUNK: Duration = Duration::from_millis(10);

/// How long a lossless (non-realtime) source waits before retrying when the ring is full. Short
/// enough not to starve a fast consumer, long enough not to spin.
const FULL_RING_BACKOFF: Duration = Duration::from_millis(2);

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

impl CaptureStats {
    /// Kind of the most recent stream error the device reported, if any.
    pub fn last_error_kind(&self) -> Option<cpal::ErrorKind> {
        error_kind_from_code(self.last_error.load(Ordering::Relaxed))
    }

    /// Records a cpal stream error. Only atomics: it runs on cpal's stream thread.
    fn record_stream_error(&self, kind: cpal::ErrorKind) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.last_error
            .store(error_kind_code(kind), Ordering::Relaxed);
        if matches!(
            kind,
            cpal::ErrorKind::DeviceNotAvailable
                | cpal::ErrorKind::StreamInvalidated
                | cpal::ErrorKind::BackendError
        ) {
            // The stream is dead, not glitching: a removed PulseAudio source shows up as a
            // storm of BackendError (hundreds of thousands a second) and never recovers.
            // Reopening is the way back; a stream that was only glitching costs one reopen.
            self.device_lost.store(true, Ordering::Release);
        }
    }
}

/// The write end a source pushes into: the ring's producer and the shared counters.
pub struct RingSink {
    producer: HeapProd<f32>,
    stats: Arc<CaptureStats>,
    /// When samples entered the ring, for the consumer's latency figures.
    arrivals: HeapProd<Arrival>,
    /// Samples pushed so far (the producer's own count; `stats.delivered` is for others).
    pushed: u64,
}

/// When a push put samples into the capture ring: after it, the ring had received `end`
/// samples in all, and the wall clock read `wall_us` microseconds since the Unix epoch.
/// The consumer maps a window's newest sample to the push that brought it, so a prediction can
/// carry the time its audio arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub end: u64,
    pub wall_us: u64,
}

/// Arrival marks the ring keeps for the consumer: about 2.5 s of 10 ms device periods. When
/// the consumer does not drain them (it is rebuilding), newer marks are dropped, never samples.
const ARRIVAL_MARKS: usize = 256;

impl RingSink {
    /// A ring holding `capacity_samples` mono samples (at least one), split into this sink
    /// and the consumer's end.
    pub fn new(capacity_samples: usize) -> (RingSink, HeapCons<f32>, HeapCons<Arrival>) {
        let (producer, consumer) = HeapRb::<f32>::new(capacity_samples.max(1)).split();
        let (arrivals, arrivals_consumer) = HeapRb::<Arrival>::new(ARRIVAL_MARKS).split();
        let sink = RingSink {
            producer,
            stats: Arc::new(CaptureStats::default()),
            arrivals,
            pushed: 0,
        };
        (sink, consumer, arrivals_consumer)
    }

    /// The counters this sink updates, to hand to the consumer.
    pub fn stats(&self) -> &Arc<CaptureStats> {
        &self.stats
    }

    /// Pushes what fits and counts the rest as overruns, as a device does when nobody keeps up.
    /// Returns how many samples went in. Never allocates, locks, blocks or logs, so it is safe
    /// in an audio callback.
    #[inline]
    pub fn push(&mut self, mono: &[f32]) -> usize {
        let pushed = self.push_some(mono);
        let lost = mono.len() - pushed;
        if lost > 0 {
            self.stats
                .overruns
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        pushed
    }

    /// Pushes what fits and returns how many samples went in; the rest is the caller's to
    /// retry and is not counted as an overrun. For lossless sources that may wait.
    #[inline]
    pub fn push_some(&mut self, mono: &[f32]) -> usize {
        let pushed = self.producer.push_slice(mono);
        if pushed > 0 {
            self.stats
                .delivered
                .fetch_add(pushed as u64, Ordering::Relaxed);
            self.pushed += pushed as u64;
            // The realtime clock is a vDSO read: no syscall, lock or allocation.
            let wall_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            let _ = self.arrivals.try_push(Arrival {
                end: self.pushed,
                wall_us,
            });
        }
        pushed
    }

    /// Free room in the ring, in samples.
    pub fn vacant(&self) -> usize {
        self.producer.vacant_len()
    }
}

/// Tells a source's thread that its [`Capture`] was dropped.
#[derive(Debug, Clone)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// True once the consumer has dropped the [`Capture`].
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sleeps until `deadline`; returns `false` as soon as a stop is requested instead.
    /// Must be called on the source's own thread: the guard unparks that thread on stop, so a
    /// stop never waits out the sleep.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.is_requested() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::park_timeout(deadline - now);
        }
    }
}

/// Stops a source's thread when the [`Capture`] goes away.
/// How long dropping a `Capture` waits for its thread.
const WORKER_JOIN_TIMEOUT: Duration = Duration::from_secs(1);

struct Worker {
    stop: StopSignal,
    handle: Option<JoinHandle<()>>,
    /// False for threads that may sit in a `read()` nothing can interrupt (stdin): joining
    /// those could hang shutdown, so they are left to exit after their next read returns.
    join: bool,
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.0.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            if self.join {
                // A device thread can hang in the driver while it drops its stream (a killed
                // sound server leaves alsa-lib's pulse plugin waiting on a lock forever). Wait
                // a bounded time, then leave it: shutdown and reopening must not hang on it.
                let deadline = Instant::now() + WORKER_JOIN_TIMEOUT;
                while !handle.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if handle.is_finished() {
                    // A panic in the worker has already been printed by the panic hook.
                    let _ = handle.join();
                } else {
                    tracing::warn!("capture thread did not stop in time; leaving it behind");
                }
            }
        }
    }
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

impl Capture {
    /// Runs `body` on a thread of its own, handing it the write end of a new ring of
    /// `ring_capacity_seconds` at `sample_rate`. Dropping the returned `Capture` signals the stop
    /// and joins the thread, so `body` must check the signal (or use
    /// [`StopSignal::sleep_until`]) while it waits. The building block for sources that are not
    /// driven by a device callback.
    pub fn spawn<F>(
        name: String,
        sample_rate: u32,
        ring_capacity_seconds: f32,
        body: F,
    ) -> Result<Capture>
    where
        F: FnOnce(RingSink, StopSignal) + Send + 'static,
    {
        Self::spawn_inner(name, sample_rate, ring_capacity_seconds, true, body)
    }

    /// Like [`Capture::spawn`], but the thread is not joined on drop, only signalled: for bodies
    /// that block in reads nothing can interrupt. The thread exits after its next read returns.
    pub fn spawn_detached<F>(
        name: String,
        sample_rate: u32,
        ring_capacity_seconds: f32,
        body: F,
    ) -> Result<Capture>
    where
        F: FnOnce(RingSink, StopSignal) + Send + 'static,
    {
        Self::spawn_inner(name, sample_rate, ring_capacity_seconds, false, body)
    }

    fn spawn_inner<F>(
        name: String,
        sample_rate: u32,
        ring_capacity_seconds: f32,
        join: bool,
        body: F,
    ) -> Result<Capture>
    where
        F: FnOnce(RingSink, StopSignal) + Send + 'static,
    {
        let capacity = ring_capacity(ring_capacity_seconds, sample_rate)?;
        let (sink, consumer, arrivals) = RingSink::new(capacity);
        let stats = Arc::clone(sink.stats());
        let stop = StopSignal(Arc::new(AtomicBool::new(false)));
        let thread_stop = stop.clone();
        let handle = thread::Builder::new()
            .name("hark-capture".into())
            .spawn(move || body(sink, thread_stop))
            .map_err(|source| CaptureError::Spawn {
                what: name.clone(),
                source,
            })?;
        Ok(Capture {
            consumer,
            arrivals,
            stats,
            sample_rate,
            name,
            _worker: Worker {
                stop,
                handle: Some(handle),
                join,
            },
        })
    }
}

/// A place audio comes from. Starting it hands back the consumer's side of its ring.
pub trait Source: Send {
    /// Short human description for logs ("default device", "file x.wav", "stdin (s16le, …)").
    fn describe(&self) -> String;
    /// Starts producing into a ring of `ring_capacity_seconds` at the source's native rate.
    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture>;
}

fn ring_capacity(seconds: f32, sample_rate: u32) -> Result<usize> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(CaptureError::RingCapacity(seconds));
    }
    // Rounded, not ceiled: 0.1_f32 is a hair above 0.1, and 0.1 s at 16 kHz should be 1600.
    Ok((f64::from(seconds) * f64::from(sample_rate))
        .round()
        .max(1.0) as usize)
}

// ---------------------------------------------------------------------------------------------
// Devices

/// An audio input device opened through cpal (ALSA on Linux).
#[derive(Debug, Clone, Default)]
pub struct DeviceSource {
    /// Device id (e.g. `hw:CARD=USB,DEV=0`) or name, or a case-insensitive substring of
    /// either; `None` opens the default input device.
    pub device: Option<String>,
    /// Period to ask the device for, in seconds (clamped to what it supports; its default if
    /// it refuses); `None` keeps the device's default.
    pub period: Option<f64>,
}

impl Source for DeviceSource {
    fn describe(&self) -> String {
        match &self.device {
            Some(name) => format!("device {name:?}"),
            None => "default device".to_owned(),
        }
    }

    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture> {
        // Validate before touching the device so a bad setting fails the same way everywhere.
        ring_capacity(ring_capacity_seconds, 1)?;
        let stop = StopSignal(Arc::new(AtomicBool::new(false)));
        let thread_stop = stop.clone();
        let (opened_tx, opened_rx) = mpsc::sync_channel(1);
        let query = self.device.clone();
        let period = self.period;
        // cpal's `Stream` need not be `Send`, so one thread builds it, owns it and drops it.
        let handle = thread::Builder::new()
            .name("hark-capture".into())
            .spawn(move || {
                let stream = match open_stream(query.as_deref(), ring_capacity_seconds, period) {
                    Ok((stream, opened)) => {
                        // The receiver waits for this message, so the send cannot fail.
                        let _ = opened_tx.send(Ok(opened));
                        stream
                    }
                    Err(err) => {
                        let _ = opened_tx.send(Err(err));
                        return;
                    }
                };
                while !thread_stop.is_requested() {
                    thread::park();
                }
                drop(stream);
            })
            .map_err(|source| CaptureError::Spawn {
                what: self.describe(),
                source,
            })?;
        let worker = Worker {
            stop,
            handle: Some(handle),
            join: true,
        };
        match opened_rx.recv() {
            Ok(Ok(opened)) => Ok(Capture {
                consumer: opened.consumer,
                arrivals: opened.arrivals,
                stats: opened.stats,
                sample_rate: opened.sample_rate,
                name: opened.name,
                _worker: worker,
            }),
            Ok(Err(err)) => Err(err),
            Err(mpsc::RecvError) => Err(CaptureError::ThreadExited(self.describe())),
        }
    }
}

/// What the device thread reports back once its stream is playing.
struct Opened {
    consumer: HeapCons<f32>,
    arrivals: HeapCons<Arrival>,
    stats: Arc<CaptureStats>,
    sample_rate: u32,
    name: String,
}

fn open_stream(
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
) -> Result<(cpal::Stream, Opened)> {
    let host = cpal::default_host();
    let device = select_device(&host, query)?;
    let name = device_id(&device);
    let supported = device.default_input_config().map_err(|source| {
        // Without a sound card ALSA still offers `default`, which then fails to open.
        if query.is_none() && means_absent(source.kind()) {
            debug!(error = %source, "default capture device cannot be opened");
            CaptureError::NoDevice
        } else {
            CaptureError::DeviceConfig {
                device: name.clone(),
                source,
            }
        }
    })?;
    let config = supported.config();
    let sample_rate = config.sample_rate;
    let scratch = scratch_frames(supported.buffer_size(), sample_rate);
    let format = supported.sample_format();
    let describe_config = format!(
        "{} ch, {} Hz, {format}",
        config.channels, config.sample_rate
    );
    // Each try gets a fresh ring: a failed build has consumed the sink it was given.
    let attempt = |config: &cpal::StreamConfig| {
        let (sink, consumer, arrivals) =
            RingSink::new(ring_capacity(ring_capacity_seconds, sample_rate)?);
        let stats = Arc::clone(sink.stats());
        let stream = match format {
            SampleFormat::I8 => build::<i8>(&device, config, sink, scratch),
            SampleFormat::I16 => build::<i16>(&device, config, sink, scratch),
            SampleFormat::I24 => build::<cpal::I24>(&device, config, sink, scratch),
            SampleFormat::I32 => build::<i32>(&device, config, sink, scratch),
            SampleFormat::I64 => build::<i64>(&device, config, sink, scratch),
            SampleFormat::U8 => build::<u8>(&device, config, sink, scratch),
            SampleFormat::U16 => build::<u16>(&device, config, sink, scratch),
            SampleFormat::U24 => build::<cpal::U24>(&device, config, sink, scratch),
            SampleFormat::U32 => build::<u32>(&device, config, sink, scratch),
            SampleFormat::U64 => build::<u64>(&device, config, sink, scratch),
            SampleFormat::F32 => build::<f32>(&device, config, sink, scratch),
            SampleFormat::F64 => build::<f64>(&device, config, sink, scratch),
            format => {
                return Err(CaptureError::UnsupportedFormat {
                    device: name.clone(),
                    format,
                })
            }
        }
        .map_err(|source| CaptureError::BuildStream {
            device: name.clone(),
            config: describe_config.clone(),
            source,
        })?;
        Ok((stream, consumer, arrivals, stats))
    };
    let preferred = preferred_period(supported.buffer_size(), sample_rate, period).map(|frames| {
        let mut c = config;
        c.buffer_size = cpal::BufferSize::Fixed(frames);
        c
    });
    let (stream, consumer, arrivals, stats) = match preferred {
        Some(c) => attempt(&c).or_else(|err| {
            debug!(error = %err, "device refused the preferred period; using its default");
            attempt(&config)
        })?,
        None => attempt(&config)?,
    };
    stream.play().map_err(|source| CaptureError::PlayStream {
        device: name.clone(),
        source,
    })?;
    info!(
        device = %name,
        config = %describe_config,
        period_frames = ?stream.buffer_size().ok(),
        scratch_frames = scratch,
        "capture stream started"
    );
    Ok((
        stream,
        Opened {
            consumer,
            arrivals,
            stats,
            sample_rate,
            name,
        },
    ))
}

/// Errors that mean "there is no such device here" rather than "it is there but unhappy".
fn means_absent(kind: cpal::ErrorKind) -> bool {
    matches!(
        kind,
        cpal::ErrorKind::DeviceNotAvailable
            | cpal::ErrorKind::UnsupportedOperation
            | cpal::ErrorKind::HostUnavailable
    )
}

/// Frames of scratch space for the callback: the largest period the device allows, but at
/// most one second, because plugins report absurd maxima (ALSA's `file` plugin: 2^28 - 1).
/// Larger callbacks are mixed in pieces of this size rather than by allocating.
/// The device period hark asks for (`capture.period`, 50 ms by default), in frames, within
/// what the device supports (None when it says nothing or no period is asked for: then its
/// default stands; a device that refuses it gets its default too).
/// Short default periods cost dearly for nothing a 1 s window needs: through ALSA's pulse
/// plugin the default 512-frame period kept hark at 45% of a core, the plugin's largest, 1,600
/// frames, at 15% (BENCHMARKS.md). A period adds at most its length to the time a sound takes
/// to reach the ring.
fn preferred_period(
    buffer: &SupportedBufferSize,
    sample_rate: u32,
    seconds: Option<f64>,
) -> Option<u32> {
    let want = ((f64::from(sample_rate) * seconds?).round() as u32).max(1);
    match *buffer {
        SupportedBufferSize::Range { min, max } if min <= max && max > 0 => {
            Some(want.clamp(min.max(1), max))
        }
        _ => None,
    }
}

fn scratch_frames(buffer: &SupportedBufferSize, sample_rate: u32) -> usize {
    let cap = (sample_rate as usize).max(1024);
    match *buffer {
        SupportedBufferSize::Range { max, .. } if max > 0 => (max as usize).min(cap),
        _ => cap,
    }
}

fn build<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut sink: RingSink,
    scratch_frames: usize,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + Send + 'static,
    f32: FromSample<T>,
{
    let channels = usize::from(config.channels.max(1));
    // Allocated here, before the stream starts, so the callback never has to.
    let mut scratch = vec![0.0f32; scratch_frames.max(1)];
    let stats = Arc::clone(sink.stats());
    let on_data = move |data: &[T], _: &cpal::InputCallbackInfo| {
        for block in data.chunks(scratch.len() * channels) {
            let frames = mix_to_mono(block, channels, &mut scratch);
            sink.push(&scratch[..frames]);
        }
    };
    let on_error = move |err: cpal::Error| stats.record_stream_error(err.kind());
    device.build_input_stream::<T, _, _>(*config, on_data, on_error, None)
}

/// Averages each interleaved frame of `interleaved` into one f32 of `out`; returns how many
/// frames were written (limited by `out`'s length; a trailing partial frame is ignored).
/// Never allocates: it runs in the device callback.
fn mix_to_mono<T>(interleaved: &[T], channels: usize, out: &mut [f32]) -> usize
where
    T: Sample,
    f32: FromSample<T>,
{
    let scale = 1.0 / channels as f32;
    let mut frames = 0;
    for (slot, frame) in out.iter_mut().zip(interleaved.chunks_exact(channels)) {
        let sum: f32 = frame.iter().map(|s| s.to_sample::<f32>()).sum();
        *slot = sum * scale;
        frames += 1;
    }
    frames
}

fn select_device(host: &cpal::Host, query: Option<&str>) -> Result<cpal::Device> {
    let Some(query) = query else {
        return host.default_input_device().ok_or(CaptureError::NoDevice);
    };
    let devices: Vec<cpal::Device> = host
        .input_devices()
        .map_err(CaptureError::Enumerate)?
        .collect();
    let named: Vec<(String, String)> = devices
        .iter()
        .map(|d| (device_id(d), device_name(d)))
        .collect();
    let wanted = query.to_lowercase();
    // Exact id, then exact name, then a substring of either: a precise name always wins over
    // a device that merely contains it (`hw:CARD=X` vs `plughw:CARD=X`).
    let pick = named
        .iter()
        .position(|(id, _)| id == query)
        .or_else(|| {
            named
                .iter()
                .position(|(_, name)| name.to_lowercase() == wanted)
        })
        .or_else(|| {
            named.iter().position(|(id, name)| {
                id.to_lowercase().contains(&wanted) || name.to_lowercase().contains(&wanted)
            })
        });
    match pick {
        Some(index) => {
            debug!(query, device = %named[index].0, "selected capture device");
            Ok(devices
                .into_iter()
                .nth(index)
                .expect("index came from the same list"))
        }
        None => {
            let available = if named.is_empty() {
                "none".to_owned()
            } else {
                named
                    .iter()
                    .map(|(id, name)| describe_pair(id, name))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Err(CaptureError::DeviceNotFound {
                query: query.to_owned(),
                available,
            })
        }
    }
}

fn describe_pair(id: &str, name: &str) -> String {
    if id == name {
        id.to_owned()
    } else {
        format!("{id} ({name})")
    }
}

/// The host's identifier of a device (for ALSA the PCM name, e.g. `hw:CARD=USB,DEV=0`); what
/// `--device` matches exactly.
fn device_id(device: &cpal::Device) -> String {
    match device.id() {
        Ok(id) => id.id().to_owned(),
        Err(_) => device_name(device),
    }
}

/// The human name (first line of the description).
fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(desc) => desc.name().to_owned(),
        Err(_) => String::from("(unnamed device)"),
    }
}

/// A capture device and what it can do, for `hark devices`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceInfo {
    /// What `--device` matches exactly (ALSA PCM name).
    pub id: String,
    /// Human name from the host's description.
    pub name: String,
    /// This is the device used when no `--device` is given.
    pub is_default: bool,
    /// Channel counts the device accepts, ascending.
    pub channels: Vec<u16>,
    /// Lowest and highest sample rate over all configurations (0 when unknown).
    pub min_rate: u32,
    pub max_rate: u32,
    /// Sample formats the device can deliver, ascending in cpal's order.
    pub sample_formats: Vec<SampleFormat>,
    /// Why the configurations could not be read (the device is busy, say); the fields above
    /// are then empty.
    pub unavailable: Option<String>,
}

impl fmt::Display for DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", describe_pair(&self.id, &self.name))?;
        if self.is_default {
            f.write_str("  [default]")?;
        }
        if let Some(reason) = &self.unavailable {
            return write!(f, "\n    unavailable: {reason}");
        }
        let formats: Vec<String> = self.sample_formats.iter().map(|s| s.to_string()).collect();
        let rates = if self.min_rate == self.max_rate {
            format!("{} Hz", self.min_rate)
        } else {
            format!("{}-{} Hz", self.min_rate, self.max_rate)
        };
        write!(
            f,
            "\n    channels {}; rates {rates}; formats {}",
            format_counts(&self.channels),
            formats.join(" ")
        )
    }
}

/// "1-8" for a contiguous run, "1, 2, 6" otherwise.
fn format_counts(counts: &[u16]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < counts.len() {
        let start = counts[i];
        let mut end = start;
        while i + 1 < counts.len() && counts[i + 1] == end + 1 {
            end += 1;
            i += 1;
        }
        parts.push(if start == end {
            start.to_string()
        } else if end == start + 1 {
            format!("{start}, {end}")
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Lists the capture devices the audio host knows, with what each supports.
///
/// Devices that turn out not to support capture at all are left out; devices that cannot be
/// opened right now are listed with the reason in [`DeviceInfo::unavailable`].
pub fn list_devices() -> Result<Vec<DeviceInfo>> {
    let host = cpal::default_host();
    let default_id = host.default_input_device().map(|d| device_id(&d));
    let mut infos = Vec::new();
    for device in host.input_devices().map_err(CaptureError::Enumerate)? {
        let id = device_id(&device);
        let mut info = DeviceInfo {
            is_default: default_id.as_deref() == Some(id.as_str()),
            name: device_name(&device),
            id,
            channels: Vec::new(),
            min_rate: 0,
            max_rate: 0,
            sample_formats: Vec::new(),
            unavailable: None,
        };
        match device.supported_input_configs() {
            Ok(ranges) => {
                let ranges: Vec<_> = ranges.collect();
                if ranges.is_empty() {
                    continue;
                }
                let mut channels: Vec<u16> = ranges.iter().map(|r| r.channels()).collect();
                channels.sort_unstable();
                channels.dedup();
                let mut formats: Vec<SampleFormat> =
                    ranges.iter().map(|r| r.sample_format()).collect();
                formats.sort_unstable();
                formats.dedup();
                info.channels = channels;
                info.sample_formats = formats;
                info.min_rate = ranges
                    .iter()
                    .map(|r| r.min_sample_rate())
                    .min()
                    .unwrap_or(0);
                info.max_rate = ranges
                    .iter()
                    .map(|r| r.max_sample_rate())
                    .max()
                    .unwrap_or(0);
            }
            // An output-only PCM that ALSA's hints list without a direction.
            Err(err) if err.kind() == cpal::ErrorKind::UnsupportedOperation => continue,
            Err(err) => info.unavailable = Some(err.to_string()),
        }
        infos.push(info);
    }
    Ok(infos)
}

fn error_kind_code(kind: cpal::ErrorKind) -> u8 {
    use cpal::ErrorKind as K;
    match kind {
        K::DeviceBusy => 1,
        K::DeviceChanged => 2,
        K::DeviceNotAvailable => 3,
        K::HostUnavailable => 4,
        K::InvalidInput => 5,
        K::PermissionDenied => 6,
        K::RealtimeDenied => 7,
        K::ResourceExhausted => 8,
        K::StreamInvalidated => 9,
        K::UnsupportedConfig => 10,
        K::UnsupportedOperation => 11,
        K::Xrun => 12,
        K::BackendError => 13,
        // `Other` and kinds added in later cpal versions.
        _ => 14,
    }
}

fn error_kind_from_code(code: u8) -> Option<cpal::ErrorKind> {
    use cpal::ErrorKind as K;
    Some(match code {
        0 => return None,
        1 => K::DeviceBusy,
        2 => K::DeviceChanged,
        3 => K::DeviceNotAvailable,
        4 => K::HostUnavailable,
        5 => K::InvalidInput,
        6 => K::PermissionDenied,
        7 => K::RealtimeDenied,
        8 => K::ResourceExhausted,
        9 => K::StreamInvalidated,
        10 => K::UnsupportedConfig,
        11 => K::UnsupportedOperation,
        12 => K::Xrun,
        13 => K::BackendError,
        _ => K::Other,
    })
}

// ---------------------------------------------------------------------------------------------
// Files and readers

/// An audio file, decoded a block at a time as it is fed to the ring, so a long file costs no
/// more memory than a short one: the ring plus one block.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    /// Pace delivery at real time, as a device would (and count overruns when the consumer
    /// falls behind). When false, deliver as fast as the consumer drains the ring, waiting
    /// whenever it is full, so no sample is lost: for offline runs and tests.
    pub realtime: bool,
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture> {
        // Open (which decodes the first block) on the caller's thread, so a missing or broken
        // file fails `start` itself.
        let reader = audio::AudioReader::open(&self.path)?;
        let realtime = self.realtime;
        Capture::spawn(
            self.path.display().to_string(),
            reader.sample_rate(),
            ring_capacity_seconds,
            move |mut sink, stop| {
                if feed_file(&mut sink, reader, realtime, &stop) {
                    sink.stats().ended.store(true, Ordering::Release);
                }
            },
        )
    }
}

/// Decodes and feeds the file in 10 ms blocks; returns false if stopped before the end. A
/// decoding error partway through ends the stream there, as if the file ended: what came before
/// it has been delivered, and the consumer winds down as it does at any end of input.
fn feed_file(
    sink: &mut RingSink,
    mut reader: audio::AudioReader,
    realtime: bool,
    stop: &StopSignal,
) -> bool {
    let sample_rate = reader.sample_rate();
    let block = chunk_frames(sample_rate);
    let mut piece = Vec::with_capacity(block);
    let start = Instant::now();
    let mut sent = 0usize;
    loop {
        piece.clear();
        match reader.read_mono(&mut piece, block) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) => {
                sink.stats().errors.fetch_add(1, Ordering::Relaxed);
                warn!(
                    path = %reader.path().display(),
                    samples = sent,
                    error = %err,
                    "decoding failed partway through the file; treating it as the end"
                );
                return true;
            }
        }
        if realtime {
            // A device hands over a block once it has been recorded. The deadline comes from
            // the sample count, not from the previous wake-up, so late wake-ups never add up.
            let due = (sent + piece.len()) as f64 / f64::from(sample_rate.max(1));
            if !stop.sleep_until(start + Duration::from_secs_f64(due)) {
                return false;
            }
            sink.push(&piece);
        } else if !push_all(sink, &piece, stop) {
            return false;
        }
        sent += piece.len();
    }
}

fn chunk_frames(sample_rate: u32) -> usize {
    ((u128::from(sample_rate) * CHUNK.as_millis() / 1000) as usize).max(1)
}

/// Pushes all of `samples`, waiting while the ring is full; false if stopped first.
fn push_all(sink: &mut RingSink, mut samples: &[f32], stop: &StopSignal) -> bool {
    loop {
        samples = &samples[sink.push_some(samples)..];
        if samples.is_empty() {
            return true;
        }
        if !stop.sleep_until(Instant::now() + FULL_RING_BACKOFF) {
            return false;
        }
    }
}

/// Raw interleaved PCM read from standard input (`--input -`).
///
/// Reading is lossless: when the ring is full the reader waits, and the pipe pushes back on
/// whoever writes it (a live recorder upstream then reports its own overruns).
#[derive(Debug, Clone, Copy)]
pub struct StdinSource {
    pub rate: u32,
    pub format: RawFormat,
    pub channels: u16,
}

impl StdinSource {
    /// The same source reading from any reader instead of stdin (a pipe, a child's stdout, a
    /// `Cursor` in tests).
    pub fn from_reader<R: Read + Send + 'static>(
        reader: R,
        rate: u32,
        format: RawFormat,
        channels: u16,
    ) -> ReaderSource<R> {
        ReaderSource {
            reader,
            rate,
            format,
            channels,
            name: "reader".to_owned(),
        }
    }
}

impl Source for StdinSource {
    fn describe(&self) -> String {
        format!(
            "stdin ({}, {} ch, {} Hz)",
            self.format, self.channels, self.rate
        )
    }

    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture> {
        let mut source =
            StdinSource::from_reader(io::stdin(), self.rate, self.format, self.channels);
        source.name = "stdin".to_owned();
        Box::new(source).start(ring_capacity_seconds)
    }
}

/// Raw interleaved PCM from any reader; what [`StdinSource`] runs on.
pub struct ReaderSource<R> {
    pub reader: R,
    pub rate: u32,
    pub format: RawFormat,
    pub channels: u16,
    /// Shown as [`Capture::name`].
    pub name: String,
}

impl<R: Read + Send + 'static> Source for ReaderSource<R> {
    fn describe(&self) -> String {
        format!(
            "{} ({}, {} ch, {} Hz)",
            self.name, self.format, self.channels, self.rate
        )
    }

    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture> {
        if self.rate == 0 {
            return Err(CaptureError::RawInput(
                "the sample rate must be at least 1 Hz".to_owned(),
            ));
        }
        if self.channels == 0 {
            return Err(CaptureError::RawInput(
                "the channel count must be at least 1".to_owned(),
            ));
        }
        let ReaderSource {
            reader,
            rate,
            format,
            channels,
            name,
        } = *self;
        let thread_name = name.clone();
        // Detached: a read on an idle pipe cannot be interrupted, and must not hang shutdown.
        Capture::spawn_detached(name, rate, ring_capacity_seconds, move |mut sink, stop| {
            feed_raw(
                reader,
                rate,
                format,
                channels,
                &thread_name,
                &mut sink,
                &stop,
            );
        })
    }
}

/// Reads raw frames until EOF, keeping partial frames across reads; sets `ended` at the end.
fn feed_raw<R: Read>(
    mut reader: R,
    rate: u32,
    format: RawFormat,
    channels: u16,
    name: &str,
    sink: &mut RingSink,
    stop: &StopSignal,
) {
    let frame_bytes = format.bytes_per_sample() * usize::from(channels);
    let mut buf = vec![0u8; chunk_frames(rate) * frame_bytes];
    let mut filled = 0;
    let mut interleaved = Vec::with_capacity(chunk_frames(rate) * usize::from(channels));
    loop {
        if stop.is_requested() {
            return;
        }
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                sink.stats().errors.fetch_add(1, Ordering::Relaxed);
                warn!(source = name, error = %err, "raw PCM read failed; treating it as the end");
                break;
            }
        }
        let whole = filled - filled % frame_bytes;
        if whole == 0 {
            continue;
        }
        interleaved.clear();
        format.decode(&buf[..whole], &mut interleaved);
        let mono = audio::downmix(&interleaved, channels);
        if !push_all(sink, &mono, stop) {
            return;
        }
        // Keep the partial frame at the front for the next read to complete.
        buf.copy_within(whole..filled, 0);
        filled -= whole;
    }
    if filled > 0 {
        warn!(
            source = name,
            bytes = filled,
            frame_bytes,
            "raw PCM ended in the middle of a frame; the partial frame was dropped"
        );
    }
    sink.stats().ended.store(true, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::traits::Consumer;

    #[test]
    fn push_counts_what_does_not_fit_as_overruns() {
        let (mut sink, mut consumer, _arrivals) = RingSink::new(4);
        assert_eq!(sink.push(&[1.0, 2.0, 3.0]), 3);
        assert_eq!(sink.push(&[4.0, 5.0, 6.0]), 1);
        let stats = sink.stats();
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(stats.overruns.load(Ordering::Relaxed), 2);
        let mut out = [0.0; 8];
        assert_eq!(consumer.pop_slice(&mut out), 4);
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn push_some_leaves_the_rest_uncounted() {
        let (mut sink, _consumer, _arrivals) = RingSink::new(2);
        assert_eq!(sink.push_some(&[1.0, 2.0, 3.0]), 2);
        assert_eq!(sink.stats().overruns.load(Ordering::Relaxed), 0);
        assert_eq!(sink.vacant(), 0);
    }

    #[test]
    fn mix_to_mono_averages_channels_and_converts_integers() {
        let mut out = [0.0f32; 4];
        let frames = mix_to_mono(&[i16::MAX, 0, i16::MIN, i16::MIN, 0, 0], 2, &mut out);
        assert_eq!(frames, 3);
        assert!((out[0] - 0.5).abs() < 1e-3, "{out:?}");
        assert!((out[1] + 1.0).abs() < 1e-6, "{out:?}");
        assert_eq!(out[2], 0.0);
    }

    #[test]
    fn mix_to_mono_stops_at_the_scratch_length_and_ignores_a_partial_frame() {
        let mut out = [0.0f32; 2];
        assert_eq!(mix_to_mono(&[0.5f32; 7], 1, &mut out), 2);
        let mut out = [0.0f32; 8];
        assert_eq!(mix_to_mono(&[0.5f32; 7], 2, &mut out), 3);
        assert_eq!(mix_to_mono(&[32768u16, 65535], 1, &mut out), 2);
        assert_eq!(out[0], 0.0);
    }

    #[test]
    fn device_info_display_is_readable() {
        let info = DeviceInfo {
            id: "hw:CARD=USB,DEV=0".into(),
            name: "USB Audio".into(),
            is_default: true,
            channels: vec![1, 2],
            min_rate: 44100,
            max_rate: 48000,
            sample_formats: vec![SampleFormat::I16, SampleFormat::I32],
            unavailable: None,
        };
        assert_eq!(
            info.to_string(),
            "hw:CARD=USB,DEV=0 (USB Audio)  [default]\n    \
             channels 1, 2; rates 44100-48000 Hz; formats i16 i32"
        );
        let busy = DeviceInfo {
            unavailable: Some("busy".into()),
            is_default: false,
            ..info
        };
        assert_eq!(
            busy.to_string(),
            "hw:CARD=USB,DEV=0 (USB Audio)\n    unavailable: busy"
        );
    }

    #[test]
    fn channel_counts_are_shown_as_ranges() {
        assert_eq!(format_counts(&[]), "none");
        assert_eq!(format_counts(&[2]), "2");
        assert_eq!(format_counts(&(1..=64).collect::<Vec<_>>()), "1-64");
        assert_eq!(format_counts(&[1, 2, 4, 6, 7, 8]), "1, 2, 4, 6-8");
    }

    #[test]
    fn ring_capacity_rejects_nonsense_and_rounds_to_whole_samples() {
        assert!(matches!(
            ring_capacity(0.0, 48000),
            Err(CaptureError::RingCapacity(_))
        ));
        assert!(ring_capacity(f32::NAN, 48000).is_err());
        assert!(ring_capacity(-1.0, 48000).is_err());
        assert_eq!(ring_capacity(0.5, 48000).unwrap(), 24000);
        assert_eq!(ring_capacity(0.1, 16000).unwrap(), 1600);
        assert_eq!(ring_capacity(1e-9, 48000).unwrap(), 1);
    }

    #[test]
    fn scratch_is_capped_for_plugins_with_absurd_maxima() {
        let huge = SupportedBufferSize::Range {
            min: 1,
            max: u32::MAX,
        };
        assert_eq!(scratch_frames(&huge, 48000), 48000);
        let hw = SupportedBufferSize::Range { min: 64, max: 4096 };
        assert_eq!(scratch_frames(&hw, 48000), 4096);
        assert_eq!(scratch_frames(&SupportedBufferSize::Unknown, 16000), 16000);
    }

    #[test]
    fn error_kinds_round_trip_through_their_codes() {
        let stats = CaptureStats::default();
        assert_eq!(stats.last_error_kind(), None);
        stats.record_stream_error(cpal::ErrorKind::Xrun);
        assert_eq!(stats.last_error_kind(), Some(cpal::ErrorKind::Xrun));
        assert!(!stats.device_lost.load(Ordering::Relaxed));
        stats.record_stream_error(cpal::ErrorKind::DeviceNotAvailable);
        assert_eq!(
            stats.last_error_kind(),
            Some(cpal::ErrorKind::DeviceNotAvailable)
        );
        assert!(stats.device_lost.load(Ordering::Relaxed));
        assert_eq!(stats.errors.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn spawned_source_stops_when_the_capture_is_dropped() {
        let capture = Capture::spawn("forever".into(), 1000, 0.01, |mut sink, stop| {
            // A source that never ends on its own, blocked on a full ring.
            let block = [0.0f32; 10];
            while push_all(&mut sink, &block, &stop) {}
        })
        .unwrap();
        thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        drop(capture);
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    // -----------------------------------------------------------------------------------------
    // File and reader sources against real files and a real child process.

    use std::f32::consts::PI;
    use std::path::Path;
    use std::process::{Command, Stdio};

    fn sine(rate: u32, secs: f32, freq: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * secs).round() as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn write_float_wav(path: &Path, rate: u32, channels: u16, interleaved: &[f32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for &s in interleaved {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }

    /// Waits until the source reports its end, draining the ring into `out` meanwhile.
    fn drain_until_ended(capture: &mut Capture, out: &mut Vec<f32>) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut block = [0.0f32; 512];
        loop {
            let ended = capture.stats.ended.load(Ordering::Acquire);
            let n = capture.consumer.pop_slice(&mut block);
            out.extend_from_slice(&block[..n]);
            if ended && capture.consumer.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "source did not end");
            if n == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    }

    fn wait_until_ended(capture: &Capture) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !capture.stats.ended.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "source did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
    }

    fn zero_crossings_per_second(samples: &[f32], rate: u32) -> f32 {
        let crossings = samples
            .windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count();
        crossings as f32 * rate as f32 / samples.len() as f32
    }

    #[test]
    fn realtime_file_source_is_paced_at_real_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one_second.wav");
        write_float_wav(&path, 16_000, 1, &sine(16_000, 1.0, 440.0, 0.5));
        let source = FileSource {
            path: path.clone(),
            realtime: true,
        };
        assert!(source.describe().contains("one_second.wav"));
        let started = Instant::now();
        let capture = Box::new(source).start(2.0).unwrap();
        assert_eq!(capture.sample_rate, 16_000);
        wait_until_ended(&capture);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(900), "took {elapsed:?}");
        assert_eq!(capture.stats.delivered.load(Ordering::Relaxed), 16_000);
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn realtime_file_source_counts_overruns_like_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("half_second.wav");
        write_float_wav(&path, 16_000, 1, &sine(16_000, 0.5, 440.0, 0.5));
        let source = FileSource {
            path,
            realtime: true,
        };
        // Nobody drains this 100 ms ring.
        let capture = Box::new(source).start(0.1).unwrap();
        wait_until_ended(&capture);
        assert_eq!(capture.stats.delivered.load(Ordering::Relaxed), 1_600);
        assert_eq!(
            capture.stats.overruns.load(Ordering::Relaxed),
            8_000 - 1_600
        );
    }

    #[test]
    fn non_realtime_file_source_delivers_every_sample_through_a_small_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let left = sine(44_100, 2.0, 440.0, 0.5);
        let right = sine(44_100, 2.0, 1000.0, 0.25);
        let interleaved: Vec<f32> = left
            .iter()
            .zip(&right)
            .flat_map(|(l, r)| [*l, *r])
            .collect();
        write_float_wav(&path, 44_100, 2, &interleaved);
        let source = FileSource {
            path,
            realtime: false,
        };
        let mut capture = Box::new(source).start(0.05).unwrap();
        assert_eq!(capture.sample_rate, 44_100);
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        assert_eq!(got, audio::downmix(&interleaved, 2));
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
        assert_eq!(
            capture.stats.delivered.load(Ordering::Relaxed),
            got.len() as u64
        );
    }

    #[test]
    fn dropping_a_blocked_file_source_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.wav");
        write_float_wav(&path, 8_000, 1, &sine(8_000, 5.0, 440.0, 0.5));
        for realtime in [false, true] {
            let source = FileSource {
                path: path.clone(),
                realtime,
            };
            let capture = Box::new(source).start(0.01).unwrap();
            thread::sleep(Duration::from_millis(30));
            let started = Instant::now();
            drop(capture);
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }

    #[test]
    fn missing_file_fails_at_start_and_names_it() {
        let source = FileSource {
            path: PathBuf::from("/nonexistent/hark-test.wav"),
            realtime: false,
        };
        let err = Box::new(source).start(1.0).unwrap_err();
        assert!(matches!(err, CaptureError::Decode(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/hark-test.wav"));
    }

    #[test]
    fn file_with_no_samples_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.wav");
        write_float_wav(&path, 16_000, 1, &[]);
        let source = FileSource {
            path,
            realtime: false,
        };
        let err = Box::new(source).start(1.0).unwrap_err();
        assert!(
            matches!(err, CaptureError::Decode(AudioError::NoSamples { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_decode_error_partway_ends_the_file_stream_after_what_came_before() {
        if Command::new("lame").arg("--version").output().is_err() {
            eprintln!("SKIPPED: needs `lame` to make a damaged MP3");
            return;
        }
        // One MP3 stream followed by a longer one at another rate and channel count: symphonia
        // reads the first, then fails the packets of the second, which fails the file at the
        // end of what it could decode.
        let dir = tempfile::tempdir().unwrap();
        let mut joined = Vec::new();
        for (name, rate, channels, secs) in [("a", "44100", "1", "1"), ("b", "22050", "2", "2")] {
            let wav = dir.path().join(format!("{name}.wav"));
            let mp3 = dir.path().join(format!("{name}.mp3"));
            let made = Command::new("sox")
                .args(["-D", "-n", "-r", rate, "-c", channels])
                .arg(&wav)
                .args(["synth", secs, "sine", "440", "vol", "0.5"])
                .status()
                .expect("run sox (install the `sox` package)");
            assert!(made.success());
            let encoded = Command::new("lame")
                .arg("--quiet")
                .args([&wav, &mp3])
                .status()
                .unwrap();
            assert!(encoded.success());
            joined.extend(std::fs::read(&mp3).unwrap());
        }
        let path = dir.path().join("joined.mp3");
        std::fs::write(&path, joined).unwrap();

        // What decodes before the failure, read straight from the decoder.
        let mut reader = audio::AudioReader::open(&path).unwrap();
        let mut before = Vec::new();
        let err = loop {
            match reader.read_mono(&mut before, 4_096) {
                Ok(0) => panic!("the joined MP3 was expected to fail partway"),
                Ok(_) => {}
                Err(err) => break err,
            }
        };
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
        assert!(
            before.len() >= 40_000,
            "{} samples before the error",
            before.len()
        );

        let source = FileSource {
            path,
            realtime: false,
        };
        let mut capture = Box::new(source).start(0.05).unwrap();
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        assert_eq!(got, before);
        assert_eq!(capture.stats.errors.load(Ordering::Relaxed), 1);
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
    }

    /// Hands out at most `limit` bytes per read, so frames arrive split across reads.
    struct Trickle<R> {
        inner: R,
        limit: usize,
    }

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.limit);
            self.inner.read(&mut buf[..n])
        }
    }

    #[test]
    fn reader_source_reassembles_frames_split_across_reads() {
        // Stereo s16le: frame i is (30 i, 10 i), then three stray bytes that make no frame.
        let mut bytes = Vec::new();
        let frames = 1000i16;
        for i in 0..frames {
            bytes.extend_from_slice(&(i * 30).to_le_bytes());
            bytes.extend_from_slice(&(i * 10).to_le_bytes());
        }
        bytes.extend_from_slice(&[1, 2, 3]);
        let reader = Trickle {
            inner: io::Cursor::new(bytes),
            limit: 7,
        };
        let source = StdinSource::from_reader(reader, 8_000, RawFormat::S16Le, 2);
        let mut capture = Box::new(source).start(1.0).unwrap();
        assert_eq!(capture.sample_rate, 8_000);
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        let want: Vec<f32> = (0..frames)
            .map(|i| (f32::from(i * 30) + f32::from(i * 10)) / 32_768.0 * 0.5)
            .collect();
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-6, "frame {i}: {g} != {w}");
        }
        assert_eq!(capture.stats.errors.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn reader_source_reads_raw_pcm_from_a_child_process() {
        let mut child = Command::new("sox")
            .args([
                "-D", "-n", "-r", "16000", "-c", "2", "-b", "16", "-e", "signed",
            ])
            .args(["-t", "raw", "-", "synth", "1", "sine", "440", "vol", "0.5"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run sox (install the `sox` package)");
        let stdout = child.stdout.take().unwrap();
        // 4-byte frames read 7 bytes at a time: most reads end mid-frame.
        let reader = Trickle {
            inner: stdout,
            limit: 7,
        };
        let source = StdinSource::from_reader(reader, 16_000, RawFormat::S16Le, 2);
        let mut capture = Box::new(source).start(0.1).unwrap();
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        assert!(child.wait().unwrap().success());
        assert_eq!(got.len(), 16_000);
        let level = rms(&got);
        assert!((level - 0.5 / 2f32.sqrt()).abs() < 0.01, "rms {level}");
        let zcr = zero_crossings_per_second(&got, 16_000);
        assert!((zcr - 880.0).abs() < 10.0, "{zcr} crossings/s");
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn raw_input_with_zero_channels_or_rate_is_rejected() {
        let zero_channels = StdinSource::from_reader(io::empty(), 16_000, RawFormat::S16Le, 0);
        assert!(matches!(
            Box::new(zero_channels).start(1.0),
            Err(CaptureError::RawInput(_))
        ));
        let zero_rate = StdinSource::from_reader(io::empty(), 0, RawFormat::S16Le, 1);
        assert!(matches!(
            Box::new(zero_rate).start(1.0),
            Err(CaptureError::RawInput(_))
        ));
    }
}
