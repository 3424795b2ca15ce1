//! RIFF/WAVE through hound: the common layouts read in bulk as [`RawFormat`]s, the rest a
//! sample at a time, and symphonia for what hound refuses.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tracing::{debug, warn};

use super::decode::{check_spec, io_error, open_file, read_up_to, AudioReader, Stream};
use super::symphonia_stream::open_symphonia;
use super::{sanitize, AudioError, RawFormat, Result};

/// Samples (not frames) decoded per WAV block: small enough that streaming a file costs the
/// same memory whatever its length, large enough that the per-block overhead vanishes (a bulk
/// block is 32 KiB of 16-bit data, 64 KiB of 32-bit).
const WAV_BLOCK_SAMPLES: usize = 16_384;

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
pub(super) struct WavStream {
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
    /// Rate and channel count, from the header.
    pub(super) fn spec(&self) -> (u32, u16) {
        (self.spec.sample_rate, self.spec.channels)
    }

    /// Interleaved samples the header declares.
    pub(super) fn declared_samples(&self) -> u64 {
        u64::from(self.declared)
    }

    pub(super) fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
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
            Err(e) => return Err(AudioError::corrupt(path, e.to_string())),
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
pub(super) fn open_wav(path: &Path, file: File) -> Result<AudioReader> {
    precheck_fmt(path, &file)?;
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

/// How far into a WAV [`precheck_fmt`] looks for the `fmt ` chunk.
const PRECHECK_BYTES: usize = 64 * 1024;

/// Refuse a WAV whose `fmt ` chunk declares an impossible stream (0 channels, a rate outside
/// the accepted range) before any decoder sees it: hound refuses some such headers, but the
/// symphonia fallback panics on a rate of 0, and a rate of a few hertz turns a small file into
/// hours of audio. Walks the RIFF chunks in the first [`PRECHECK_BYTES`]; a header it cannot
/// walk is left to the decoders, which report it in their words.
fn precheck_fmt(path: &Path, file: &File) -> Result<()> {
    let mut head = vec![0u8; PRECHECK_BYTES];
    let mut len = 0;
    while len < head.len() {
        match file.read_at(&mut head[len..], len as u64) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(path, e)),
        }
    }
    match fmt_chunk(&head[..len]) {
        Some((channels, rate)) => check_spec(path, u32::from(channels), rate),
        None => Ok(()),
    }
}

/// Channels and rate from the `fmt ` chunk of the RIFF/WAVE bytes `head`, if it is there.
fn fmt_chunk(head: &[u8]) -> Option<(u16, u32)> {
    let u32_at = |at: usize| Some(u32::from_le_bytes(head.get(at..at + 4)?.try_into().ok()?));
    let mut at = 12; // "RIFF", size, "WAVE"
    while let (Some(id), Some(size)) = (head.get(at..at + 4), u32_at(at + 4)) {
        if id == b"fmt " {
            let channels = u16::from_le_bytes(head.get(at + 10..at + 12)?.try_into().ok()?);
            return Some((channels, u32_at(at + 12)?));
        }
        // Chunks are padded to an even length.
        let size = usize::try_from(size).ok()?;
        at = at
            .checked_add(8)?
            .checked_add(size)?
            .checked_add(size & 1)?;
    }
    None
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
        (Err(err), _) => Err(AudioError::bad_header(path, err.to_string())),
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
                hound::Error::IoError(_) if hit_eof => {
                    AudioError::corrupt(path, "the file ends inside its WAV header")
                }
                hound::Error::IoError(e) => io_error(path, e),
                hound::Error::Unsupported => AudioError::unsupported_codec(
                    path,
                    format!("WAV sample format not supported: {sym_err}"),
                ),
                other => AudioError::bad_header(path, other.to_string()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    use super::*;
    use crate::audio::decode::Stream;
    use crate::audio::AudioReader;

    /// Which reader a WAV of `bits` bits in `bytes`-byte containers gets: the bulk one, or
    /// hound's sample by sample. The samples are the same either way (tests/it/audio_decode.rs).
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
