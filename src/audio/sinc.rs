//! The resampler's filter: a Kaiser-windowed sinc low-pass, tabulated as polyphase rows.
//!
//! An output sample at input time `t = q + frac` (in input samples, `q` whole) is
//! `sum_m row(frac)[m] * x[q - back + m]`: the row holds the kernel at `frac + back - m`, so it
//! reads `back` samples before `q` and `ahead` after it. The kernel is symmetric (linear
//! phase) and centred on `t`, which is why the output has no time shift.
//!
//! For a rational ratio `to / from = L / M` (reduced) only `L` distinct fractions occur, and
//! they are tabulated exactly. A pair of rates whose exact table would exceed
//! [`TABLE_BUDGET`] coefficients (no common rate does: the largest between the rates hark
//! supports is 640 rows) gets [`INTERP_ROWS`] evenly spaced rows instead, and the output is
//! interpolated linearly between the two rows around its fraction.

/// Passband edge of the Kaiser design, as a fraction of the lower of the two Nyquist
/// frequencies. Kaiser's length formula is conservative: with these settings the measured
/// response is within 0.05 dB up to 0.93 of Nyquist and 0.29 dB down at 0.9375, close to
/// libsoxr's `soxr_hq` (0.08 and 0.40 dB), which the seed pipelines used.
const PASS: f64 = 0.92;

/// Stopband edge, same unit: nothing at or above the output's Nyquist frequency survives, so
/// nothing aliases (and, upsampling, no image of the input's band appears).
const STOP: f64 = 1.0;

/// Stopband attenuation the Kaiser design aims at (measured: at least 106 dB).
const ATTEN_DB: f64 = 100.0;

/// Longest filter, in input samples. Only ratios beyond 400 : 1 (768 kHz to below 1.9 kHz)
/// reach it; their filter is shortened to this, which widens the transition band.
const MAX_SPAN: f64 = 65_536.0;

/// Most coefficients an exact table may hold (8 MB of `f32`).
const TABLE_BUDGET: usize = 1 << 21;

/// Rows of an interpolated table, used when the exact one would exceed [`TABLE_BUDGET`];
/// fewer if even these would (only for ratios far beyond audio practice).
const INTERP_ROWS: usize = 256;

/// Rows are padded to a multiple of this many taps, so the dot product runs in whole lanes.
pub(super) const LANES: usize = 32;

/// The filter, tabulated: `rows` rows of `taps` coefficients each.
pub(super) struct PhaseTable {
    coefs: Vec<f32>,
    /// Coefficients per row: `back + 1 + ahead`, a multiple of [`LANES`].
    pub taps: usize,
    /// Input samples before the output instant's sample that a row reads.
    pub back: usize,
    /// Input samples after it: how far the filter looks ahead (its delay, in input samples).
    pub ahead: usize,
    /// Fractions tabulated: `L` when exact, otherwise the interpolation's row count (the table
    /// then holds one more row, for the fraction 1).
    pub fractions: u64,
    /// `true` when row `r` is exactly the fraction `r / L`.
    pub exact: bool,
}

impl PhaseTable {
    /// The table for resampling `from` Hz to `to` Hz (`from != to`), whose reduced ratio is
    /// `l / m` (`l = to / gcd`, `m = from / gcd`).
    pub fn new(from: u32, to: u32, l: u64) -> PhaseTable {
        let nyquist = f64::from(from.min(to)) / 2.0;
        let from = f64::from(from);
        let pass = PASS * nyquist;
        let stop = STOP * nyquist;
        // Cut-off in cycles per input sample, transition width in the same unit.
        let cutoff = (pass + stop) / 2.0 / from;
        let width = (stop - pass) / from;
        // Kaiser's estimate of the length (in input samples) for this attenuation and width.
        let span = ((ATTEN_DB - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * width)).min(MAX_SPAN);
        let ahead = (span / 2.0).round() as usize;
        let taps = (2 * ahead).next_multiple_of(LANES);
        let back = taps - 1 - ahead;
        let (fractions, exact, rows) = match usize::try_from(l) {
            Ok(l) if l.saturating_mul(taps) <= TABLE_BUDGET => (l as u64, true, l),
            _ => {
                let n = (TABLE_BUDGET / taps).clamp(2, INTERP_ROWS);
                (n as u64 - 1, false, n)
            }
        };
        let kernel = Kernel::new(cutoff, ahead as f64);
        let mut coefs = vec![0f32; rows * taps];
        for (r, row) in coefs.chunks_exact_mut(taps).enumerate() {
            let frac = r as f64 / fractions as f64;
            fill_row(row, &kernel, frac, back);
        }
        PhaseTable {
            coefs,
            taps,
            back,
            ahead,
            fractions,
            exact,
        }
    }

    /// Row `r`: the coefficients for fraction `r / fractions`.
    pub fn row(&self, r: usize) -> &[f32] {
        &self.coefs[r * self.taps..(r + 1) * self.taps]
    }

    /// Coefficients held, for the resampler's `Debug`.
    pub fn len(&self) -> usize {
        self.coefs.len()
    }
}

/// One row: the kernel at `frac + back - m` for tap `m`, scaled so the row sums to 1 (unity
/// gain at 0 Hz for every fraction, whatever the window's ripple).
fn fill_row(row: &mut [f32], kernel: &Kernel, frac: f64, back: usize) {
    let values: Vec<f64> = (0..row.len())
        .map(|m| kernel.at(frac + back as f64 - m as f64))
        .collect();
    let sum: f64 = values.iter().sum();
    for (c, v) in row.iter_mut().zip(&values) {
        *c = (v / sum) as f32;
    }
}

/// The continuous kernel: `2 fc sinc(2 fc t)` under a Kaiser window of half-width `half`.
struct Kernel {
    cutoff: f64,
    half: f64,
    beta: f64,
    i0_beta: f64,
}

impl Kernel {
    fn new(cutoff: f64, half: f64) -> Kernel {
        // Kaiser's beta for an attenuation above 50 dB.
        let beta = 0.1102 * (ATTEN_DB - 8.7);
        Kernel {
            cutoff,
            half,
            beta,
            i0_beta: bessel_i0(beta),
        }
    }

    /// The kernel at `t` input samples from its centre.
    fn at(&self, t: f64) -> f64 {
        let u = t / self.half;
        if u.abs() >= 1.0 {
            return 0.0;
        }
        let window = bessel_i0(self.beta * (1.0 - u * u).sqrt()) / self.i0_beta;
        let x = 2.0 * self.cutoff * t;
        let sinc = if x == 0.0 {
            1.0
        } else {
            (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
        };
        2.0 * self.cutoff * sinc * window
    }
}

/// The modified Bessel function of the first kind, order 0, by its power series (converges
/// fast for the window's arguments, which stay below 10).
fn bessel_i0(x: f64) -> f64 {
    let q = x * x / 4.0;
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > sum * 1e-17 {
        term *= q / (k * k);
        sum += term;
        k += 1.0;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bessel_i0_matches_known_values() {
        // Abramowitz & Stegun, table 9.8.
        assert!((bessel_i0(0.0) - 1.0).abs() < 1e-15);
        assert!((bessel_i0(1.0) - 1.266_065_877_752_008).abs() < 1e-13);
        assert!((bessel_i0(10.0) - 2_815.716_628_466_254).abs() < 1e-8);
    }

    #[test]
    fn rows_sum_to_one_and_mirror_each_other() {
        let table = PhaseTable::new(44_100, 16_000, 160);
        assert!(table.exact);
        assert_eq!(table.taps % LANES, 0);
        assert_eq!(table.back + 1 + table.ahead, table.taps);
        for r in 0..160 {
            let sum: f64 = table.row(r).iter().map(|&c| f64::from(c)).sum();
            assert!((sum - 1.0).abs() < 1e-5, "row {r} sums to {sum}");
        }
        // Linear phase: the kernel is even, so fraction 0 is symmetric about its centre tap.
        let row = table.row(0);
        let centre = table.back;
        for d in 1..table.ahead {
            assert_eq!(row[centre - d], row[centre + d], "tap ±{d}");
        }
    }

    #[test]
    fn ratios_beyond_the_budget_get_an_interpolated_table() {
        // 44.1 kHz to 16.001 kHz reduces to 16001 / 44100: too many rows to tabulate exactly.
        let table = PhaseTable::new(44_100, 16_001, 16_001);
        assert!(!table.exact);
        assert_eq!(table.fractions, INTERP_ROWS as u64 - 1);
        assert_eq!(table.len(), INTERP_ROWS * table.taps);
        // The last row is fraction 1: the first row moved one sample later.
        let (first, last) = (table.row(0), table.row(INTERP_ROWS - 1));
        for m in 1..table.taps {
            assert!((last[m] - first[m - 1]).abs() < 1e-6, "tap {m}");
        }
    }

    #[test]
    fn filter_length_follows_the_lower_nyquist() {
        // The transition is 8% of the lower Nyquist wide, so the filter lasts the same time for
        // every input rate going to 16 kHz, and twice as long from 8 kHz.
        let ms = |from: u32, to: u32| {
            let t = PhaseTable::new(from, to, 1);
            t.ahead as f64 * 1000.0 / f64::from(from)
        };
        for from in [44_100, 48_000, 96_000, 192_000] {
            assert!(
                (ms(from, 16_000) - 5.0).abs() < 0.1,
                "{from}: {}",
                ms(from, 16_000)
            );
        }
        assert!((ms(8_000, 16_000) - 10.0).abs() < 0.1);
    }
}
