//! Taps: what the consumer shares with observers besides its records, each as cheap as an
//! atomic when nobody looks: a heartbeat (the loop is turning), the time each window's
//! inference took, and log-mel columns for a live spectrogram, computed only while someone
//! watches.
//!
//! Must not: block, lock or allocate on the consumer's side when no one watches; carry
//! records (those go through the fan-out).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::frontend::{
    FeatureSpec, Framing, LogKind, MelFrontend, MelNorm, MelScale, Normalize, PadMode, Window,
};

/// Everything the consumer taps; clones share the same taps.
#[derive(Clone, Default)]
pub struct Taps {
    pub heartbeat: Heartbeat,
    pub inference: InferenceTimes,
    pub spectrum: SpectrumTap,
    /// The capture source's name, set each time capture (re)starts.
    source: Arc<Mutex<String>>,
}

impl Taps {
    pub fn set_source(&self, name: &str) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = name.to_owned();
    }

    pub fn source(&self) -> String {
        self.source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// When the consumer's loop last turned (the same ticks that feed systemd's watchdog).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    origin: Instant,
    /// Milliseconds after `origin` of the last beat.
    last_ms: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat {
            origin: Instant::now(),
            last_ms: Arc::default(),
        }
    }
}

impl Heartbeat {
    /// The loop turned now.
    pub fn beat(&self) {
        let ms = self.origin.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the last beat (since creation if none).
    pub fn since_last(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

/// Upper bounds, in seconds, of the inference-time histogram's buckets.
pub const INFERENCE_BUCKETS: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0];

/// A lock-free histogram of per-window inference times (front end + model).
#[derive(Clone, Default)]
pub struct InferenceTimes(Arc<InferenceInner>);

#[derive(Default)]
struct InferenceInner {
    /// Non-cumulative counts per bucket; the last is above every bound.
    buckets: [AtomicU64; INFERENCE_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
}

impl InferenceTimes {
    pub fn observe(&self, took: Duration) {
        let s = took.as_secs_f64();
        let i = INFERENCE_BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(INFERENCE_BUCKETS.len());
        self.0.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.0
            .sum_ns
            .fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
    }

    /// (sum in seconds, count, counts per bucket: each bound of [`INFERENCE_BUCKETS`], then
    /// `f64::MAX` for the rest), as prometheus-client encodes histograms.
    pub fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let bounds = INFERENCE_BUCKETS.iter().copied().chain([f64::MAX]);
        let buckets: Vec<(f64, u64)> = bounds
            .zip(&self.0.buckets)
            .map(|(bound, n)| (bound, n.load(Ordering::Relaxed)))
            .collect();
        let count = buckets.iter().map(|(_, n)| n).sum();
        let sum = self.0.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

/// Log-mel columns of one hop of audio, for a live spectrogram.
#[derive(Debug, Clone, PartialEq)]
pub struct MelColumns {
    /// Stream time (seconds) of the first column.
    pub start: f64,
    /// Seconds between columns.
    pub step: f64,
    pub n_mels: usize,
    /// Column after column, `n_mels` values each, lowest band first; in the front end's log
    /// units (dB for the display front end).
    pub values: Vec<f32>,
}

/// Columns queued per viewer before the oldest are lost: a few seconds of hops.
const SPECTRUM_QUEUE: usize = 16;

/// Log-mel columns for whoever watches. The consumer computes them only while
/// [`SpectrumTap::watched`] is true: one atomic load per window otherwise.
#[derive(Clone)]
pub struct SpectrumTap {
    viewers: Arc<AtomicUsize>,
    tx: broadcast::Sender<Arc<MelColumns>>,
}

impl Default for SpectrumTap {
    fn default() -> Self {
        SpectrumTap {
            viewers: Arc::default(),
            tx: broadcast::channel(SPECTRUM_QUEUE).0,
        }
    }
}

impl SpectrumTap {
    /// Whether anyone watches.
    pub fn watched(&self) -> bool {
        self.viewers.load(Ordering::Relaxed) > 0
    }

    /// How many watch.
    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::Relaxed)
    }

    /// Hand columns to every viewer; never waits.
    pub fn send(&self, columns: MelColumns) {
        let _ = self.tx.send(Arc::new(columns));
    }

    /// Start watching; the consumer computes columns until every viewer is dropped.
    pub fn watch(&self) -> SpectrumViewer {
        self.viewers.fetch_add(1, Ordering::Relaxed);
        SpectrumViewer {
            rx: self.tx.subscribe(),
            viewers: self.viewers.clone(),
        }
    }
}

/// One viewer's columns; dropping it stops the consumer's work once no viewer is left.
pub struct SpectrumViewer {
    pub rx: broadcast::Receiver<Arc<MelColumns>>,
    viewers: Arc<AtomicUsize>,
}

impl Drop for SpectrumViewer {
    fn drop(&mut self) {
        self.viewers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The front end that draws the spectrogram: the model's own for log-mel models, else one
/// like CED's (64 mels, 25 ms frames every 10 ms, dB) at the model's rate.
pub fn display_frontend(model_frontend: Option<&MelFrontend>, rate: u32) -> Option<MelFrontend> {
    if let Some(fe) = model_frontend {
        return Some(fe.clone());
    }
    let ms = |m: f64| (rate as f64 * m / 1000.0).round() as usize;
    let win = ms(25.0);
    let spec = FeatureSpec {
        sample_rate: rate,
        n_fft: win.next_power_of_two(),
        win_length: win,
        hop_length: ms(10.0),
        window: Window::Hann,
        center: false,
        pad_mode: PadMode::Constant,
        framing: Framing::Librosa,
        n_mels: 64,
        fmin: 0.0,
        fmax: (rate / 2) as f64,
        mel_scale: MelScale::Htk,
        mel_norm: MelNorm::None,
        power: 2.0,
        log: LogKind::Db,
        db_ref: 1.0,
        db_amin: 1e-10,
        db_top: None,
        ln_offset: 1e-6,
        normalize: Normalize::None,
    };
    MelFrontend::new(spec).ok()
}

/// The columns of the newest `hop` samples of `window` (which starts at stream second
/// `start`), frames tiling the stream from one hop to the next.
pub fn columns(fe: &MelFrontend, window: &[f32], hop: usize, start: f64) -> MelColumns {
    let spec = fe.spec();
    let rate = spec.sample_rate as f64;
    let take = (hop + fe.frame_len().saturating_sub(spec.hop_length)).min(window.len());
    let from = window.len() - take;
    let mel = fe.compute(&window[from..]);
    // [n_mels, frames] → column after column.
    let values = mel.t().iter().copied().collect();
    MelColumns {
        start: start + from as f64 / rate,
        step: spec.hop_length as f64 / rate,
        n_mels: spec.n_mels,
        values,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_per_bucket() {
        let h = InferenceTimes::default();
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(7));
        h.observe(Duration::from_secs(3));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert!((sum - 3.0075).abs() < 1e-6, "{sum}");
        assert_eq!(buckets[0], (0.001, 1));
        assert_eq!(buckets[3], (0.01, 1));
        assert_eq!(buckets.last(), Some(&(f64::MAX, 1)));
    }

    #[test]
    fn viewers_are_counted_until_dropped() {
        let tap = SpectrumTap::default();
        assert!(!tap.watched());
        let a = tap.watch();
        let b = tap.watch();
        assert_eq!(tap.viewers(), 2);
        drop(a);
        assert!(tap.watched());
        drop(b);
        assert!(!tap.watched());
    }

    #[test]
    fn columns_of_a_hop_tile_at_ten_ms() {
        let fe = display_frontend(None, 16_000).unwrap();
        let window: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.1).sin() * 0.1).collect();
        let c = columns(&fe, &window, 8_000, 2.0);
        assert_eq!(c.n_mels, 64);
        assert_eq!(c.values.len() % 64, 0);
        assert_eq!(c.values.len() / 64, 50, "0.5 s of 10 ms frames");
        assert!((c.step - 0.01).abs() < 1e-9);
        assert!(c.values.iter().all(|v| v.is_finite()));
    }
}
