//! How `hark classify` writes what it found: `--format text|json|csv` on stdout, and the
//! per-input label files `audacity` (an Audacity label track) and `raven` (a Raven selection
//! table, BirdNET's export format).
//!
//! Must not: classify. It turns [`Found`] items and file reports into text.

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::classify::{Found, Heard};
use crate::record::{LabelScore, Record};
use crate::windowing::top_k;

/// Output formats of `hark classify`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClassifyFormat {
    /// Readable lines on stdout: per file its name, windows (or events) and a summary.
    Text,
    /// One JSON object per line on stdout (windows or events, then a summary per file).
    Json,
    /// Comma-separated values with a header, on stdout.
    Csv,
    /// An Audacity label track per input (`start<TAB>end<TAB>label`), NAME.txt.
    Audacity,
    /// A Raven selection table per input (tab-separated, BirdNET's layout), NAME.selections.txt.
    Raven,
}

/// The Raven selection table's header: Raven's standard selection columns, then the ones
/// BirdNET-Analyzer adds (`saveAsSelectionTable` in kahst/BirdNET-Analyzer). hark has no
/// species codes: both name columns hold the label (or group).
pub const RAVEN_HEADER: &str = "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tSpecies Code\tCommon Name\tConfidence";

/// The CSV header for windows (one row per label of a window's top list) and for events.
pub const CSV_WINDOWS_HEADER: &str = "file,start,end,rank,label,score";
pub const CSV_EVENTS_HEADER: &str = "file,label,group,start,end,peak";

impl ClassifyFormat {
    /// Formats that write one file per input instead of stdout.
    pub fn per_input(self) -> bool {
        matches!(self, ClassifyFormat::Audacity | ClassifyFormat::Raven)
    }

    /// Where the label file for `input` goes: beside it, or into `out`.
    pub fn output_path(self, input: &Path, out: Option<&Path>) -> PathBuf {
        let stem = input.file_stem().unwrap_or_default().to_string_lossy();
        let name = match self {
            ClassifyFormat::Raven => format!("{stem}.selections.txt"),
            _ => format!("{stem}.txt"),
        };
        match out {
            Some(dir) => dir.join(name),
            None => input.with_file_name(name),
        }
    }

    /// What goes before everything (stdout) or at the top of each label file.
    pub fn header(self, events: bool) -> Option<&'static str> {
        match self {
            ClassifyFormat::Csv if events => Some(CSV_EVENTS_HEADER),
            ClassifyFormat::Csv => Some(CSV_WINDOWS_HEADER),
            ClassifyFormat::Raven => Some(RAVEN_HEADER),
            _ => None,
        }
    }
}

/// What one file's formatter needs to know.
#[derive(Debug, Clone)]
pub struct FormatOptions {
    pub format: ClassifyFormat,
    pub events: bool,
    pub top: usize,
    pub labels: Vec<String>,
    /// The top of a Raven selection's band: the model's Nyquist frequency, Hz.
    pub high_freq: u32,
}

/// A formatter for `file`: turns each window or event into its output line(s) (each ending in
/// a newline), or nothing when this mode does not print it.
pub fn formatter(opts: &FormatOptions, file: &Path) -> Box<dyn FnMut(Found) -> Option<String>> {
    let opts = opts.clone();
    let file = file.to_path_buf();
    let mut rows = 0usize;
    Box::new(move |found| {
        let line = match found {
            Found::Window { .. } if opts.events => None,
            Found::Event(_) if !opts.events => None,
            Found::Window { start, end, scores } => {
                let top = top_k(scores, &opts.labels, opts.top);
                Some(window_line(
                    opts.format,
                    &file,
                    (start, end),
                    &top,
                    (rows + 1, opts.high_freq),
                ))
            }
            Found::Event(record) => {
                event_line(opts.format, &file, record, (rows + 1, opts.high_freq))
            }
        }?;
        rows += 1;
        Some(line)
    })
}

fn window_line(
    format: ClassifyFormat,
    file: &Path,
    (start, end): (f64, f64),
    top: &[LabelScore],
    (row, high_freq): (usize, u32),
) -> String {
    match format {
        ClassifyFormat::Text => format!("{}\n", window_text(start, top)),
        ClassifyFormat::Json => format!("{}\n", window_json(file, (start, end), top)),
        ClassifyFormat::Csv => top
            .iter()
            .enumerate()
            .map(|(rank, t)| {
                let (s, e) = (round3(start), round3(end));
                let (f, l) = (csv_field(&file.display().to_string()), csv_field(&t.label));
                format!("{f},{s},{e},{},{l},{}\n", rank + 1, t.score)
            })
            .collect(),
        ClassifyFormat::Audacity | ClassifyFormat::Raven => {
            let (label, score) = top
                .first()
                .map_or(("", 0.0), |t| (t.label.as_str(), t.score));
            label_row(format, (start, end), (label, score), row, high_freq)
        }
    }
}

fn event_line(
    format: ClassifyFormat,
    file: &Path,
    record: &Record,
    (row, high_freq): (usize, u32),
) -> Option<String> {
    let Record::EventEnd {
        label,
        group,
        start,
        end,
        peak,
        ..
    } = record
    else {
        return None;
    };
    let name = record.event_name().unwrap_or(label);
    Some(match format {
        ClassifyFormat::Text => format!("{start:9.2}s {end:9.2}s  {name}  (peak {peak:.2})\n"),
        ClassifyFormat::Json => format!(
            "{}\n",
            serde_json::to_string(&EventRow {
                file: file.display().to_string(),
                label,
                group: group.as_deref(),
                start: *start,
                end: *end,
                peak: *peak,
            })
            .expect("an event row always serializes")
        ),
        ClassifyFormat::Csv => format!(
            "{},{},{},{start},{end},{peak}\n",
            csv_field(&file.display().to_string()),
            csv_field(label),
            csv_field(group.as_deref().unwrap_or("")),
        ),
        ClassifyFormat::Audacity | ClassifyFormat::Raven => {
            label_row(format, (*start, *end), (name, *peak), row, high_freq)
        }
    })
}

/// One event of `--events --format json`.
#[derive(serde::Serialize)]
struct EventRow<'a> {
    file: String,
    label: &'a str,
    group: Option<&'a str>,
    start: f64,
    end: f64,
    peak: f32,
}

/// One row of a label file: Audacity `start<TAB>end<TAB>label`; Raven a numbered selection on
/// the spectrogram view of channel 1, over the whole band.
fn label_row(
    format: ClassifyFormat,
    (start, end): (f64, f64),
    (label, score): (&str, f32),
    row: usize,
    high_freq: u32,
) -> String {
    let label = label.replace(['\t', '\n'], " ");
    if format == ClassifyFormat::Raven {
        format!("{row}\tSpectrogram 1\t1\t{start:.3}\t{end:.3}\t0\t{high_freq}\t{label}\t{label}\t{score:.4}\n")
    } else {
        format!("{start:.6}\t{end:.6}\t{label}\n")
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The end of a file on stdout: its summary line (text, JSON), nothing for CSV and events.
pub fn summary_line(opts: &FormatOptions, file: &Path, heard: &[Heard]) -> Option<String> {
    match opts.format {
        ClassifyFormat::Text if !opts.events => Some(summary_text(heard)),
        ClassifyFormat::Json if !opts.events => Some(summary_json(file, heard)),
        _ => None,
    }
}

/// JSON line for one window, as `hark classify --json` prints it.
pub fn window_json(file: &Path, (start, end): (f64, f64), top: &[LabelScore]) -> String {
    serde_json::json!({
        "file": file.display().to_string(),
        "start": round3(start),
        "end": round3(end),
        "top": top,
    })
    .to_string()
}

/// JSON line for a file's summary.
pub fn summary_json(file: &Path, heard: &[Heard]) -> String {
    serde_json::json!({ "file": file.display().to_string(), "summary": heard }).to_string()
}

/// Human-readable line for one window.
pub fn window_text(start: f64, top: &[LabelScore]) -> String {
    let labels: Vec<String> = top
        .iter()
        .map(|t| format!("{} {:.2}", t.label, t.score))
        .collect();
    format!("{:8.2}s  {}", start, labels.join("  |  "))
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
    fn label_rows_have_the_documented_columns() {
        let a = label_row(ClassifyFormat::Audacity, (1.5, 2.0), ("Dog", 0.9), 1, 8000);
        assert_eq!(a, "1.500000\t2.000000\tDog\n");
        let r = label_row(
            ClassifyFormat::Raven,
            (1.5, 2.0),
            ("Dog\tbark", 0.9),
            3,
            8000,
        );
        let cols: Vec<&str> = r.trim_end().split('\t').collect();
        assert_eq!(cols.len(), RAVEN_HEADER.split('\t').count());
        assert_eq!(cols[0], "3");
        assert_eq!(cols[3], "1.500");
        assert_eq!(cols[6], "8000");
        assert_eq!(cols[8], "Dog bark");
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("Dog"), "Dog");
        assert_eq!(
            csv_field("Smoke detector, smoke alarm"),
            "\"Smoke detector, smoke alarm\""
        );
        assert_eq!(csv_field("a\"b"), "\"a\"\"b\"");
    }
}
