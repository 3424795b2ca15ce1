//! Every container other than plain WAV (FLAC, Ogg Vorbis, MP3, AAC, AIFF, CAF, MP4, MKV, and
//! the WAV encodings hound refuses) through symphonia: first audio track only.

use std::cell::Cell;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Once;

use symphonia::core::audio::{AudioBufferRef, SampleBuffer, SignalSpec};
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader, Packet};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use tracing::warn;

use super::decode::{check_spec, io_error, Stream};
use super::{sanitize, AudioError, Result};

/// Any container symphonia knows, first audio track only.
pub(super) struct SymphoniaStream {
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// Frames the container declares, if it does: only a hint for reserving memory.
    declared_frames: Option<u64>,
    /// Rate and channels of the first decoded packet; every later packet must match.
    spec_seen: Option<(u32, u16)>,
    /// Reused across packets; regrown only if a packet is larger than any before it.
    buffer: Option<SampleBuffer<f32>>,
    good_packets: usize,
    bad_packets: usize,
    first_error: Option<String>,
    /// The stream ended; nothing more to read.
    finished: bool,
}

/// Why a file whose signature symphonia recognised has no stream to probe.
const NO_STREAM_AFTER_SIGNATURE: &str =
    "its signature matches a known format, but no valid stream follows before the end of the file";

/// Open `file` with symphonia. A panic inside symphonia (a header field it does not expect,
/// such as a WAV rate of 0) becomes [`AudioError::DecoderPanicked`] for this file.
pub(super) fn open_symphonia(path: &Path, file: File) -> Result<Stream> {
    guarded(path, || probe(path, file))
}

thread_local! {
    /// How many [`guarded`] calls this thread is inside: a panic here is caught and becomes an
    /// error for the file, so the panic hook stays silent about it.
    static CATCHING: Cell<u32> = const { Cell::new(0) };
}

/// Once per process, put a hook in front of the panic hook in place (Rust's default, unless the
/// program set its own before): silent on a thread inside [`guarded`], the previous hook
/// everywhere else, so a panic anywhere else prints (and ends the daemon) as before. A hook set
/// after this one replaces it, and caught panics print again.
fn quiet_while_catching() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CATCHING.try_with(Cell::get).unwrap_or(0) == 0 {
                previous(info);
            }
        }));
    });
}

/// Run `f`, turning a panic inside it (that is, inside symphonia) into an error naming `path`.
/// The panic hook stays silent about it: the error is the one message the user gets.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    quiet_while_catching();
    CATCHING.with(|c| c.set(c.get() + 1));
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    caught.unwrap_or_else(|payload| {
        let detail = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        Err(AudioError::DecoderPanicked {
            path: path.to_owned(),
            detail,
        })
    })
}

fn probe(path: &Path, file: File) -> Result<Stream> {
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let format_opts = FormatOptions {
        // Trim encoder delay and padding (MP3/AAC) so durations match the source.
        enable_gapless: true,
        ..Default::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, stream, &format_opts, &MetadataOptions::default())
        .map_err(|e| match e {
            // The signature matched, so running out of bytes while probing means the stream
            // behind it is missing or cut off.
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                AudioError::corrupt(path, NO_STREAM_AFTER_SIGNATURE)
            }
            SymphoniaError::IoError(e) => io_error(path, e),
            SymphoniaError::Unsupported(what) => AudioError::unsupported_codec(
                path,
                format!("the container variant is not supported: {what}"),
            ),
            other => AudioError::bad_header(path, other.to_string()),
        })?;
    let format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| AudioError::NoAudioTrack {
            path: path.to_owned(),
        })?;
    if let Some(rate) = track.codec_params.sample_rate {
        check_spec(path, 1, rate)?;
    }
    let decoder = symphonia::default::get_codecs()
        .make(&track.codec_params, &DecoderOptions::default())
        .map_err(|e| AudioError::unsupported_codec(path, e.to_string()))?;
    Ok(Stream::Symphonia(SymphoniaStream {
        track_id: track.id,
        declared_frames: track.codec_params.n_frames,
        format,
        decoder,
        spec_seen: None,
        buffer: None,
        good_packets: 0,
        bad_packets: 0,
        first_error: None,
        finished: false,
    }))
}

impl SymphoniaStream {
    /// Rate and channel count, once a packet has been decoded.
    pub(super) fn spec(&self) -> Option<(u32, u16)> {
        self.spec_seen
    }

    /// Interleaved samples the container declares, if it does and a packet has given the
    /// channel count.
    pub(super) fn declared_samples(&self) -> Option<u64> {
        self.declared_frames
            .zip(self.spec_seen)
            .map(|(frames, (_, channels))| frames.saturating_mul(u64::from(channels)))
    }

    /// Decode packets until one yields frames (appended to `block`) or the stream ends. A panic
    /// inside symphonia ends the stream with [`AudioError::DecoderPanicked`].
    pub(super) fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        let result = guarded(path, || self.fill_unguarded(path, block));
        if matches!(result, Err(AudioError::DecoderPanicked { .. })) {
            self.finished = true;
            block.clear();
        }
        result
    }

    fn fill_unguarded(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        while !self.finished {
            let Some(packet) = self.next_packet(path)? else {
                return Ok(());
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(decoded) => decoded,
                Err(err) => {
                    if self.skip_bad_packet(path, err)? {
                        continue;
                    }
                    return Ok(());
                }
            };
            self.good_packets += 1;
            let spec = *decoded.spec();
            let channels = accept_spec(path, &mut self.spec_seen, spec)?;
            if decoded.frames() == 0 {
                continue;
            }
            copy_interleaved(&mut self.buffer, decoded, spec, channels, block);
            return Ok(());
        }
        Ok(())
    }

    /// The next packet of the container; `None` once the stream has ended (and passed
    /// [`finish`](Self::finish)'s check).
    fn next_packet(&mut self, path: &Path) -> Result<Option<Packet>> {
        match self.format.next_packet() {
            Ok(packet) => Ok(Some(packet)),
            // symphonia signals the normal end of a stream as an unexpected EOF; a
            // truncated stream looks the same and is decoded as far as it goes.
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.finish(path).map(|()| None)
            }
            Err(SymphoniaError::ResetRequired) => {
                // A chained stream (e.g. concatenated Ogg) whose parameters change; hark
                // takes the first part rather than splice two formats together.
                warn!(path = %path.display(), "stream changes format midway; using the first part");
                self.finish(path).map(|()| None)
            }
            Err(SymphoniaError::IoError(e)) => Err(io_error(path, e)),
            Err(e) => Err(AudioError::corrupt(path, e.to_string())),
        }
    }

    /// A packet failed to decode: true to skip it and go on, false when the stream has ended
    /// (and passed [`finish`](Self::finish)'s check).
    fn skip_bad_packet(&mut self, path: &Path, err: SymphoniaError) -> Result<bool> {
        match err {
            // A bad packet is skipped, as symphonia recommends; too many fail the file at
            // its end.
            SymphoniaError::DecodeError(msg) => {
                self.bad_packets += 1;
                self.first_error.get_or_insert_with(|| msg.to_owned());
                Ok(true)
            }
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                self.finish(path).map(|()| false)
            }
            SymphoniaError::Unsupported(what) => Err(AudioError::unsupported_codec(path, what)),
            e => Err(AudioError::corrupt(path, e.to_string())),
        }
    }

    /// The stream is over: fail it if it was mostly undecodable packets.
    fn finish(&mut self, path: &Path) -> Result<()> {
        self.finished = true;
        let (bad_packets, good_packets) = (self.bad_packets, self.good_packets);
        // Noise that happens to start with a sync word yields mostly failed packets; a real
        // file with a damaged patch yields mostly good ones.
        if bad_packets > 0 && bad_packets >= good_packets {
            return Err(AudioError::corrupt(
                path,
                format!(
                    "{bad_packets} of {} packets failed to decode, first: {}",
                    bad_packets + good_packets,
                    self.first_error.as_deref().unwrap_or_default()
                ),
            ));
        }
        if bad_packets > 0 {
            warn!(path = %path.display(), bad_packets, good_packets, "skipped undecodable packets");
        }
        Ok(())
    }
}

/// Check a decoded packet's rate and channels: the first packet's must be possible
/// (`check_spec`), every later one's must match it. Returns the channel count.
fn accept_spec(path: &Path, seen: &mut Option<(u32, u16)>, spec: SignalSpec) -> Result<u32> {
    let channels = spec.channels.count() as u32;
    match *seen {
        None => {
            check_spec(path, channels, spec.rate)?;
            *seen = Some((spec.rate, channels as u16));
        }
        Some((rate, ch)) if rate == spec.rate && u32::from(ch) == channels => {}
        Some((rate, ch)) => {
            return Err(AudioError::unsupported_codec(
                path,
                format!(
                "the stream changes from {ch} channels at {rate} Hz to {channels} at {} Hz midway",
                spec.rate
            ),
            ))
        }
    }
    Ok(channels)
}

/// Append a decoded packet's samples to `block`, interleaved and sanitized, through `buffer`
/// (regrown only if this packet is larger than any before it).
fn copy_interleaved(
    buffer: &mut Option<SampleBuffer<f32>>,
    decoded: AudioBufferRef<'_>,
    spec: SignalSpec,
    channels: u32,
    block: &mut Vec<f32>,
) {
    let frames = decoded.capacity();
    if buffer
        .as_ref()
        .is_none_or(|b| b.capacity() < frames * channels as usize)
    {
        *buffer = Some(SampleBuffer::new(frames as u64, spec));
    }
    let buf = buffer.as_mut().expect("filled just above");
    buf.copy_interleaved_ref(decoded);
    block.extend(buf.samples().iter().map(|&s| sanitize(s)));
}
