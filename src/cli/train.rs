//! `hark train`: its flags, turned into [`TrainOptions`], and its report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::dataset_args::{dataset_options, print_skipped, DatasetRunArgs};
use crate::learn::fit::FitOptions;
use crate::learn::split::SplitRequest;
use crate::learn::{Approach, ClipScore, Embedding, Progress, TrainOn, TrainOptions, TrainReport};

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset: a folder with one sub-folder of recordings per class, or with a labels.csv
    /// (columns file,label and optionally group, fold).
    pub dataset: PathBuf,
    /// Model folder to write (manifest.toml, head.onnx, labels.txt, base/, report.json).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// What to train: `head` = a classifier on the base model's output. (A log-mel CNN is
    /// trained in Python by training/train_cnn.py on `hark features`; see docs/training.md.)
    #[arg(long, value_enum, default_value = "head")]
    pub approach: Approach,
    /// Base model whose output the head learns from.
    #[arg(long, default_value = crate::model::DEFAULT_MODEL, value_name = "MODEL")]
    pub base: String,
    /// Labels CSV instead of DATASET/labels.csv (paths in it relative to DATASET).
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// labels.csv column naming the recording each clip was cut from (default: `group`).
    #[arg(long, value_name = "COLUMN")]
    pub group_by: Option<String>,
    /// Regex on each file's path relative to DATASET; its first capture group names the
    /// recording (e.g. '^(.*)_chunk\d+' for chunks of one recording). Files it does not
    /// match are their own recording.
    #[arg(long, value_name = "REGEX")]
    pub group_pattern: Option<String>,
    /// Use only these classes (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub classes: Option<Vec<String>>,
    /// Cross-validation rounds over recording groups (when the dataset has no `fold` column;
    /// with one, each fold is held out in turn).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub folds: usize,
    /// Hold out this fold of the dataset only; the model written is the one trained without it.
    #[arg(long, value_name = "FOLD", conflicts_with = "no_eval")]
    pub test_fold: Option<String>,
    /// Train on everything and measure nothing (for datasets too small to hold anything out).
    #[arg(long)]
    pub no_eval: bool,
    /// Training epochs (full-batch Adam steps).
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-3)]
    pub l2: f32,
    /// Hidden units of a one-hidden-layer MLP; 0 = logistic regression.
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// What the head learns from: the base model's last hidden layer (`internal`), or its
    /// scores as log-odds or as they are.
    #[arg(long, value_enum, default_value = "internal")]
    pub embedding: Embedding,
    /// Fit on every window, or on one mean score vector per clip.
    #[arg(long, value_enum, default_value = "windows")]
    pub train_on: TrainOn,
    /// Do not weigh classes equally (by default a class with few clips counts as much as one
    /// with many).
    #[arg(long)]
    pub no_balance: bool,
    /// How a held-out clip's windows become one decision.
    #[arg(long, value_enum, default_value = "mean")]
    pub clip_score: ClipScore,
    /// Seed for the split's tie-breaking and the MLP's initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub run: DatasetRunArgs,
}

/// Train, write the model folder, and print the report (as text, or as JSON with `--json`).
pub fn run_train(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    let opts = train_options(args)?;
    let progress = Progress::stderr(args.run.quiet);
    let report = crate::learn::train(&opts, &progress)
        .with_context(|| format!("training on {}", args.dataset.display()))?;
    if args.run.json {
        println!("{}", flatten_metrics(serde_json::to_value(&report)?));
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// What the flags ask `hark train` to do.
fn train_options(args: &TrainArgs) -> anyhow::Result<TrainOptions> {
    Ok(TrainOptions {
        dataset: args.dataset.clone(),
        dataset_opts: dataset_options(
            &args.labels,
            args.group_by.clone(),
            args.group_pattern.as_deref(),
            &args.classes,
        )?,
        out: args.out.clone(),
        approach: args.approach,
        base: args.base.clone(),
        embedding: args.embedding,
        load: args.run.load_options(None),
        jobs: args.run.jobs(),
        split: match (&args.test_fold, args.no_eval) {
            (_, true) => None,
            (Some(f), false) => Some(SplitRequest::TestFold(f.clone())),
            (None, false) => Some(SplitRequest::CrossValidate { k: args.folds }),
        },
        seed: args.seed,
        fit: FitOptions {
            epochs: args.epochs.max(1),
            learning_rate: args.learning_rate,
            l2: args.l2,
            hidden: args.hidden,
            seed: args.seed,
            ..FitOptions::default()
        },
        train_on: args.train_on,
        balance: !args.no_balance,
        clip_score: args.clip_score,
        max_unreadable: args.run.max_unreadable,
    })
}

/// The report as text: where the model is, how it was split and measured, what was skipped.
fn print_report(report: &TrainReport) {
    println!(
        "model: {} ({} classes: {})",
        report.out.display(),
        report.classes.len(),
        report.classes.join(", ")
    );
    println!(
        "use:   hark classify --model {} FILE...",
        report.out.display()
    );
    println!(
        "data:  {} clips, {} windows; groups: {}",
        report.readable_clips, report.windows, report.grouping
    );
    println!("split: {}", report.split);
    if let Some(m) = &report.metrics {
        println!(
            "\nheld-out results (each clip scored by a model that never heard its recording):"
        );
        print!("{}", m.text());
        if report.rounds.len() > 1 {
            let per: Vec<String> = report
                .rounds
                .iter()
                .map(|r| format!("{} {:.1}%", r.name, r.accuracy * 100.0))
                .collect();
            println!("per round: {}", per.join(", "));
        }
    }
    if !report.untested.is_empty() {
        println!(
            "not tested (too few recordings to hold one out): {}",
            report.untested.join(", ")
        );
    }
    print_skipped(&report.unreadable, &report.padded);
    println!(
        "time:  {:.1} s (base model over the clips {:.1} s, fitting {:.1} s)",
        report.total_seconds, report.extract_seconds, report.fit_seconds
    );
}

/// A report as one JSON object, with the metrics' keys (`accuracy`, `balanced_accuracy`,
/// `per_class`, `confusion`, ...) at the top level; null when nothing was measured.
fn flatten_metrics(mut v: serde_json::Value) -> serde_json::Value {
    let metrics = v
        .as_object_mut()
        .and_then(|o| o.remove("metrics"))
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        for key in [
            "accuracy",
            "balanced_accuracy",
            "per_class",
            "confusion",
            "labels",
        ] {
            o.insert(key.into(), serde_json::Value::Null);
        }
        if let serde_json::Value::Object(m) = metrics {
            o.extend(m);
        }
    }
    v
}
