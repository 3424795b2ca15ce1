//! Decoding files: sniffing the container, the block-at-a-time [`AudioReader`] over the WAV
//! and symphonia decoders, and downmixing to mono.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use tracing::debug;

use super::resample::resample;
use super::symphonia_stream::{open_symphonia, SymphoniaStream};
use super::wav::{open_wav, WavStream};
use super::{
    check_rate, AudioError, Decoded, Result, MAX_SAMPLE_RATE, MAX_WHOLE_FILE_SAMPLES,
    MIN_SAMPLE_RATE,
};

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
    decode_file_within(path, MAX_WHOLE_FILE_SAMPLES)
}

/// [`decode_file`] with the cap on interleaved samples as a parameter (its tests use a small
/// one; everything else passes [`MAX_WHOLE_FILE_SAMPLES`]).
fn decode_file_within(path: &Path, max_samples: usize) -> Result<Decoded> {
    let mut reader = AudioReader::open(path)?;
    let mut samples = Vec::with_capacity(reader.reserve_hint().min(max_samples));
    read_whole(&mut reader, max_samples, |r, cap| {
        r.read_interleaved(&mut samples, cap)
    })?;
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
    pub(super) stream: Stream,
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
    pub(super) fn prime(path: &Path, mut stream: Stream) -> Result<AudioReader> {
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

    /// Seconds of audio the file's header declares, if it does (a WAV always does; FLAC,
    /// Ogg and MP3 files may not). What was written, not what will decode: for progress.
    pub fn declared_seconds(&self) -> Option<f64> {
        let frames = self.stream.declared_samples()? / u64::from(self.channels.max(1));
        Some(frames as f64 / f64::from(self.sample_rate.max(1)))
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

/// Decode, downmix and resample: mono `f32` at `rate` Hz.
pub fn load_mono(path: &Path, rate: u32) -> Result<Vec<f32>> {
    // Checked before decoding so a bad setting does not cost a whole decode first.
    check_rate(rate)?;
    // Straight to mono: the interleaved file is never held whole, only the mono result.
    let mut reader = AudioReader::open(path)?;
    let channels = usize::from(reader.channels());
    let mut mono = Vec::with_capacity(reader.reserve_hint() / channels);
    read_whole(&mut reader, MAX_WHOLE_FILE_SAMPLES, |r, cap| {
        r.read_mono(&mut mono, cap)
    })?;
    resample(&mono, reader.sample_rate(), rate)
}

/// Drain `reader` through `read` (which reads up to the frame count it is given), refusing a
/// file of more than `max_samples` interleaved samples ([`MAX_WHOLE_FILE_SAMPLES`]).
fn read_whole(
    reader: &mut AudioReader,
    max_samples: usize,
    mut read: impl FnMut(&mut AudioReader, usize) -> Result<usize>,
) -> Result<()> {
    let cap = max_samples / usize::from(reader.channels());
    let mut frames = 0usize;
    loop {
        // One frame past the cap tells a file of exactly the cap from a longer one.
        let n = read(reader, cap + 1 - frames)?;
        frames += n;
        if frames > cap {
            return Err(AudioError::TooLong {
                path: reader.path().to_owned(),
            });
        }
        if n == 0 {
            return Ok(());
        }
    }
}

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

pub(super) fn open_file(path: &Path) -> Result<File> {
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

pub(super) fn io_error(path: &Path, source: io::Error) -> AudioError {
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
pub(super) fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

pub(super) fn check_spec(path: &Path, channels: u32, rate: u32) -> Result<()> {
    let detail = if channels == 0 {
        "0 channels".to_owned()
    } else if channels > u32::from(u16::MAX) {
        format!("{channels} channels")
    } else if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        format!("sample rate {rate} Hz; hark accepts {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    } else {
        return Ok(());
    };
    Err(AudioError::InvalidSpec {
        path: path.to_owned(),
        detail,
    })
}

/// Most samples [`decode_file`] reserves up front from a header's declared length (64 MiB of
/// `f32`); a lying header must not be able to request gigabytes before any audio is read.
const MAX_RESERVE_SAMPLES: usize = 1 << 24;

/// The decoder behind an [`AudioReader`].
pub(super) enum Stream {
    Wav(WavStream),
    Symphonia(SymphoniaStream),
}

impl Stream {
    /// Append the next whole frames to the empty `block`; leave it empty at the end of the
    /// stream.
    pub(super) fn fill(&mut self, path: &Path, block: &mut Vec<f32>) -> Result<()> {
        match self {
            Stream::Wav(wav) => wav.fill(path, block),
            Stream::Symphonia(sym) => sym.fill(path, block),
        }
    }

    /// Rate and channel count; known for a WAV from its header, for symphonia once a packet
    /// has been decoded.
    fn spec(&self) -> Option<(u32, u16)> {
        match self {
            Stream::Wav(wav) => Some(wav.spec()),
            Stream::Symphonia(sym) => sym.spec(),
        }
    }

    /// Interleaved samples the header declares, if it does.
    fn declared_samples(&self) -> Option<u64> {
        match self {
            Stream::Wav(wav) => Some(wav.declared_samples()),
            Stream::Symphonia(sym) => sym.declared_samples(),
        }
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

    /// A 16-bit WAV of `frames` frames of `channels` channels at 16 kHz.
    fn wav(dir: &Path, frames: usize, channels: u16) -> PathBuf {
        let path = dir.join(format!("{frames}x{channels}.wav"));
        let spec = hound::WavSpec {
            channels,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..frames * usize::from(channels) {
            w.write_sample((i % 1000) as i16).unwrap();
        }
        w.finalize().unwrap();
        path
    }

    /// Issue 19: reading a file whole is bounded by a hard cap (2^28 samples, the cap
    /// `decode_file` passes), here made small: a file of exactly the cap decodes, one frame
    /// more is refused with [`AudioError::TooLong`] naming the file, on every block size.
    #[test]
    fn whole_file_decode_cap_refuses_one_frame_past_it() {
        assert_eq!(MAX_WHOLE_FILE_SAMPLES, 1 << 28);
        let dir = tempfile::tempdir().unwrap();
        for (frames, channels) in [(10_000, 1), (10_000, 2), (4096, 2), (1, 1)] {
            let path = wav(dir.path(), frames, channels);
            let cap = frames * usize::from(channels);
            let whole = decode_file_within(&path, cap).unwrap();
            assert_eq!(whole.samples.len(), cap);
            assert_eq!(whole.samples, decode_file(&path).unwrap().samples);
            // A cap one sample short of the file: a frame too few fit.
            match decode_file_within(&path, cap - 1) {
                Err(e @ AudioError::TooLong { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains(&path.display().to_string()), "{text}");
                    assert!(text.contains("268435456 samples"), "{text}");
                }
                other => panic!("{frames}x{channels} under cap {}: {other:?}", cap - 1),
            }
        }
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
}
