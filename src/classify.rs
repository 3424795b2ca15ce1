//! Offline classification of whole files: `hark classify`.
//!
//! Cuts a decoded file into the model's windows (window and hop from the manifest, or
//! overridden), runs the model on each, and summarizes which labels were heard. Shares the
//! model stage with the daemon; it never touches capture, smoothing or the socket.

use std::path::Path;

use serde::Serialize;

use crate::record::LabelScore;
use crate::windowing::WindowScores;

/// One label of a file's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heard {
    pub label: String,
    /// Windows in which this label had the highest score.
    pub windows: usize,
    /// Highest score it reached in any window.
    pub peak: f32,
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
