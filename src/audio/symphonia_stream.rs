//! Every container other than plain WAV (FLAC, Ogg Vorbis, MP3, AAC, AIFF, CAF, MP4, MKV, and
//! the WAV encodings hound refuses) through symphonia: first audio track only.

use std::fs::File;
use std::io;
use std::path::Path;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
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

pub(super) fn open_symphonia(path: &Path, file: File) -> Result<Stream> {
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
            SymphoniaError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => AudioError::Corrupt {
                path: path.to_owned(),
                detail: "its signature matches a known format, but no valid stream follows before the end of the file"
                    .to_owned(),
            },
            SymphoniaError::IoError(e) => io_error(path, e),
            SymphoniaError::Unsupported(what) => AudioError::UnsupportedCodec {
                path: path.to_owned(),
                detail: format!("the container variant is not supported: {what}"),
            },
            other => AudioError::BadHeader {
                path: path.to_owned(),
                detail: other.to_string(),
            },
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
        .map_err(|e| AudioError::UnsupportedCodec {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
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

    /// Decode packets until one yields frames (appended to `block`) or the stream ends.
    pub(super) fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        let corrupt = |detail: String| AudioError::Corrupt {
            path: path.to_owned(),
            detail,
        };
        while !self.finished {
            let packet = match self.format.next_packet() {
                Ok(packet) => packet,
                // symphonia signals the normal end of a stream as an unexpected EOF; a
                // truncated stream looks the same and is decoded as far as it goes.
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.finish(path)
                }
                Err(SymphoniaError::ResetRequired) => {
                    // A chained stream (e.g. concatenated Ogg) whose parameters change; hark
                    // takes the first part rather than splice two formats together.
                    warn!(path = %path.display(), "stream changes format midway; using the first part");
                    return self.finish(path);
                }
                Err(SymphoniaError::IoError(e)) => return Err(io_error(path, e)),
                Err(e) => return Err(corrupt(e.to_string())),
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoded = match self.decoder.decode(&packet) {
                Ok(decoded) => decoded,
                // A bad packet is skipped, as symphonia recommends; too many fail the file at
                // its end.
                Err(SymphoniaError::DecodeError(msg)) => {
                    self.bad_packets += 1;
                    self.first_error.get_or_insert_with(|| msg.to_owned());
                    continue;
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.finish(path)
                }
                Err(SymphoniaError::Unsupported(what)) => {
                    return Err(AudioError::UnsupportedCodec {
                        path: path.to_owned(),
                        detail: what.to_owned(),
                    })
                }
                Err(e) => return Err(corrupt(e.to_string())),
            };
            self.good_packets += 1;
            let spec = *decoded.spec();
            let channels = spec.channels.count() as u32;
            match self.spec_seen {
                None => {
                    check_spec(path, channels, spec.rate)?;
                    self.spec_seen = Some((spec.rate, channels as u16));
                }
                Some((rate, ch)) if rate == spec.rate && u32::from(ch) == channels => {}
                Some((rate, ch)) => {
                    return Err(AudioError::UnsupportedCodec {
                        path: path.to_owned(),
                        detail: format!(
                            "the stream changes from {ch} channels at {rate} Hz to {channels} at {} Hz midway",
                            spec.rate
                        ),
                    })
                }
            }
            if decoded.frames() == 0 {
                continue;
            }
            let frames = decoded.capacity();
            if self
                .buffer
                .as_ref()
                .is_none_or(|b| b.capacity() < frames * channels as usize)
            {
                self.buffer = Some(SampleBuffer::new(frames as u64, spec));
            }
            let buf = self.buffer.as_mut().expect("filled just above");
            buf.copy_interleaved_ref(decoded);
            block.extend(buf.samples().iter().map(|&s| sanitize(s)));
            return Ok(());
        }
        Ok(())
    }

    /// The stream is over: fail it if it was mostly undecodable packets.
    fn finish(&mut self, path: &Path) -> Result<()> {
        self.finished = true;
        let (bad_packets, good_packets) = (self.bad_packets, self.good_packets);
        // Noise that happens to start with a sync word yields mostly failed packets; a real
        // file with a damaged patch yields mostly good ones.
        if bad_packets > 0 && bad_packets >= good_packets {
            return Err(AudioError::Corrupt {
                path: path.to_owned(),
                detail: format!(
                    "{bad_packets} of {} packets failed to decode, first: {}",
                    bad_packets + good_packets,
                    self.first_error.as_deref().unwrap_or_default()
                ),
            });
        }
        if bad_packets > 0 {
            warn!(path = %path.display(), bad_packets, good_packets, "skipped undecodable packets");
        }
        Ok(())
    }
}
