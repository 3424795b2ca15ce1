//! Where windows fall and what a window's scores say: shared by `hark run` (the pipeline),
//! `hark classify` and `hark train`, so that every path cuts a recording at the same offsets
//! and ranks labels the same way.
//!
//! Architecture invariant: there is one definition of the window offsets ([`window_starts`]
//! for a whole buffer, [`next_window`] for a stream); nothing else steps windows.

use crate::model::Model;
use crate::record::LabelScore;

/// Scores of one window of a file.
#[derive(Debug, Clone)]
pub struct WindowScores {
    /// Seconds from the start of the file.
    pub start: f64,
    pub end: f64,
    pub scores: Vec<f32>,
}

/// Start offsets (in samples) of the windows over `len` samples: every `hop` while a whole
/// window fits; a signal shorter than one window gets one window, zero-padded by the model.
/// The realtime pipeline emits windows at the same offsets.
pub fn window_starts(len: usize, window: usize, hop: usize) -> Vec<usize> {
    if len <= window {
        return vec![0];
    }
    (0..=(len - window) / hop).map(|k| k * hop).collect()
}

/// The offset of the window after the one at `start`: windows are `hop` apart from 0. The
/// streaming pipeline steps with this, [`window_starts`] lists the same offsets for a buffer.
pub fn next_window(start: u64, hop: u64) -> u64 {
    start + hop
}

/// Run the model over every window of `samples` (mono, at the model's rate), `batch` windows
/// per ONNX Runtime call where the model allows it (see [`Model::predict_batch`]); the scores
/// are the same whatever the batch.
pub fn classify_samples(
    model: &mut Model,
    samples: &[f32],
    batch: usize,
) -> Result<Vec<WindowScores>, crate::model::ModelError> {
    let (window, hop, rate) = (
        model.window_samples(),
        model.hop_samples(),
        model.sample_rate() as f64,
    );
    let starts = window_starts(samples.len(), window, hop);
    let windows: Vec<&[f32]> = starts
        .iter()
        .map(|&start| &samples[start..(start + window).min(samples.len())])
        .collect();
    let scores = model.predict_batch(&windows, batch)?;
    Ok(starts
        .iter()
        .zip(scores)
        .map(|(&start, scores)| WindowScores {
            start: start as f64 / rate,
            end: (start + window) as f64 / rate,
            scores,
        })
        .collect())
}

/// The `k` best labels of one score vector, best first (equal scores: lower index first).
///
/// Selects by repeated scans, O(labels x k) for a small k, so that the only allocations are
/// the returned records themselves: the daemon calls this for every window.
pub fn top_k(scores: &[f32], labels: &[String], k: usize) -> Vec<LabelScore> {
    let k = k.min(scores.len());
    let mut out = Vec::with_capacity(k);
    // Rank of (score, index): higher score first, then lower index.
    let before =
        |a: (f32, usize), b: (f32, usize)| a.0.total_cmp(&b.0).reverse().then(a.1.cmp(&b.1));
    let mut last: Option<(f32, usize)> = None;
    for _ in 0..k {
        let mut best: Option<(f32, usize)> = None;
        for (i, &s) in scores.iter().enumerate() {
            let c = (s, i);
            let after_last = last.is_none_or(|l| before(l, c).is_lt());
            if after_last && best.is_none_or(|b| before(c, b).is_lt()) {
                best = Some(c);
            }
        }
        let Some(b) = best else { break };
        out.push(LabelScore {
            label: labels[b.1].clone(),
            score: b.0,
        });
        last = Some(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_ranks_like_a_stable_sort_including_ties_and_nan() {
        let labels: Vec<String> = (0..8).map(|i| format!("l{i}")).collect();
        let scores = [0.2, 0.9, f32::NAN, 0.5, 0.9, -1.0, 0.5, 0.0];
        for k in 0..=9 {
            let mut idx: Vec<usize> = (0..scores.len()).collect();
            idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
            let want: Vec<&str> = idx.iter().take(k).map(|&i| labels[i].as_str()).collect();
            let got = top_k(&scores, &labels, k);
            let got: Vec<&str> = got.iter().map(|l| l.label.as_str()).collect();
            assert_eq!(got, want, "k = {k}");
        }
    }

    #[test]
    fn windows_cover_whole_windows_only_and_short_input_gets_one() {
        assert_eq!(window_starts(100, 40, 20), vec![0, 20, 40, 60]);
        assert_eq!(window_starts(10, 40, 20), vec![0]);
        assert_eq!(window_starts(40, 40, 20), vec![0]);
    }

    #[test]
    fn stepping_a_stream_gives_the_buffer_offsets() {
        let starts = window_starts(1000, 160, 80);
        let mut s = 0u64;
        for &want in &starts {
            assert_eq!(s, want as u64);
            s = next_window(s, 80);
        }
    }
}
