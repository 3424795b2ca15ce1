//! The batch front end: [`MelFrontend`] holds a validated spec with its window, filter bank and
//! FFT plan, cuts a whole signal into frames (center padding included), and applies the
//! whole-window steps (top-dB clipping, normalisation).

use std::fmt;
use std::sync::Arc;

use ndarray::{s, Array2, ArrayBase, ArrayView2, ArrayViewMut2, DataMut, Ix2};
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::filters::{frame_window, mel_filters_f64, sparse_bands, Band};
use super::{FeatureSpec, LogKind, Normalize, PadMode, Result};

/// Σ f(x) over a matrix, row by row in four interleaved partial sums (as [`dot`]), so it
/// vectorizes; the same additions in the same order whatever the matrix's strides, so a window
/// normalises to the same bits in either layout.
fn sum_rows<S: ndarray::Data<Elem = f32>>(x: &ArrayBase<S, Ix2>, f: impl Fn(f32) -> f64) -> f64 {
    let mut total = 0.0;
    for row in x.rows() {
        let mut acc = [0.0f64; 4];
        let mut rest = 0.0;
        match row.as_slice() {
            Some(row) => {
                let chunks = row.chunks_exact(4);
                rest = chunks.remainder().iter().map(|&v| f(v)).sum();
                for c in chunks {
                    for i in 0..4 {
                        acc[i] += f(c[i]);
                    }
                }
            }
            None => {
                let whole = row.len() / 4 * 4;
                for (j, &v) in row.iter().enumerate() {
                    if j < whole {
                        acc[j % 4] += f(v);
                    } else {
                        rest += f(v);
                    }
                }
            }
        }
        total += rest + ((acc[0] + acc[1]) + (acc[2] + acc[3]));
    }
    total
}

/// Index into a signal of length n for padded position `i` (may be out of range), with
/// numpy.pad's `reflect` semantics, including its repeated reflection when the padding is longer
/// than the signal. `n` must be > 0.
fn reflect_index(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let r = i.rem_euclid(period) as usize;
    if r >= n {
        period as usize - r
    } else {
        r
    }
}

/// Sample `j` of the signal with `pad` samples added on each side, as numpy.pad does.
///
/// librosa (>= 0.10) pads the two ends of the signal separately, which is the same as padding the
/// whole signal except in one corner: with reflect padding and hop >= n_fft - n_fft/2, the tail
/// piece librosa pads can be shorter than the padding, so numpy reflects it twice and the last
/// frame's final few samples differ. Those samples sit under the window's near-zero tail (and
/// streaming never computes right-padded frames), so hark keeps the plain definition.
fn padded_sample(samples: &[f32], pad: usize, mode: PadMode, j: usize) -> f32 {
    let n = samples.len();
    match j.checked_sub(pad) {
        Some(i) if i < n => samples[i],
        _ => match mode {
            PadMode::Constant => 0.0,
            PadMode::Reflect => samples[reflect_index(j as isize - pad as isize, n)],
        },
    }
}

/// The whole padded signal (the front end only ever pads its ends, see `log_mel_frames_into`).
#[cfg(test)]
fn pad_signal(samples: &[f32], pad: usize, mode: PadMode) -> Vec<f32> {
    (0..samples.len() + 2 * pad)
        .map(|j| padded_sample(samples, pad, mode, j))
        .collect()
}

/// Frames `compute_into` computes before writing them out together.
const BLOCK: usize = 16;

/// Caller-owned work buffers for [`MelFrontend::compute_into`], so that computing window after
/// window allocates nothing once the buffers have grown to the window's size. Make one with
/// [`MelFrontend::scratch`]; a scratch made for another spec still works (it is resized, which
/// allocates once).
pub struct FrameScratch {
    /// The windowed frame, zero-padded to n_fft (the FFT's input, overwritten by it).
    pub(super) input: Vec<f64>,
    pub(super) spectrum: Vec<Complex<f64>>,
    pub(super) fft: Vec<Complex<f64>>,
    /// |X|^power per bin.
    pub(super) bins: Vec<f64>,
    /// One frame's mel energies, then what their log is taken of.
    pub(super) energies: Vec<f64>,
    /// BLOCK frames' log-mel values, frames-first, before they are copied into the caller's
    /// (maybe strided) output.
    pub(super) column: Vec<f32>,
    /// The center-padded ends of the signal: about 2·(n_fft/2 + frame length) samples.
    pub(super) padded: Vec<f32>,
}

impl fmt::Debug for FrameScratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameScratch")
            .field("n_fft", &self.input.len())
            .field("padded_capacity", &self.padded.capacity())
            .finish_non_exhaustive()
    }
}

/// A validated spec with everything precomputed: window, filter bank, FFT plan. Cheap to clone
/// (the plan is shared).
#[derive(Clone)]
pub struct MelFrontend {
    pub(super) spec: FeatureSpec,
    /// Multiplies a frame sample by sample; length = spec.frame_len().
    pub(super) window: Vec<f64>,
    pub(super) bands: Arc<Vec<Band>>,
    pub(super) fft: Arc<dyn RealToComplex<f64>>,
    /// 10·log10(max(amin, ref)) in the units the dB path works in, subtracted from every value.
    pub(super) db_ref_offset: f64,
    /// The CPU has AVX2, so frames run through [`frame_avx2`](Self::frame_avx2).
    #[cfg(target_arch = "x86_64")]
    pub(super) avx2: bool,
    /// db_amin², the floor of the amplitude dB path (whose log is taken of mel²).
    pub(super) db_amin_sq: f64,
    /// What the dB path's log is at least taken of: amin (power), amin² (amplitude).
    pub(super) db_floor_arg: f64,
    /// The dB value of that floor (10·log10(db_floor_arg) - db_ref_offset), computed with the
    /// library's log10 so silence gives exactly librosa's value.
    pub(super) db_floor: f64,
}

impl fmt::Debug for MelFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MelFrontend")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl MelFrontend {
    /// Validates the spec and precomputes the window, mel filters and FFT plan.
    pub fn new(spec: FeatureSpec) -> Result<Self> {
        spec.validate()?;
        let window = frame_window(&spec);
        let bands = Arc::new(sparse_bands(&mel_filters_f64(&spec)));
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(spec.n_fft);
        // amplitude_to_db is power_to_db of the squares, with ref and amin squared too.
        let db_ref_offset = if spec.power == 2.0 {
            10.0 * spec.db_ref.max(spec.db_amin).log10()
        } else {
            10.0 * (spec.db_ref * spec.db_ref)
                .max(spec.db_amin * spec.db_amin)
                .log10()
        };
        let db_amin_sq = spec.db_amin * spec.db_amin;
        let db_floor_arg = if spec.power == 2.0 {
            spec.db_amin
        } else {
            db_amin_sq
        };
        let db_floor = 10.0 * db_floor_arg.log10() - db_ref_offset;
        Ok(Self {
            spec,
            window,
            bands,
            fft,
            db_ref_offset,
            #[cfg(target_arch = "x86_64")]
            avx2: std::arch::is_x86_feature_detected!("avx2"),
            db_amin_sq,
            db_floor_arg,
            db_floor,
        })
    }

    /// The validated spec this front end computes.
    pub fn spec(&self) -> &FeatureSpec {
        &self.spec
    }

    /// Samples `frame_log_mel` expects: n_fft (librosa framing) or win_length (tf framing).
    pub fn frame_len(&self) -> usize {
        self.window.len()
    }

    /// Bands per frame.
    pub fn n_mels(&self) -> usize {
        self.spec.n_mels
    }

    /// Work buffers for [`compute_into`](Self::compute_into), sized for this spec. Keep it and
    /// pass it to every call.
    pub fn scratch(&self) -> FrameScratch {
        FrameScratch {
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            fft: self.fft.make_scratch_vec(),
            bins: vec![0.0; self.spec.n_bins()],
            energies: vec![0.0; self.spec.n_mels],
            column: vec![0.0; self.spec.n_mels * BLOCK],
            padded: Vec::new(),
        }
    }

    /// Resizes a scratch made for another spec (allocates); a no-op for one made by
    /// [`scratch`](Self::scratch).
    fn fit_scratch(&self, s: &mut FrameScratch) {
        if s.input.len() != self.spec.n_fft
            || s.fft.len() != self.fft.get_scratch_len()
            || s.column.len() != self.spec.n_mels * BLOCK
        {
            let padded = std::mem::take(&mut s.padded);
            *s = FrameScratch {
                padded,
                ..self.scratch()
            };
        }
    }

    /// Whole-signal features `[n_mels, frames]`, including center padding, top-dB clipping and
    /// normalisation: the same numbers as librosa (or YAMNet's reference for tf framing).
    /// A signal too short for one frame gives `[n_mels, 0]`. Allocates its result and work
    /// buffers; [`compute_into`](Self::compute_into) does not.
    pub fn compute(&self, samples: &[f32]) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.spec.n_mels, self.num_frames(samples.len())));
        self.compute_into(samples, &mut self.scratch(), out.view_mut());
        out
    }

    /// [`compute`](Self::compute) into `out`, which must be `[n_mels, num_frames(samples.len())]`
    /// (the same numbers, bit for bit). Allocates nothing after the first call with `scratch`
    /// (the padded ends of the signal are built in it; their size does not depend on the
    /// signal's length).
    ///
    /// `out` may have any strides: for a frames-first `[frames, n_mels]` array `a`, pass
    /// `a.view_mut().reversed_axes()`.
    ///
    /// # Panics
    /// If `out` has another shape.
    pub fn compute_into(
        &self,
        samples: &[f32],
        scratch: &mut FrameScratch,
        mut out: ArrayViewMut2<'_, f32>,
    ) {
        self.log_mel_frames_into(samples, scratch, &mut out);
        self.normalize(&mut out);
    }

    /// Log-mel frames of a whole signal before the whole-window steps, into `out`.
    fn log_mel_frames_into(
        &self,
        samples: &[f32],
        scratch: &mut FrameScratch,
        out: &mut ArrayViewMut2<'_, f32>,
    ) {
        let n_frames = self.num_frames(samples.len());
        assert_eq!(
            out.dim(),
            (self.spec.n_mels, n_frames),
            "compute_into: output is {:?}, {} samples give [n_mels, frames] = [{}, {}]",
            out.dim(),
            samples.len(),
            self.spec.n_mels,
            n_frames
        );
        if n_frames == 0 {
            return;
        }
        self.fit_scratch(scratch);
        let (n, n_mels) = (samples.len(), self.spec.n_mels);
        let (frame_len, hop, pad) = (
            self.frame_len(),
            self.spec.hop_length,
            self.spec.center_pad(),
        );
        // Center padding: frames that reach into it are cut from a padded copy of just the
        // signal's two ends, P[..head_end] ++ P[tail_start..] (P the padded signal); the others
        // read the samples themselves.
        let padded_len = n + 2 * pad;
        let mut head_end = padded_len.min(pad + frame_len);
        let mut tail_start = (pad + n).saturating_sub(frame_len);
        if head_end >= tail_start {
            (head_end, tail_start) = (padded_len, padded_len);
        }
        let mut edges = std::mem::take(&mut scratch.padded);
        edges.clear();
        if pad > 0 {
            let at = |j| padded_sample(samples, pad, self.spec.pad_mode, j);
            edges.extend((0..head_end).map(at));
            edges.extend((tail_start..padded_len).map(at));
        }
        // Frames are computed BLOCK at a time into the scratch, frames-first, then written to
        // `out` row by row: in the usual [n_mels, frames] layout a frame's column would touch
        // n_mels cache lines (and pages) for one value each.
        let mut block = std::mem::take(&mut scratch.column);
        for t0 in (0..n_frames).step_by(BLOCK) {
            let b = BLOCK.min(n_frames - t0);
            for (i, column) in block.chunks_exact_mut(n_mels).take(b).enumerate() {
                let start = (t0 + i) * hop;
                let frame = if start >= pad && start + frame_len <= pad + n {
                    &samples[start - pad..][..frame_len]
                } else if start + frame_len <= head_end {
                    &edges[start..][..frame_len]
                } else {
                    &edges[head_end + (start - tail_start)..][..frame_len]
                };
                self.frame_into(frame, column, scratch);
            }
            let frames = ArrayView2::from_shape((b, n_mels), &block[..b * n_mels])
                .expect("the block holds b frames of n_mels values");
            out.slice_mut(s![.., t0..t0 + b]).assign(&frames.t());
        }
        scratch.column = block;
        scratch.padded = edges;
    }

    /// Log-mel frames of a whole signal before the whole-window steps.
    #[cfg(test)]
    pub(super) fn log_mel_frames(&self, samples: &[f32]) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.spec.n_mels, self.num_frames(samples.len())));
        self.log_mel_frames_into(samples, &mut self.scratch(), &mut out.view_mut());
        out
    }

    /// The whole-window steps, in place on `[n_mels, frames]` log-mel features: top-dB clipping
    /// (`log = "db"` with `db_top` set: values below the matrix maximum minus db_top are raised
    /// to it) and then `normalize`. Both look at the whole matrix, so they belong to a window,
    /// not a frame; `frame_log_mel` for each frame followed by this equals `compute` (for
    /// `center = false`). Statistics are taken in f64. Works on an owned array or a (mutable,
    /// possibly strided) view alike.
    pub fn normalize<S: DataMut<Elem = f32>>(&self, x: &mut ArrayBase<S, Ix2>) {
        if x.is_empty() {
            return;
        }
        let top_db = match (self.spec.log, self.spec.db_top) {
            (LogKind::Db, Some(top)) => Some(top),
            _ => None,
        };
        // Clipping raises everything below the floor to it: the floor is then the new minimum
        // if it is above the old one, and the maximum does not change. So minmax needs one pass
        // for both statistics and one to write, with the clipping folded into the write.
        let (min, max) = x.fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
        let floor = match top_db {
            Some(top) => (f64::from(max) - top) as f32,
            None => f32::NEG_INFINITY,
        };
        match self.spec.normalize {
            Normalize::None => {
                if top_db.is_some() {
                    x.mapv_inplace(|v| v.max(floor));
                }
            }
            Normalize::SamplewiseMinmax => {
                let min = f64::from(min.max(floor));
                // max |x - min| over the clipped values, all >= min.
                let scale = (f64::from(max) - min) + 1.0;
                x.mapv_inplace(|v| ((f64::from(v.max(floor)) - min) / scale) as f32);
            }
            Normalize::Zscore => {
                if top_db.is_some() {
                    x.mapv_inplace(|v| v.max(floor));
                }
                let n = x.len() as f64;
                let mean = sum_rows(x, f64::from) / n;
                let var = sum_rows(x, |v| (f64::from(v) - mean).powi(2)) / n;
                let denom = var.sqrt() + 1e-8;
                x.mapv_inplace(|v| ((f64::from(v) - mean) / denom) as f32);
            }
        }
    }

    /// Frames `compute` makes from `n_samples` samples (with the spec's center padding):
    /// 1 + (padded - frame_len) / hop, or 0 when the padded signal is shorter than one frame
    /// or empty.
    pub fn num_frames(&self, n_samples: usize) -> usize {
        if n_samples == 0 {
            return 0;
        }
        let padded = n_samples + 2 * self.spec.center_pad();
        let frame_len = self.frame_len();
        if padded < frame_len {
            0
        } else {
            1 + (padded - frame_len) / self.spec.hop_length
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::test_util::{centred_and_not, close, spec, test_signal};
    use crate::frontend::Framing;

    #[test]
    fn reflect_padding_matches_numpy_including_repeated_reflection() {
        // np.pad([1,2,3], 5, mode="reflect") and np.pad([1,2,3,4], (2, 9) ...) both sides 2.
        assert_eq!(
            pad_signal(&[1.0, 2.0, 3.0], 5, PadMode::Reflect),
            vec![2., 1., 2., 3., 2., 1., 2., 3., 2., 1., 2., 3., 2.]
        );
        assert_eq!(
            pad_signal(&[1.0, 2.0, 3.0, 4.0], 2, PadMode::Reflect),
            vec![3., 2., 1., 2., 3., 4., 3., 2.]
        );
        assert_eq!(pad_signal(&[5.0], 2, PadMode::Reflect), vec![5.0; 5]);
        assert_eq!(
            pad_signal(&[1.0, 2.0], 2, PadMode::Constant),
            vec![0., 0., 1., 2., 0., 0.]
        );
    }

    #[test]
    fn frame_counts_follow_librosa() {
        let fe = MelFrontend::new(spec()).unwrap();
        assert_eq!(fe.num_frames(16000), 1 + (16000 - 512) / 160);
        assert_eq!(fe.num_frames(511), 0);
        assert_eq!(fe.num_frames(512), 1);
        let tf = MelFrontend::new(FeatureSpec {
            framing: Framing::Tf,
            ..spec()
        })
        .unwrap();
        assert_eq!(tf.num_frames(15600), 96);
        let centred = MelFrontend::new(FeatureSpec {
            center: true,
            ..spec()
        })
        .unwrap();
        assert_eq!(centred.num_frames(16000), 1 + 16000 / 160);
        assert_eq!(centred.num_frames(0), 0);
    }

    #[test]
    fn normalizations_match_their_numpy_definitions() {
        let minmax = MelFrontend::new(FeatureSpec {
            normalize: Normalize::SamplewiseMinmax,
            ..spec()
        })
        .unwrap();
        let mut x = Array2::from_shape_vec((1, 3), vec![-4.0, 0.0, 2.0]).unwrap();
        minmax.normalize(&mut x);
        // x - min = [0, 4, 6]; / (6 + 1)
        let want = [0.0, 4.0 / 7.0, 6.0 / 7.0];
        for (a, b) in x.iter().zip(want) {
            assert!(close(f64::from(*a), b, 1e-7));
        }

        let z = MelFrontend::new(FeatureSpec {
            normalize: Normalize::Zscore,
            ..spec()
        })
        .unwrap();
        let mut x = Array2::from_shape_vec((2, 2), vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        z.normalize(&mut x);
        let std = 1.25f64.sqrt();
        let want = [-1.5 / std, -0.5 / std, 0.5 / std, 1.5 / std];
        for (a, b) in x.iter().zip(want) {
            assert!(close(f64::from(*a), b, 1e-6));
        }
        // A constant window (silence) stays finite.
        let mut x = Array2::from_elem((2, 3), -100.0f32);
        z.normalize(&mut x);
        assert!(x.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn compute_into_equals_compute_in_both_layouts_and_reuses_its_scratch() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let mut scratch = fe.scratch();
            // The padded ends do not grow with the signal.
            for n in [16000, 4000, 700, 100] {
                let signal = test_signal(n);
                let want = fe.compute(&signal);
                let mut got = Array2::from_elem(want.dim(), f32::NAN);
                fe.compute_into(&signal, &mut scratch, got.view_mut());
                assert_eq!(got, want, "center {} n {n}", s.center);
                let mut frames_first = Array2::from_elem((want.ncols(), s.n_mels), f32::NAN);
                let capacity = scratch.padded.capacity();
                fe.compute_into(
                    &signal,
                    &mut scratch,
                    frames_first.view_mut().reversed_axes(),
                );
                assert_eq!(frames_first.t(), want, "frames first, n {n}");
                assert_eq!(scratch.padded.capacity(), capacity, "padding reused");
            }
        }
        // A scratch made for another spec is resized rather than misused.
        let small = MelFrontend::new(spec()).unwrap();
        let big = MelFrontend::new(FeatureSpec {
            n_fft: 1024,
            win_length: 1024,
            n_mels: 40,
            ..spec()
        })
        .unwrap();
        let signal = test_signal(8000);
        let mut scratch = small.scratch();
        let want = big.compute(&signal);
        let mut got = Array2::zeros(want.dim());
        big.compute_into(&signal, &mut scratch, got.view_mut());
        assert_eq!(got, want);
    }

    #[test]
    fn padding_only_the_ends_gives_the_frames_of_the_whole_padded_signal() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let pad = s.center_pad();
            // Shorter than the padding (repeated reflection), about one frame, and long.
            for n in [
                1, 2, 5, 100, 255, 256, 257, 400, 511, 512, 513, 700, 1000, 4000,
            ] {
                let signal = test_signal(n);
                let padded = pad_signal(&signal, pad, s.pad_mode);
                let got = fe.log_mel_frames(&signal);
                let mut column = vec![0.0; s.n_mels];
                for t in 0..got.ncols() {
                    let start = t * s.hop_length;
                    fe.frame_log_mel(&padded[start..start + fe.frame_len()], &mut column);
                    assert_eq!(
                        got.column(t).to_vec(),
                        column,
                        "center {} n {n} t {t}",
                        s.center
                    );
                }
            }
        }
    }

    #[test]
    #[should_panic(expected = "compute_into: output is")]
    fn compute_into_rejects_an_output_of_the_wrong_shape() {
        let fe = MelFrontend::new(spec()).unwrap();
        let mut out = Array2::zeros((64, 3));
        fe.compute_into(&test_signal(16000), &mut fe.scratch(), out.view_mut());
    }
}
