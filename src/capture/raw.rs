//! Raw interleaved PCM as a source: from stdin (`--input -`) or any other reader, read
//! losslessly, with frames split across reads put back together.

use std::io::{self, Read};
use std::sync::atomic::Ordering;

use tracing::warn;

use super::ring::RingSink;
use super::worker::{chunk_frames, push_all, OnDrop, StopSignal};
use super::{Capture, CaptureError, Result, Source};
use crate::audio::{self, RawFormat};

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
        Capture::spawn(
            name,
            rate,
            ring_capacity_seconds,
            OnDrop::Detach,
            move |mut sink, stop| {
                feed_raw(
                    reader,
                    rate,
                    format,
                    channels,
                    &thread_name,
                    &mut sink,
                    &stop,
                )
            },
        )
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
    use crate::capture::worker::drain_until_ended;
    use std::process::{Command, Stdio};

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
