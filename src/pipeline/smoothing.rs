//! Smoothing of per-window model scores over time.
//!
//! Owns the short history of score vectors and turns each new one into a smoothed vector
//! (mean, geometric mean or exponential moving average) so that `decision` sees scores that
//! do not jump from window to window. It is pure arithmetic: no I/O, no threads, no clocks,
//! and after construction it does not allocate per window, so it may run on the inference
//! thread for every hop. It knows nothing about labels' names or events.

use serde::{Deserialize, Serialize};

use crate::validate::{Checked, Invalid, Problems};

/// Floor applied before taking logarithms, so that a score of exactly 0 does not drive the
/// geometric mean to 0 for the whole history (the same floor ml-sound-classifier uses).
const LOG_FLOOR: f32 = 1e-7;

/// Largest accepted `smoothing.windows`. The history is `windows × labels` floats kept in
/// memory; anything beyond this is almost certainly a typo, not a wish to average minutes.
pub const MAX_WINDOWS: usize = 1000;

/// How successive score vectors are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmoothingMethod {
    /// Pass the model's scores through unchanged.
    None,
    /// Arithmetic mean of each label over the last `windows` vectors.
    Mean,
    /// Geometric mean over the last `windows` vectors (ml-sound-classifier's
    /// `pred_ensembles`): one low score pulls the result down more than with `Mean`, which
    /// suppresses single-window spikes.
    GeometricMean,
    /// Exponential moving average; `ema_alpha` is the weight of the newest vector.
    Ema,
}

/// The `[smoothing]` section of the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SmoothingSettings {
    pub method: SmoothingMethod,
    /// How many of the latest windows `Mean` and `GeometricMean` combine (N, at least 1).
    #[serde(deserialize_with = "crate::validate::whole_number")]
    pub windows: usize,
    /// Weight of the newest window for `Ema`, in (0, 1]; 1 means no smoothing.
    pub ema_alpha: f32,
}

impl Default for SmoothingSettings {
    fn default() -> Self {
        // The same values as config/hark.toml, chosen from measurements on real recordings
        // (docs/defaults.md, scripts/measure_defaults.py).
        SmoothingSettings {
            method: SmoothingMethod::Ema,
            windows: 2,
            ema_alpha: 0.7,
        }
    }
}

impl SmoothingSettings {
    /// Checks every value; the error names each bad key, the value given and what is
    /// allowed, one problem per line.
    pub fn validate(&self) -> Checked {
        let mut problems = Problems::default();
        if self.windows == 0 {
            problems.push(Invalid::new("smoothing.windows", 0, "must be >= 1"));
        } else if self.windows > MAX_WINDOWS {
            problems.push(Invalid::new(
                "smoothing.windows",
                self.windows,
                format!("must be <= {MAX_WINDOWS} (it is the number of windows averaged)"),
            ));
        }
        if !(self.ema_alpha > 0.0 && self.ema_alpha <= 1.0) {
            problems.push(Invalid::new(
                "smoothing.ema_alpha",
                self.ema_alpha,
                "must be > 0 and <= 1 (the weight of the newest window)",
            ));
        }
        problems.into_result()
    }
}

/// Smooths a stream of score vectors of a fixed length.
#[derive(Debug, Clone)]
pub struct Smoother {
    method: SmoothingMethod,
    /// N, clamped to at least 1 so unvalidated settings cannot divide by zero.
    windows: usize,
    /// Clamped into (0, 1] for the same reason.
    alpha: f32,
    n_labels: usize,
    /// The last `windows` vectors, row after row (`Mean`, `GeometricMean` only). For
    /// `GeometricMean` a row holds `ln(max(p, LOG_FLOOR))`, so each logarithm is taken once
    /// rather than once per window it stays in the history.
    ring: Vec<f32>,
    /// Row the next push overwrites.
    next: usize,
    /// Rows filled so far (≤ `windows`); during warm-up only these are combined. For `Ema`,
    /// non-zero means `out` holds a state to blend with.
    seen: usize,
    /// The smoothed vector handed out by `push`; for `Ema` it is also the running state.
    out: Vec<f32>,
}

impl Smoother {
    /// A smoother for vectors of `n_labels` scores. `settings` should have passed
    /// [`SmoothingSettings::validate`]; out-of-range values are clamped rather than panicking.
    pub fn new(settings: &SmoothingSettings, n_labels: usize) -> Self {
        let mut s = Smoother {
            method: settings.method,
            windows: settings.windows.clamp(1, MAX_WINDOWS),
            alpha: clamp_alpha(settings.ema_alpha),
            n_labels,
            ring: Vec::new(),
            next: 0,
            seen: 0,
            out: Vec::new(),
        };
        s.allocate();
        s
    }

    /// Adds one vector of model scores and returns the smoothed scores. Until N vectors have
    /// been seen, `Mean` and `GeometricMean` combine the ones they have.
    ///
    /// The vector should have the length given to [`Smoother::new`]; if it does not (the
    /// model was swapped), the smoother adopts the new length and starts a fresh history,
    /// since scores of other labels say nothing about these ones.
    pub fn push(&mut self, scores: &[f32]) -> &[f32] {
        if scores.len() != self.n_labels {
            self.n_labels = scores.len();
            self.allocate();
        }
        match self.method {
            SmoothingMethod::None => self.out.copy_from_slice(scores),
            SmoothingMethod::Ema => {
                if self.seen == 0 {
                    // Blending the first vector with zeros would make every sound fade in.
                    self.out.copy_from_slice(scores);
                    self.seen = 1;
                } else {
                    let a = self.alpha;
                    for (o, &p) in self.out.iter_mut().zip(scores) {
                        *o = a * p + (1.0 - a) * *o;
                    }
                }
            }
            SmoothingMethod::Mean | SmoothingMethod::GeometricMean => {
                let n = self.n_labels;
                let row = &mut self.ring[self.next * n..(self.next + 1) * n];
                if self.method == SmoothingMethod::GeometricMean {
                    for (r, &p) in row.iter_mut().zip(scores) {
                        // f32::max ignores NaN, so a NaN score counts as the floor.
                        *r = p.max(LOG_FLOOR).ln();
                    }
                } else {
                    row.copy_from_slice(scores);
                }
                self.next = (self.next + 1) % self.windows;
                self.seen = (self.seen + 1).min(self.windows);

                // Sum the filled rows afresh each time rather than keeping a running sum:
                // N is small, and a running sum would drift by rounding over a long stream.
                self.out.fill(0.0);
                for row in self.ring.chunks_exact(n.max(1)).take(self.seen) {
                    for (o, &v) in self.out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
                let count = self.seen as f32;
                if self.method == SmoothingMethod::GeometricMean {
                    self.out.iter_mut().for_each(|o| *o = (*o / count).exp());
                } else {
                    self.out.iter_mut().for_each(|o| *o /= count);
                }
            }
        }
        &self.out
    }

    /// Forgets the history (for example after a gap in the audio).
    pub fn reset(&mut self) {
        self.next = 0;
        self.seen = 0;
        self.out.fill(0.0);
    }

    /// Applies new settings from a config reload. A change of method or window count starts
    /// a fresh history (the stored rows would mean something else); a change of `ema_alpha`
    /// alone keeps the running average.
    pub fn set_settings(&mut self, s: &SmoothingSettings) {
        let windows = s.windows.clamp(1, MAX_WINDOWS);
        self.alpha = clamp_alpha(s.ema_alpha);
        if s.method != self.method || windows != self.windows {
            self.method = s.method;
            self.windows = windows;
            self.allocate();
        }
    }

    /// Sizes the buffers for the current method, window count and label count, and empties
    /// the history. Only called on construction and reconfiguration, never per window.
    fn allocate(&mut self) {
        let rows = match self.method {
            SmoothingMethod::Mean | SmoothingMethod::GeometricMean => self.windows,
            SmoothingMethod::None | SmoothingMethod::Ema => 0,
        };
        self.ring = vec![0.0; rows * self.n_labels];
        self.out = vec![0.0; self.n_labels];
        self.next = 0;
        self.seen = 0;
    }
}

/// Keeps `ema_alpha` usable when settings were not validated: NaN or ≤ 0 would freeze the
/// average forever, so those become 1 (no smoothing) instead.
fn clamp_alpha(alpha: f32) -> f32 {
    if alpha > 0.0 {
        alpha.min(1.0)
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::ignored_keys as ignored;

    fn settings(method: SmoothingMethod, windows: usize, ema_alpha: f32) -> SmoothingSettings {
        SmoothingSettings {
            method,
            windows,
            ema_alpha,
        }
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len(), "got {got:?}, want {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn none_passes_scores_through() {
        let mut s = Smoother::new(&settings(SmoothingMethod::None, 3, 0.5), 2);
        assert_close(s.push(&[0.1, 0.9]), &[0.1, 0.9]);
        assert_close(s.push(&[0.7, 0.0]), &[0.7, 0.0]);
    }

    #[test]
    fn mean_averages_last_n_and_uses_what_it_has_during_warm_up() {
        let mut s = Smoother::new(&settings(SmoothingMethod::Mean, 3, 0.5), 2);
        assert_close(s.push(&[0.25, 1.0]), &[0.25, 1.0]);
        assert_close(s.push(&[0.5, 0.0]), &[0.375, 0.5]);
        assert_close(s.push(&[1.0, 0.5]), &[1.75 / 3.0, 0.5]);
        // The first vector falls out of the window.
        assert_close(s.push(&[0.0, 0.5]), &[0.5, 1.0 / 3.0]);
    }

    #[test]
    fn geometric_mean_over_last_n_with_floor_for_zero() {
        let mut s = Smoother::new(&settings(SmoothingMethod::GeometricMean, 2, 0.5), 2);
        assert_close(s.push(&[0.25, 1.0]), &[0.25, 1.0]);
        // sqrt(0.25 * 1.0) = 0.5; sqrt(1.0 * 1e-7) = 3.1622777e-4.
        assert_close(s.push(&[1.0, 0.0]), &[0.5, 3.162_277_7e-4]);
        // The 0.25 falls out: sqrt(1.0 * 0.64) = 0.8.
        assert_close(s.push(&[0.64, 0.0]), &[0.8, 1e-7]);
    }

    #[test]
    fn ema_starts_at_first_vector_then_weights_newest_by_alpha() {
        let mut s = Smoother::new(&settings(SmoothingMethod::Ema, 3, 0.5), 1);
        assert_close(s.push(&[1.0]), &[1.0]);
        assert_close(s.push(&[0.0]), &[0.5]);
        assert_close(s.push(&[0.0]), &[0.25]);
        assert_close(s.push(&[1.0]), &[0.625]);
    }

    #[test]
    fn reset_forgets_history() {
        let mut s = Smoother::new(&settings(SmoothingMethod::Mean, 3, 0.5), 1);
        s.push(&[1.0]);
        s.push(&[1.0]);
        s.reset();
        assert_close(s.push(&[0.0]), &[0.0]);
    }

    #[test]
    fn set_settings_resets_on_new_window_count_but_keeps_ema_on_new_alpha() {
        let mut s = Smoother::new(&settings(SmoothingMethod::Mean, 3, 0.5), 1);
        s.push(&[1.0]);
        s.set_settings(&settings(SmoothingMethod::Mean, 2, 0.5));
        assert_close(s.push(&[0.0]), &[0.0]);

        let mut s = Smoother::new(&settings(SmoothingMethod::Ema, 3, 0.5), 1);
        s.push(&[1.0]);
        s.set_settings(&settings(SmoothingMethod::Ema, 3, 0.25));
        assert_close(s.push(&[0.0]), &[0.75]);
    }

    #[test]
    fn push_reuses_its_buffers_after_warm_up() {
        let mut s = Smoother::new(&settings(SmoothingMethod::GeometricMean, 3, 0.5), 4);
        let first = s.push(&[0.5; 4]).as_ptr();
        let ring = s.ring.as_ptr();
        for _ in 0..10 {
            assert_eq!(s.push(&[0.5; 4]).as_ptr(), first);
        }
        assert_eq!(s.ring.as_ptr(), ring);
    }

    #[test]
    fn push_with_a_new_length_starts_fresh_history() {
        let mut s = Smoother::new(&settings(SmoothingMethod::Mean, 3, 0.5), 1);
        s.push(&[1.0]);
        assert_close(s.push(&[0.0, 0.5]), &[0.0, 0.5]);
    }

    #[test]
    fn validate_names_the_key_and_the_allowed_range() {
        assert!(SmoothingSettings::default().validate().is_ok());
        let err = settings(SmoothingMethod::Mean, 0, 0.5)
            .validate()
            .unwrap_err()
            .to_string();
        assert_eq!(err, "smoothing.windows = 0: must be >= 1");
        let err = settings(SmoothingMethod::Ema, 3, 0.0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("smoothing.ema_alpha = 0: must be > 0 and <= 1"),
            "{err}"
        );
        let err = settings(SmoothingMethod::Ema, 0, 1.5)
            .validate()
            .unwrap_err();
        assert_eq!(err.0.len(), 2, "{err}");
    }

    #[test]
    fn settings_deserialize_with_defaults_and_reject_unknown_keys() {
        let s: SmoothingSettings = toml::from_str("method = \"geometric_mean\"").unwrap();
        assert_eq!(s.method, SmoothingMethod::GeometricMean);
        assert_eq!(s.windows, SmoothingSettings::default().windows);
        assert_eq!(ignored::<SmoothingSettings>("window = 3"), ["window"]);
    }
}
