//! Capture through the PulseAudio protocol (PulseAudio, or PipeWire's pipewire-pulse), with a
//! record stream hark opens and reads itself through libpulse (the C client library every
//! PulseAudio program uses, through `libpulse-binding`), the way `parecord` does: a standard
//! libpulse main loop turned by hark's own capture thread, one wake-up per fragment.
//!
//! Why not the pure-Rust `pulseaudio` crate (hark's stream before, and cpal's PulseAudio host):
//! its reactor thread zero-fills a 1 MiB read buffer at each wake-up (`Reactor::recv`), so short
//! fragments, which the latency target needs, cost a measurable share of a core. Why not
//! libpulse's simple API (`pa_simple_read`): its read blocks until a whole fragment has arrived
//! and nothing can interrupt it, while a source can deliver nothing at all for a long time (a
//! null sink's monitor while nothing plays), so a stop or a reopen would have to leave the
//! thread behind. Here the main loop's poll is capped at [`POLL_CAP`], so the thread notices a
//! stop within that time even when no data comes (BENCHMARKS.md, section 3b).
//!
//! The server delivers mono f32 at the source's own rate (it downmixes, as `mix_to_mono`
//! would), one fragment per `capture.period`. A dead server (the connection closes) or a removed
//! source (the server kills the stream) shows up as a failed context or stream right after the
//! poll that saw it, and is recorded like a cpal stream error, so the consumer reopens the
//! device with its backoff.
//!
//! Architecture invariant: reading a fragment only converts into a preallocated scratch buffer,
//! pushes into the ring and bumps atomics — it never allocates, locks or logs.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use libpulse_binding as pa;
use pa::context::introspect::SourceInfo;
use pa::context::{self as pa_context, Context};
use pa::def::BufferAttr;
use pa::error::{Code, PAErr};
use pa::mainloop::standard::Mainloop;
use pa::operation::{Operation, State as OpState};
use pa::stream::{self as pa_stream, PeekResult, Stream};
use pa::time::MicroSeconds;

use super::device::Opened;
use super::device::{not_found, pick_device};
use super::host::HostChoice;
use super::ring::{ring_capacity, RingSink};
use super::{CaptureError, CaptureStats, Result};

/// How long the server may take to accept a connection, answer a query or start the stream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The longest the capture thread's poll waits: how soon it sees a stop while no data comes.
/// While data flows each fragment ends the poll first, so this adds no wake-ups then.
const POLL_CAP: Duration = Duration::from_millis(100);

/// Bytes per sample of the stream hark asks for (mono f32).
const BYTES: usize = 4;

/// Samples converted per piece when a fragment is read.
const SCRATCH: usize = 4096;

/// The server's name for its default source.
const DEFAULT_SOURCE: &str = "@DEFAULT_SOURCE@";

/// A connection to the server: libpulse's main loop and context, owned by the capture thread
/// (neither may leave it).
pub(super) struct Connection {
    // Field order is drop order: the context before its main loop.
    context: Context,
    mainloop: Mainloop,
}

/// Connects to the server the environment names (`PULSE_SERVER`, else the user's runtime
/// directory), within [`CONNECT_TIMEOUT`]. Never starts a server (no autospawn).
pub(super) fn connect() -> Result<Connection> {
    let unavailable = |what: &str| host_error(Code::ConnectionRefused, what);
    let mainloop = Mainloop::new().ok_or_else(|| unavailable("no libpulse main loop"))?;
    let name = format!("hark-{}", std::process::id());
    let mut context =
        Context::new(&mainloop, &name).ok_or_else(|| unavailable("no libpulse context"))?;
    context
        .connect(None, pa_context::FlagSet::NOAUTOSPAWN, None)
        .map_err(|e| host_error(code_of(e), "cannot connect"))?;
    let mut conn = Connection { context, mainloop };
    conn.turn_until(|c| match c.context.get_state() {
        pa_context::State::Ready => Some(Ok(())),
        pa_context::State::Failed | pa_context::State::Terminated => Some(Err(c.errno())),
        _ => None,
    })
    .map_err(|code| host_error(code, "cannot connect"))?;
    Ok(conn)
}

impl Connection {
    /// The code of the context's last error.
    fn errno(&self) -> Code {
        code_of(self.context.errno())
    }

    /// Turns the main loop until `done` says something, at most [`CONNECT_TIMEOUT`].
    fn turn_until<T>(
        &mut self,
        mut done: impl FnMut(&mut Connection) -> Option<std::result::Result<T, Code>>,
    ) -> std::result::Result<T, Code> {
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if let Some(result) = done(self) {
                return result;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Code::Timeout);
            }
            turn(&mut self.mainloop, left.min(POLL_CAP)).map_err(code_of)?;
        }
    }

    /// Waits for `op` to finish; the context's error if it failed.
    fn finish<F: ?Sized>(&mut self, op: &Operation<F>) -> std::result::Result<(), Code> {
        self.turn_until(|c| match op.get_state() {
            OpState::Running => None,
            OpState::Done => Some(Ok(())),
            OpState::Cancelled => Some(Err(c.errno())),
        })
    }

    /// The sources the server has (`name` None), or the one it calls `name`.
    fn sources(&mut self, name: Option<&str>) -> std::result::Result<Vec<Found>, Code> {
        let found = Rc::new(RefCell::new(Vec::new()));
        let failed = Rc::new(RefCell::new(false));
        let (f, e) = (Rc::clone(&found), Rc::clone(&failed));
        let collect = move |item: pa::callbacks::ListResult<&SourceInfo>| match item {
            pa::callbacks::ListResult::Item(info) => f.borrow_mut().push(Found::from(info)),
            pa::callbacks::ListResult::End => {}
            pa::callbacks::ListResult::Error => *e.borrow_mut() = true,
        };
        let introspect = self.context.introspect();
        let op = match name {
            Some(name) => introspect.get_source_info_by_name(name, collect),
            None => introspect.get_source_info_list(collect),
        };
        self.finish(&op)?;
        if *failed.borrow() {
            return Err(self.errno());
        }
        let list = found.borrow_mut().split_off(0);
        Ok(list)
    }
}

/// One turn of the main loop: poll for at most `cap`, then run what became ready.
fn turn(mainloop: &mut Mainloop, cap: Duration) -> std::result::Result<(), PAErr> {
    let micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
    mainloop.prepare(Some(MicroSeconds(micros)))?;
    mainloop.poll()?;
    mainloop.dispatch()?;
    Ok(())
}

/// libpulse reports errors as a positive code (`pa_context_errno`) or a negative one (return
/// values); either way, its [`Code`].
fn code_of(e: PAErr) -> Code {
    Code::try_from(PAErr(-e.0.abs())).unwrap_or(Code::Unknown)
}

/// What cpal would call a libpulse error (the mapping cpal's own PulseAudio host uses).
fn error_kind(code: Code) -> cpal::ErrorKind {
    use cpal::ErrorKind as K;
    match code {
        Code::Access | Code::AuthKey => K::PermissionDenied,
        Code::ConnectionRefused | Code::InvalidServer | Code::ModInitFailed => K::HostUnavailable,
        Code::NoEntity => K::DeviceNotAvailable,
        Code::Timeout | Code::Busy => K::DeviceBusy,
        Code::NotSupported | Code::Obsolete | Code::NotImplemented | Code::Version => {
            K::UnsupportedOperation
        }
        Code::Invalid | Code::Command | Code::TooLarge | Code::Exist | Code::Forked => {
            K::InvalidInput
        }
        Code::ConnectionTerminated | Code::Killed | Code::Protocol | Code::BadState => {
            K::StreamInvalidated
        }
        _ => K::BackendError,
    }
}

fn cpal_error(code: Code, what: &str) -> cpal::Error {
    cpal::Error::with_message(error_kind(code), format!("PulseAudio: {what}: {code}"))
}

fn host_error(code: Code, what: &str) -> CaptureError {
    CaptureError::Host {
        host: HostChoice::Pulseaudio,
        source: cpal_error(code, what),
    }
}

/// What hark needs of a source.
struct Found {
    name: String,
    description: String,
    rate: u32,
}

impl From<&SourceInfo<'_>> for Found {
    fn from(info: &SourceInfo<'_>) -> Found {
        let name = info.name.as_deref().unwrap_or_default().to_owned();
        let description = info
            .description
            .as_deref()
            .map_or(name.clone(), str::to_owned);
        Found {
            name,
            description,
            rate: info.sample_spec.rate,
        }
    }
}

/// What a fragment's bytes are handed to (see [`decoder`]).
type Push = Box<dyn FnMut(&[u8]) + Send>;

/// A record stream hark reads; dropping it deletes the stream on the server and disconnects.
pub(super) struct PulseStream {
    stream: Stream,
    conn: Connection,
    /// Converts a fragment's bytes and pushes them into the ring.
    push: Push,
    stats: Arc<CaptureStats>,
    /// Set once the stream or the connection has failed: then the thread only waits for stop.
    dead: bool,
}

impl PulseStream {
    /// One turn of the capture thread: wait for the next fragment (at most [`POLL_CAP`]), push
    /// what arrived into the ring, and notice a dead server or a killed stream.
    pub(super) fn pump(&mut self) {
        if self.dead {
            std::thread::park_timeout(Duration::from_secs(1));
            return;
        }
        let turned = turn(&mut self.conn.mainloop, POLL_CAP);
        self.drain();
        let failed = match (turned, self.stream.get_state()) {
            (Err(e), _) => Some(code_of(e)),
            (Ok(()), pa_stream::State::Failed | pa_stream::State::Terminated) => {
                Some(self.conn.errno())
            }
            _ => match self.conn.context.get_state() {
                pa_context::State::Failed | pa_context::State::Terminated => {
                    Some(self.conn.errno())
                }
                _ => None,
            },
        };
        if let Some(code) = failed {
            self.dead = true;
            // Whatever the code, the stream delivers nothing more: it is lost, not glitching.
            let kind = match error_kind(code) {
                k @ (cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::BackendError) => k,
                _ => cpal::ErrorKind::StreamInvalidated,
            };
            tracing::debug!(error = %code, "PulseAudio record stream failed");
            self.stats.record_stream_error(kind);
        }
    }

    /// Pushes every fragment libpulse holds into the ring.
    fn drain(&mut self) {
        loop {
            match self.stream.peek() {
                Ok(PeekResult::Data(bytes)) => (self.push)(bytes),
                // A gap in the stream (nothing to push), and its end.
                Ok(PeekResult::Hole(_)) => {}
                Ok(PeekResult::Empty) | Err(_) => return,
            }
            if self.stream.discard().is_err() {
                return;
            }
        }
    }
}

impl Drop for PulseStream {
    fn drop(&mut self) {
        if !self.dead {
            let _ = self.stream.disconnect();
        }
        self.conn.context.disconnect();
    }
}

/// Finds the source (`query`; None: the server's default), opens a record stream on it with
/// fragments of `period` seconds (None: the server's choice) and starts it.
pub(super) fn open(
    mut conn: Connection,
    query: Option<&str>,
    ring_capacity_seconds: f32,
    period: Option<f64>,
) -> Result<(PulseStream, Opened)> {
    let found = select_source(&mut conn, query)?;
    let (name, rate) = (found.name, found.rate);
    let (sink, consumer, arrivals) = RingSink::new(ring_capacity(ring_capacity_seconds, rate)?);
    let stats = Arc::clone(sink.stats());
    let fragment = period.map(|p| ((p * f64::from(rate)).round().max(1.0) as u32) * BYTES as u32);
    let build = |code: Code| build_error(&name, period, code);
    let spec = pa::sample::Spec {
        format: pa::sample::Format::F32le,
        rate,
        channels: 1,
    };
    let mut stream =
        Stream::new(&mut conn.context, "hark", &spec, None).ok_or_else(|| build(conn.errno()))?;
    let attr = BufferAttr {
        // The server's maximum: hark's ring, not the server, decides what is dropped.
        maxlength: u32::MAX,
        tlength: u32::MAX,
        prebuf: u32::MAX,
        minreq: u32::MAX,
        fragsize: fragment.unwrap_or(u32::MAX),
    };
    // Make the source's own latency match the fragment, so that it is delivered whole.
    let flags = match fragment {
        Some(_) => pa_stream::FlagSet::ADJUST_LATENCY,
        None => pa_stream::FlagSet::NOFLAGS,
    };
    stream
        .connect_record(Some(&name), Some(&attr), flags)
        .map_err(|e| build(code_of(e)))?;
    conn.turn_until(|c| match stream.get_state() {
        pa_stream::State::Ready => Some(Ok(())),
        pa_stream::State::Failed | pa_stream::State::Terminated => Some(Err(c.errno())),
        _ => None,
    })
    .map_err(build)?;
    let fragment_frames = stream
        .get_buffer_attr()
        .map(|a| a.fragsize as usize / BYTES);
    tracing::info!(
        host = %HostChoice::Pulseaudio,
        device = %name,
        config = %format!("1 ch, {rate} Hz, f32"),
        period_frames = ?fragment_frames,
        "capture stream started"
    );
    let opened = Opened {
        consumer,
        arrivals,
        stats: Arc::clone(&stats),
        sample_rate: rate,
        name,
    };
    let stream = PulseStream {
        stream,
        conn,
        push: Box::new(decoder(sink)),
        stats,
        dead: false,
    };
    Ok((stream, opened))
}

fn build_error(name: &str, period: Option<f64>, code: Code) -> CaptureError {
    CaptureError::BuildStream {
        device: name.to_owned(),
        config: format!("1 ch f32, fragments of {period:?} s"),
        source: cpal_error(code, "record stream"),
    }
}

/// Little-endian f32 bytes → the ring. A sample split across two fragments is carried over in
/// a fixed 4-byte buffer (libpulse hands out whole frames, but nothing promises it).
fn decoder(mut sink: RingSink) -> impl FnMut(&[u8]) + Send + 'static {
    // Allocated here, before the stream starts, so reading never has to.
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
fn select_source(conn: &mut Connection, query: Option<&str>) -> Result<Found> {
    let Some(query) = query else {
        return match conn.sources(Some(DEFAULT_SOURCE)) {
            Ok(mut found) if !found.is_empty() => Ok(found.swap_remove(0)),
            Ok(_) | Err(Code::NoEntity) => Err(CaptureError::NoDevice),
            Err(code) => Err(host_error(code, "cannot find the default source")),
        };
    };
    let sources = conn
        .sources(None)
        .map_err(|code| CaptureError::Enumerate(cpal_error(code, "cannot list sources")))?;
    let named: Vec<(String, String)> = sources
        .iter()
        .map(|s| (s.name.clone(), s.description.clone()))
        .collect();
    match pick_device(&named, query) {
        Some(index) => Ok(sources
            .into_iter()
            .nth(index)
            .expect("index from this list")),
        None => Err(not_found(query, &named)),
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
        let mut push = decoder(sink);
        push(&bytes[..6]);
        push(&bytes[6..]);
        let mut got = [0.0f32; 3];
        use ringbuf::traits::Consumer;
        assert_eq!(consumer.pop_slice(&mut got), 3);
        assert_eq!(got, samples);
    }

    #[test]
    fn libpulse_codes_of_either_sign_map_to_the_kinds_device_loss_needs() {
        let killed = Code::Killed as i32;
        assert_eq!(code_of(PAErr(killed)), Code::Killed);
        assert_eq!(code_of(PAErr(-killed)), Code::Killed);
        assert_eq!(
            error_kind(Code::ConnectionTerminated),
            cpal::ErrorKind::StreamInvalidated
        );
        assert_eq!(
            error_kind(Code::ConnectionRefused),
            cpal::ErrorKind::HostUnavailable
        );
        assert_eq!(
            error_kind(Code::NoEntity),
            cpal::ErrorKind::DeviceNotAvailable
        );
    }
}
