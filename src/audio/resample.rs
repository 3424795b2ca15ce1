//! Offline and streaming resampling, both on one polyphase windowed-sinc engine, so they give
//! identical samples.
//!
//! **What it does, measured** (`tests/resampler.rs` asserts it; figures in BENCHMARKS.md,
//! section 6): a linear-phase Kaiser-windowed sinc, designed for 100 dB with its transition from
//! 0.92 to 1.0 of the lower Nyquist frequency. For every supported input rate (8 to 192 kHz) to
//! 16, 22.05 and 44.1 kHz, sines and white noise come through flat within 0.05 dB up to 0.93 of
//! the lower Nyquist (7.44 kHz at 16 kHz out). At 44.1 -> 16 kHz the gain is −0.04 dB at
//! 7.44 kHz, −0.29 at 7.5, −2.1 at 7.6, −7.5 at 7.7, −19 at 7.8 and −40 at 7.9 kHz (libsoxr's
//! `soxr_hq`, which the seed pipelines used: −0.08, −0.40, −2.8, −10, −25, −53). Sines above
//! the output's Nyquist come out at least 112 dB down at 16 and 22.05 kHz out (107 dB at
//! 48 -> 44.1 kHz), upsampling images at least 116 dB down, and a click lands within one output
//! sample of its time. The filter looks 5.0 ms ahead at 16 kHz out (7.3 ms from 11.025 kHz,
//! 10.0 ms from 8 kHz): that is all the latency it adds. CED-tiny's scores on the shared 44.1
//! and 48 kHz recordings differ from those on a `soxr_hq` copy by at most 0.040 (mean 6.3e-5).
//!
//! **Why this engine.** rubato's FFT resampler, used before, had a 160-tap filter whose
//! transition started near 7 kHz and was about 800 Hz wide (−12.8 dB at 7.44 kHz); it moved
//! CED-tiny's scores by up to 0.23 on the shared recordings. Longer FFT blocks add their length
//! in latency. rubato's sinc resampler with a 512-tap filter costs 2.5-8x the CPU of this one
//! and aliases at −45 dB from 96 kHz. libsoxr (`soxr` crate, `soxr_hq`) is the reference and
//! 3-4x cheaper in CPU, but it works in large internal blocks: an output sample appears 37 to
//! 80 ms after its instant at 16 kHz out, against 5 ms here, and it is a C library to build
//! against and ship. This engine costs 0.4-0.75 ms of CPU per audio second going to 16 kHz
//! (`benches/resample.rs`), allocates nothing after construction, computes the same samples
//! however the input is chunked, and is exact for rational ratios, so output length tracks input
//! length forever without drift.

use std::fmt;

use tracing::debug;

use super::sinc::{PhaseTable, LANES};
use super::{check_rate, Result};

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
    let mut engine = Polyphase::new(from, to);
    let delay = engine.delay;
    let mut out = Vec::with_capacity(delay + target + 1);
    engine.push(samples, &mut out);
    // Silence pushes the delayed tail out of the filter, as the pipeline does at a file's end.
    let silence = vec![0.0; engine.table.taps];
    while out.len() < delay + target {
        engine.push(&silence, &mut out);
    }
    out.drain(..delay);
    out.truncate(target);
    Ok(out)
}

/// Streaming resampler for the realtime pipeline.
///
/// Push chunks of any size of mono samples at `from` Hz, get mono samples at `to` Hz appended
/// to a caller-owned vector: each output sample as soon as the input it needs has arrived.
/// Its samples are identical to what [`resample`] produces for the same input, shifted by
/// [`delay`](Self::delay).
///
/// Equal rates pass samples straight through with no delay.
pub struct StreamResampler {
    /// `None` when the rates are equal: nothing to do, and no latency to add.
    engine: Option<Polyphase>,
}

impl StreamResampler {
    /// Build a resampler; allocates all buffers up front.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        check_rate(from)?;
        check_rate(to)?;
        let engine = (from != to).then(|| Polyphase::new(from, to));
        Ok(StreamResampler { engine })
    }

    /// Resample `input` and append the samples that became ready to `out`.
    ///
    /// Reuses internal buffers; the only allocation is `out` growing. `out` grows by at most
    /// `ceil(input.len() * to / from) + block_len()` samples.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        match &mut self.engine {
            Some(engine) => engine.push(input, out),
            None => out.extend_from_slice(input),
        }
    }

    /// Latency in output samples: output sample `k` corresponds to input time
    /// `(k - delay) / to` seconds. Callers drop the first `delay` samples to align timestamps.
    ///
    /// This is how far the filter looks ahead, rounded down to whole output samples: an
    /// instant's output can be computed only once that much later input has arrived.
    pub fn delay(&self) -> usize {
        self.engine.as_ref().map_or(0, |e| e.delay)
    }

    /// How far the filter looks ahead, in seconds: the latency the resampler adds.
    pub fn lookahead_secs(&self) -> f64 {
        self.engine.as_ref().map_or(0.0, |e| {
            e.table.ahead as f64 * e.step.l as f64 / e.step.m as f64 / e.to as f64
        })
    }

    /// A bound on the output samples one [`process`](Self::process) call adds beyond
    /// `ceil(input.len() * to / from)`, for sizing buffers: the engine adds none (it hands out
    /// samples one at a time, tested), 1 is a margin for a caller's float rounding of that
    /// ceiling; 0 when the rates are equal.
    pub fn block_len(&self) -> usize {
        usize::from(self.engine.is_some())
    }
}

impl fmt::Debug for StreamResampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.engine {
            Some(e) => f
                .debug_struct("StreamResampler")
                .field("ratio", &format_args!("{}/{}", e.step.l, e.step.m))
                .field("taps", &e.table.taps)
                .field("coefficients", &e.table.len())
                .field("exact", &e.table.exact)
                .field("delay", &e.delay)
                .finish(),
            None => f.write_str("StreamResampler(passthrough)"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resampling engine

/// Input samples the history buffer takes per fill, beyond the filter's own length. Bounds the
/// buffer (and the copy made when it is compacted) whatever the caller pushes at once.
const FILL: usize = 4096;

/// The reduced ratio `to / from = l / m`, as the per-output step through the input.
#[derive(Debug, Clone, Copy)]
struct Step {
    l: u64,
    m: u64,
    /// Whole input samples per output sample: `m / l`.
    whole: usize,
    /// The remainder, in `1 / l` of an input sample: `m % l`.
    rest: u64,
}

/// The polyphase filter plus the input history it runs over.
///
/// Output `i` is the signal at input time `(i - delay) * m / l`; the input before sample 0 is
/// silence. All arithmetic on positions is in integers, so the instants are exact.
struct Polyphase {
    table: PhaseTable,
    step: Step,
    to: u32,
    delay: usize,
    /// Input samples, oldest first; fixed capacity, compacted when full.
    history: Vec<f32>,
    /// Index in `history` of the whole input sample at or before the next output's instant.
    pos: usize,
    /// The next output's fraction past `pos`, in `1 / l` of an input sample.
    frac: u64,
    /// The CPU has AVX: [`emit`](Self::emit) runs its AVX build.
    #[cfg(target_arch = "x86_64")]
    avx: bool,
}

impl Polyphase {
    fn new(from: u32, to: u32) -> Polyphase {
        let g = gcd(u64::from(from), u64::from(to));
        let (l, m) = (u64::from(to) / g, u64::from(from) / g);
        let step = Step {
            l,
            m,
            whole: (m / l) as usize,
            rest: m % l,
        };
        let table = PhaseTable::new(from, to, l);
        // Start `delay` outputs before time 0, as far back as the look-ahead allows, so the
        // first outputs need only the first input sample.
        let delay = (table.ahead as u64 * l / m) as usize;
        let start = -((delay as u64 * m) as i128);
        let (q, frac) = (
            start.div_euclid(l as i128),
            start.rem_euclid(l as i128) as u64,
        );
        // Silence stands for the input before sample 0, back to the first output's oldest tap.
        let silence = (table.back as i128 - q) as usize;
        let mut history = Vec::with_capacity(silence + table.taps + FILL);
        history.resize(silence, 0.0);
        debug!(
            from,
            to,
            l,
            m,
            taps = table.taps,
            exact = table.exact,
            delay,
            "built resampler"
        );
        Polyphase {
            pos: table.back,
            table,
            step,
            to,
            delay,
            history,
            frac,
            #[cfg(target_arch = "x86_64")]
            avx: std::arch::is_x86_feature_detected!("avx"),
        }
    }

    fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        while !input.is_empty() {
            if self.history.len() == self.history.capacity() {
                self.compact();
            }
            let take = (self.history.capacity() - self.history.len()).min(input.len());
            self.history.extend_from_slice(&input[..take]);
            input = &input[take..];
            self.emit(out);
        }
    }

    /// Every output whose taps are all in the history.
    fn emit(&mut self, out: &mut Vec<f32>) {
        let taps = self.table.taps;
        while self.pos + self.table.ahead < self.history.len() {
            let x = &self.history[self.pos - self.table.back..][..taps];
            out.push(self.sample(x));
            self.frac += self.step.rest;
            self.pos += self.step.whole;
            if self.frac >= self.step.l {
                self.frac -= self.step.l;
                self.pos += 1;
            }
        }
    }

    /// One output from the taps `x`, at the current fraction.
    fn sample(&self, x: &[f32]) -> f32 {
        if self.table.exact {
            return self.dot(self.table.row(self.frac as usize), x);
        }
        // Between two tabulated fractions: interpolate the two rows' outputs.
        let scaled = self.frac * self.table.fractions;
        let r = (scaled / self.step.l) as usize;
        let w = (scaled % self.step.l) as f32 / self.step.l as f32;
        let a = self.dot(self.table.row(r), x);
        let b = self.dot(self.table.row(r + 1), x);
        a + w * (b - a)
    }

    /// [`dot`], eight lanes at a time where the CPU has AVX.
    #[inline(always)]
    fn dot(&self, a: &[f32], b: &[f32]) -> f32 {
        #[cfg(target_arch = "x86_64")]
        if self.avx {
            // SAFETY: dot_avx needs AVX, which Polyphase::new found on this CPU.
            return unsafe { dot_avx(a, b) };
        }
        dot(a, b)
    }

    /// Drop the samples no future output reads.
    fn compact(&mut self) {
        let keep_from = (self.pos - self.table.back).min(self.history.len());
        self.history.copy_within(keep_from.., 0);
        self.history.truncate(self.history.len() - keep_from);
        self.pos -= keep_from;
    }
}

/// `sum a[i] * b[i]` over whole lanes (both lengths are a multiple of [`LANES`]), in
/// [`LANES`] separate accumulators summed pairwise: a fixed order, so the result depends only
/// on the values, and [`dot_avx`] reproduces it bit for bit.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (x, y) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let mut width = LANES;
    while width > 1 {
        width /= 2;
        for i in 0..width {
            acc[i] += acc[i + width];
        }
    }
    acc[0]
}

/// [`dot`] in four 8-lane AVX registers: register `r` lane `j` is `dot`'s accumulator
/// `8 r + j`, multiplied and added (never fused) and reduced in the same order, so every result
/// bit is the same. The compiler does not find this itself: it keeps `dot` in SSE registers.
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
unsafe fn dot_avx(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    const _: () = assert!(LANES == 32);
    let n = a.len().min(b.len()) / LANES * LANES;
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    while i < n {
        for (r, acc) in acc.iter_mut().enumerate() {
            // SAFETY: i + 8 r + 8 <= n, within both slices; unaligned loads.
            let (x, y) = unsafe {
                (
                    _mm256_loadu_ps(pa.add(i + 8 * r)),
                    _mm256_loadu_ps(pb.add(i + 8 * r)),
                )
            };
            *acc = _mm256_add_ps(*acc, _mm256_mul_ps(x, y));
        }
        i += LANES;
    }
    // The pairwise halving of `dot`: 32 → 16 → 8 → 4 → 2 → 1.
    let r0 = _mm256_add_ps(acc[0], acc[2]);
    let r1 = _mm256_add_ps(acc[1], acc[3]);
    let r = _mm256_add_ps(r0, r1);
    let q = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
    let d = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let s = _mm_add_ss(d, _mm_shuffle_ps(d, d, 1));
    _mm_cvtss_f32(s)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `round(len * to / from)` without overflow or float error.
fn output_len(len: usize, from: u32, to: u32) -> usize {
    let (len, from, to) = (len as u128, u128::from(from), u128::from(to));
    ((len * to + from / 2) / from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::measure::tone_amplitude as amplitude;
    use crate::audio::{AudioError, MAX_SAMPLE_RATE};

    fn sine(rate: u32, secs: f64, freq: f64) -> Vec<f32> {
        let n = (secs * f64::from(rate)) as usize;
        let w = 2.0 * std::f64::consts::PI * freq / f64::from(rate);
        (0..n).map(|i| (w * i as f64).sin() as f32).collect()
    }

    /// Gain in dB of a sine through `from` → `to`, measured away from the edges; `heard` is
    /// where it lands (itself, or its alias).
    fn gain_db(from: u32, to: u32, freq: f64, heard: f64) -> f64 {
        let y = resample(&sine(from, 1.0, freq), from, to).unwrap();
        let edge = to as usize / 10;
        20.0 * amplitude(&y[edge..y.len() - edge], to, heard).log10()
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
        assert_eq!(s.block_len(), 0);
    }

    #[test]
    fn resample_handles_empty_and_tiny_inputs() {
        assert!(resample(&[], 48_000, 16_000).unwrap().is_empty());
        assert_eq!(resample(&[0.5; 3], 48_000, 16_000).unwrap().len(), 1);
        assert_eq!(resample(&[0.5; 1], 8_000, 16_000).unwrap().len(), 2);
    }

    #[test]
    fn dot_sums_every_lane() {
        let a: Vec<f32> = (0..2 * LANES).map(|i| i as f32).collect();
        let b = vec![0.5f32; 2 * LANES];
        let want = (2 * LANES * (2 * LANES - 1) / 4) as f32;
        assert_eq!(dot(&a, &b), want);
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn avx_dot_is_bit_identical_to_the_portable_one() {
        if !std::arch::is_x86_feature_detected!("avx") {
            eprintln!("SKIPPED: this CPU has no AVX");
            return;
        }
        let mut s = 0x1234_5678_u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as f32 / u32::MAX as f32 - 0.5
        };
        for len in [LANES, 4 * LANES, 31 * LANES] {
            let a: Vec<f32> = (0..len).map(|_| next()).collect();
            let b: Vec<f32> = (0..len).map(|_| next() * 1e-3).collect();
            // SAFETY: AVX was detected above.
            let fast = unsafe { dot_avx(&a, &b) };
            assert_eq!(fast.to_bits(), dot(&a, &b).to_bits(), "{len} taps");
        }
    }

    #[test]
    fn passband_is_flat_to_093_of_nyquist_at_441_to_16() {
        for freq in [100.0, 1_000.0, 4_000.0, 7_000.0, 7_440.0] {
            let db = gain_db(44_100, 16_000, freq, freq);
            assert!(db.abs() < 0.05, "{freq} Hz: {db:.3} dB");
        }
    }

    #[test]
    fn sines_above_nyquist_are_100_db_down_at_441_to_16() {
        for freq in [8_100.0, 8_500.0, 9_000.0, 12_000.0, 20_000.0] {
            let alias = (freq - 16_000.0f64).abs();
            let db = gain_db(44_100, 16_000, freq, alias);
            assert!(db < -100.0, "{freq} Hz → {alias} Hz: {db:.1} dB");
        }
    }

    #[test]
    fn interpolated_table_is_as_flat_and_as_clean() {
        // 16001 / 44100 is beyond the exact table's budget.
        let db = gain_db(44_100, 16_001, 7_000.0, 7_000.0);
        assert!(db.abs() < 0.05, "7 kHz: {db:.3} dB");
        let db = gain_db(44_100, 16_001, 9_000.0, 16_001.0 - 9_000.0);
        assert!(db < -95.0, "9 kHz: {db:.1} dB");
    }

    #[test]
    fn a_click_lands_on_its_sample() {
        for (from, to) in [(44_100u32, 16_000u32), (48_000, 16_000), (8_000, 16_000)] {
            for n in [1_000usize, 1_001, 1_003] {
                let mut x = vec![0.0f32; 4_000];
                x[n] = 1.0;
                let y = resample(&x, from, to).unwrap();
                let at = (0..y.len()).max_by(|&a, &b| y[a].total_cmp(&y[b])).unwrap();
                let ideal = n as f64 * f64::from(to) / f64::from(from);
                assert!(
                    (at as f64 - ideal).abs() <= 1.0,
                    "{from}→{to} click {n}: {at}"
                );
            }
        }
    }

    #[test]
    fn streaming_gives_the_offline_samples_bit_for_bit() {
        let x = sine(44_100, 0.5, 1_234.5);
        let offline = resample(&x, 44_100, 16_000).unwrap();
        let mut s = StreamResampler::new(44_100, 16_000).unwrap();
        let mut out = Vec::new();
        for (i, chunk) in x.chunks(1 + 7 * (FILL / 3)).enumerate() {
            // Uneven chunks, some single samples, some longer than the history's fill.
            let (a, b) = chunk.split_at(chunk.len().min(i % 3));
            s.process(a, &mut out);
            s.process(b, &mut out);
        }
        let d = s.delay();
        assert!(out.len() - d > offline.len() - 200);
        assert_eq!(&out[d..], &offline[..out.len() - d]);
    }

    #[test]
    fn a_push_adds_at_most_the_ratio_rounded_up() {
        for (from, to) in [(44_100u64, 16_000u64), (8_000, 16_000), (11_025, 16_000)] {
            let mut s = StreamResampler::new(from as u32, to as u32).unwrap();
            let mut out = Vec::new();
            for n in (1..2_000).step_by(37).chain([FILL + 1, 3 * FILL]) {
                let before = out.len();
                s.process(&vec![0.25; n], &mut out);
                let bound = (n as u64 * to).div_ceil(from) as usize;
                assert!(
                    out.len() - before <= bound,
                    "{from}→{to}: {n} in, {} out",
                    out.len() - before
                );
            }
        }
    }

    #[test]
    fn delay_and_lookahead_agree() {
        let s = StreamResampler::new(44_100, 16_000).unwrap();
        let secs = s.delay() as f64 / 16_000.0;
        assert!((s.lookahead_secs() - secs).abs() < 1.0 / 16_000.0);
        assert!(
            (s.lookahead_secs() - 0.005).abs() < 0.000_1,
            "{}",
            s.lookahead_secs()
        );
        assert_eq!(s.block_len(), 1);
    }
}
