//! Flags shared by `hark train` and `hark eval`: how to read a dataset, run the model over it
//! and report; and the parts of their reports they print alike.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::learn::dataset::DatasetOptions;
use crate::learn::extract::Unreadable;
use crate::model::LoadOptions;

/// How `hark train` and `hark eval` read a dataset, run the model over it and report.
#[derive(Debug, Args)]
pub struct DatasetRunArgs {
    /// Percentage of files that may fail to decode (listed and skipped) before the command stops.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    pub max_unreadable: f64,
    /// Threads running the model, each with its own copy (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, third_party/onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Print the report (metrics) as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr (warnings still appear).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

impl DatasetRunArgs {
    /// Threads to run the model on: `--jobs`, or every core.
    pub fn jobs(&self) -> usize {
        self.jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// How to load the model: `--onnxruntime`, and a hop when one is given.
    pub fn load_options(&self, hop: Option<f64>) -> LoadOptions {
        LoadOptions {
            onnxruntime: self.onnxruntime.clone(),
            hop,
            ..LoadOptions::default()
        }
    }
}

/// How to read the dataset, from the flags that say it; a bad `--group-pattern` is an error
/// naming it.
pub fn dataset_options(
    labels: &Option<PathBuf>,
    group_by: Option<String>,
    group_pattern: Option<&str>,
    classes: &Option<Vec<String>>,
) -> anyhow::Result<DatasetOptions> {
    let group_pattern = group_pattern
        .map(|p| {
            regex::Regex::new(p)
                .with_context(|| format!("--group-pattern {p:?} is not a valid regex"))
        })
        .transpose()?;
    Ok(DatasetOptions {
        labels_csv: labels.clone(),
        group_by,
        group_pattern,
        classes: classes.clone(),
    })
}

/// The end of a train or eval report: files skipped as unreadable, clips zero-padded.
pub fn print_skipped(unreadable: &[Unreadable], padded: &[String]) {
    if !unreadable.is_empty() {
        println!("skipped {} unreadable file(s):", unreadable.len());
        for u in unreadable {
            println!("  {}: {}", u.file, u.error);
        }
    }
    if !padded.is_empty() {
        println!(
            "{} clip(s) shorter than a window were zero-padded",
            padded.len()
        );
    }
}
