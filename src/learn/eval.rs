//! `hark eval`: measuring a model on a labelled dataset.
//!
//! The dataset's classes are matched to the model's labels (case, `_` and `-` aside), the
//! model runs over every clip ([`super::extract`]) and each clip's windows become one decision
//! ([`super::metrics::clip_decision`]); the result is [`Metrics`]. This module decides nothing
//! about splits; it measures what it is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::dataset::{Dataset, DatasetError, DatasetOptions};
use super::extract::{self, ExtractError, Unreadable};
use super::metrics::{clip_decision, ClipScore, Metrics, Progress};
use crate::model::{self, LoadOptions, Model, ModelError};

/// Errors of `hark eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error("model {model} has no label for the dataset's classes {}; its labels are {}{}. Evaluate a model trained on these classes (`hark train`), rename the class folders to the model's labels, or pick classes with --classes", .missing.join(", "), .labels.iter().take(12).cloned().collect::<Vec<_>>().join(", "), if .labels.len() > 12 { ", ..." } else { "" })]
    LabelsMismatch {
        model: String,
        missing: Vec<String>,
        labels: Vec<String>,
    },
    #[error("no clips to evaluate in folds {}; the dataset's folds are {}", .given.join(", "), .folds.join(", "))]
    NoClipsInFolds {
        given: Vec<String>,
        folds: Vec<String>,
    },
    #[error("no readable clips left in class {0}; every file of it failed to decode (see the list above)")]
    EmptyClass(String),
}

/// What `hark eval` needs besides the model and the dataset.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub dataset: DatasetOptions,
    /// Evaluate only clips of these folds (all clips when empty).
    pub folds: Vec<String>,
    pub load: LoadOptions,
    /// Worker threads, each with its own copy of the model.
    pub jobs: usize,
    pub clip_score: ClipScore,
    /// Percentage of files allowed to be unreadable (they are listed and skipped).
    pub max_unreadable: f64,
}

/// The outcome of `hark eval`; its JSON has the metrics' keys at the top level.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub model: PathBuf,
    pub dataset: PathBuf,
    pub clip_score: ClipScore,
    #[serde(flatten)]
    pub metrics: Metrics,
    pub unreadable: Vec<Unreadable>,
    /// Clips shorter than one window, zero-padded to it.
    pub padded: Vec<String>,
    pub seconds: f64,
}

/// Normalize a label for matching dataset classes to model labels: case, `_` and `-` and
/// repeated spaces do not matter ("fire_alarm" matches "Fire alarm").
pub fn normalize_label(s: &str) -> String {
    s.to_lowercase()
        .replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Evaluate the model `model_spec` (as `--model` takes it) on the dataset at `root`.
pub fn evaluate(
    model_spec: &str,
    root: &Path,
    opts: &EvalOptions,
    progress: &Progress,
) -> Result<EvalReport, EvalError> {
    let manifest = model::resolve(model_spec)?;
    let mut ds = Dataset::load(root, &opts.dataset)?;
    keep_folds(&mut ds, &opts.folds)?;
    for n in &ds.notes {
        progress.warn(n);
    }
    let load = || Model::load(&manifest, &opts.load);
    let class_idx = model_classes(&manifest, &load()?, &ds.classes)?;
    progress.line(&format!(
        "evaluating {} on {} clips of {} ({} classes)",
        manifest.display(),
        ds.clips.len(),
        root.display(),
        ds.classes.len()
    ));
    let ex = extract::score_clips(&ds.clips, &load, opts.jobs, opts.max_unreadable, progress)?;
    let mut truth = Vec::new();
    let mut pred = Vec::new();
    for (clip, scores) in ds.clips.iter().zip(&ex.clips) {
        let Some(s) = scores else { continue };
        truth.push(clip.label);
        pred.push(clip_decision(&s.windows, &class_idx, opts.clip_score));
    }
    for (i, c) in ds.classes.iter().enumerate() {
        if !truth.contains(&i) {
            return Err(EvalError::EmptyClass(c.clone()));
        }
    }
    Ok(EvalReport {
        model: manifest,
        dataset: root.to_path_buf(),
        clip_score: opts.clip_score,
        metrics: Metrics::from_predictions(&ds.classes, &truth, &pred),
        padded: ex.padded_names(&ds.clips),
        unreadable: ex.unreadable,
        seconds: ex.seconds,
    })
}

/// Keep only the clips of `folds` (all clips when it is empty).
fn keep_folds(ds: &mut Dataset, folds: &[String]) -> Result<(), EvalError> {
    if folds.is_empty() {
        return Ok(());
    }
    let all: Vec<String> = ds
        .clips
        .iter()
        .filter_map(|c| c.fold.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    ds.clips
        .retain(|c| c.fold.as_ref().is_some_and(|f| folds.contains(f)));
    if ds.clips.is_empty() {
        return Err(EvalError::NoClipsInFolds {
            given: folds.to_vec(),
            folds: all,
        });
    }
    Ok(())
}

/// The index of each of `classes` among the labels of `model` (loaded from `manifest`).
fn model_classes(
    manifest: &Path,
    model: &Model,
    classes: &[String],
) -> Result<Vec<usize>, EvalError> {
    let wanted: Vec<String> = model.labels().iter().map(|l| normalize_label(l)).collect();
    let mut class_idx = Vec::new();
    let mut missing = Vec::new();
    for c in classes {
        match wanted.iter().position(|l| *l == normalize_label(c)) {
            Some(i) => class_idx.push(i),
            None => missing.push(c.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(EvalError::LabelsMismatch {
            model: manifest.display().to_string(),
            missing,
            labels: model.labels().to_vec(),
        });
    }
    Ok(class_idx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_match_across_case_and_separators() {
        assert_eq!(normalize_label("Fire_alarm"), normalize_label("fire alarm"));
        assert_eq!(normalize_label(" Smoke -  detector"), "smoke detector");
    }
}
