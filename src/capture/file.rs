//! A decoded audio file as a source: paced at real time like a device (counting overruns),
//! or lossless, as fast as the consumer drains the ring.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tracing::warn;

use super::ring::RingSink;
use super::worker::{chunk_frames, push_all, OnDrop, StopSignal};
use super::{Capture, Result, Source};
use crate::audio;

/// An audio file, decoded a block at a time as it is fed to the ring, so a long file costs no
/// more memory than a short one: the ring plus one block.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    /// Pace delivery at real time, as a device would (and count overruns when the consumer
    /// falls behind). When false, deliver as fast as the consumer drains the ring, waiting
    /// whenever it is full, so no sample is lost: for offline runs and tests.
    pub realtime: bool,
}

impl Source for FileSource {
    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn start(self: Box<Self>, ring_capacity_seconds: f32) -> Result<Capture> {
        // Open (which decodes the first block) on the caller's thread, so a missing or broken
        // file fails `start` itself.
        let reader = audio::AudioReader::open(&self.path)?;
        let realtime = self.realtime;
        Capture::spawn(
            self.path.display().to_string(),
            reader.sample_rate(),
            ring_capacity_seconds,
            OnDrop::Join,
            move |mut sink, stop| {
                if feed_file(&mut sink, reader, realtime, &stop) {
                    sink.stats().ended.store(true, Ordering::Release);
                }
            },
        )
    }
}

/// Decodes and feeds the file in 10 ms blocks; returns false if stopped before the end. A
/// decoding error partway through ends the stream there, as if the file ended: what came before
/// it has been delivered, and the consumer winds down as it does at any end of input.
fn feed_file(
    sink: &mut RingSink,
    mut reader: audio::AudioReader,
    realtime: bool,
    stop: &StopSignal,
) -> bool {
    let sample_rate = reader.sample_rate();
    let block = chunk_frames(sample_rate);
    let mut piece = Vec::with_capacity(block);
    let start = Instant::now();
    let mut sent = 0usize;
    loop {
        piece.clear();
        match reader.read_mono(&mut piece, block) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(err) => {
                sink.stats().errors.fetch_add(1, Ordering::Relaxed);
                warn!(
                    path = %reader.path().display(),
                    samples = sent,
                    error = %err,
                    "decoding failed partway through the file; treating it as the end"
                );
                return true;
            }
        }
        if realtime {
            // A device hands over a block once it has been recorded. The deadline comes from
            // the sample count, not from the previous wake-up, so late wake-ups never add up.
            let due = (sent + piece.len()) as f64 / f64::from(sample_rate.max(1));
            if !stop.sleep_until(start + Duration::from_secs_f64(due)) {
                return false;
            }
            sink.push(&piece);
        } else if !push_all(sink, &piece, stop) {
            return false;
        }
        sent += piece.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::AudioError;
    use crate::capture::worker::drain_until_ended;
    use crate::capture::CaptureError;
    use std::f32::consts::PI;
    use std::path::Path;
    use std::process::Command;
    use std::thread;

    fn sine(rate: u32, secs: f32, freq: f32, amp: f32) -> Vec<f32> {
        let n = (rate as f32 * secs).round() as usize;
        (0..n)
            .map(|i| amp * (2.0 * PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn write_float_wav(path: &Path, rate: u32, channels: u16, interleaved: &[f32]) {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 32,
            sample_format: hound::SampleFormat::Float,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for &s in interleaved {
            writer.write_sample(s).unwrap();
        }
        writer.finalize().unwrap();
    }

    /// A mono 440 Hz tone at half scale, `secs` long, written as `dir/name`.
    fn tone_wav(dir: &Path, name: &str, rate: u32, secs: f32) -> PathBuf {
        let path = dir.join(name);
        write_float_wav(&path, rate, 1, &sine(rate, secs, 440.0, 0.5));
        path
    }

    fn wait_until_ended(capture: &Capture) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !capture.stats.ended.load(Ordering::Acquire) {
            assert!(Instant::now() < deadline, "source did not end");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn realtime_file_source_is_paced_at_real_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = tone_wav(dir.path(), "one_second.wav", 16_000, 1.0);
        let source = FileSource {
            path: path.clone(),
            realtime: true,
        };
        assert!(source.describe().contains("one_second.wav"));
        let started = Instant::now();
        let capture = Box::new(source).start(2.0).unwrap();
        assert_eq!(capture.sample_rate, 16_000);
        wait_until_ended(&capture);
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(900), "took {elapsed:?}");
        assert_eq!(capture.stats.delivered.load(Ordering::Relaxed), 16_000);
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn realtime_file_source_counts_overruns_like_a_device() {
        let dir = tempfile::tempdir().unwrap();
        let path = tone_wav(dir.path(), "half_second.wav", 16_000, 0.5);
        let source = FileSource {
            path,
            realtime: true,
        };
        // Nobody drains this 100 ms ring.
        let capture = Box::new(source).start(0.1).unwrap();
        wait_until_ended(&capture);
        assert_eq!(capture.stats.delivered.load(Ordering::Relaxed), 1_600);
        assert_eq!(
            capture.stats.overruns.load(Ordering::Relaxed),
            8_000 - 1_600
        );
    }

    #[test]
    fn non_realtime_file_source_delivers_every_sample_through_a_small_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stereo.wav");
        let left = sine(44_100, 2.0, 440.0, 0.5);
        let right = sine(44_100, 2.0, 1000.0, 0.25);
        let interleaved: Vec<f32> = left
            .iter()
            .zip(&right)
            .flat_map(|(l, r)| [*l, *r])
            .collect();
        write_float_wav(&path, 44_100, 2, &interleaved);
        let source = FileSource {
            path,
            realtime: false,
        };
        let mut capture = Box::new(source).start(0.05).unwrap();
        assert_eq!(capture.sample_rate, 44_100);
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        assert_eq!(got, audio::downmix(&interleaved, 2));
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
        assert_eq!(
            capture.stats.delivered.load(Ordering::Relaxed),
            got.len() as u64
        );
    }

    #[test]
    fn dropping_a_blocked_file_source_stops_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = tone_wav(dir.path(), "long.wav", 8_000, 5.0);
        for realtime in [false, true] {
            let source = FileSource {
                path: path.clone(),
                realtime,
            };
            let capture = Box::new(source).start(0.01).unwrap();
            thread::sleep(Duration::from_millis(30));
            let started = Instant::now();
            drop(capture);
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }

    #[test]
    fn missing_file_fails_at_start_and_names_it() {
        let source = FileSource {
            path: PathBuf::from("/nonexistent/hark-test.wav"),
            realtime: false,
        };
        let err = Box::new(source).start(1.0).unwrap_err();
        assert!(matches!(err, CaptureError::Decode(_)), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/hark-test.wav"));
    }

    #[test]
    fn file_with_no_samples_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.wav");
        write_float_wav(&path, 16_000, 1, &[]);
        let source = FileSource {
            path,
            realtime: false,
        };
        let err = Box::new(source).start(1.0).unwrap_err();
        assert!(
            matches!(err, CaptureError::Decode(AudioError::NoSamples { .. })),
            "{err:?}"
        );
    }

    #[test]
    fn a_decode_error_partway_ends_the_file_stream_after_what_came_before() {
        if Command::new("lame").arg("--version").output().is_err() {
            eprintln!("SKIPPED: needs `lame` to make a damaged MP3");
            return;
        }
        // One MP3 stream followed by a longer one at another rate and channel count: symphonia
        // reads the first, then fails the packets of the second, which fails the file at the
        // end of what it could decode.
        let dir = tempfile::tempdir().unwrap();
        let mut joined = Vec::new();
        for (name, rate, channels, secs) in [("a", "44100", "1", "1"), ("b", "22050", "2", "2")] {
            let wav = dir.path().join(format!("{name}.wav"));
            let mp3 = dir.path().join(format!("{name}.mp3"));
            let made = Command::new("sox")
                .args(["-D", "-n", "-r", rate, "-c", channels])
                .arg(&wav)
                .args(["synth", secs, "sine", "440", "vol", "0.5"])
                .status()
                .expect("run sox (install the `sox` package)");
            assert!(made.success());
            let encoded = Command::new("lame")
                .arg("--quiet")
                .args([&wav, &mp3])
                .status()
                .unwrap();
            assert!(encoded.success());
            joined.extend(std::fs::read(&mp3).unwrap());
        }
        let path = dir.path().join("joined.mp3");
        std::fs::write(&path, joined).unwrap();

        // What decodes before the failure, read straight from the decoder.
        let mut reader = audio::AudioReader::open(&path).unwrap();
        let mut before = Vec::new();
        let err = loop {
            match reader.read_mono(&mut before, 4_096) {
                Ok(0) => panic!("the joined MP3 was expected to fail partway"),
                Ok(_) => {}
                Err(err) => break err,
            }
        };
        assert!(matches!(err, AudioError::Corrupt { .. }), "{err:?}");
        assert!(
            before.len() >= 40_000,
            "{} samples before the error",
            before.len()
        );

        let source = FileSource {
            path,
            realtime: false,
        };
        let mut capture = Box::new(source).start(0.05).unwrap();
        let mut got = Vec::new();
        drain_until_ended(&mut capture, &mut got);
        assert_eq!(got, before);
        assert_eq!(capture.stats.errors.load(Ordering::Relaxed), 1);
        assert_eq!(capture.stats.overruns.load(Ordering::Relaxed), 0);
    }
}
