//! An input device through cpal (on Linux ALSA, or a sound server's own protocol, see
//! `host`): choosing the device and its period, the stream's callback, and telling a dead
//! stream from a glitching one.
//!
//! Architecture invariant: the callback (`build`'s `on_data`, and `mix_to_mono`) only converts
//! into a preallocated scratch buffer, pushes into the ring and bumps atomics — it never
//! allocates, locks, blocks or logs. The error callback only stores atomics
//! (`CaptureStats::record_stream_error`).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, Sample, SampleFormat, SizedSample, SupportedBufferSize};
use ringbuf::HeapCons;
use tracing::{debug, info};

use super::host::{open_capture_host, CaptureHost, HostChoice, OpenedHost};
use super::ring::{ring_capacity, Arrival, RingSink};
use super::worker::{OnDrop, StopSignal, Worker};
use super::{Capture, CaptureError, CaptureStats, Result, Source};

/// An audio input device opened through cpal.
#[derive(Debug, Clone, Default)]
pub struct DeviceSource {
    /// The audio host to open it through (`capture.host`).
    pub host: HostChoice,
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
        let stop = StopSignal::new();
        let thread_stop = stop.clone();
        let (opened_tx, opened_rx) = mpsc::sync_channel(1);
        let query = self.device.clone();
        let period = self.period;
        let host = self.host;
        // cpal's `Stream` need not be `Send`, so one thread builds it, owns it and drops it.
        let handle = thread::Builder::new()
            .name("hark-capture".into())
            .spawn(move || {
                hold_stream(
                    host,
                    query.as_deref(),
                    ring_capacity_seconds,
                    period,
                    &opened_tx,
                    &thread_stop,
                )
            })
            .map_err(|source| CaptureError::Spawn {
                what: self.describe(),
                source,
            })?;
        let worker = Worker::new(stop, handle, OnDrop::Join);
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

/// The device thread's body: opens the stream, reports how that went, and holds the stream
/// until the [`Capture`] is dropped.
fn hold_stream(
    host: HostChoice,
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
    opened_tx: &mpsc::SyncSender<Result<Opened>>,
    stop: &StopSignal,
) {
    let mut stream = match open_stream(host, query, ring_capacity_seconds, period) {
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
    while !stop.is_requested() {
        stream.hold();
    }
    drop(stream);
}

/// A running stream, held by the device thread.
enum Live {
    /// Held, never read: dropping it stops the stream.
    #[allow(dead_code)]
    Cpal(cpal::Stream),
    #[cfg(feature = "pulseaudio")]
    Pulse(super::pulse::PulseStream),
}

impl Live {
    /// A cpal stream: waits until unparked (a stop). A PulseAudio stream is read on this
    /// thread: one turn of its main loop (at most 100 ms, so a stop is seen that soon).
    fn hold(&mut self) {
        match self {
            Live::Cpal(_) => thread::park(),
            #[cfg(feature = "pulseaudio")]
            Live::Pulse(stream) => stream.pump(),
        }
    }
}

/// What the device thread reports back once its stream is playing.
pub(super) struct Opened {
    pub(super) consumer: HeapCons<f32>,
    pub(super) arrivals: HeapCons<Arrival>,
    pub(super) stats: Arc<CaptureStats>,
    pub(super) sample_rate: u32,
    pub(super) name: String,
}

/// Finds the device, builds its stream (at the preferred period, or the device's default if it
/// refuses that) and starts it.
fn open_stream(
    host: HostChoice,
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
) -> Result<(Live, Opened)> {
    match open_capture_host(host)? {
        CaptureHost::Cpal(opened) => open_cpal_stream(opened, query, ring_capacity_seconds, period)
            .map(|(stream, opened)| (Live::Cpal(stream), opened)),
        #[cfg(feature = "pulseaudio")]
        CaptureHost::Pulse(client) => {
            match super::pulse::open(client, query, ring_capacity_seconds, period) {
                Ok((stream, opened)) => Ok((Live::Pulse(stream), opened)),
                // `auto` with a device the server does not have (an ALSA name such as
                // `plughw:CARD=X`): look for it among ALSA's devices.
                Err(CaptureError::DeviceNotFound { .. }) if host == HostChoice::Auto => {
                    let alsa = super::host::open_host(HostChoice::Alsa)?;
                    open_cpal_stream(alsa, query, ring_capacity_seconds, period)
                        .map(|(stream, opened)| (Live::Cpal(stream), opened))
                }
                Err(err) => Err(err),
            }
        }
    }
}

/// [`open_stream`] through a cpal host.
fn open_cpal_stream(
    opened_host: OpenedHost,
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
) -> Result<(cpal::Stream, Opened)> {
    let host = opened_host.host;
    let device = select_device(&host, query)?;
    let name = device_id(&device);
    let supported = input_config(&device, &name, query)?;
    let config = supported.config();
    let sample_rate = config.sample_rate;
    let request = StreamRequest {
        device: &device,
        name: &name,
        sample_rate,
        format: supported.sample_format(),
        scratch: scratch_frames(supported.buffer_size(), sample_rate),
        ring_samples: ring_capacity(ring_capacity_seconds, sample_rate)?,
        describe_config: format!(
            "{} ch, {} Hz, {}",
            config.channels,
            config.sample_rate,
            supported.sample_format()
        ),
    };
    let preferred = preferred_period(supported.buffer_size(), sample_rate, period).map(|frames| {
        let mut c = config;
        c.buffer_size = cpal::BufferSize::Fixed(frames);
        c
    });
    let (stream, opened) = match preferred {
        Some(c) => request.build(&c).or_else(|err| {
            debug!(error = %err, "device refused the preferred period; using its default");
            request.build(&config)
        })?,
        None => request.build(&config)?,
    };
    stream.play().map_err(|source| CaptureError::PlayStream {
        device: name.clone(),
        source,
    })?;
    info!(
        host = %opened_host.choice,
        device = %name,
        config = %request.describe_config,
        period_frames = ?stream.buffer_size().ok(),
        scratch_frames = request.scratch,
        "capture stream started"
    );
    Ok((stream, opened))
}

/// The device's default input configuration. Without a sound card ALSA still offers
/// `default`, which then fails to open: that is no device, not a broken one.
fn input_config(
    device: &cpal::Device,
    name: &str,
    query: Option<&str>,
) -> Result<cpal::SupportedStreamConfig> {
    device.default_input_config().map_err(|source| {
        if query.is_none() && means_absent(source.kind()) {
            debug!(error = %source, "default capture device cannot be opened");
            CaptureError::NoDevice
        } else {
            CaptureError::DeviceConfig {
                device: name.to_owned(),
                source,
            }
        }
    })
}

/// What every try at building the device's stream shares.
struct StreamRequest<'a> {
    device: &'a cpal::Device,
    name: &'a str,
    sample_rate: u32,
    format: SampleFormat,
    /// Frames of scratch space for the callback.
    scratch: usize,
    /// The ring's length in samples at the device's rate.
    ring_samples: usize,
    /// "2 ch, 48000 Hz, i16", for logs and errors.
    describe_config: String,
}

impl StreamRequest<'_> {
    /// Builds the input stream with `config`. Each try gets a fresh ring: a failed build has
    /// consumed the sink it was given.
    fn build(&self, config: &cpal::StreamConfig) -> Result<(cpal::Stream, Opened)> {
        let (sink, consumer, arrivals) = RingSink::new(self.ring_samples);
        let stats = Arc::clone(sink.stats());
        let (device, scratch) = (self.device, self.scratch);
        let stream = match self.format {
            SampleFormat::I8 => build::<i8>(device, config, sink, scratch),
            SampleFormat::I16 => build::<i16>(device, config, sink, scratch),
            SampleFormat::I24 => build::<cpal::I24>(device, config, sink, scratch),
            SampleFormat::I32 => build::<i32>(device, config, sink, scratch),
            SampleFormat::I64 => build::<i64>(device, config, sink, scratch),
            SampleFormat::U8 => build::<u8>(device, config, sink, scratch),
            SampleFormat::U16 => build::<u16>(device, config, sink, scratch),
            SampleFormat::U24 => build::<cpal::U24>(device, config, sink, scratch),
            SampleFormat::U32 => build::<u32>(device, config, sink, scratch),
            SampleFormat::U64 => build::<u64>(device, config, sink, scratch),
            SampleFormat::F32 => build::<f32>(device, config, sink, scratch),
            SampleFormat::F64 => build::<f64>(device, config, sink, scratch),
            format => {
                return Err(CaptureError::UnsupportedFormat {
                    device: self.name.to_owned(),
                    format,
                })
            }
        }
        .map_err(|source| CaptureError::BuildStream {
            device: self.name.to_owned(),
            config: self.describe_config.clone(),
            source,
        })?;
        let opened = Opened {
            consumer,
            arrivals,
            stats,
            sample_rate: self.sample_rate,
            name: self.name.to_owned(),
        };
        Ok((stream, opened))
    }
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

/// The device period hark asks for (`capture.period`, 10 ms by default), in frames, within
/// what the device supports (None when it says nothing or no period is asked for: then its
/// default stands; a device that refuses it gets its default too).
/// A period adds at most its length to the time a sound takes to reach the ring. Through ALSA's
/// pulse plugin short periods cost dearly (cpal's reader spins: 512 frames kept hark at 45% of
/// a core, 1,600 frames at 15%; BENCHMARKS.md 3b), which is why `auto` reads a sound server
/// through its own protocol.
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

/// Frames of scratch space for the callback: the largest period the device allows, but at
/// most one second, because plugins report absurd maxima (ALSA's `file` plugin: 2^28 - 1).
/// Larger callbacks are mixed in pieces of this size rather than by allocating.
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

/// Which of `named` (id, name) `query` picks: exact id, then exact name, then a
/// case-insensitive substring of either, so a precise name always wins over a device that
/// merely contains it (`hw:CARD=X` vs `plughw:CARD=X`).
pub(super) fn pick_device(named: &[(String, String)], query: &str) -> Option<usize> {
    let wanted = query.to_lowercase();
    named
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
        })
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
    let pick = pick_device(&named, query);
    match pick {
        Some(index) => {
            debug!(query, device = %named[index].0, "selected capture device");
            Ok(devices
                .into_iter()
                .nth(index)
                .expect("index came from the same list"))
        }
        None => Err(not_found(query, &named)),
    }
}

/// `DeviceNotFound` for `query`, listing the `(id, name)` pairs that were there.
pub(super) fn not_found(query: &str, named: &[(String, String)]) -> CaptureError {
    let available = if named.is_empty() {
        "none".to_owned()
    } else {
        named
            .iter()
            .map(|(id, name)| describe_pair(id, name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    CaptureError::DeviceNotFound {
        query: query.to_owned(),
        available,
    }
}

pub(super) fn describe_pair(id: &str, name: &str) -> String {
    if id == name {
        id.to_owned()
    } else {
        format!("{id} ({name})")
    }
}

/// The host's identifier of a device (for ALSA the PCM name, e.g. `hw:CARD=USB,DEV=0`); what
/// `--device` matches exactly.
pub(super) fn device_id(device: &cpal::Device) -> String {
    match device.id() {
        Ok(id) => id.id().to_owned(),
        Err(_) => device_name(device),
    }
}

/// The human name (first line of the description).
pub(super) fn device_name(device: &cpal::Device) -> String {
    match device.description() {
        Ok(desc) => desc.name().to_owned(),
        Err(_) => String::from("(unnamed device)"),
    }
}

// Device loss: the error callback packs the error kind into an atomic.

impl CaptureStats {
    /// Kind of the most recent stream error the device reported, if any.
    pub fn last_error_kind(&self) -> Option<cpal::ErrorKind> {
        error_kind_from_code(self.last_error.load(Ordering::Relaxed))
    }

    /// Records a cpal stream error. Only atomics: it runs on cpal's stream thread.
    pub(super) fn record_stream_error(&self, kind: cpal::ErrorKind) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
