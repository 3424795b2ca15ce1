//! The streaming front end: log-mel frames computed one hop at a time as samples arrive, kept
//! so that overlapping windows reuse them.

use std::fmt;

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

use super::mel::{FrameScratch, MelFrontend};
use super::PadMode;

/// Log-mel frames computed one hop at a time from a sample stream. Frames are kept (until
/// [`discard_before`](Self::discard_before)) so that overlapping windows re-use them instead of
/// recomputing; only the whole-window steps are redone per [`window`](Self::window).
///
/// With `center = true` the stream is taken to start at sample 0: the left padding (zeros, or
/// the reflection of samples 1..=n_fft/2, which waits for those samples) is applied once at
/// stream start and after [`reset`](Self::reset); no right padding is ever applied.
pub struct StreamingFrontend {
    frontend: MelFrontend,
    scratch: FrameScratch,
    /// Samples from the next frame's first sample on (padded-stream coordinates).
    pending: Vec<f32>,
    /// Incoming samples to drop before the next frame starts (when hop > frame length).
    to_skip: usize,
    /// False while a reflect-padded stream waits for the samples its left padding mirrors.
    started: bool,
    /// Kept log-mel frames, oldest first, n_mels values each, before the whole-window steps:
    /// contiguous, so a window is one transposing copy. Its capacity is reused, so once it holds
    /// as many frames as the caller keeps between [`discard_before`](Self::discard_before)
    /// calls, pushing allocates nothing.
    frames: Vec<f32>,
}

impl StreamingFrontend {
    /// A stream at its start (see [`reset`](Self::reset)).
    pub fn new(frontend: MelFrontend) -> Self {
        let scratch = frontend.scratch();
        let mut s = Self {
            frontend,
            scratch,
            pending: Vec::new(),
            to_skip: 0,
            started: false,
            frames: Vec::new(),
        };
        s.reset();
        s
    }

    /// The front end whose frames this stream computes.
    pub fn frontend(&self) -> &MelFrontend {
        &self.frontend
    }

    /// Appends samples and computes every frame they complete. Allocates nothing once its
    /// buffers have reached their steady size (the pending samples stay below one frame plus
    /// the largest push; the kept frames are bounded by [`discard_before`](Self::discard_before)).
    pub fn push(&mut self, samples: &[f32]) {
        let mut samples = samples;
        if !self.started {
            self.pending.extend_from_slice(samples);
            samples = &[];
            let pad = self.frontend.spec.center_pad();
            if self.pending.len() <= pad {
                return;
            }
            // Mirror samples pad..=1 in front, as numpy.pad(mode="reflect") would: append them
            // in that order, then rotate them to the front.
            for i in (1..=pad).rev() {
                let v = self.pending[i];
                self.pending.push(v);
            }
            self.pending.rotate_right(pad);
            self.started = true;
        }
        let skip = self.to_skip.min(samples.len());
        self.to_skip -= skip;
        self.pending.extend_from_slice(&samples[skip..]);

        let frame_len = self.frontend.frame_len();
        let hop = self.frontend.spec.hop_length;
        let n_mels = self.frontend.spec.n_mels;
        let mut start = 0;
        while start + frame_len <= self.pending.len() {
            let end = self.frames.len();
            self.frames.resize(end + n_mels, 0.0);
            self.frontend.frame_into(
                &self.pending[start..start + frame_len],
                &mut self.frames[end..],
                &mut self.scratch,
            );
            start += hop;
        }
        if start > self.pending.len() {
            self.to_skip = start - self.pending.len();
            self.pending.clear();
        } else {
            self.pending.drain(..start);
        }
    }

    /// Frames computed and still kept.
    pub fn frames_available(&self) -> usize {
        self.frames.len() / self.frontend.spec.n_mels
    }

    /// The last `n_frames` frames as `[n_mels, n_frames]`, with the whole-window steps (top-dB
    /// clipping, normalisation) applied over this window alone; None if fewer are kept.
    /// Allocates the result; [`window_into`](Self::window_into) does not.
    pub fn window(&self, n_frames: usize) -> Option<Array2<f32>> {
        let mut out = Array2::<f32>::zeros((self.frontend.spec.n_mels, n_frames));
        self.window_into(out.view_mut()).then_some(out)
    }

    /// [`window`](Self::window) into `out`, whose shape `[n_mels, n_frames]` says how many
    /// frames are wanted (the same numbers, bit for bit); allocates nothing. Returns false, and
    /// leaves `out` untouched, if fewer than n_frames frames are kept.
    ///
    /// `out` may have any strides: for a frames-first `[n_frames, n_mels]` array `a` (as some
    /// models take), pass `a.view_mut().reversed_axes()`; each frame is then written
    /// contiguously.
    ///
    /// # Panics
    /// If `out` does not have n_mels rows.
    pub fn window_into(&self, mut out: ArrayViewMut2<'_, f32>) -> bool {
        let n_mels = self.frontend.spec.n_mels;
        assert_eq!(
            out.nrows(),
            n_mels,
            "window_into: output has {} rows, the spec has n_mels = {n_mels}",
            out.nrows()
        );
        let n_frames = out.ncols();
        let available = self.frames_available();
        if n_frames > available {
            return false;
        }
        let kept = ArrayView2::from_shape(
            (n_frames, n_mels),
            &self.frames[(available - n_frames) * n_mels..],
        )
        .expect("the kept frames end with n_frames frames of n_mels values");
        out.assign(&kept.t());
        self.frontend.normalize(&mut out);
        true
    }

    /// Drops all but the newest `keep_last` frames, so memory stays bounded (the kept frames move
    /// to the front of their storage, which is kept for the frames pushed next).
    pub fn discard_before(&mut self, keep_last: usize) {
        let available = self.frames_available();
        if available > keep_last {
            let n_mels = self.frontend.spec.n_mels;
            self.frames.drain(..(available - keep_last) * n_mels);
        }
    }

    /// Forgets all samples and frames; the next push starts a new stream (left padding again).
    pub fn reset(&mut self) {
        self.frames.clear();
        self.pending.clear();
        self.to_skip = 0;
        let spec = &self.frontend.spec;
        self.started = true;
        if spec.center {
            match spec.pad_mode {
                PadMode::Constant => self.pending.resize(spec.center_pad(), 0.0),
                PadMode::Reflect => self.started = spec.center_pad() == 0,
            }
        }
    }
}

impl fmt::Debug for StreamingFrontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamingFrontend")
            .field("frontend", &self.frontend)
            .field("frames_available", &self.frames_available())
            .field("pending_samples", &self.pending.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use ndarray::Array2;

    use super::*;
    use crate::frontend::test_util::{centred_and_not, spec, test_signal};
    use crate::frontend::FeatureSpec;

    #[test]
    fn front_ends_can_move_to_the_worker_thread() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<MelFrontend>();
        send_sync::<StreamingFrontend>();
    }

    #[test]
    fn window_into_equals_window_in_both_layouts() {
        for s in centred_and_not() {
            let fe = MelFrontend::new(s.clone()).unwrap();
            let mut st = StreamingFrontend::new(fe);
            for chunk in test_signal(16000).chunks(160) {
                st.push(chunk);
            }
            let available = st.frames_available();
            for n in [0, 1, 17, available] {
                let want = st.window(n).unwrap();
                let mut got = Array2::from_elem((s.n_mels, n), f32::NAN);
                assert!(st.window_into(got.view_mut()));
                assert_eq!(got, want, "center {} n {n}", s.center);
                let mut frames_first = Array2::from_elem((n, s.n_mels), f32::NAN);
                assert!(st.window_into(frames_first.view_mut().reversed_axes()));
                assert_eq!(frames_first.t(), want);
            }
            let mut too_many = Array2::from_elem((s.n_mels, available + 1), 7.0f32);
            assert!(!st.window_into(too_many.view_mut()));
            assert!(too_many.iter().all(|&v| v == 7.0), "left untouched");
            assert!(st.window(available + 1).is_none());
        }
    }

    #[test]
    fn streaming_buffers_stop_growing_once_steady() {
        for s in centred_and_not() {
            let hop = s.hop_length;
            let mut st = StreamingFrontend::new(MelFrontend::new(s).unwrap());
            let signal = test_signal(64000);
            let mut out = Array2::zeros((64, 96));
            let mut steady = None;
            // 48 frames per push, 96 kept, as YAMNet's 0.96 s window at a 0.48 s hop.
            for (i, chunk) in signal.chunks(48 * hop).enumerate() {
                st.push(chunk);
                st.window_into(out.view_mut());
                st.discard_before(96);
                let caps = (st.pending.capacity(), st.frames.capacity());
                if i == 3 {
                    steady = Some(caps);
                } else if i > 3 && chunk.len() == 48 * hop {
                    assert_eq!(Some(caps), steady, "push {i}");
                }
            }
            assert!(steady.is_some());
        }
    }

    #[test]
    fn streaming_with_large_hop_skips_samples_between_frames() {
        let s = FeatureSpec {
            n_fft: 64,
            win_length: 64,
            hop_length: 100,
            n_mels: 8,
            fmin: 0.0,
            fmax: 8000.0,
            ..spec()
        };
        let fe = MelFrontend::new(s).unwrap();
        let signal: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 101) as f32 / 50.0 - 1.0)
            .collect();
        let batch = fe.log_mel_frames(&signal);
        let mut st = StreamingFrontend::new(fe);
        for chunk in signal.chunks(37) {
            st.push(chunk);
        }
        assert_eq!(st.frames_available(), batch.ncols());
        let streamed = st.window(batch.ncols()).unwrap();
        assert_eq!(streamed, batch);
    }
}
