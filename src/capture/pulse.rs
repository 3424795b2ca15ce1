//! Capture through the PulseAudio protocol (PulseAudio, or PipeWire's pipewire-pulse), with a
//! record stream hark opens and reads itself through the `pulseaudio` crate (the pure-Rust
//! client cpal's own PulseAudio host is built on).
//!
//! Why not cpal's PulseAudio host: it asks the server for the stream's latency after every
//! callback, on a thread of its own, and the client's reactor zero-fills a 1 MiB read buffer at
//! each wake-up; through it hark's capture threads took 1.2-1.4% of a core at 240 wake-ups a
//! second (BENCHMARKS.md, section 3b). Here the server delivers mono f32 at the source's own
//! rate (it downmixes, as `mix_to_mono` would), one fragment per `capture.period`, and the only
//! other traffic is one latency query a second from hark's capture thread, which is how a dead
//! server or a removed source is noticed (the client drops the server's "stream killed"
//! message).
//!
//! Architecture invariant: the callback only converts into a preallocated scratch buffer,
//! pushes into the ring and bumps atomics — it never allocates, locks, blocks or logs.

use std::ffi::CString;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use futures::executor::block_on;
use pulseaudio::{protocol, Client, ClientError, RecordStream};

use super::device::Opened;
use super::device::{describe_pair, pick_device};
use super::host::HostChoice;
use super::ring::{ring_capacity, RingSink};
use super::{CaptureError, CaptureStats, Result};

/// How long the server may take to accept a connection (cpal's limit too).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes per sample of the stream hark asks for (mono f32).
const BYTES: usize = 4;

/// Samples converted per piece in the callback.
const SCRATCH: usize = 4096;

/// Connects to the server the environment names (`PULSE_SERVER`, else the user's runtime
/// directory). The handshake blocks without a timeout, so it runs on a thread of its own that
/// is left behind if the server never answers.
pub(super) fn connect() -> Result<Client> {
    let (tx, rx) = mpsc::channel();
    std::thread::Builder::new()
        .name("hark-capture".into())
        .spawn(move || {
            let name = CString::new(format!("hark-{}", std::process::id())).expect("no NUL");
            let _ = tx.send(Client::from_env(&name));
        })
        .map_err(|source| CaptureError::Spawn {
            what: "the PulseAudio connection".into(),
            source,
        })?;
    let client = rx
        .recv_timeout(CONNECT_TIMEOUT)
        .unwrap_or(Err(ClientError::ServerUnavailable));
    client.map_err(host_error)
}

fn host_error(e: ClientError) -> CaptureError {
    CaptureError::Host {
        host: HostChoice::Pulseaudio,
        source: cpal::Error::from(e),
    }
}

/// A record stream hark reads; dropping it deletes the stream on the server.
pub(super) struct PulseStream {
    stream: RecordStream,
    stats: Arc<CaptureStats>,
    /// Keeps the connection open as long as the stream.
    _client: Client,
}

impl PulseStream {
    /// One round trip to the server. A dead server (the connection is gone) or a killed stream
    /// (its source was removed) answers with an error, recorded like a cpal stream error so
    /// the consumer sees the device as lost.
    pub(super) fn check(&self) {
        if let Err(e) = block_on(self.stream.timing_info()) {
            self.stats.record_stream_error(cpal::Error::from(e).kind());
        }
    }
}

/// Finds the source (`query`; None: the server's default), opens a record stream on it with
/// fragments of `period` seconds (None: the server's choice) and starts it.
pub(super) fn open(
    client: Client,
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
) -> Result<(PulseStream, Opened)> {
    let info = select_source(&client, query)?;
    let name = info.name.to_string_lossy().into_owned();
    let rate = info.sample_spec.sample_rate;
    let (sink, consumer, arrivals) = RingSink::new(ring_capacity(ring_capacity_seconds, rate)?);
    let stats = Arc::clone(sink.stats());
    let fragment = period.map(|p| ((p * f64::from(rate)).round().max(1.0) as u32) * BYTES as u32);
    let params = protocol::RecordStreamParams {
        sample_spec: protocol::SampleSpec {
            format: protocol::SampleFormat::Float32Le,
            sample_rate: rate,
            channels: 1,
        },
        channel_map: protocol::ChannelMap::new([protocol::ChannelPosition::Mono]),
        source_index: Some(info.index),
        buffer_attr: protocol::stream::BufferAttr {
            // The server's maximum: hark's ring, not the server, decides what is dropped.
            max_length: u32::MAX,
            fragment_size: fragment.unwrap_or(u32::MAX),
            ..Default::default()
        },
        flags: protocol::stream::StreamFlags {
            // Make the source's own latency match the fragment, so it is delivered whole.
            adjust_latency: fragment.is_some(),
            ..Default::default()
        },
        ..Default::default()
    };
    let stream = block_on(client.create_record_stream(params, callback(sink)))
        .map_err(|source| build_error(&name, period, source))?;
    let fragment_frames = stream.buffer_attr().fragment_size as usize / BYTES;
    tracing::info!(
        host = %HostChoice::Pulseaudio,
        device = %name,
        config = %format!("1 ch, {rate} Hz, f32"),
        period_frames = ?Some(fragment_frames),
        "capture stream started"
    );
    let opened = Opened {
        consumer,
        arrivals,
        stats: Arc::clone(&stats),
        sample_rate: rate,
        name,
    };
    Ok((
        PulseStream {
            stream,
            stats,
            _client: client,
        },
        opened,
    ))
}

fn build_error(name: &str, period: Option<f64>, source: ClientError) -> CaptureError {
    CaptureError::BuildStream {
        device: name.to_owned(),
        config: format!("1 ch f32, fragments of {period:?} s"),
        source: cpal::Error::from(source),
    }
}

/// The record callback: little-endian f32 bytes → the ring. A sample split across two
/// deliveries is carried over in a fixed 4-byte buffer.
fn callback(mut sink: RingSink) -> impl FnMut(&[u8]) + Send + 'static {
    // Allocated here, before the stream starts, so the callback never has to.
    let mut scratch = vec![0.0f32; SCRATCH];
    let mut carry = [0u8; BYTES];
    let mut carried = 0usize;
    move |mut bytes: &[u8]| {
        if carried > 0 {
            let take = (BYTES - carried).min(bytes.len());
            carry[carried..carried + take].copy_from_slice(&bytes[..take]);
            carried += take;
            bytes = &bytes[take..];
            if carried < BYTES {
                return;
            }
            scratch[0] = f32::from_le_bytes(carry);
            sink.push(&scratch[..1]);
            carried = 0;
        }
        for piece in bytes.chunks(SCRATCH * BYTES) {
            let n = decode_f32le(piece, &mut scratch);
            sink.push(&scratch[..n]);
            let rest = &piece[n * BYTES..];
            carry[..rest.len()].copy_from_slice(rest);
            carried = rest.len();
        }
    }
}

/// Decodes whole little-endian f32 samples of `bytes` into `out`; returns how many.
fn decode_f32le(bytes: &[u8], out: &mut [f32]) -> usize {
    let mut n = 0;
    for (slot, b) in out.iter_mut().zip(bytes.chunks_exact(BYTES)) {
        *slot = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        n += 1;
    }
    n
}

/// The source `query` names (the same matching as for cpal devices), or the default source.
fn select_source(client: &Client, query: Option<&str>) -> Result<protocol::SourceInfo> {
    let Some(query) = query else {
        let default = protocol::DEFAULT_SOURCE.to_owned();
        return block_on(client.source_info_by_name(default)).map_err(|e| match e {
            ClientError::ServerError(protocol::PulseError::NoEntity) => CaptureError::NoDevice,
            e => host_error(e),
        });
    };
    let sources = block_on(client.list_sources()).map_err(CaptureError::from_pulse_list)?;
    let named: Vec<(String, String)> = sources
        .iter()
        .map(|s| {
            let id = s.name.to_string_lossy().into_owned();
            let desc = s
                .description
                .as_ref()
                .map_or(id.clone(), |d| d.to_string_lossy().into_owned());
            (id, desc)
        })
        .collect();
    match pick_device(&named, query) {
        Some(index) => Ok(sources
            .into_iter()
            .nth(index)
            .expect("index from this list")),
        None => Err(CaptureError::DeviceNotFound {
            query: query.to_owned(),
            available: if named.is_empty() {
                "none".to_owned()
            } else {
                named
                    .iter()
                    .map(|(id, name)| describe_pair(id, name))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        }),
    }
}

impl CaptureError {
    fn from_pulse_list(e: ClientError) -> CaptureError {
        CaptureError::Enumerate(cpal::Error::from(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32le_bytes_decode_and_a_split_sample_is_carried_over() {
        let samples = [0.25f32, -1.0, 0.5];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = [0.0f32; 4];
        assert_eq!(decode_f32le(&bytes, &mut out), 3);
        assert_eq!(&out[..3], &samples);
        let (sink, mut consumer, _arrivals) = RingSink::new(16);
        let mut cb = callback(sink);
        cb(&bytes[..6]);
        cb(&bytes[6..]);
        let mut got = [0.0f32; 3];
        use ringbuf::traits::Consumer;
        assert_eq!(consumer.pop_slice(&mut got), 3);
        assert_eq!(got, samples);
    }
}
