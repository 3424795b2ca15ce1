//! Audio in: decoding files, raw PCM from stdin, channel downmix and sample-rate conversion.
//!
//! This module owns turning bytes that claim to be audio into `f32` samples in `[-1, 1]` at the
//! rate the rest of hark wants: [`AudioReader`], which decodes a file a block at a time (WAV
//! headers through hound and the common WAV sample layouts in bulk, as [`RawFormat`] decodes
//! them; everything else through symphonia) so a long file costs no more memory than a
//! short one, and [`decode_file`], which drains one for offline tools; [`RawFormat`] for
//! headerless PCM, [`downmix`], the offline [`resample`] and the streaming [`StreamResampler`]
//! used by the realtime pipeline. Whole-file and streaming decoding share one decoder, as both
//! resamplers share one engine, so offline tools and the daemon see identical samples.
//!
//! It must not know about features, models or events, and must not touch audio devices; its
//! only I/O is reading the file it is given. Errors name that file and say what to do.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rubato::{FftFixedInOut, Resampler as _};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use tracing::{debug, warn};

/// Highest sample rate accepted anywhere in this module. 768 kHz is the fastest rate common
/// converters offer; anything above it in a file header is far more likely damage than audio,
/// and it bounds the FFT sizes the resampler may allocate.
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Errors from reading, decoding or converting audio.
///
/// Every variant about a file names it, says what is wrong and what to do about it, so the
/// message can be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The path does not exist.
    #[error("audio file `{}` does not exist; check the path (relative paths start from the working directory)", .path.display())]
    NotFound { path: PathBuf },

    /// The file exists but could not be read (permissions, a directory, an I/O fault).
    #[error("cannot read audio file `{}`: {source}; check that it is a readable regular file", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file has zero bytes.
    #[error("audio file `{}` is empty (0 bytes); re-record or re-export it", .path.display())]
    Empty { path: PathBuf },

    /// The contents match no audio container hark can read, whatever the extension says.
    #[error("`{}` is not an audio file hark recognises: its contents match none of WAV, FLAC, Ogg, MP3, AAC, AIFF, CAF, MP4/M4A or MKV/WebM (the extension is not trusted); convert it, e.g. `sox INPUT -b 16 OUTPUT.wav`", .path.display())]
    NotAudio { path: PathBuf },

    /// A recognised container holding an encoding hark cannot decode.
    #[error("`{}` uses an encoding hark cannot decode ({detail}); convert it to PCM WAV or FLAC, e.g. `sox INPUT -b 16 OUTPUT.wav`", .path.display())]
    UnsupportedCodec { path: PathBuf, detail: String },

    /// The header of a recognised container is malformed.
    #[error("`{}` has a malformed header ({detail}); the file is damaged or mislabelled, re-export it", .path.display())]
    BadHeader { path: PathBuf, detail: String },

    /// The header parsed but declares an impossible stream: zero channels, a zero or absurd rate.
    #[error("`{}` declares an impossible audio format ({detail}); the header is damaged, re-export the file", .path.display())]
    InvalidSpec { path: PathBuf, detail: String },

    /// The stream ends early or its packets do not decode.
    #[error("`{}` is truncated or corrupt ({detail}); re-export or re-download it", .path.display())]
    Corrupt { path: PathBuf, detail: String },

    /// A container with no audio track in it (e.g. video-only or metadata-only).
    #[error("`{}` contains no audio track; pick a file that has sound in it", .path.display())]
    NoAudioTrack { path: PathBuf },

    /// The file is well formed but holds zero sample frames.
    #[error("`{}` contains no audio samples (0 frames); re-record or re-export it", .path.display())]
    NoSamples { path: PathBuf },

    /// A sample rate given to a resampler is zero or above [`MAX_SAMPLE_RATE`].
    #[error("sample rate {rate} Hz is out of range; hark handles 1 to {MAX_SAMPLE_RATE} Hz — check the configured or detected rate")]
    RateOutOfRange { rate: u32 },

    /// rubato refused to build a resampler (not expected once rates are validated).
    #[error("cannot build a resampler from {from} Hz to {to} Hz: {source}")]
    Resampler {
        from: u32,
        to: u32,
        #[source]
        source: rubato::ResamplerConstructionError,
    },

    /// A `--format` name that is not one of [`RawFormat`]'s.
    #[error("unknown raw sample format `{given}`; allowed: {}", RawFormat::NAMES)]
    UnknownRawFormat { given: String },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, AudioError>;

/// Decoded audio as read from a file, before conversion.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Frames per second of `samples`, as the file declares it; always in 1..=[`MAX_SAMPLE_RATE`].
    pub sample_rate: u32,
    /// Interleaving stride of `samples`; always at least 1.
    pub channels: u16,
    /// Interleaved samples in `[-1, 1]`; always a whole number of frames.
    pub samples: Vec<f32>,
}

impl Decoded {
    /// Number of sample frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.frames() as f64 / f64::from(self.sample_rate.max(1))
    }
}

/// Decode a whole audio file to interleaved `f32`.
///
/// The container is chosen from the file's first bytes, never from its extension alone.
/// RIFF/WAVE goes to hound (8/16/24/32-bit integer PCM, 32-bit float, WAVE_FORMAT_EXTENSIBLE);
/// WAV variants hound refuses (64-bit float, A-law, ADPCM, …) and every other container (FLAC,
/// Ogg Vorbis, MP3, AAC, AIFF, CAF, MP4, MKV) go to symphonia.
///
/// A stream that ends before its header says it should (a WAV whose data chunk is cut short, a
/// recording that was never finalised) is decoded up to where the bytes stop, with a warning,
/// rather than rejected: the audio that is there is usually what the user wants. Float samples
/// outside `[-1, 1]` are clamped and non-finite ones become 0, so later stages can rely on range.
///
/// This holds the whole file in memory; [`AudioReader`], which it drains, streams one instead.
pub fn decode_file(path: &Path) -> Result<Decoded> {
    let mut reader = AudioReader::open(path)?;
    let mut samples = Vec::with_capacity(reader.reserve_hint());
    while reader.read_interleaved(&mut samples, usize::MAX)? > 0 {}
    Ok(Decoded {
        sample_rate: reader.sample_rate(),
        channels: reader.channels(),
        samples,
    })
}

/// An audio file decoded a block at a time, so that reading it costs the same memory whatever
/// its length.
///
/// It reads what [`decode_file`] reads, with the same errors and the same samples (that
/// function drains one of these); [`read_mono`](Self::read_mono) downmixes exactly as
/// [`downmix`] does. Opening decodes the first block, so a file with no audio in it fails at
/// [`open`](Self::open), not at the first read. A failure later on (damage partway through the
/// file) comes after the frames decoded before it: the read that meets it returns those, the
/// next returns the error, and every read after that returns 0.
pub struct AudioReader {
    path: PathBuf,
    sample_rate: u32,
    channels: u16,
    stream: Stream,
    /// Decoded interleaved samples, whole frames only, not all read yet; reused for every
    /// block so that steady-state reading does not allocate.
    block: Vec<f32>,
    /// How many samples at the front of `block` have been read.
    taken: usize,
    /// The stream has ended or failed: nothing more will be decoded.
    done: bool,
    /// An error met by a read that had already gathered frames; the next read returns it.
    deferred: Option<AudioError>,
}

impl AudioReader {
    /// Open `path` and decode its first block. The container is sniffed from the first bytes
    /// as in [`decode_file`], and the errors are the same: missing, unreadable or empty file,
    /// not audio, a bad header, no samples at all.
    pub fn open(path: &Path) -> Result<AudioReader> {
        let mut file = open_file(path)?;
        let mut head = [0u8; 16];
        let head_len = read_up_to(&mut file, &mut head).map_err(|e| io_error(path, e))?;
        if head_len == 0 {
            return Err(AudioError::Empty {
                path: path.to_owned(),
            });
        }
        let container = sniff(&head[..head_len]);
        debug!(path = %path.display(), ?container, "probed audio container");
        // Both decoders expect the container from its first byte.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| io_error(path, e))?;
        match container {
            Container::Wav => open_wav(path, file),
            Container::Other => AudioReader::prime(path, open_symphonia(path, file)?),
            Container::Unknown => Err(AudioError::NotAudio {
                path: path.to_owned(),
            }),
        }
    }

    /// Decode the first block: symphonia knows the rate and channels only from a decoded
    /// packet, and a file with no frames must fail here, as [`decode_file`] does.
    fn prime(path: &Path, mut stream: Stream) -> Result<AudioReader> {
        let mut block = Vec::new();
        stream.fill(path, &mut block)?;
        let no_samples = || AudioError::NoSamples {
            path: path.to_owned(),
        };
        if block.is_empty() {
            return Err(no_samples());
        }
        let (sample_rate, channels) = stream.spec().ok_or_else(no_samples)?;
        Ok(AudioReader {
            path: path.to_owned(),
            sample_rate,
            channels,
            stream,
            block,
            taken: 0,
            done: false,
            deferred: None,
        })
    }

    /// The file being read, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frames per second, as the file declares it; in 1..=[`MAX_SAMPLE_RATE`].
    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    /// Channels in the file (at least 1); [`read_mono`](Self::read_mono) averages them.
    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Append up to `max_frames` frames to `out`, each averaged to one mono sample as
    /// [`downmix`] does; returns how many. Fewer than `max_frames` only at the end of the
    /// stream, 0 once it is over.
    pub fn read_mono(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        let channels = self.channels;
        self.read_with(max_frames, |frames| downmix_into(frames, channels, out))
    }

    /// Like [`read_mono`](Self::read_mono), but appends the frames interleaved, as in the file.
    pub fn read_interleaved(&mut self, out: &mut Vec<f32>, max_frames: usize) -> Result<usize> {
        self.read_with(max_frames, |frames| out.extend_from_slice(frames))
    }

    /// Hand up to `max_frames` decoded frames to `take`, a slice of whole frames at a time,
    /// decoding further blocks as needed.
    fn read_with(&mut self, max_frames: usize, mut take: impl FnMut(&[f32])) -> Result<usize> {
        if let Some(err) = self.deferred.take() {
            return Err(err);
        }
        let channels = usize::from(self.channels);
        let mut frames = 0;
        while frames < max_frames {
            if self.taken == self.block.len() && (self.done || !self.refill(frames)?) {
                break;
            }
            let n = ((self.block.len() - self.taken) / channels).min(max_frames - frames);
            let end = self.taken + n * channels;
            take(&self.block[self.taken..end]);
            self.taken = end;
            frames += n;
        }
        Ok(frames)
    }

    /// Decode the next block; false at the end of the stream. An error marks the stream done
    /// and is returned now if this read has no frames yet (`gathered`), or kept for the next.
    fn refill(&mut self, gathered: usize) -> Result<bool> {
        self.block.clear();
        self.taken = 0;
        match self.stream.fill(&self.path, &mut self.block) {
            Ok(()) if self.block.is_empty() => {
                self.done = true;
                Ok(false)
            }
            Ok(()) => Ok(true),
            Err(err) => {
                self.done = true;
                // Frames a decoder put in the block before failing are not handed out after
                // the error has been reported.
                self.block.clear();
                if gathered == 0 {
                    return Err(err);
                }
                self.deferred = Some(err);
                Ok(false)
            }
        }
    }

    /// Samples worth reserving to hold the whole file, from what its header declares.
    fn reserve_hint(&self) -> usize {
        self.stream
            .declared_samples()
            .map_or(0, |n| n.min(MAX_RESERVE_SAMPLES as u64) as usize)
    }
}

impl fmt::Debug for AudioReader {
    // The decoders are not Debug; show what a reader of logs wants to know.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AudioReader")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
            .field("channels", &self.channels)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// Average interleaved channels to mono.
///
/// A trailing partial frame is ignored. `channels == 0` yields an empty vector, since there is
/// no frame to average.
pub fn downmix(interleaved: &[f32], channels: u16) -> Vec<f32> {
    let mut mono = Vec::with_capacity(interleaved.len() / usize::from(channels.max(1)));
    downmix_into(interleaved, channels, &mut mono);
    mono
}

/// [`downmix`], appending to `out`.
fn downmix_into(interleaved: &[f32], channels: u16, out: &mut Vec<f32>) {
    match channels {
        0 => {}
        1 => out.extend_from_slice(interleaved),
        n => {
            let n = usize::from(n);
            let scale = 1.0 / n as f32;
            out.extend(
                interleaved
                    .chunks_exact(n)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
        }
    }
}

/// Resample a whole mono buffer from `from` Hz to `to` Hz.
///
/// Returns exactly `round(len * to / from)` samples, time-aligned with the input: the
/// resampler's delay is cut from the front and the tail is flushed with silence, so sample `k`
/// of the output is the signal at time `k / to`. Equal rates return a copy.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    check_rate(from)?;
    check_rate(to)?;
    if from == to {
        return Ok(samples.to_vec());
    }
    let target = output_len(samples.len(), from, to);
    if target == 0 {
        return Ok(Vec::new());
    }
    let mut engine = FftEngine::new(from, to)?;
    let delay = engine.delay();
    let mut out = Vec::with_capacity(delay + target + engine.chunk_out());
    engine.push(samples, &mut out);
    // Silence pushes the delayed tail out of the filter; one chunk of it at a time.
    let silence = vec![0.0; engine.chunk_in()];
    while out.len() < delay + target {
        engine.push(&silence, &mut out);
    }
    out.drain(..delay);
    out.truncate(target);
    Ok(out)
}

/// Decode, downmix and resample: mono `f32` at `rate` Hz.
pub fn load_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    // Checked before decoding so a bad setting does not cost a whole decode first.
    check_rate(rate)?;
    // Straight to mono: the interleaved file is never held whole, only the mono result.
    let mut reader = AudioReader::open(path)?;
    let channels = usize::from(reader.channels());
    let mut mono = Vec::with_capacity(reader.reserve_hint() / channels);
    while reader.read_mono(&mut mono, usize::MAX)? > 0 {}
    resample(&mono, reader.sample_rate(), rate)
}

/// Streaming resampler for the realtime pipeline.
///
/// Push chunks of any size of mono samples at `from` Hz, get mono samples at `to` Hz appended
/// to a caller-owned vector. Input is buffered internally until a full block is available, so
/// output arrives in bursts of a fixed size. Its samples are identical to what [`resample`]
/// produces for the same input, shifted by [`delay`](Self::delay).
///
/// Equal rates pass samples straight through with no delay.
pub struct StreamResampler {
    /// `None` when the rates are equal: nothing to do, and no latency to add.
    engine: Option<FftEngine>,
}

impl StreamResampler {
    /// Build a resampler; allocates all buffers up front.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        check_rate(from)?;
        check_rate(to)?;
        let engine = if from == to {
            None
        } else {
            Some(FftEngine::new(from, to)?)
        };
        Ok(StreamResampler { engine })
    }

    /// Resample `input` and append the samples that became ready to `out`.
    ///
    /// Reuses internal buffers; the only allocation is `out` growing.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        match &mut self.engine {
            Some(engine) => engine.push(input, out),
            None => out.extend_from_slice(input),
        }
    }

    /// Latency in output samples: output sample `k` corresponds to input time
    /// `(k - delay) / to` seconds. Callers subtract it to align timestamps.
    ///
    /// This is the filter's delay only; input also waits in the internal block buffer, which
    /// delays when output appears but not which instant it describes.
    pub fn delay(&self) -> usize {
        self.engine.as_ref().map_or(0, FftEngine::delay)
    }

    /// Output samples the engine hands over at once (0 when the rates are equal).
    pub fn block_len(&self) -> usize {
        self.engine.as_ref().map_or(0, FftEngine::chunk_out)
    }
}

impl fmt::Debug for StreamResampler {
    // rubato's resamplers are not Debug; show the shape that matters instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.engine {
            Some(e) => f
                .debug_struct("StreamResampler")
                .field("chunk_in", &e.chunk_in())
                .field("chunk_out", &e.chunk_out())
                .field("pending", &e.pending.len())
                .field("delay", &e.delay())
                .finish(),
            None => f.write_str("StreamResampler(passthrough)"),
        }
    }
}

/// Sample formats of headerless PCM on stdin (`--format`): the common outputs of
/// `ffmpeg -f <fmt>` and `arecord -f <FMT>`. All little-endian and interleaved. They are also
/// how the common WAV encodings lay out their data chunk, which is read in bulk through
/// [`decode`](Self::decode), so a WAV and its data piped raw decode to the same samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Signed 16-bit (`s16le`, arecord `S16_LE`).
    S16Le,
    /// Signed 24-bit packed in 3 bytes (`s24le`, arecord `S24_3LE`). arecord's `S24_LE`
    /// (24 bits in a 4-byte container) is a different layout and deliberately not accepted.
    S24Le,
    /// Signed 32-bit (`s32le`, arecord `S32_LE`).
    S32Le,
    /// 32-bit IEEE float (`f32le`, arecord `FLOAT_LE`).
    F32Le,
    /// Unsigned 8-bit with 128 as silence (`u8`, arecord `U8`).
    U8,
}

impl RawFormat {
    /// The canonical names, as listed in error messages.
    pub const NAMES: &'static str = "s16le, s24le (3-byte), s32le, f32le, u8";

    /// Bytes in one sample of one channel.
    pub fn bytes_per_sample(self) -> usize {
        match self {
            RawFormat::S16Le => 2,
            RawFormat::S24Le => 3,
            RawFormat::S32Le | RawFormat::F32Le => 4,
            RawFormat::U8 => 1,
        }
    }

    /// Append the samples in `bytes` to `out` as `f32` in `[-1, 1]`.
    ///
    /// Only whole samples are decoded; trailing bytes that do not make a full sample are
    /// ignored, so a caller reading a pipe must carry them over to the next call.
    pub fn decode(self, bytes: &[u8], out: &mut Vec<f32>) {
        let width = self.bytes_per_sample();
        let chunks = bytes.chunks_exact(width);
        out.reserve(chunks.len());
        match self {
            RawFormat::S16Le => {
                out.extend(chunks.map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32_768.0))
            }
            RawFormat::S24Le => out.extend(chunks.map(|b| {
                // Place the 3 bytes in the top of an i32 so the shift back sign-extends.
                let v = i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8;
                v as f32 / 8_388_608.0
            })),
            RawFormat::S32Le => out
                .extend(chunks.map(|b| {
                    i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
                })),
            RawFormat::F32Le => {
                out.extend(chunks.map(|b| sanitize(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))))
            }
            RawFormat::U8 => out.extend(chunks.map(|b| (f32::from(b[0]) - 128.0) / 128.0)),
        }
    }

    /// Canonical name, the one [`FromStr`] and ffmpeg use.
    pub fn name(self) -> &'static str {
        match self {
            RawFormat::S16Le => "s16le",
            RawFormat::S24Le => "s24le",
            RawFormat::S32Le => "s32le",
            RawFormat::F32Le => "f32le",
            RawFormat::U8 => "u8",
        }
    }
}

impl fmt::Display for RawFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RawFormat {
    type Err = AudioError;

    /// Accepts ffmpeg's names and arecord's, case-insensitively.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "s16le" | "s16_le" => Ok(RawFormat::S16Le),
            "s24le" | "s24_3le" => Ok(RawFormat::S24Le),
            "s32le" | "s32_le" => Ok(RawFormat::S32Le),
            "f32le" | "float_le" => Ok(RawFormat::F32Le),
            "u8" => Ok(RawFormat::U8),
            _ => Err(AudioError::UnknownRawFormat {
                given: s.to_owned(),
            }),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resampling engine

/// Smallest block, in both input and output samples, the FFT resampler works on. The block
/// length is also the anti-aliasing filter's length, so this trades quality for latency: 160
/// taps (10 ms at 16 kHz) keep the passband flat and the transition band about 200 Hz wide,
/// and a window's last sample waits at most one block plus half a block of filter delay
/// (15 ms) before the consumer sees it. 512 taps cost 48 ms, too much for the latency target
/// in BENCHMARKS.md, and the scores they give differ from 160's by less than the models' noise.
const MIN_BLOCK: u64 = 160;

/// rubato's synchronous FFT resampler plus the input buffer that lets callers push any amount.
///
/// The FFT resampler was chosen over the sinc one because it is exact for rational ratios (so
/// output length tracks input length forever without drift), cheap per sample, and sizes its
/// filter to the ratio, which matters for large down-sampling ratios such as 192 kHz → 16 kHz.
struct FftEngine {
    resampler: FftFixedInOut<f32>,
    /// Input samples waiting for a full block.
    pending: Vec<f32>,
    /// rubato writes into this (one channel) and we copy out, so pushes do not allocate.
    block_out: Vec<Vec<f32>>,
}

impl FftEngine {
    fn new(from: u32, to: u32) -> Result<Self> {
        // Ask for a block of at least MIN_BLOCK on both sides; rubato rounds it up to a multiple
        // of the reduced ratio.
        let wanted_in = MIN_BLOCK.max(MIN_BLOCK * u64::from(from) / u64::from(to));
        let resampler =
            FftFixedInOut::<f32>::new(from as usize, to as usize, wanted_in as usize, 1)
                .map_err(|source| AudioError::Resampler { from, to, source })?;
        let pending = Vec::with_capacity(resampler.input_frames_max());
        let block_out = resampler.output_buffer_allocate(true);
        debug!(
            from,
            to,
            chunk_in = resampler.input_frames_max(),
            chunk_out = resampler.output_frames_max(),
            delay = resampler.output_delay(),
            "built FFT resampler"
        );
        Ok(FftEngine {
            resampler,
            pending,
            block_out,
        })
    }

    fn chunk_in(&self) -> usize {
        self.resampler.input_frames_max()
    }

    fn chunk_out(&self) -> usize {
        self.resampler.output_frames_max()
    }

    fn delay(&self) -> usize {
        self.resampler.output_delay()
    }

    fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        let chunk = self.chunk_in();
        while !input.is_empty() {
            if self.pending.is_empty() && input.len() >= chunk {
                // Whole blocks straight from the caller's slice: no copy into `pending`.
                let (block, rest) = input.split_at(chunk);
                self.run_block(block, out);
                input = rest;
                continue;
            }
            let take = (chunk - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == chunk {
                let block = std::mem::take(&mut self.pending);
                self.run_block(&block, out);
                self.pending = block;
                self.pending.clear();
            }
        }
    }

    fn run_block(&mut self, block: &[f32], out: &mut Vec<f32>) {
        let (_, written) = self
            .resampler
            .process_into_buffer(&[block], &mut self.block_out, None)
            .expect("block and output buffer are sized from the resampler's own frame counts");
        out.extend_from_slice(&self.block_out[0][..written]);
    }
}

fn check_rate(rate: u32) -> Result<()> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(AudioError::RateOutOfRange { rate });
    }
    Ok(())
}

/// `round(len * to / from)` without overflow or float error.
fn output_len(len: usize, from: u32, to: u32) -> usize {
    let (len, from, to) = (len as u128, u128::from(from), u128::from(to));
    ((len * to + from / 2) / from) as usize
}

// ---------------------------------------------------------------------------------------------
// Decoding

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Container {
    /// RIFF/WAVE: hound first.
    Wav,
    /// Some other container symphonia can probe.
    Other,
    /// No known signature.
    Unknown,
}

/// Recognise a container from its leading bytes.
///
/// Only signatures at the very start count. symphonia's own probe scans deep into a file for a
/// sync word, and in arbitrary bytes it finds MP3 frame syncs often enough to "decode" noise;
/// anchoring at offset 0 rejects text and random data reliably.
fn sniff(head: &[u8]) -> Container {
    let at = |offset: usize, magic: &[u8]| head.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"RIFF") && at(8, b"WAVE") {
        return Container::Wav;
    }
    let other = at(0, b"RIFX")
        || at(0, b"RF64")
        || at(0, b"fLaC")
        || at(0, b"OggS")
        || at(0, b"ID3")
        || (at(0, b"FORM") && (at(8, b"AIFF") || at(8, b"AIFC")))
        || at(0, b"caff")
        || at(4, b"ftyp")
        || at(0, &[0x1A, 0x45, 0xDF, 0xA3])
        // MPEG audio / ADTS frame sync: 11 set bits.
        || (head.len() >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0);
    if other {
        Container::Other
    } else {
        Container::Unknown
    }
}

fn open_file(path: &Path) -> Result<File> {
    let file = File::open(path).map_err(|e| io_error(path, e))?;
    // File::open succeeds on directories on Unix; reading them fails with a confusing EISDIR.
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    if meta.is_dir() {
        return Err(io_error(
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "is a directory"),
        ));
    }
    Ok(file)
}

fn io_error(path: &Path, source: io::Error) -> AudioError {
    if source.kind() == io::ErrorKind::NotFound {
        AudioError::NotFound {
            path: path.to_owned(),
        }
    } else {
        AudioError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Fill `buf` as far as `reader` allows; returns the byte count (short only at end of file).
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}

fn check_spec(path: &Path, channels: u32, rate: u32) -> Result<()> {
    let detail = if channels == 0 {
        "0 channels".to_owned()
    } else if channels > u32::from(u16::MAX) {
        format!("{channels} channels")
    } else if rate == 0 {
        "sample rate 0 Hz".to_owned()
    } else if rate > MAX_SAMPLE_RATE {
        format!("sample rate {rate} Hz, above the {MAX_SAMPLE_RATE} Hz hark accepts")
    } else {
        return Ok(());
    };
    Err(AudioError::InvalidSpec {
        path: path.to_owned(),
        detail,
    })
}

/// Samples (not frames) decoded per WAV block: small enough that streaming a file costs the
/// same memory whatever its length, large enough that the per-block overhead vanishes (a bulk
/// block is 32 KiB of 16-bit data, 64 KiB of 32-bit).
const WAV_BLOCK_SAMPLES: usize = 16_384;

/// Most samples [`decode_file`] reserves up front from a header's declared length (64 MiB of
/// `f32`); a lying header must not be able to request gigabytes before any audio is read.
const MAX_RESERVE_SAMPLES: usize = 1 << 24;

/// The decoder behind an [`AudioReader`].
enum Stream {
    Wav(WavStream),
    Symphonia(SymphoniaStream),
}

impl Stream {
    /// Append the next whole frames to the empty `block`; leave it empty at the end of the
    /// stream.
    fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        match self {
            Stream::Wav(wav) => wav.fill(path, block),
            Stream::Symphonia(sym) => sym.fill(path, block),
        }
    }

    /// Rate and channel count; known for a WAV from its header, for symphonia once a packet
    /// has been decoded.
    fn spec(&self) -> Option<(u32, u16)> {
        match self {
            Stream::Wav(wav) => Some((wav.spec.sample_rate, wav.spec.channels)),
            Stream::Symphonia(sym) => sym.spec_seen,
        }
    }

    /// Interleaved samples the header declares, if it does.
    fn declared_samples(&self) -> Option<u64> {
        match self {
            Stream::Wav(wav) => Some(u64::from(wav.declared)),
            Stream::Symphonia(sym) => sym
                .declared_frames
                .zip(sym.spec_seen)
                .map(|(frames, (_, channels))| frames.saturating_mul(u64::from(channels))),
        }
    }
}

/// How a WAV stores its samples, as far as hound reads them.
#[derive(Debug, Clone, Copy)]
enum WavEncoding {
    /// 32-bit IEEE float.
    Float,
    /// Integers; `scale` maps full scale to 1.
    Int { scale: f32 },
}

/// What hound reads a WAV from. [`EofWatch`] sits under the buffer, where end of file shows.
type WavInput = BufReader<EofWatch<File>>;

/// RIFF/WAVE whose header hound has read.
struct WavStream {
    data: WavData,
    spec: hound::WavSpec,
    /// Interleaved samples the header declares.
    declared: u32,
    /// Frames handed out so far, for the warning about a cut-short file.
    frames: u64,
    /// The data ended (where the header says, or earlier); nothing more to read.
    finished: bool,
}

/// Where a WAV's samples come from.
enum WavData {
    /// The common layouts, laid out as raw PCM is: read in bulk.
    Bulk(BulkWav),
    /// Everything else hound reads (8-bit, 24 bits in 4-byte containers, …), a sample at a
    /// time.
    Hound {
        reader: hound::WavReader<WavInput>,
        hit_eof: Arc<AtomicBool>,
        encoding: WavEncoding,
    },
}

impl WavStream {
    fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        let channels = usize::from(self.spec.channels);
        let wanted = (WAV_BLOCK_SAMPLES / channels).max(1) * channels;
        let cut_short = match &mut self.data {
            WavData::Bulk(bulk) => bulk.read(path, wanted, block)?,
            WavData::Hound {
                reader,
                hit_eof,
                encoding: WavEncoding::Float,
            } => read_wav_block(
                path,
                reader.samples::<f32>(),
                hit_eof,
                wanted,
                block,
                sanitize,
            )?,
            WavData::Hound {
                reader,
                hit_eof,
                encoding: WavEncoding::Int { scale },
            } => read_wav_block(
                path,
                reader.samples::<i32>(),
                hit_eof,
                wanted,
                block,
                |s: i32| s as f32 * *scale,
            )?,
        };
        if block.len() < wanted {
            self.finished = true;
            // A file cut mid-frame leaves a partial frame; it is not audio anyone can use.
            block.truncate(block.len() - block.len() % channels);
        }
        self.frames += (block.len() / channels) as u64;
        if cut_short {
            warn!(
                path = %path.display(),
                frames = self.frames,
                "WAV data ends before the length its header declares; using the samples present"
            );
        }
        Ok(())
    }
}

/// The data chunk of a WAV laid out as one of the [`RawFormat`]s, read a block of bytes at a
/// time and converted by [`RawFormat::decode`]. WAV integers scale by 2^-(bits-1) and floats are
/// sanitized exactly as raw PCM's are, so this gives the samples hound's per-sample reader
/// would, at a fraction of the cost.
struct BulkWav {
    /// Positioned in the data chunk, never read past its declared end. What hound's buffer
    /// holds beyond the header comes first; reads of a whole block then bypass the buffer.
    data: WavInput,
    format: RawFormat,
    /// Bytes of the data chunk, as declared, not read yet.
    remaining: u64,
    /// One block of raw bytes, sized by the first read and reused so that steady-state
    /// reading does not allocate.
    bytes: Vec<u8>,
}

impl BulkWav {
    /// Append up to `wanted` samples to `block`, stopping where the data runs out, a partial
    /// sample dropped. Returns whether the data ended before the header said it would.
    fn read(&mut self, path: &Path, wanted: usize, block: &mut Vec<f32>) -> Result<bool> {
        let want = (wanted * self.format.bytes_per_sample()) as u64;
        let len = want.min(self.remaining) as usize;
        if self.bytes.len() < len {
            self.bytes.resize(len, 0);
        }
        let bytes = &mut self.bytes[..len];
        let got = read_up_to(&mut self.data, bytes).map_err(|e| io_error(path, e))?;
        self.remaining -= got as u64;
        self.format.decode(&bytes[..got], block);
        Ok(got < len)
    }
}

/// Records whether the wrapped reader reached end of file. hound reports running out of bytes
/// as a generic `ErrorKind::Other`, so this is how a cut-short file is told apart from a failing
/// disk without matching on hound's message text.
struct EofWatch<R> {
    inner: R,
    /// Shared with the [`WavStream`]; atomic only so that a reader can move to another thread.
    hit_eof: Arc<AtomicBool>,
}

impl<R: Read> Read for EofWatch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.hit_eof.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// Append up to `wanted` converted samples to `block`, stopping quietly where the data runs
/// out. Returns whether the data ended before the header said it would.
fn read_wav_block<R: Read, S: hound::Sample>(
    path: &Path,
    samples: hound::WavSamples<'_, R, S>,
    hit_eof: &AtomicBool,
    wanted: usize,
    block: &mut Vec<f32>,
    convert: impl Fn(S) -> f32,
) -> Result<bool> {
    for sample in samples.take(wanted) {
        match sample {
            Ok(s) => block.push(convert(s)),
            Err(hound::Error::IoError(_)) if hit_eof.load(Ordering::Relaxed) => return Ok(true),
            Err(hound::Error::IoError(e)) => return Err(io_error(path, e)),
            Err(e) => {
                return Err(AudioError::Corrupt {
                    path: path.to_owned(),
                    detail: e.to_string(),
                })
            }
        }
    }
    Ok(false)
}

/// Read the header of the RIFF/WAVE `file` (positioned at its start) with hound.
fn read_wav_header(file: File) -> (hound::Result<hound::WavReader<WavInput>>, Arc<AtomicBool>) {
    let hit_eof = Arc::new(AtomicBool::new(false));
    let watched = EofWatch {
        inner: file,
        hit_eof: Arc::clone(&hit_eof),
    };
    (hound::WavReader::new(BufReader::new(watched)), hit_eof)
}

/// Open RIFF/WAVE with hound, falling back to symphonia for encodings hound does not read.
fn open_wav(path: &Path, file: File) -> Result<AudioReader> {
    let (reader, hit_eof) = match read_wav_header(file) {
        (Ok(reader), hit_eof) => (reader, hit_eof),
        (Err(err), hit_eof) => return wav_fallback(path, err, hit_eof.load(Ordering::Relaxed)),
    };
    let spec = reader.spec();
    check_spec(path, u32::from(spec.channels), spec.sample_rate)?;
    let encoding = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => WavEncoding::Float,
        (hound::SampleFormat::Int, bits @ 1..=32) => WavEncoding::Int {
            scale: 1.0 / (1u64 << (bits - 1)) as f32,
        },
        _ => return wav_fallback(path, hound::Error::Unsupported, false),
    };
    let declared = reader.len();
    let data = match bulk_format(spec) {
        Some(format) if declared > 0 => wav_data(path, reader, format, declared, encoding)?,
        _ => WavData::Hound {
            reader,
            hit_eof,
            encoding,
        },
    };
    let stream = WavStream {
        data,
        spec,
        declared,
        frames: 0,
        finished: false,
    };
    AudioReader::prime(path, Stream::Wav(stream))
}

/// The raw layout a WAV of this spec has in the common case. hound reads 8-bit samples
/// (unsigned), and 24-bit ones in 4-byte containers, itself.
fn bulk_format(spec: hound::WavSpec) -> Option<RawFormat> {
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 16) => Some(RawFormat::S16Le),
        (hound::SampleFormat::Int, 24) => Some(RawFormat::S24Le),
        (hound::SampleFormat::Int, 32) => Some(RawFormat::S32Le),
        (hound::SampleFormat::Float, 32) => Some(RawFormat::F32Le),
        _ => None,
    }
}

/// Read the data chunk hound has found in bulk if its `declared` samples really are `format`'s
/// width; if they are wider, let hound read them, with a reader made anew from the top.
fn wav_data(
    path: &Path,
    reader: hound::WavReader<WavInput>,
    format: RawFormat,
    declared: u32,
    encoding: WavEncoding,
) -> Result<WavData> {
    let data = reader.into_inner();
    let data_len = data_chunk_len(&data).map_err(|e| io_error(path, e))?;
    let bulk_len = u64::from(declared) * format.bytes_per_sample() as u64;
    if data_len == Some(bulk_len) {
        return Ok(WavData::Bulk(BulkWav {
            data,
            format,
            remaining: bulk_len,
            bytes: Vec::new(),
        }));
    }
    let mut file = data.into_inner().inner;
    file.rewind().map_err(|e| io_error(path, e))?;
    match read_wav_header(file) {
        (Ok(reader), hit_eof) => Ok(WavData::Hound {
            reader,
            hit_eof,
            encoding,
        }),
        (Err(err), _) => Err(AudioError::BadHeader {
            path: path.to_owned(),
            detail: err.to_string(),
        }),
    }
}

/// The length the data chunk declares, `data` being positioned at its first byte. hound knows
/// how wide the samples in it are but does not say; the chunk's length over hound's sample count
/// does. Its 8-byte header, just behind the reader, is read again; `None` if it is not there.
fn data_chunk_len(data: &WavInput) -> io::Result<Option<u64>> {
    let mut file = &data.get_ref().inner;
    let start = file.stream_position()? - data.buffer().len() as u64;
    let Some(at) = start.checked_sub(8) else {
        return Ok(None);
    };
    let mut header = [0u8; 8];
    file.read_exact_at(&mut header, at)?;
    Ok(match header {
        [b'd', b'a', b't', b'a', len @ ..] => Some(u64::from(u32::from_le_bytes(len))),
        _ => None,
    })
}

/// hound refused the file: let symphonia try (it reads 64-bit float, A-law, µ-law, ADPCM and
/// looser headers). If it cannot either, report hound's reason, which is the more specific.
fn wav_fallback(path: &Path, hound_err: hound::Error, hit_eof: bool) -> Result<AudioReader> {
    debug!(path = %path.display(), error = %hound_err, "hound cannot read this WAV, trying symphonia");
    let file = open_file(path)?;
    match open_symphonia(path, file).and_then(|stream| AudioReader::prime(path, stream)) {
        Ok(reader) => Ok(reader),
        Err(sym_err) => {
            debug!(path = %path.display(), error = %sym_err, "symphonia cannot read this WAV either");
            Err(match hound_err {
                hound::Error::IoError(_) if hit_eof => AudioError::Corrupt {
                    path: path.to_owned(),
                    detail: "the file ends inside its WAV header".to_owned(),
                },
                hound::Error::IoError(e) => io_error(path, e),
                hound::Error::Unsupported => AudioError::UnsupportedCodec {
                    path: path.to_owned(),
                    detail: format!("WAV sample format not supported: {sym_err}"),
                },
                other => AudioError::BadHeader {
                    path: path.to_owned(),
                    detail: other.to_string(),
                },
            })
        }
    }
}

/// Any container symphonia knows, first audio track only.
struct SymphoniaStream {
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

fn open_symphonia(path: &Path, file: File) -> Result<Stream> {
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
    /// Decode packets until one yields frames (appended to `block`) or the stream ends.
    fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downmix_averages_frames_and_drops_partial_tail() {
        let stereo = [1.0, 0.0, 0.5, -0.5, 0.25];
        assert_eq!(downmix(&stereo, 2), vec![0.5, 0.0]);
        assert_eq!(downmix(&stereo, 1), stereo.to_vec());
        assert!(downmix(&stereo, 0).is_empty());
        let six = [0.6f32; 12];
        for s in downmix(&six, 6) {
            assert!((s - 0.6).abs() < 1e-6);
        }
    }

    #[test]
    fn raw_formats_parse_ffmpeg_and_arecord_names() {
        for (name, want) in [
            ("s16le", RawFormat::S16Le),
            ("S16_LE", RawFormat::S16Le),
            ("s24le", RawFormat::S24Le),
            ("S24_3LE", RawFormat::S24Le),
            ("s32le", RawFormat::S32Le),
            ("f32le", RawFormat::F32Le),
            ("FLOAT_LE", RawFormat::F32Le),
            ("u8", RawFormat::U8),
        ] {
            assert_eq!(name.parse::<RawFormat>().unwrap(), want, "{name}");
        }
        for f in [
            RawFormat::S16Le,
            RawFormat::S24Le,
            RawFormat::S32Le,
            RawFormat::F32Le,
            RawFormat::U8,
        ] {
            assert_eq!(f.name().parse::<RawFormat>().unwrap(), f);
        }
    }

    #[test]
    fn unknown_raw_format_error_lists_allowed_names() {
        // S24_LE is a 4-byte container; silently reading it as packed 3-byte would be garbage.
        for bad in ["S24_LE", "mp3", ""] {
            let msg = bad.parse::<RawFormat>().unwrap_err().to_string();
            for name in ["s16le", "s24le", "s32le", "f32le", "u8"] {
                assert!(msg.contains(name), "{msg}");
            }
        }
    }

    #[test]
    fn raw_decode_scales_extremes_and_ignores_partial_samples() {
        let mut out = Vec::new();
        RawFormat::S16Le.decode(&[0x00, 0x80, 0xff, 0x7f, 0x00, 0x00, 0x12], &mut out);
        assert_eq!(out, vec![-1.0, 32767.0 / 32768.0, 0.0]);

        out.clear();
        RawFormat::S24Le.decode(
            &[0x00, 0x00, 0x80, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff],
            &mut out,
        );
        assert_eq!(
            out,
            vec![-1.0, 8_388_607.0 / 8_388_608.0, -1.0 / 8_388_608.0]
        );

        out.clear();
        RawFormat::S32Le.decode(&[0, 0, 0, 0x80, 0, 0, 0, 0x40], &mut out);
        assert_eq!(out, vec![-1.0, 0.5]);

        out.clear();
        let mut bytes = Vec::new();
        for v in [0.25f32, -2.0, f32::NAN] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        RawFormat::F32Le.decode(&bytes, &mut out);
        assert_eq!(out, vec![0.25, -1.0, 0.0]);

        out.clear();
        RawFormat::U8.decode(&[0, 128, 192], &mut out);
        assert_eq!(out, vec![-1.0, 0.0, 0.5]);
    }

    #[test]
    fn output_len_rounds_to_nearest() {
        assert_eq!(output_len(44_100, 44_100, 16_000), 16_000);
        assert_eq!(output_len(3, 3, 2), 2);
        assert_eq!(output_len(1, 3, 1), 0);
        assert_eq!(output_len(2, 3, 1), 1);
        assert!(output_len(usize::MAX / 4, 1, MAX_SAMPLE_RATE) > 0);
    }

    #[test]
    fn resample_rejects_zero_and_absurd_rates() {
        for (from, to) in [(0, 16_000), (16_000, 0), (MAX_SAMPLE_RATE + 1, 16_000)] {
            assert!(matches!(
                resample(&[0.0; 10], from, to),
                Err(AudioError::RateOutOfRange { .. })
            ));
            assert!(StreamResampler::new(from, to).is_err());
        }
    }

    #[test]
    fn equal_rates_pass_through_without_delay() {
        let input: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        assert_eq!(resample(&input, 16_000, 16_000).unwrap(), input);
        let mut s = StreamResampler::new(16_000, 16_000).unwrap();
        let mut out = Vec::new();
        s.process(&input, &mut out);
        assert_eq!(out, input);
        assert_eq!(s.delay(), 0);
    }

    #[test]
    fn resample_handles_empty_and_tiny_inputs() {
        assert!(resample(&[], 48_000, 16_000).unwrap().is_empty());
        assert_eq!(resample(&[0.5; 3], 48_000, 16_000).unwrap().len(), 1);
        assert_eq!(resample(&[0.5; 1], 8_000, 16_000).unwrap().len(), 2);
    }

    #[test]
    fn sniff_anchors_signatures_at_offset_zero() {
        assert_eq!(sniff(b"RIFF\0\0\0\0WAVEfmt "), Container::Wav);
        assert_eq!(sniff(b"fLaC\0\0\0\x22"), Container::Other);
        assert_eq!(sniff(b"OggS\0\x02"), Container::Other);
        assert_eq!(sniff(b"ID3\x04\0"), Container::Other);
        assert_eq!(sniff(&[0xFF, 0xFB, 0x90, 0x64]), Container::Other);
        assert_eq!(sniff(b"hello, this is text"), Container::Unknown);
        assert_eq!(sniff(b"xxxxRIFF\0\0\0\0WAVE"), Container::Unknown);
        assert_eq!(sniff(b"R"), Container::Unknown);
    }

    /// Which reader a WAV of `bits` bits in `bytes`-byte containers gets: the bulk one, or
    /// hound's sample by sample. The samples are the same either way (tests/audio_decode.rs).
    fn read_in_bulk(dir: &Path, format: hound::SampleFormat, bits: u16, bytes: u16) -> bool {
        let path = dir.join(format!("{format:?}{bits}in{bytes}.wav"));
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: bits,
            sample_format: format,
        };
        let spec_ex = hound::WavSpecEx {
            spec,
            bytes_per_sample: bytes,
        };
        let file = io::BufWriter::new(File::create(&path).unwrap());
        let mut w = hound::WavWriter::new_with_spec_ex(file, spec_ex).unwrap();
        for _ in 0..100 {
            match format {
                hound::SampleFormat::Float => w.write_sample(0.5f32).unwrap(),
                hound::SampleFormat::Int if bits == 8 => w.write_sample(-3i8).unwrap(),
                hound::SampleFormat::Int => w.write_sample(-3i32).unwrap(),
            }
        }
        w.finalize().unwrap();
        let reader = AudioReader::open(&path).unwrap();
        let Stream::Wav(wav) = &reader.stream else {
            panic!("{} went to symphonia", path.display());
        };
        matches!(wav.data, WavData::Bulk(_))
    }

    #[test]
    fn common_wav_layouts_are_read_in_bulk_and_the_rest_by_hound() {
        let dir = tempfile::tempdir().unwrap();
        let (int, float) = (hound::SampleFormat::Int, hound::SampleFormat::Float);
        for (format, bits, bytes) in [(int, 16, 2), (int, 24, 3), (int, 32, 4), (float, 32, 4)] {
            assert!(
                read_in_bulk(dir.path(), format, bits, bytes),
                "{bits} in {bytes}"
            );
        }
        for (format, bits, bytes) in [(int, 8, 1), (int, 24, 4)] {
            assert!(
                !read_in_bulk(dir.path(), format, bits, bytes),
                "{bits} in {bytes}"
            );
        }
    }
}
