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
//! (that model over every clip, on worker threads) → `held_out` (a head per round, tested on
//! the round's clips) → the final head, written with its base (`write_model`) → a check that
//! the written model reproduces the head's scores.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use super::dataset::{Clip, Dataset, DatasetError, DatasetOptions};
use super::extract::{self, ExtractError, Unreadable};
use super::fit::{self, FitOptions, TrainedHead};
use super::metrics::{clip_decision, ClipScore, Metrics, Progress};
use super::model_dir::{self, CheckClip, ModelDirError, Staging};
use super::split::{self, SplitError, SplitRequest};
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

/// What the head is fitted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum TrainOn {
    /// Every window of every clip, each clip weighing the same in total.
    Windows,
    /// One row per clip: the mean of its windows' scores.
    ClipMeans,
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

/// Held-out results of one round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundResult {
    pub name: String,
    pub clips: usize,
    pub accuracy: f64,
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

/// A readable clip with its window scores.
struct Sample {
    label: usize,
    windows: Vec<Vec<f32>>,
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
        opts,
        fit: &setup.fit_opts,
        progress,
    };
    let held_out = held_out(opts, &setup.ds.classes, &scored, &fitter, &mut notes)?;
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

/// Warn about `msg` now and keep it for the report.
fn note(progress: &Progress, notes: &mut Vec<String>, msg: String) {
    progress.warn(&msg);
    notes.push(msg);
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
        note(progress, notes, msg);
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

/// What the held-out rounds measured, and which clips the final head is fitted on.
struct HeldOut {
    metrics: Option<Metrics>,
    rounds: Vec<RoundResult>,
    untested: Vec<String>,
    /// The split, for reports.
    split: String,
    final_train: Vec<usize>,
}

/// Fit a head per round of the split `opts.split` asks for and test it on the round's clips.
/// Without a split, nothing is measured and the final head is fitted on every clip.
fn held_out(
    opts: &TrainOptions,
    classes: &[String],
    scored: &Scored,
    fitter: &Fitter,
    notes: &mut Vec<String>,
) -> Result<HeldOut> {
    let mut out = HeldOut {
        metrics: None,
        rounds: Vec::new(),
        untested: Vec::new(),
        split: "none (--no-eval): trained on everything, nothing measured".to_string(),
        final_train: (0..scored.samples.len()).collect(),
    };
    let Some(req) = &opts.split else {
        return Ok(out);
    };
    let refs: Vec<split::ClipRef> = scored
        .kept
        .iter()
        .map(|c| split::ClipRef {
            label: c.label,
            group: &c.group,
            fold: c.fold.as_deref(),
        })
        .collect();
    let plan = split::plan(classes, &refs, req, opts.seed)?;
    for w in &plan.warnings {
        note(fitter.progress, notes, w.clone());
    }
    fitter
        .progress
        .line(&format!("held-out evaluation: {}", plan.description));
    out.split = plan.description.clone();
    out.untested = plan.untested.clone();
    let mut truth = Vec::new();
    let mut pred = Vec::new();
    for (ri, round) in plan.rounds.iter().enumerate() {
        let label = format!("{} ({}/{})", round.name, ri + 1, plan.rounds.len());
        let (train_idx, result) = fitter.test_round(round, &label, &mut truth, &mut pred);
        out.rounds.push(result);
        if matches!(req, SplitRequest::TestFold(_)) {
            // The model written is the one measured: trained without the test fold.
            out.final_train = train_idx;
        }
    }
    out.metrics = Some(Metrics::from_predictions(classes, &truth, &pred));
    Ok(out)
}

/// What every fit of one training run shares: the scored clips and the settings.
struct Fitter<'a> {
    samples: &'a [Sample],
    n_classes: usize,
    opts: &'a TrainOptions,
    fit: &'a FitOptions,
    progress: &'a Progress,
}

impl Fitter<'_> {
    /// Fit a head on every clip but `round`'s, and test it on `round`'s clips: their true
    /// and predicted classes are appended to `truth` and `pred`. Returns the clips trained
    /// on and the round's result.
    fn test_round(
        &self,
        round: &split::Round,
        label: &str,
        truth: &mut Vec<usize>,
        pred: &mut Vec<usize>,
    ) -> (Vec<usize>, RoundResult) {
        let train_idx: Vec<usize> = (0..self.samples.len())
            .filter(|i| round.test.binary_search(i).is_err())
            .collect();
        let head = self.fit(&train_idx, label);
        let mut right = 0;
        for &i in &round.test {
            let s = &self.samples[i];
            let p = predict_clip(&head, &s.windows, self.opts.clip_score);
            right += usize::from(p == s.label);
            truth.push(s.label);
            pred.push(p);
        }
        let acc = right as f64 / round.test.len().max(1) as f64;
        self.progress.line(&format!(
            "{}: trained on {} clips, tested on {}: accuracy {:.1}%",
            round.name,
            train_idx.len(),
            round.test.len(),
            acc * 100.0
        ));
        let result = RoundResult {
            name: round.name.clone(),
            clips: round.test.len(),
            accuracy: acc,
        };
        (train_idx, result)
    }

    /// Fit a head on the clips `idx`; `what` names the fit in progress lines.
    fn fit(&self, idx: &[usize], what: &str) -> TrainedHead {
        let (x, y, w) = self.rows(idx);
        let epochs = self.fit.epochs;
        let progress = self.progress;
        let head = fit::fit(
            x.view(),
            &y,
            &w,
            self.n_classes,
            self.fit,
            &mut |epoch, loss| {
                if progress.show_epoch(epoch, epochs) {
                    progress.status(&format!(
                        "{what}: epoch {epoch:>4}/{epochs}, {} rows, loss {loss:.4}",
                        y.len()
                    ));
                }
            },
        );
        progress.done();
        head
    }

    /// The training rows of the clips `idx`, their classes and weights.
    fn rows(&self, idx: &[usize]) -> (Array2<f32>, Vec<usize>, Vec<f32>) {
        let mut clips_per_class = vec![0usize; self.n_classes];
        for &i in idx {
            clips_per_class[self.samples[i].label] += 1;
        }
        let dim = self.samples[idx[0]].windows[0].len();
        let mut rows: Vec<f32> = Vec::new();
        let mut y = Vec::new();
        let mut w = Vec::new();
        for &i in idx {
            let s = &self.samples[i];
            // Each clip weighs the same whatever its length; with `balance`, each class too.
            let class_w = if self.opts.balance {
                1.0 / clips_per_class[s.label] as f32
            } else {
                1.0
            };
            let n = s.windows.len() as f32;
            match self.opts.train_on {
                TrainOn::Windows => {
                    for win in &s.windows {
                        rows.extend_from_slice(win);
                        y.push(s.label);
                        w.push(class_w / n);
                    }
                }
                TrainOn::ClipMeans => {
                    rows.extend((0..dim).map(|d| s.windows.iter().map(|v| v[d]).sum::<f32>() / n));
                    y.push(s.label);
                    w.push(class_w);
                }
            }
        }
        let x = Array2::from_shape_vec((y.len(), dim), rows).expect("rows of equal length");
        (x, y, w)
    }
}

/// A clip's class from the head's scores of its windows.
fn predict_clip(head: &TrainedHead, windows: &[Vec<f32>], how: ClipScore) -> usize {
    let dim = windows[0].len();
    let flat: Vec<f32> = windows.iter().flatten().copied().collect();
    let x = Array2::from_shape_vec((windows.len(), dim), flat).expect("rows of equal length");
    let p = head.predict_proba(x.view());
    let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
    let classes: Vec<usize> = (0..head.classes()).collect();
    clip_decision(&rows, &classes, how)
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
