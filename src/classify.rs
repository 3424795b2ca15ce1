//! Offline classification of whole files: `hark classify`.
//!
//! Cuts a decoded file into the model's windows (window and hop from the manifest, or
//! overridden), runs the model on each, and summarizes which labels were heard. Shares the
//! model stage with the daemon; it never touches capture, smoothing or the socket.

use std::path::Path;

use serde::Serialize;

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

/// One label of a file's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heard {
    pub label: String,
    /// Windows in which this label had the highest score.
    pub windows: usize,
    /// Highest score it reached in any window.
    pub peak: f32,
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

/// Labels that were the best in at least one window, most windows first.
pub fn summarize(windows: &[WindowScores], labels: &[String]) -> Vec<Heard> {
    let mut counts = vec![0usize; labels.len()];
    let mut peaks = vec![0f32; labels.len()];
    for w in windows {
        if let Some(best) = (0..w.scores.len()).max_by(|&a, &b| w.scores[a].total_cmp(&w.scores[b]))
        {
            counts[best] += 1;
        }
        for (p, s) in peaks.iter_mut().zip(&w.scores) {
            *p = p.max(*s);
        }
    }
    let mut heard: Vec<Heard> = (0..labels.len())
        .filter(|&i| counts[i] > 0)
        .map(|i| Heard {
            label: labels[i].clone(),
            windows: counts[i],
            peak: peaks[i],
        })
        .collect();
    heard.sort_by(|a, b| b.windows.cmp(&a.windows).then(b.peak.total_cmp(&a.peak)));
    heard
}

/// JSON line for one window, as `hark classify --json` prints it.
pub fn window_json(file: &Path, w: &WindowScores, top: &[LabelScore]) -> String {
    serde_json::json!({
        "file": file.display().to_string(),
        "start": round3(w.start),
        "end": round3(w.end),
        "top": top,
    })
    .to_string()
}

/// JSON line for a file's summary.
pub fn summary_json(file: &Path, heard: &[Heard]) -> String {
    serde_json::json!({ "file": file.display().to_string(), "summary": heard }).to_string()
}

/// Human-readable line for one window.
pub fn window_text(w: &WindowScores, top: &[LabelScore]) -> String {
    let labels: Vec<String> = top
        .iter()
        .map(|t| format!("{} {:.2}", t.label, t.score))
        .collect();
    format!("{:8.2}s  {}", w.start, labels.join("  |  "))
}

/// Human-readable summary of a file.
pub fn summary_text(heard: &[Heard]) -> String {
    let parts: Vec<String> = heard
        .iter()
        .map(|h| format!("{} ({} windows, peak {:.2})", h.label, h.windows, h.peak))
        .collect();
    format!("  heard: {}", parts.join(", "))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
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
    fn summary_counts_top_windows_and_keeps_peaks() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let w = |s: Vec<f32>| WindowScores {
            start: 0.0,
            end: 1.0,
            scores: s,
        };
        let heard = summarize(
            &[w(vec![0.9, 0.1]), w(vec![0.2, 0.3]), w(vec![0.8, 0.5])],
            &labels,
        );
        assert_eq!(
            heard[0],
            Heard {
                label: "a".into(),
                windows: 2,
                peak: 0.9
            }
        );
        assert_eq!(
            heard[1],
            Heard {
                label: "b".into(),
                windows: 1,
                peak: 0.5
            }
        );
    }
}
