//! Which labels a file's windows were about, gathered one window at a time so that a long
//! recording's summary costs two numbers per label.

use serde::Serialize;

/// One label of a file's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Heard {
    pub label: String,
    /// Windows in which this label had the highest score.
    pub windows: usize,
    /// Highest score it reached in any window.
    pub peak: f32,
}

/// Per-label counts of best-scoring windows and peaks, fed one window at a time.
#[derive(Debug, Clone, Default)]
pub struct Summarizer {
    counts: Vec<usize>,
    peaks: Vec<f32>,
}

impl Summarizer {
    pub fn new(labels: usize) -> Summarizer {
        Summarizer {
            counts: vec![0; labels],
            peaks: vec![0.0; labels],
        }
    }

    /// Count one window's scores.
    pub fn add(&mut self, scores: &[f32]) {
        if let Some(best) = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])) {
            self.counts[best] += 1;
        }
        for (p, s) in self.peaks.iter_mut().zip(scores) {
            *p = p.max(*s);
        }
    }

    /// Labels that were the best in at least one window, most windows first.
    pub fn heard(&self, labels: &[String]) -> Vec<Heard> {
        let mut heard: Vec<Heard> = (0..labels.len().min(self.counts.len()))
            .filter(|&i| self.counts[i] > 0)
            .map(|i| Heard {
                label: labels[i].clone(),
                windows: self.counts[i],
                peak: self.peaks[i],
            })
            .collect();
        heard.sort_by(|a, b| b.windows.cmp(&a.windows).then(b.peak.total_cmp(&a.peak)));
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_top_windows_and_keeps_peaks() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let mut s = Summarizer::new(2);
        for w in [[0.9, 0.1], [0.2, 0.3], [0.8, 0.5]] {
            s.add(&w);
        }
        let heard = s.heard(&labels);
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
