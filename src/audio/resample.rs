//! Offline and streaming resampling, both on one rubato FFT engine so they give identical
//! samples.

use std::fmt;

use rubato::{FftFixedInOut, Resampler as _};
use tracing::debug;

use super::{check_rate, AudioError, Result};

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
    let mut engine = FftEngine::new(from, to)?;
    let delay = engine.delay();
    let mut out = Vec::with_capacity(delay + target + engine.chunk_out());
    engine.push(samples, &mut out);
    // Silence pushes the delayed tail out of the filter; one chunk of it at a time.
    let silence = vec![0.0; engine.chunk_in()];
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
/// to a caller-owned vector. Input is buffered internally until a full block is available, so
/// output arrives in bursts of a fixed size. Its samples are identical to what [`resample`]
/// produces for the same input, shifted by [`delay`](Self::delay).
///
/// Equal rates pass samples straight through with no delay.
pub struct StreamResampler {
    /// `None` when the rates are equal: nothing to do, and no latency to add.
    engine: Option<FftEngine>,
}

impl StreamResampler {
    /// Build a resampler; allocates all buffers up front.
    pub fn new(from: u32, to: u32) -> Result<Self> {
        check_rate(from)?;
        check_rate(to)?;
        let engine = if from == to {
            None
        } else {
            Some(FftEngine::new(from, to)?)
        };
        Ok(StreamResampler { engine })
    }

    /// Resample `input` and append the samples that became ready to `out`.
    ///
    /// Reuses internal buffers; the only allocation is `out` growing.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        match &mut self.engine {
            Some(engine) => engine.push(input, out),
            None => out.extend_from_slice(input),
        }
    }

    /// Latency in output samples: output sample `k` corresponds to input time
    /// `(k - delay) / to` seconds. Callers subtract it to align timestamps.
    ///
    /// This is the filter's delay only; input also waits in the internal block buffer, which
    /// delays when output appears but not which instant it describes.
    pub fn delay(&self) -> usize {
        self.engine.as_ref().map_or(0, FftEngine::delay)
    }

    /// Output samples the engine hands over at once (0 when the rates are equal).
    pub fn block_len(&self) -> usize {
        self.engine.as_ref().map_or(0, FftEngine::chunk_out)
    }
}

impl fmt::Debug for StreamResampler {
    // rubato's resamplers are not Debug; show the shape that matters instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.engine {
            Some(e) => f
                .debug_struct("StreamResampler")
                .field("chunk_in", &e.chunk_in())
                .field("chunk_out", &e.chunk_out())
                .field("pending", &e.pending.len())
                .field("delay", &e.delay())
                .finish(),
            None => f.write_str("StreamResampler(passthrough)"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Resampling engine

/// Smallest block, in both input and output samples, the FFT resampler works on. The block
/// length is also the anti-aliasing filter's length, so this trades quality for latency: 160
/// taps (10 ms at 16 kHz) keep the passband flat and the transition band about 200 Hz wide,
/// and a window's last sample waits at most one block plus half a block of filter delay
/// (15 ms) before the consumer sees it. 512 taps cost 48 ms, too much for the latency target
/// in BENCHMARKS.md, and the scores they give differ from 160's by less than the models' noise.
const MIN_BLOCK: u64 = 160;

/// rubato's synchronous FFT resampler plus the input buffer that lets callers push any amount.
///
/// The FFT resampler was chosen over the sinc one because it is exact for rational ratios (so
/// output length tracks input length forever without drift), cheap per sample, and sizes its
/// filter to the ratio, which matters for large down-sampling ratios such as 192 kHz → 16 kHz.
struct FftEngine {
    resampler: FftFixedInOut<f32>,
    /// Input samples waiting for a full block.
    pending: Vec<f32>,
    /// rubato writes into this (one channel) and we copy out, so pushes do not allocate.
    block_out: Vec<Vec<f32>>,
}

impl FftEngine {
    fn new(from: u32, to: u32) -> Result<Self> {
        // Ask for a block of at least MIN_BLOCK on both sides; rubato rounds it up to a multiple
        // of the reduced ratio.
        let wanted_in = MIN_BLOCK.max(MIN_BLOCK * u64::from(from) / u64::from(to));
        let resampler =
            FftFixedInOut::<f32>::new(from as usize, to as usize, wanted_in as usize, 1)
                .map_err(|source| AudioError::Resampler { from, to, source })?;
        let pending = Vec::with_capacity(resampler.input_frames_max());
        let block_out = resampler.output_buffer_allocate(true);
        debug!(
            from,
            to,
            chunk_in = resampler.input_frames_max(),
            chunk_out = resampler.output_frames_max(),
            delay = resampler.output_delay(),
            "built FFT resampler"
        );
        Ok(FftEngine {
            resampler,
            pending,
            block_out,
        })
    }

    fn chunk_in(&self) -> usize {
        self.resampler.input_frames_max()
    }

    fn chunk_out(&self) -> usize {
        self.resampler.output_frames_max()
    }

    fn delay(&self) -> usize {
        self.resampler.output_delay()
    }

    fn push(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        let chunk = self.chunk_in();
        while !input.is_empty() {
            if self.pending.is_empty() && input.len() >= chunk {
                // Whole blocks straight from the caller's slice: no copy into `pending`.
                let (block, rest) = input.split_at(chunk);
                self.run_block(block, out);
                input = rest;
                continue;
            }
            let take = (chunk - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == chunk {
                let block = std::mem::take(&mut self.pending);
                self.run_block(&block, out);
                self.pending = block;
                self.pending.clear();
            }
        }
    }

    fn run_block(&mut self, block: &[f32], out: &mut Vec<f32>) {
        let (_, written) = self
            .resampler
            .process_into_buffer(&[block], &mut self.block_out, None)
            .expect("block and output buffer are sized from the resampler's own frame counts");
        out.extend_from_slice(&self.block_out[0][..written]);
    }
}

/// `round(len * to / from)` without overflow or float error.
fn output_len(len: usize, from: u32, to: u32) -> usize {
    let (len, from, to) = (len as u128, u128::from(from), u128::from(to));
    ((len * to + from / 2) / from) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::MAX_SAMPLE_RATE;

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
    }

    #[test]
    fn resample_handles_empty_and_tiny_inputs() {
        assert!(resample(&[], 48_000, 16_000).unwrap().is_empty());
        assert_eq!(resample(&[0.5; 3], 48_000, 16_000).unwrap().len(), 1);
        assert_eq!(resample(&[0.5; 1], 8_000, 16_000).unwrap().len(), 2);
    }
}
