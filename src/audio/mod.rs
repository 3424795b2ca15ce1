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
//!
//! Files: `decode` (sniffing, [`AudioReader`], [`downmix`]), `wav` (hound and the bulk WAV
//! reader), `symphonia_stream` (every other container), `resample` (the resamplers and their
//! engine), `sinc` (the engine's filter), `raw` ([`RawFormat`]).

mod decode;
pub mod measure;
mod raw;
mod resample;
mod sinc;
mod symphonia_stream;
mod wav;

use std::io;
use std::path::{Path, PathBuf};

pub use decode::{decode_file, downmix, load_mono, AudioReader};
pub use raw::RawFormat;
pub use resample::{resample, StreamResampler};

/// Highest sample rate accepted anywhere in this module. 768 kHz is the fastest rate common
/// converters offer; anything above it in a file header is far more likely damage than audio,
/// and it bounds the filter the resampler builds (its length grows with the input rate).
pub const MAX_SAMPLE_RATE: u32 = 768_000;

/// Lowest sample rate a file header or raw input may declare. Below 1 kHz there is no sound a
/// detector can use, and a header claiming 1, 2 or 8 Hz turns a few kilobytes into hours of
/// "audio" that the resampler multiplies into gigabytes: such a header is damage.
pub const MIN_SAMPLE_RATE: u32 = 1_000;

/// Most interleaved samples a whole-file decode ([`decode_file`], [`load_mono`]) holds: 2^28
/// (1 GiB of `f32`, 4.6 hours of mono at 16 kHz). Longer files are refused before they exhaust
/// memory; [`AudioReader`] (and so `hark classify` and `hark run`) streams them instead.
pub const MAX_WHOLE_FILE_SAMPLES: usize = 1 << 28;

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

    /// A decoder panicked on this file; the panic was caught and the file refused.
    #[error("the decoder failed on `{}` ({detail}); the file is damaged or of a kind the decoder cannot handle, re-export it", .path.display())]
    DecoderPanicked { path: PathBuf, detail: String },

    /// The file holds more samples than a whole-file decode keeps in memory.
    #[error("`{}` is longer than hark decodes whole ({MAX_WHOLE_FILE_SAMPLES} samples); split it, e.g. `sox INPUT OUTPUT.wav trim 0 3600 : newfile : restart`, or use `hark classify`, which streams", .path.display())]
    TooLong { path: PathBuf },

    /// A sample rate given to a resampler is zero or above [`MAX_SAMPLE_RATE`].
    #[error("sample rate {rate} Hz is out of range; hark handles 1 to {MAX_SAMPLE_RATE} Hz — check the configured or detected rate")]
    RateOutOfRange { rate: u32 },

    /// A `--format` name that is not one of [`RawFormat`]'s.
    #[error("unknown raw sample format `{given}`; allowed: {}", RawFormat::NAMES)]
    UnknownRawFormat { given: String },
}

impl AudioError {
    /// [`AudioError::Corrupt`] for the file at `path`.
    fn corrupt(path: &Path, detail: impl Into<String>) -> Self {
        AudioError::Corrupt {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    /// [`AudioError::UnsupportedCodec`] for the file at `path`.
    fn unsupported_codec(path: &Path, detail: impl Into<String>) -> Self {
        AudioError::UnsupportedCodec {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }

    /// [`AudioError::BadHeader`] for the file at `path`.
    fn bad_header(path: &Path, detail: impl Into<String>) -> Self {
        AudioError::BadHeader {
            path: path.to_owned(),
            detail: detail.into(),
        }
    }
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

/// A rate is usable when it is in 1..=[`MAX_SAMPLE_RATE`].
fn check_rate(rate: u32) -> Result<()> {
    if rate == 0 || rate > MAX_SAMPLE_RATE {
        return Err(AudioError::RateOutOfRange { rate });
    }
    Ok(())
}

/// A decoded float sample in `[-1, 1]`: out-of-range values clamped, non-finite ones 0.
fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-1.0, 1.0)
    } else {
        0.0
    }
}
