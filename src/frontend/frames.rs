//! The per-frame math: one frame of samples → window → FFT → |X|^power → mel bands → log,
//! in a portable and an AVX2 build of the same code (the same arithmetic, so the same bits).

use super::mel::{FrameScratch, MelFrontend};
use super::LogKind;

/// Σ a·b over two equally long slices, in four interleaved partial sums so the compiler can
/// keep them in one vector register (a plain `.sum()` must add strictly in order).
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let mut rest: f64 = a4
        .remainder()
        .iter()
        .zip(b4.remainder())
        .map(|(x, y)| x * y)
        .sum();
    let mut acc = [0.0f64; 4];
    for (x, y) in a4.zip(b4) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    rest += (acc[0] + acc[1]) + (acc[2] + acc[3]);
    rest
}

/// 10 / ln 10: decibels per neper of power, so 10·log10(x) = DB_PER_LN · ln(x).
const DB_PER_LN: f64 = 10.0 / std::f64::consts::LN_10;

/// True for the x [`ln_normal`] is defined for: positive, finite, not subnormal (false for NaN).
#[inline(always)]
fn is_positive_normal(x: f64) -> bool {
    (f64::MIN_POSITIVE..=f64::MAX).contains(&x)
}

/// ln(x) for a positive normal x (see [`is_positive_normal`]; anything else gives garbage),
/// within ~1e-15 of the library's ln. Free of branches and calls, so a loop over a frame's bands
/// vectorizes, where the library's ln costs a call per band (a fifth of a frame's time).
///
/// x = m·2^e with m in [√½, √2); ln m = 2·atanh(s) with s = (m - 1)/(m + 1), |s| <= 0.172, from
/// its series 2s·(1 + s²/3 + s⁴/5 + ...) up to s¹⁶/17 (the next term is below 1e-16).
#[inline(always)]
fn ln_normal(x: f64) -> f64 {
    const EXP_MASK: u64 = 0x7ff;
    const MANTISSA_MASK: u64 = (1 << 52) - 1;
    const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;
    // 2^52 as bits and value: or-ing an integer below 2^52 into its mantissa and subtracting
    // 2^52 converts it to f64 without an integer-to-float instruction (SSE2 has none for u64).
    const TWO_52_BITS: u64 = 0x4330_0000_0000_0000;
    const TWO_52: f64 = 4_503_599_627_370_496.0;
    let bits = x.to_bits();
    let biased = f64::from_bits(TWO_52_BITS | ((bits >> 52) & EXP_MASK)) - TWO_52;
    let m = f64::from_bits((bits & MANTISSA_MASK) | ONE_BITS);
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { m * 0.5 } else { m };
    let e = biased - 1023.0 + if big { 1.0 } else { 0.0 };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let series = 1.0
        + z * (1.0 / 3.0
            + z * (1.0 / 5.0
                + z * (1.0 / 7.0
                    + z * (1.0 / 9.0
                        + z * (1.0 / 11.0
                            + z * (1.0 / 13.0 + z * (1.0 / 15.0 + z * (1.0 / 17.0))))))));
    e * std::f64::consts::LN_2 + 2.0 * s * series
}

impl MelFrontend {
    /// Log-mel of one frame, without top-dB clipping or normalisation (both are whole-window
    /// steps, see [`normalize`](Self::normalize)). `frame` is exactly the samples the frame
    /// covers ([`frame_len`](Self::frame_len)); `out` receives n_mels values.
    /// Allocates its FFT buffers per call; [`StreamingFrontend`](super::StreamingFrontend) keeps
    /// its own instead.
    ///
    /// # Panics
    /// If `frame.len() != frame_len()` or `out.len() != n_mels`.
    pub fn frame_log_mel(&self, frame: &[f32], out: &mut [f32]) {
        let mut scratch = self.scratch();
        self.frame_into(frame, out, &mut scratch);
    }

    pub(super) fn frame_into(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        assert_eq!(
            frame.len(),
            self.window.len(),
            "frame_log_mel: frame has {} samples, the spec's frames have {}",
            frame.len(),
            self.window.len()
        );
        assert_eq!(
            out.len(),
            self.spec.n_mels,
            "frame_log_mel: output has room for {} bands, the spec has n_mels = {}",
            out.len(),
            self.spec.n_mels
        );
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: frame_avx2 needs AVX2, which MelFrontend::new found on this CPU.
            unsafe { self.frame_avx2(frame, out, s) };
            return;
        }
        self.frame(frame, out, s);
    }

    /// [`frame`](Self::frame) compiled for AVX2: its loops run four f64 lanes wide instead of
    /// SSE2's two. The arithmetic, and so every result bit, is the same (Rust never fuses or
    /// reorders floating-point operations).
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn frame_avx2(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        self.frame(frame, out, s);
    }

    /// The body of [`frame_into`](Self::frame_into), inlined into each instruction-set variant.
    #[inline(always)]
    fn frame(&self, frame: &[f32], out: &mut [f32], s: &mut FrameScratch) {
        // Tf framing zero-pads the win_length frame on the right up to n_fft.
        let (windowed, tail) = s.input.split_at_mut(frame.len());
        for ((x, &y), &w) in windowed.iter_mut().zip(frame).zip(&self.window) {
            *x = f64::from(y) * w;
        }
        tail.fill(0.0);
        self.fft
            .process_with_scratch(&mut s.input, &mut s.spectrum, &mut s.fft)
            .expect("FFT buffers are sized by the plan itself");
        // Two loops rather than a branch inside one: the compiler would otherwise compute both
        // sides for every bin (hypot included). sqrt(re² + im²) is |X| to within an ulp.
        if self.spec.power == 2.0 {
            for (b, c) in s.bins.iter_mut().zip(&s.spectrum) {
                *b = c.re * c.re + c.im * c.im;
            }
        } else {
            for (b, c) in s.bins.iter_mut().zip(&s.spectrum) {
                *b = (c.re * c.re + c.im * c.im).sqrt();
            }
        }
        for (e, band) in s.energies.iter_mut().zip(self.bands.iter()) {
            let bins = &s.bins[band.first_bin..band.first_bin + band.weights.len()];
            *e = self.log_arg(dot(&band.weights, bins));
        }
        self.log_bands(&s.energies, out);
    }

    /// The features of a frame's `log_arg`s: one pass per log kind, which the compiler
    /// vectorizes ([`ln_normal`] is branch-free), then the rare values it does not cover go
    /// through the library's logarithms.
    #[inline(always)]
    fn log_bands(&self, args: &[f64], out: &mut [f32]) {
        match self.spec.log {
            LogKind::Ln => {
                for (o, &x) in out.iter_mut().zip(args) {
                    *o = ln_normal(x) as f32;
                }
            }
            LogKind::Db => {
                for (o, &x) in out.iter_mut().zip(args) {
                    *o = self.db_of_normal(x) as f32;
                }
            }
        }
        for (o, &x) in out.iter_mut().zip(args) {
            if !is_positive_normal(x) {
                *o = self.log_of_any(x) as f32;
            }
        }
    }

    /// The log feature of one band energy, as [`frame_log_mel`](Self::frame_log_mel) computes it
    /// (before the rounding to f32).
    #[cfg(test)]
    fn log(&self, energy: f64) -> f64 {
        let x = self.log_arg(energy);
        match self.spec.log {
            _ if !is_positive_normal(x) => self.log_of_any(x),
            LogKind::Ln => ln_normal(x),
            LogKind::Db => self.db_of_normal(x),
        }
    }

    /// What the log is taken of: mel + ln_offset (ln); max(mel, amin) (power_to_db); or, as
    /// librosa.amplitude_to_db is power_to_db(S², ref², amin²), max(mel², amin²).
    #[inline(always)]
    fn log_arg(&self, energy: f64) -> f64 {
        match self.spec.log {
            LogKind::Ln => energy + self.spec.ln_offset,
            // max() as a comparison (same result, NaN included), which vectorizes better.
            LogKind::Db => {
                let (x, floor) = if self.spec.power == 2.0 {
                    (energy, self.spec.db_amin)
                } else {
                    (energy * energy, self.db_amin_sq)
                };
                if x > floor {
                    x
                } else {
                    floor
                }
            }
        }
    }

    /// 10·log10(x) - 10·log10(ref) for a positive normal `log_arg` x. The floor (x = amin,
    /// silence) gives exactly the library's value, and nothing goes below it ([`ln_normal`] may
    /// differ from the library in the last bits). Comparisons rather than max(), so a loop over
    /// bands vectorizes.
    #[inline(always)]
    fn db_of_normal(&self, x: f64) -> f64 {
        let db = DB_PER_LN * ln_normal(x) - self.db_ref_offset;
        if x <= self.db_floor_arg || db < self.db_floor {
            self.db_floor
        } else {
            db
        }
    }

    /// The same for any `log_arg` (zero, subnormal, infinite or NaN ones included), with the
    /// library's logarithms.
    fn log_of_any(&self, x: f64) -> f64 {
        match self.spec.log {
            LogKind::Ln => x.ln(),
            LogKind::Db => 10.0 * x.log10() - self.db_ref_offset,
        }
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::frontend::filters::{hz_to_mel, linspace, mel_to_hz};
    use crate::frontend::test_util::{close, spec};
    use crate::frontend::FeatureSpec;

    #[test]
    fn sine_energy_lands_in_the_band_around_its_frequency() {
        let fe = MelFrontend::new(spec()).unwrap();
        let frame: Vec<f32> = (0..512)
            .map(|i| (2.0 * std::f64::consts::PI * 1000.0 * i as f64 / 16000.0).sin() as f32)
            .collect();
        let mut out = vec![0.0; 64];
        fe.frame_log_mel(&frame, &mut out);
        let loudest = (0..64).max_by(|&a, &b| out[a].total_cmp(&out[b])).unwrap();
        let edges = linspace(hz_to_mel(125.0, true), hz_to_mel(7500.0, true), 66);
        let centre_hz = mel_to_hz(edges[loudest + 1], true);
        assert!(
            (centre_hz - 1000.0).abs() < 100.0,
            "loudest band at {centre_hz} Hz"
        );
    }

    #[test]
    fn db_uses_amin_floor_and_top_db_clips_over_the_whole_matrix() {
        let s = FeatureSpec {
            power: 2.0,
            log: LogKind::Db,
            db_top: Some(80.0),
            ..spec()
        };
        let fe = MelFrontend::new(s).unwrap();
        assert_eq!(fe.log(0.0), -100.0);
        assert!(close(fe.log(100.0), 20.0, 1e-12));
        let mut x = Array2::from_shape_vec((2, 2), vec![10.0, -100.0, -50.0, -75.0]).unwrap();
        fe.normalize(&mut x);
        assert_eq!(x.as_slice().unwrap(), &[10.0, -70.0, -50.0, -70.0]);

        let amp = MelFrontend::new(FeatureSpec {
            power: 1.0,
            log: LogKind::Db,
            db_amin: 1e-5,
            ..spec()
        })
        .unwrap();
        assert!(
            close(amp.log(10.0), 20.0, 1e-12),
            "amplitude dB is 20 log10"
        );
        assert!(close(amp.log(0.0), -100.0, 1e-12));
    }

    #[test]
    fn ln_normal_matches_the_library_ln_across_the_whole_range() {
        let mut x = f64::MIN_POSITIVE;
        while x < f64::MAX / 1.37 {
            for v in [x, x * 1.0001, x * std::f64::consts::SQRT_2, x * 1.4143] {
                let (got, want) = (ln_normal(v), v.ln());
                assert!(
                    (got - want).abs() <= 4e-15 * want.abs().max(1.0),
                    "ln {v}: {got} vs {want}"
                );
            }
            x *= 1.37;
        }
        assert_eq!(ln_normal(1.0), 0.0);
        assert!(!is_positive_normal(0.0) && !is_positive_normal(f64::NAN));
        assert!(!is_positive_normal(f64::INFINITY) && !is_positive_normal(1e-310));
        // Values ln_normal does not cover go through the library: silence in the ln path with a
        // subnormal offset, and NaN, stay what they were.
        let fe = MelFrontend::new(FeatureSpec {
            ln_offset: 1e-310,
            ..spec()
        })
        .unwrap();
        let mut out = [0.0f32; 3];
        fe.log_bands(&[1e-310, f64::NAN, 2.0], &mut out);
        assert_eq!(out[0], (1e-310f64).ln() as f32);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 2f64.ln() as f32);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_frames_equal_the_portable_frames_bit_for_bit() {
        use crate::frontend::test_util::{centred_and_not, test_signal};
        for s in centred_and_not() {
            let fe = MelFrontend::new(s).unwrap();
            if !fe.avx2 {
                eprintln!("SKIPPED: no AVX2 on this CPU");
                return;
            }
            let portable = MelFrontend {
                avx2: false,
                ..fe.clone()
            };
            let signal = test_signal(8000);
            assert_eq!(fe.compute(&signal), portable.compute(&signal));
        }
    }
}
