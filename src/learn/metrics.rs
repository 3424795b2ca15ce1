//! Clip-level metrics, and the progress lines `hark train` and `hark eval` print.
//!
//! A clip is classified as a whole: the model scores each window (as `hark classify` cuts
//! them), the clip's score per class is the mean over its windows (or, on request, a vote of
//! the windows' best classes), and the clip's class is the best of the dataset's classes.
//! Metrics are accuracy, balanced accuracy (the mean of per-class recalls, so a large
//! background class cannot hide a missed event class), per-class precision and recall, and
//! the confusion matrix. This module decides nothing about splits; it measures what it is
//! given.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};

use serde::Serialize;

/// How a clip's window scores become one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ClipScore {
    /// Mean of the window scores, then the best class.
    Mean,
    /// The class that is best in the most windows (ties: the higher mean score).
    Vote,
}

/// The decision for one clip: an index into `classes`, which are indices into the score
/// vectors of `windows`.
pub fn clip_decision(windows: &[Vec<f32>], classes: &[usize], how: ClipScore) -> usize {
    let n = windows.len().max(1) as f32;
    let mean: Vec<f32> = classes
        .iter()
        .map(|&c| windows.iter().map(|w| w[c]).sum::<f32>() / n)
        .collect();
    let best = |v: &[f32]| {
        (0..v.len())
            .max_by(|&a, &b| v[a].total_cmp(&v[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    };
    match how {
        ClipScore::Mean => best(&mean),
        ClipScore::Vote => {
            let mut votes = vec![0f32; classes.len()];
            for w in windows {
                let scores: Vec<f32> = classes.iter().map(|&c| w[c]).collect();
                votes[best(&scores)] += 1.0;
            }
            // A tenth of a vote is less than any whole vote: mean scores only break ties.
            let max_mean = mean.iter().copied().fold(f32::MIN_POSITIVE, f32::max);
            for (v, m) in votes.iter_mut().zip(&mean) {
                *v += 0.1 * m / max_mean;
            }
            best(&votes)
        }
    }
}

/// Precision and recall of one class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClassMetrics {
    pub label: String,
    /// Of the clips predicted as this class, the fraction that are; None if none was.
    pub precision: Option<f64>,
    /// Of the clips of this class, the fraction predicted as it; None if there are none.
    pub recall: Option<f64>,
    /// Clips of this class.
    pub support: usize,
    /// Clips predicted as this class.
    pub predicted: usize,
}

/// Clip-level metrics.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Metrics {
    /// Class names; the order of `per_class` and of the confusion matrix's rows and columns.
    pub labels: Vec<String>,
    pub clips: usize,
    pub accuracy: f64,
    /// Mean recall over the classes that have clips.
    pub balanced_accuracy: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true][predicted]` clip counts.
    pub confusion: Vec<Vec<usize>>,
}

impl Metrics {
    /// Metrics of predictions `pred` against `truth` (both indices into `labels`).
    pub fn from_predictions(labels: &[String], truth: &[usize], pred: &[usize]) -> Metrics {
        let n = labels.len();
        let mut confusion = vec![vec![0usize; n]; n];
        for (&t, &p) in truth.iter().zip(pred) {
            confusion[t][p] += 1;
        }
        let correct: usize = (0..n).map(|i| confusion[i][i]).sum();
        let per_class: Vec<ClassMetrics> = (0..n)
            .map(|i| {
                let support: usize = confusion[i].iter().sum();
                let predicted: usize = confusion.iter().map(|row| row[i]).sum();
                let ratio = |num: usize, den: usize| (den > 0).then(|| num as f64 / den as f64);
                ClassMetrics {
                    label: labels[i].clone(),
                    precision: ratio(confusion[i][i], predicted),
                    recall: ratio(confusion[i][i], support),
                    support,
                    predicted,
                }
            })
            .collect();
        let recalls: Vec<f64> = per_class.iter().filter_map(|c| c.recall).collect();
        Metrics {
            labels: labels.to_vec(),
            clips: truth.len(),
            accuracy: if truth.is_empty() {
                0.0
            } else {
                correct as f64 / truth.len() as f64
            },
            balanced_accuracy: if recalls.is_empty() {
                0.0
            } else {
                recalls.iter().sum::<f64>() / recalls.len() as f64
            },
            per_class,
            confusion,
        }
    }

    /// A human-readable table: the two accuracies, per-class precision and recall, and the
    /// confusion matrix with numbered columns.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let w = self
            .labels
            .iter()
            .map(|l| l.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let pct =
            |v: Option<f64>| v.map_or("     -".to_string(), |v| format!("{:5.1}%", v * 100.0));
        let _ = writeln!(
            s,
            "accuracy           {:5.1}%  ({} clips)",
            self.accuracy * 100.0,
            self.clips
        );
        let _ = writeln!(
            s,
            "balanced accuracy  {:5.1}%",
            self.balanced_accuracy * 100.0
        );
        let _ = writeln!(s, "\n  # {:<w$}  precision  recall  clips", "class");
        for (i, c) in self.per_class.iter().enumerate() {
            let _ = writeln!(
                s,
                "{i:>3} {:<w$}     {}  {}  {:>5}",
                c.label,
                pct(c.precision),
                pct(c.recall),
                c.support
            );
        }
        let _ = writeln!(
            s,
            "\nconfusion matrix (rows: true class, columns: predicted class, by #)"
        );
        let cw = self
            .confusion
            .iter()
            .flatten()
            .map(|v| v.to_string().len())
            .max()
            .unwrap_or(1)
            .max(self.labels.len().to_string().len())
            + 1;
        let mut header = format!("    {:<w$}", "");
        for i in 0..self.labels.len() {
            let _ = write!(header, "{i:>cw$}");
        }
        let _ = writeln!(s, "{header}");
        for (i, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{i:>3} {:<w$}", self.labels[i]);
            for v in row {
                let _ = write!(s, "{v:>cw$}");
            }
            let _ = writeln!(s);
        }
        s
    }
}

/// Progress lines on stderr. On a terminal, per-file and per-epoch lines overwrite each
/// other; otherwise every file is a line and epochs are shown every tenth of the run.
#[derive(Debug, Clone)]
pub struct Progress {
    tty: bool,
    quiet: bool,
}

impl Progress {
    /// Progress on stderr; `quiet` keeps only warnings.
    pub fn stderr(quiet: bool) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            quiet,
        }
    }

    /// A line that stays.
    pub fn line(&self, msg: &str) {
        if !self.quiet {
            self.write(msg, true);
        }
    }

    /// A warning: shown even when quiet.
    pub fn warn(&self, msg: &str) {
        self.write(&format!("warning: {msg}"), true);
    }

    /// A warning that is also kept for the report, in `notes`.
    pub fn warn_and_keep(&self, notes: &mut Vec<String>, msg: String) {
        self.warn(&msg);
        notes.push(msg);
    }

    /// A transient status line (one per file, one per epoch).
    pub fn status(&self, msg: &str) {
        if !self.quiet {
            self.write(msg, !self.tty);
        }
    }

    /// End a run of status lines.
    pub fn done(&self) {
        if self.tty && !self.quiet {
            eprint!("\r\x1b[K");
        }
    }

    /// Whether an epoch's line is worth showing.
    pub(super) fn show_epoch(&self, epoch: usize, epochs: usize) -> bool {
        self.tty || epoch == epochs || epoch % (epochs / 10).max(1) == 0
    }

    fn write(&self, msg: &str, keep: bool) {
        let mut err = std::io::stderr().lock();
        let _ = if self.tty {
            write!(err, "\r\x1b[K{msg}{}", if keep { "\n" } else { "" })
        } else {
            writeln!(err, "{msg}")
        };
        let _ = err.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_accuracy_is_the_mean_recall_so_a_big_class_cannot_hide_a_missed_one() {
        let labels = vec!["event".to_string(), "background".to_string()];
        // 2 events, both missed; 8 background, all right: 80% accurate, 50% balanced.
        let truth = [0, 0, 1, 1, 1, 1, 1, 1, 1, 1];
        let pred = [1; 10];
        let m = Metrics::from_predictions(&labels, &truth, &pred);
        assert!((m.accuracy - 0.8).abs() < 1e-12);
        assert!((m.balanced_accuracy - 0.5).abs() < 1e-12);
        assert_eq!(m.per_class[0].recall, Some(0.0));
        assert_eq!(m.per_class[0].precision, None);
        assert_eq!(m.per_class[1].precision, Some(0.8));
        assert_eq!(m.confusion, vec![vec![0, 2], vec![0, 8]]);
        let json = serde_json::to_value(&m).unwrap();
        for key in ["accuracy", "balanced_accuracy", "per_class", "confusion"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(
            m.text().contains("balanced accuracy   50.0%"),
            "{}",
            m.text()
        );
    }

    #[test]
    fn mean_and_vote_can_disagree() {
        // Two windows mildly for class 0, one window strongly for class 1.
        let w = vec![vec![0.6, 0.4], vec![0.6, 0.4], vec![0.0, 1.0]];
        assert_eq!(clip_decision(&w, &[0, 1], ClipScore::Vote), 0);
        assert_eq!(clip_decision(&w, &[0, 1], ClipScore::Mean), 1);
        // Only the listed classes compete.
        assert_eq!(clip_decision(&w, &[0], ClipScore::Mean), 0);
    }
}
