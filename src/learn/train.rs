//! `hark train`: a detector for the user's own sounds, trained on top of the default model.
//!
//! The approach is an *embedding head*: the base model (CED-tiny by default) runs over every
//! window of every clip, as it would at run time; the input of its final dense layer (192
//! values for CED-tiny, exposed by [`super::onnx::expose_embedding`]) or, on request, its 527
//! scores are the embedding; a small classifier ([`super::fit`]) learns the user's classes
//! from it, window by window. The result is written as a model folder
//! ([`super::model_dir`]) that `hark classify --model DIR` and `hark run --model DIR` use
//! directly: the head as an ONNX graph written by hark itself ([`super::onnx`]), its labels,
//! a manifest whose `[head]` section names the base, and a copy of the base model, so the
//! folder can be moved as a whole. Before writing, the head is measured on held-out clips
//! ([`super::split`]: never windows of one recording on both sides) and the reports use
//! [`Metrics`].
//!
//! Steps: `Setup` (the dataset, and the model whose output the head learns from) → `score`
//! (that model over every clip, on worker threads) → [`held_out`](super::held_out) (a head
//! per round, tested on the round's clips) → the final head, written with its base
//! (`write_model`) → a check that the written model reproduces the head's scores.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::dataset::{Clip, Dataset, DatasetError, DatasetOptions};
use super::extract::{self, ExtractError, Unreadable};
use super::fit::{self, FitOptions, TrainedHead};
use super::held_out::{self, Fitter, RoundResult, Sample, TrainOn};
use super::metrics::{ClipScore, Metrics, Progress};
use super::model_dir::{self, CheckClip, ModelDirError, Staging};
use super::split::{SplitError, SplitRequest};
use crate::model::{self, LoadOptions, Manifest, Model, ModelError};

/// Errors of `hark train`; each names the input and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("no readable clips left in class {0}; every file of it failed to decode (see the list above): fix them or remove the class")]
    EmptyClass(String),
    #[error(transparent)]
    ModelDir(#[from] ModelDirError),
}

pub type Result<T> = std::result::Result<T, TrainError>;

/// Which kind of model `hark train` makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Approach {
    /// A classifier on the base model's output (an internal layer or its scores), written
    /// as a two-stage model (default).
    Head,
}

/// What the head learns from, per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Embedding {
    /// The input of the base model's final dense layer (CED-tiny: 192 values), exposed as an
    /// extra output of a copy of the base. Falls back to `logit-scores` when the base's
    /// output is not a dense layer.
    Internal,
    /// The base model's scores as log-odds, ln(p / (1 - p)).
    LogitScores,
    /// The base model's scores as they are (0..1).
    Scores,
}

impl Embedding {
    fn transform(self) -> fit::Transform {
        match self {
            Embedding::LogitScores => fit::Transform::Logit { eps: 1e-4 },
            Embedding::Internal | Embedding::Scores => fit::Transform::Identity,
        }
    }
}

/// Everything `hark train` needs.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub dataset: PathBuf,
    pub dataset_opts: DatasetOptions,
    pub out: PathBuf,
    pub approach: Approach,
    /// The base model, as `--model` takes it.
    pub base: String,
    pub embedding: Embedding,
    pub load: LoadOptions,
    pub jobs: usize,
    /// None: train on everything and measure nothing.
    pub split: Option<SplitRequest>,
    pub seed: u64,
    /// Fit settings; `transform` is replaced by the one `embedding` needs.
    pub fit: FitOptions,
    pub train_on: TrainOn,
    /// Weigh classes equally in the loss, whatever their number of clips.
    pub balance: bool,
    pub clip_score: ClipScore,
    pub max_unreadable: f64,
}

/// What `hark train` did and measured; also written to `DIR/report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub dataset: PathBuf,
    pub out: PathBuf,
    pub approach: Approach,
    pub base: PathBuf,
    /// What the head learned from, e.g. "layer_norm_25 of ced-tiny (192 values)".
    pub embedding: String,
    pub classes: Vec<String>,
    /// Readable clips (all of them, trained on or tested) and their windows. The metrics'
    /// own `clips` counts the clips tested.
    pub readable_clips: usize,
    pub windows: usize,
    pub grouping: String,
    pub split: String,
    /// Held-out metrics (None with --no-eval).
    pub metrics: Option<Metrics>,
    pub rounds: Vec<RoundResult>,
    /// Classes with too few recordings to hold one out: trained on, never tested.
    pub untested: Vec<String>,
    pub unreadable: Vec<Unreadable>,
    /// Clips shorter than one window, zero-padded to it.
    pub padded: Vec<String>,
    pub notes: Vec<String>,
    pub fit: FitOptions,
    pub train_on: TrainOn,
    pub balance: bool,
    pub clip_score: ClipScore,
    /// Seconds spent running the base model over the clips.
    pub extract_seconds: f64,
    /// Seconds spent fitting (all rounds and the final fit).
    pub fit_seconds: f64,
    pub total_seconds: f64,
    /// Largest difference between the written model's scores and the head's, over the
    /// windows checked after writing.
    pub export_max_diff: f32,
}

/// Train a head on `opts.dataset`, measure it, and write the model folder.
pub fn train(opts: &TrainOptions, progress: &Progress) -> Result<TrainReport> {
    let started = Instant::now();
    // Checked first so that a wrong --out does not cost a whole run.
    model_dir::check_out_dir(&opts.out)?;
    let setup = Setup::new(opts, progress)?;
    let mut notes = setup.ds.notes.clone();
    let scored = score(opts, &setup, progress, &mut notes)?;

    let fit_started = Instant::now();
    let fitter = Fitter {
        samples: &scored.samples,
        n_classes: setup.ds.classes.len(),
        fit: &setup.fit_opts,
        train_on: opts.train_on,
        balance: opts.balance,
        clip_score: opts.clip_score,
        progress,
    };
    let held_out = held_out::held_out(
        opts.split.as_ref(),
        opts.seed,
        &setup.ds.classes,
        &scored.kept,
        &fitter,
        &mut notes,
    )?;
    let head = fitter.fit(&held_out.final_train, "final model");
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    let manifest_path = write_model(opts, &setup, &head)?;

    // The written model must compute what was trained: compare on real windows.
    let check = scored
        .kept
        .iter()
        .zip(&scored.samples)
        .map(|(c, s)| CheckClip {
            path: &c.path,
            label: s.label,
            first_window: &s.windows[0],
        });
    let export_max_diff = model_dir::check_export(&manifest_path, &opts.load, &head, check)?;
    progress.line(&format!(
        "wrote {} (checked: ONNX Runtime reproduces the head's scores within {export_max_diff:.1e})",
        opts.out.display()
    ));

    let report = TrainReport {
        dataset: opts.dataset.clone(),
        out: opts.out.clone(),
        approach: opts.approach,
        base: setup.base_path.clone(),
        embedding: setup.embedding.clone(),
        classes: setup.ds.classes.clone(),
        readable_clips: scored.samples.len(),
        windows: scored.windows,
        grouping: setup.ds.grouping.clone(),
        split: held_out.split,
        metrics: held_out.metrics,
        rounds: held_out.rounds,
        untested: held_out.untested,
        unreadable: scored.unreadable,
        padded: scored.padded,
        notes,
        fit: setup.fit_opts.clone(),
        train_on: opts.train_on,
        balance: opts.balance,
        clip_score: opts.clip_score,
        extract_seconds: scored.seconds,
        fit_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        export_max_diff,
    };
    write_report(&report)?;
    Ok(report)
}

/// The dataset, and the model whose output the head learns from.
struct Setup {
    ds: Dataset,
    base_path: PathBuf,
    /// The model that turns a window into the head's input: the base itself, or a staged
    /// copy of it that also outputs an internal layer.
    feature_path: PathBuf,
    /// What the head learns from, for reports.
    embedding: String,
    /// `opts.fit` with the transform the embedding needs.
    fit_opts: FitOptions,
    base_manifest: Manifest,
    /// Holds the staged copy until the model folder is written.
    _staging: Staging,
}

impl Setup {
    fn new(opts: &TrainOptions, progress: &Progress) -> Result<Setup> {
        let ds = Dataset::load(&opts.dataset, &opts.dataset_opts)?;
        for n in &ds.notes {
            progress.warn(n);
        }
        let base_path = model::resolve(&opts.base)?;
        let staging = Staging::new()?;
        let mut fit_opts = opts.fit.clone();
        fit_opts.transform = opts.embedding.transform();
        let (feature_path, embedding) = feature_model(
            opts.embedding,
            &base_path,
            &staging,
            &mut fit_opts,
            progress,
        );
        let base = Model::load(&feature_path, &opts.load)?;
        progress.line(&format!(
            "dataset {}: {} clips, {} classes ({}), labels from {}, groups: {}",
            opts.dataset.display(),
            ds.clips.len(),
            ds.classes.len(),
            ds.classes.join(", "),
            ds.source,
            ds.grouping
        ));
        progress.line(&format!(
            "base model {}: {embedding}, {} values per {} s window, hop {} s; running it over every clip on {} thread(s)",
            base_path.display(),
            base.labels().len(),
            base.manifest().window_seconds(),
            base.manifest().hop,
            opts.jobs
        ));
        Ok(Setup {
            base_manifest: base.manifest().clone(),
            ds,
            base_path,
            feature_path,
            embedding,
            fit_opts,
            _staging: staging,
        })
    }
}

/// The model that turns a window into the head's input, and a description of what it
/// outputs. When no internal layer of the base can be used, the head learns from its scores
/// as log-odds (and `fit_opts` is changed to match).
fn feature_model(
    embedding: Embedding,
    base_path: &Path,
    staging: &Staging,
    fit_opts: &mut FitOptions,
    progress: &Progress,
) -> (PathBuf, String) {
    match embedding {
        Embedding::Internal => match model_dir::write_embedding_model(base_path, staging.path()) {
            Ok(found) => found,
            Err(e) => {
                progress.warn(&format!(
                    "no internal layer of {} can be used ({e}); learning from its scores as log-odds",
                    base_path.display()
                ));
                fit_opts.transform = Embedding::LogitScores.transform();
                (base_path.to_path_buf(), "scores as log-odds".to_string())
            }
        },
        Embedding::LogitScores => (base_path.to_path_buf(), "scores as log-odds".to_string()),
        Embedding::Scores => (base_path.to_path_buf(), "scores".to_string()),
    }
}

/// The clips that decoded, with the feature model's output for each of their windows.
struct Scored<'a> {
    /// The dataset's clips that decoded, in order; `samples[i]` belongs to `kept[i]`.
    kept: Vec<&'a Clip>,
    samples: Vec<Sample>,
    padded: Vec<String>,
    unreadable: Vec<Unreadable>,
    windows: usize,
    seconds: f64,
}

/// Run the feature model over every clip of the dataset.
fn score<'a>(
    opts: &TrainOptions,
    setup: &'a Setup,
    progress: &Progress,
    notes: &mut Vec<String>,
) -> Result<Scored<'a>> {
    let ds = &setup.ds;
    let load = || Model::load(&setup.feature_path, &opts.load);
    let ex = extract::score_clips(&ds.clips, &load, opts.jobs, opts.max_unreadable, progress)?;
    let padded = ex.padded_names(&ds.clips);
    let mut kept = Vec::new();
    let mut samples = Vec::new();
    for (clip, scores) in ds.clips.iter().zip(ex.clips) {
        if let Some(s) = scores {
            kept.push(clip);
            samples.push(Sample {
                label: clip.label,
                windows: s.windows,
            });
        }
    }
    if !padded.is_empty() {
        let msg = format!(
            "{} clip(s) shorter than the {} s window were zero-padded to it (e.g. {}); the model will hear such sounds padded with silence too",
            padded.len(),
            setup.base_manifest.window_seconds(),
            padded[0]
        );
        progress.warn_and_keep(notes, msg);
    }
    for (i, c) in ds.classes.iter().enumerate() {
        if !samples.iter().any(|s| s.label == i) {
            return Err(TrainError::EmptyClass(c.clone()));
        }
    }
    let windows: usize = samples.iter().map(|s| s.windows.len()).sum();
    progress.line(&format!(
        "scored {} clips ({windows} windows) in {:.1} s",
        samples.len(),
        ex.seconds
    ));
    Ok(Scored {
        kept,
        samples,
        padded,
        unreadable: ex.unreadable,
        windows,
        seconds: ex.seconds,
    })
}

/// Write the final head with its base into `opts.out`; returns the manifest's path.
fn write_model(opts: &TrainOptions, setup: &Setup, head: &TrainedHead) -> Result<PathBuf> {
    let doc = format!(
        "hark train head over {} ({}); dataset {}; classes {}",
        setup.base_manifest.name,
        setup.embedding,
        opts.dataset.display(),
        setup.ds.classes.join(", ")
    );
    Ok(model_dir::write_model_dir(
        &opts.out,
        &setup.feature_path,
        &setup.base_manifest,
        head,
        &setup.ds.classes,
        &doc,
    )?)
}

/// Write `report` as `DIR/report.json`.
fn write_report(report: &TrainReport) -> Result<()> {
    let report_path = report.out.join("report.json");
    let json = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(&report_path, json + "\n").map_err(|source| ModelDirError::Write {
        path: report_path,
        source,
    })?;
    Ok(())
}
