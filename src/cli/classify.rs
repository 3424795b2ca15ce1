//! `hark classify`: offline classification of whole files, and its output.
//!
//! Cuts a decoded file into the model's windows (window and hop from the manifest, or
//! overridden) with [`crate::windowing::classify_samples`], the same offsets the daemon uses,
//! runs the model on each, and summarizes which labels were heard. Shares the model stage
//! with the daemon; it never touches capture, smoothing or the socket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;

use super::ModelArgs;
use crate::record::LabelScore;
use crate::windowing::{self, WindowScores};

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels to print per window.
    #[arg(long, short = 'k', default_value_t = 3)]
    pub top: usize,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Windows per ONNX Runtime call, for models with a dynamic batch dimension (others run
    /// one window at a time). Scores agree across batch sizes to float rounding (about 1e-6);
    /// see BENCHMARKS.md for the speed.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Audio files (WAV, FLAC, OGG, MP3; any rate and channel count).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Classify each file, printing every window's best labels and a summary per file. A file
/// that cannot be read is reported and skipped; the exit code is then a failure.
pub fn run_classify(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let mut model = args.model.load()?;
    let labels = model.labels().to_vec();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    for file in &args.files {
        let samples = match crate::audio::load_mono(file, model.sample_rate()) {
            Ok(s) if s.is_empty() => {
                tracing::error!(file = %file.display(), "no audio samples in file");
                eprintln!("hark: {}: the file holds no audio samples", file.display());
                failed += 1;
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                eprintln!("hark: {e}");
                failed += 1;
                continue;
            }
        };
        let windows = windowing::classify_samples(&mut model, &samples, usize::from(args.batch))
            .with_context(|| format!("classifying {}", file.display()))?;
        if !args.json {
            writeln!(out, "{}", file.display())?;
        }
        for w in &windows {
            let top = windowing::top_k(&w.scores, &labels, args.top);
            if args.json {
                writeln!(out, "{}", window_json(file, w, &top))?;
            } else {
                writeln!(out, "{}", window_text(w, &top))?;
            }
        }
        let heard = summarize(&windows, &labels);
        if args.json {
            writeln!(out, "{}", summary_json(file, &heard))?;
        } else {
            writeln!(out, "{}", summary_text(&heard))?;
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
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
