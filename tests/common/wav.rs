//! Small WAV files written by the tests themselves.

use std::path::Path;

/// Writes `samples` (in -1..1) as a 16-bit mono WAV at `rate`: each sample times 32767,
/// truncated.
pub fn write_i16(path: &Path, rate: u32, samples: impl IntoIterator<Item = f32>) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec)
        .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    for x in samples {
        w.write_sample((x * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

/// `seconds` of a sine at `freq` Hz and amplitude `amp`, sampled at `rate`.
pub fn sine(rate: u32, seconds: f32, freq: f32, amp: f32) -> impl Iterator<Item = f32> {
    (0..(rate as f32 * seconds) as usize)
        .map(move |i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin() * amp)
}

/// A 16-bit mono WAV of [`sine`].
pub fn write_sine(path: &Path, rate: u32, seconds: f32, freq: f32, amp: f32) {
    write_i16(path, rate, sine(rate, seconds, freq, amp));
}
