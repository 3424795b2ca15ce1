//! `hark eval`: its flags, turned into [`EvalOptions`], and its report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::dataset_args::{dataset_options, print_skipped, DatasetRunArgs};
use crate::learn::{ClipScore, EvalOptions, Progress};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model: a manifest (.toml), a folder holding one, or a name under models/.
    pub model: String,
    /// Dataset: a folder per class, or a folder with a labels.csv. Its class names must be
    /// labels of the model (case, `_` and `-` aside).
    pub dataset: PathBuf,
    /// Labels CSV instead of DATASET/labels.csv.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Use only these classes (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub classes: Option<Vec<String>>,
    /// Evaluate only clips of these folds (comma-separated), e.g. the fold held out in training.
    #[arg(long, value_delimiter = ',', value_name = "FOLD")]
    pub fold: Vec<String>,
    /// How a clip's windows become one decision.
    #[arg(long, value_enum, default_value = "mean")]
    pub clip_score: ClipScore,
    /// Hop between windows in seconds instead of the manifest's.
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
    #[command(flatten)]
    pub run: DatasetRunArgs,
}

/// Evaluate the model on the dataset and print the metrics (as text, or as JSON with
/// `--json`).
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let opts = EvalOptions {
        dataset: dataset_options(&args.labels, None, None, &args.classes)?,
        folds: args.fold.clone(),
        load: args.run.load_options(args.hop),
        jobs: args.run.jobs(),
        clip_score: args.clip_score,
        max_unreadable: args.run.max_unreadable,
    };
    let progress = Progress::stderr(args.run.quiet);
    let report = crate::learn::evaluate(&args.model, &args.dataset, &opts, &progress)
        .with_context(|| format!("evaluating {} on {}", args.model, args.dataset.display()))?;
    if args.run.json {
        println!("{}", serde_json::to_value(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("model:   {}", report.model.display());
    println!("dataset: {}", report.dataset.display());
    print!("{}", report.metrics.text());
    print_skipped(&report.unreadable, &report.padded);
    Ok(ExitCode::SUCCESS)
}
