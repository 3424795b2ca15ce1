//! Measuring a resampled signal: the amplitude of one sine in it. Shared by the resampler's
//! unit tests, `tests/it/resampler.rs` and `benches/resample.rs`, so all three measure the
//! passband and the aliasing the same way.
//!
//! Must not: be used on the audio path (it is O(n) trigonometry per call, for measurements).

/// The amplitude of the `freq` Hz component of `y` (sampled at `rate`), by least squares
/// over `y` (whole periods or many of them: the cross terms then vanish).
pub fn tone_amplitude(y: &[f32], rate: u32, freq: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
    let (mut cc, mut ss, mut cs, mut yc, mut ys) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (n, &v) in y.iter().enumerate() {
        let (s, c) = (w * n as f64).sin_cos();
        cc += c * c;
        ss += s * s;
        cs += c * s;
        yc += f64::from(v) * c;
        ys += f64::from(v) * s;
    }
    let det = cc * ss - cs * cs;
    let a = (yc * ss - ys * cs) / det;
    let b = (ys * cc - yc * cs) / det;
    a.hypot(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_amplitude_and_phase_free() {
        let rate = 16_000;
        let y: Vec<f32> = (0..rate)
            .map(|n| {
                0.3 * (2.0 * std::f32::consts::PI * 440.0 * n as f32 / rate as f32 + 1.0).sin()
            })
            .collect();
        assert!((tone_amplitude(&y, rate, 440.0) - 0.3).abs() < 1e-4);
        assert!(tone_amplitude(&y, rate, 1000.0) < 1e-4);
    }
}
