//! What a front end precomputes from its spec: the mel filter bank (librosa.filters.mel, or
//! TensorFlow's mel matrix) as sparse bands, and the analysis window.

use ndarray::Array2;

use super::{FeatureSpec, Framing, MelNorm, MelScale};

// Mel scale and filters (librosa.core.convert / librosa.filters.mel, TF's mel matrix).

/// Slaney scale constants, as librosa spells them (kept as expressions so the f64 rounding is
/// the same as librosa's).
const SLANEY_F_SP: f64 = 200.0 / 3.0;
const SLANEY_MIN_LOG_HZ: f64 = 1000.0;

fn slaney_logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// librosa.hz_to_mel for one frequency (`htk` selects 2595·log10(1 + f/700)).
pub(super) fn hz_to_mel(f: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + f / 700.0).log10();
    }
    let min_log_mel = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
    if f >= SLANEY_MIN_LOG_HZ {
        min_log_mel + (f / SLANEY_MIN_LOG_HZ).ln() / slaney_logstep()
    } else {
        f / SLANEY_F_SP
    }
}

/// librosa.mel_to_hz for one mel value.
pub(super) fn mel_to_hz(m: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(m / 2595.0) - 1.0);
    }
    let min_log_mel = SLANEY_MIN_LOG_HZ / SLANEY_F_SP;
    if m >= min_log_mel {
        SLANEY_MIN_LOG_HZ * (slaney_logstep() * (m - min_log_mel)).exp()
    } else {
        SLANEY_F_SP * m
    }
}

/// numpy.linspace(start, stop, num) with its rounding: start + i·step, last point exactly stop.
pub(super) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// The mel filter bank `[n_mels, n_fft/2 + 1]` for a spec: librosa.filters.mel for the slaney
/// and htk scales (with norm slaney or none), tf.signal.linear_to_mel_weight_matrix for htk_tf.
/// Computed in f64, rounded to f32 at the end.
pub fn mel_filters(spec: &FeatureSpec) -> Array2<f32> {
    mel_filters_f64(spec).mapv(|w| w as f32)
}

pub(super) fn mel_filters_f64(spec: &FeatureSpec) -> Array2<f64> {
    match spec.mel_scale {
        MelScale::Slaney => librosa_mel(spec, false),
        MelScale::Htk => librosa_mel(spec, true),
        MelScale::HtkTf => tf_mel(spec),
    }
}

fn librosa_mel(spec: &FeatureSpec, htk: bool) -> Array2<f64> {
    let n_mels = spec.n_mels;
    let n_bins = spec.n_bins();
    let sr = f64::from(spec.sample_rate);
    // librosa.fft_frequencies is np.fft.rfftfreq(n_fft, 1/sr): k · (1 / (n_fft · (1/sr))).
    let bin_hz = 1.0 / (spec.n_fft as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..n_bins).map(|k| k as f64 * bin_hz).collect();
    let mel_f: Vec<f64> = linspace(
        hz_to_mel(spec.fmin, htk),
        hz_to_mel(spec.fmax, htk),
        n_mels + 2,
    )
    .into_iter()
    .map(|m| mel_to_hz(m, htk))
    .collect();

    let mut weights = Array2::<f64>::zeros((n_mels, n_bins));
    for i in 0..n_mels {
        let (lo, ce, up) = (mel_f[i], mel_f[i + 1], mel_f[i + 2]);
        // librosa: lower = -(mel_f[i] - f) / fdiff[i], upper = (mel_f[i+2] - f) / fdiff[i+1].
        let norm = match spec.mel_norm {
            MelNorm::Slaney => 2.0 / (up - lo),
            MelNorm::None => 1.0,
        };
        for (k, &f) in fft_freqs.iter().enumerate() {
            let lower = -(lo - f) / (ce - lo);
            let upper = (up - f) / (up - ce);
            weights[[i, k]] = lower.min(upper).max(0.0) * norm;
        }
    }
    weights
}

fn tf_mel(spec: &FeatureSpec) -> Array2<f64> {
    let hz_to_mel_tf = |f: f64| 1127.0 * (f / 700.0).ln_1p();
    let n_bins = spec.n_bins();
    let bin_mels: Vec<f64> = linspace(0.0, f64::from(spec.sample_rate) / 2.0, n_bins)
        .into_iter()
        .map(hz_to_mel_tf)
        .collect();
    let edges = linspace(
        hz_to_mel_tf(spec.fmin),
        hz_to_mel_tf(spec.fmax),
        spec.n_mels + 2,
    );
    let mut weights = Array2::<f64>::zeros((spec.n_mels, n_bins));
    for i in 0..spec.n_mels {
        let (lo, ce, up) = (edges[i], edges[i + 1], edges[i + 2]);
        // Bin 0 (DC) stays zero: TensorFlow drops it before building the triangles.
        for (k, &m) in bin_mels.iter().enumerate().skip(1) {
            let w = ((m - lo) / (ce - lo)).min((up - m) / (up - ce));
            weights[[i, k]] = w.max(0.0);
        }
    }
    weights
}

/// One mel band as its run of non-zero weights, so a frame costs O(total triangle width)
/// rather than O(n_mels · n_bins).
#[derive(Debug, Clone)]
pub(super) struct Band {
    pub(super) first_bin: usize,
    pub(super) weights: Vec<f64>,
}

pub(super) fn sparse_bands(filters: &Array2<f64>) -> Vec<Band> {
    filters
        .rows()
        .into_iter()
        .map(|row| {
            let first = row.iter().position(|&w| w != 0.0);
            let last = row.iter().rposition(|&w| w != 0.0);
            match (first, last) {
                (Some(a), Some(b)) => Band {
                    first_bin: a,
                    weights: row.iter().skip(a).take(b - a + 1).copied().collect(),
                },
                // librosa keeps empty bands (and warns); they give the floor value.
                _ => Band {
                    first_bin: 0,
                    weights: Vec::new(),
                },
            }
        })
        .collect()
}

/// Periodic Hann of length n (scipy's `get_window("hann", n)`, which is all ones for n = 1).
fn periodic_hann(n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![1.0];
    }
    (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect()
}

/// The window as it multiplies a frame: for librosa framing the win_length window centred in
/// n_fft samples (`(n_fft - win_length) / 2` zeros on the left, as librosa.util.pad_center);
/// for tf framing just the win_length window.
pub(super) fn frame_window(spec: &FeatureSpec) -> Vec<f64> {
    let hann = periodic_hann(spec.win_length);
    match spec.framing {
        Framing::Tf => hann,
        Framing::Librosa => {
            let mut w = vec![0.0; spec.n_fft];
            let left = (spec.n_fft - spec.win_length) / 2;
            w[left..left + spec.win_length].copy_from_slice(&hann);
            w
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frontend::test_util::{close, spec};

    #[test]
    fn mel_scales_match_librosa_reference_values() {
        // librosa docs: hz_to_mel(60) = 0.9, mel_to_hz(3) = 200, htk hz_to_mel(60) = 92.6818...
        assert!(close(hz_to_mel(60.0, false), 0.9, 1e-12));
        assert!(close(mel_to_hz(3.0, false), 200.0, 1e-12));
        assert!(close(hz_to_mel(60.0, true), 92.681858131657, 1e-12));
        // Slaney is logarithmic above 1 kHz: 1 kHz is 15 mel, 6.4 kHz is 15 + 27 mel.
        assert!(close(hz_to_mel(6400.0, false), 42.0, 1e-12));
        for f in [0.0, 20.0, 999.0, 1000.0, 4321.0, 22050.0] {
            for htk in [false, true] {
                assert!(
                    close(mel_to_hz(hz_to_mel(f, htk), htk), f, 1e-12),
                    "{f} {htk}"
                );
            }
        }
    }

    #[test]
    fn linspace_ends_exactly_on_stop() {
        let v = linspace(0.1, 0.7, 7);
        assert_eq!(v.len(), 7);
        assert_eq!(v[0], 0.1);
        assert_eq!(v[6], 0.7);
        assert!(close(v[3], 0.4, 1e-15));
        assert_eq!(linspace(2.0, 5.0, 1), vec![2.0]);
    }

    #[test]
    fn periodic_hann_starts_at_zero_and_peaks_mid_window() {
        let w = periodic_hann(8);
        assert_eq!(w[0], 0.0);
        assert!(close(w[4], 1.0, 1e-15));
        assert!(close(w[2], 0.5, 1e-15));
        assert!(close(w[1], w[7], 1e-15), "periodic: symmetric about N/2");
    }

    #[test]
    fn librosa_window_is_centred_in_the_fft_frame() {
        let w = frame_window(&spec());
        assert_eq!(w.len(), 512);
        // (512 - 400) / 2 = 56 zeros on the left, then the 400-sample Hann.
        assert!(w[..57].iter().all(|&v| v == 0.0));
        assert!(w[57] > 0.0);
        assert!(close(w[56 + 200], 1.0, 1e-15));
        assert!(w[456..].iter().all(|&v| v == 0.0));
        let tf = frame_window(&FeatureSpec {
            framing: Framing::Tf,
            ..spec()
        });
        assert_eq!(tf.len(), 400);
    }

    #[test]
    fn htk_filters_are_unit_peak_triangles_and_tf_drops_dc() {
        let f = mel_filters_f64(&spec());
        assert_eq!(f.dim(), (64, 257));
        for row in f.rows() {
            let max = row.iter().copied().fold(0.0, f64::max);
            assert!(max > 0.5 && max <= 1.0, "peak {max}");
        }
        let tf = mel_filters_f64(&FeatureSpec {
            mel_scale: MelScale::HtkTf,
            ..spec()
        });
        assert!(tf.column(0).iter().all(|&w| w == 0.0));
    }

    #[test]
    fn slaney_norm_gives_each_triangle_area_about_one_in_hz_units() {
        // Slaney norm scales a triangle to area 1 over Hz: sum(w) * bin_hz ~ 1.
        let s = FeatureSpec {
            mel_scale: MelScale::Slaney,
            mel_norm: MelNorm::Slaney,
            n_fft: 4096,
            win_length: 4096,
            ..spec()
        };
        let f = mel_filters_f64(&s);
        let bin_hz = 16000.0 / 4096.0;
        for row in f.rows().into_iter().skip(10) {
            let area = row.sum() * bin_hz;
            assert!((area - 1.0).abs() < 0.05, "area {area}");
        }
    }
}
