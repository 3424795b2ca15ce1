//! `hark train`: a detector for the user's own sounds, trained on top of the default model.
//!
//! The approach is an *embedding head*: the base model (CED-tiny by default) runs over every
//! window of every clip, as it would at run time; the input of its final dense layer (192
//! values for CED-tiny, exposed by [`onnx::expose_embedding`]) or, on request, its 527 scores
//! are the embedding; a small classifier ([`fit`]) learns the user's classes from it, window
//! by window. The result is written as a model
//! folder that `hark classify --model DIR` and `hark run --model DIR` use directly: the head
//! as an ONNX graph written by hark itself ([`onnx`]), its labels, a manifest whose `[head]`
//! section names the base, and a copy of the base model, so the folder can be moved as a
//! whole. Before writing, the head is measured on held-out clips ([`split`]: never windows of
//! one recording on both sides) and the reports use [`crate::eval::Metrics`].
//!
//! Pipeline: [`dataset`] (which file is which class and recording) → [`extract`] (base model
//! over the clips, on worker threads) → [`split`] → [`fit`] per round and once on everything
//! → [`onnx`] + manifest → a check that the written model reproduces the head's scores.
//! This module and its children do not touch capture, the socket or hooks.

pub mod dataset;
pub mod extract;
pub mod fit;
pub mod onnx;
pub mod split;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use crate::eval::{clip_decision, ClipScore, Metrics};
use crate::model::{self, LoadOptions, Manifest, Model, ModelError, OutputKind};
use dataset::{Dataset, DatasetError, DatasetOptions};
use extract::{TooManyUnreadable, Unreadable};
use fit::{FitOptions, Head};
use split::{SplitError, SplitRequest};

/// Errors of `hark train`; each names the input and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Unreadable(#[from] TooManyUnreadable),
    #[error(transparent)]
    Split(#[from] SplitError),
    #[error("no readable clips left in class {0}; every file of it failed to decode (see the list above): fix them or remove the class")]
    EmptyClass(String),
    #[error("output folder {} exists and is not a hark model (no manifest.toml in it); choose a new or empty folder", .0.display())]
    OutNotModel(PathBuf),
    #[error("cannot write {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the written model {} does not reproduce the trained head (largest score difference {diff:.2e}); this is a bug in hark, please report it", .path.display())]
    ExportMismatch { path: PathBuf, diff: f32 },
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
    fn show_epoch(&self, epoch: usize, epochs: usize) -> bool {
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

/// A readable clip with its window scores.
struct Sample {
    label: usize,
    windows: Vec<Vec<f32>>,
}

/// Train a head on `opts.dataset`, measure it, and write the model folder.
pub fn train(opts: &TrainOptions, progress: &Progress) -> Result<TrainReport> {
    let started = Instant::now();
    // Checked first so that a wrong --out does not cost a whole run.
    check_out_dir(&opts.out)?;
    let ds = Dataset::load(&opts.dataset, &opts.dataset_opts)?;
    let mut notes = ds.notes.clone();
    for n in &ds.notes {
        progress.warn(n);
    }
    let base_path = model::resolve(&opts.base)?;
    let staging = Staging::new()?;
    let mut fit_opts = opts.fit.clone();
    fit_opts.transform = opts.embedding.transform();
    // The model that turns a window into the head's input: the base itself, or a copy of
    // it that also outputs an internal layer.
    let (feature_path, embedding) = match opts.embedding {
        Embedding::Internal => match expose_internal(&base_path, staging.path()) {
            Ok(found) => found,
            Err(msg) => {
                progress.warn(&format!(
                    "no internal layer of {} can be used ({msg}); learning from its scores as log-odds",
                    base_path.display()
                ));
                fit_opts.transform = Embedding::LogitScores.transform();
                (base_path.clone(), "scores as log-odds".to_string())
            }
        },
        Embedding::LogitScores => (base_path.clone(), "scores as log-odds".to_string()),
        Embedding::Scores => (base_path.clone(), "scores".to_string()),
    };
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
    let base_manifest = base.manifest().clone();
    drop(base);

    // 1. The base model's scores for every window.
    let files: Vec<(PathBuf, String)> = ds
        .clips
        .iter()
        .map(|c| (c.path.clone(), c.name.clone()))
        .collect();
    let load = || Model::load(&feature_path, &opts.load);
    let ex = extract::run_over_clips(&files, &load, opts.jobs, progress)?;
    for u in &ex.unreadable {
        progress.warn(&format!("skipped unreadable file {}: {}", u.file, u.error));
    }
    extract::check_unreadable(&ex.unreadable, files.len(), opts.max_unreadable)?;
    let mut kept = Vec::new();
    let mut samples = Vec::new();
    let mut padded = Vec::new();
    for (clip, scores) in ds.clips.iter().zip(ex.clips) {
        if let Some(s) = scores {
            if s.padded {
                padded.push(clip.name.clone());
            }
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
            base_manifest.window_seconds(),
            padded[0]
        );
        progress.warn(&msg);
        notes.push(msg);
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

    // 2. Held-out evaluation.
    let fit_started = Instant::now();
    let mut metrics = None;
    let mut rounds = Vec::new();
    let mut untested = Vec::new();
    let mut split_desc = "none (--no-eval): trained on everything, nothing measured".to_string();
    let mut final_train: Vec<usize> = (0..samples.len()).collect();
    if let Some(req) = &opts.split {
        let refs: Vec<split::ClipRef> = kept
            .iter()
            .map(|c| split::ClipRef {
                label: c.label,
                group: &c.group,
                fold: c.fold.as_deref(),
            })
            .collect();
        let plan = split::plan(&ds.classes, &refs, req, opts.seed)?;
        for w in &plan.warnings {
            progress.warn(w);
            notes.push(w.clone());
        }
        progress.line(&format!("held-out evaluation: {}", plan.description));
        split_desc = plan.description.clone();
        untested = plan.untested.clone();
        let mut truth = Vec::new();
        let mut pred = Vec::new();
        let n_rounds = plan.rounds.len();
        for (ri, round) in plan.rounds.iter().enumerate() {
            let train_idx: Vec<usize> = (0..samples.len())
                .filter(|i| round.test.binary_search(i).is_err())
                .collect();
            let label = format!("{} ({}/{n_rounds})", round.name, ri + 1);
            let head = fit_head(
                &samples,
                &train_idx,
                ds.classes.len(),
                opts,
                &fit_opts,
                progress,
                &label,
            );
            let mut right = 0;
            for &i in &round.test {
                let p = predict_clip(&head, &samples[i].windows, opts.clip_score);
                right += usize::from(p == samples[i].label);
                truth.push(samples[i].label);
                pred.push(p);
            }
            let acc = right as f64 / round.test.len().max(1) as f64;
            progress.line(&format!(
                "{}: trained on {} clips, tested on {}: accuracy {:.1}%",
                round.name,
                train_idx.len(),
                round.test.len(),
                acc * 100.0
            ));
            rounds.push(RoundResult {
                name: round.name.clone(),
                clips: round.test.len(),
                accuracy: acc,
            });
            if matches!(req, SplitRequest::TestFold(_)) {
                // The model written is the one measured: trained without the test fold.
                final_train = train_idx;
            }
        }
        metrics = Some(Metrics::from_predictions(&ds.classes, &truth, &pred));
    }

    // 3. The final head, written with its base.
    let head = fit_head(
        &samples,
        &final_train,
        ds.classes.len(),
        opts,
        &fit_opts,
        progress,
        "final model",
    );
    let fit_seconds = fit_started.elapsed().as_secs_f64();
    let doc = format!(
        "hark train head over {} ({embedding}); dataset {}; classes {}",
        base_manifest.name,
        opts.dataset.display(),
        ds.classes.join(", ")
    );
    let manifest_path = write_model_dir(
        &opts.out,
        &feature_path,
        &base_manifest,
        &head,
        &ds.classes,
        &doc,
    )?;

    // 4. The written model must compute what was trained: compare on real windows.
    let export_max_diff = check_export(&manifest_path, &opts.load, &head, &kept, &samples)?;
    progress.line(&format!(
        "wrote {} (checked: ONNX Runtime reproduces the head's scores within {export_max_diff:.1e})",
        opts.out.display()
    ));

    let report = TrainReport {
        dataset: opts.dataset.clone(),
        out: opts.out.clone(),
        approach: opts.approach,
        base: base_path,
        embedding,
        classes: ds.classes.clone(),
        readable_clips: samples.len(),
        windows,
        grouping: ds.grouping.clone(),
        split: split_desc,
        metrics,
        rounds,
        untested,
        unreadable: ex.unreadable,
        padded,
        notes,
        fit: fit_opts,
        train_on: opts.train_on,
        balance: opts.balance,
        clip_score: opts.clip_score,
        extract_seconds: ex.seconds,
        fit_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        export_max_diff,
    };
    let report_path = opts.out.join("report.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&report_path, json + "\n").map_err(|source| TrainError::Write {
        path: report_path,
        source,
    })?;
    Ok(report)
}

/// Fit a head on the clips `idx` of `samples`.
fn fit_head(
    samples: &[Sample],
    idx: &[usize],
    n_classes: usize,
    opts: &TrainOptions,
    fit_opts: &FitOptions,
    progress: &Progress,
    what: &str,
) -> Head {
    let mut clips_per_class = vec![0usize; n_classes];
    for &i in idx {
        clips_per_class[samples[i].label] += 1;
    }
    let dim = samples[idx[0]].windows[0].len();
    let mut rows: Vec<f32> = Vec::new();
    let mut y = Vec::new();
    let mut w = Vec::new();
    for &i in idx {
        let s = &samples[i];
        // Each clip weighs the same whatever its length; with `balance`, each class too.
        let class_w = if opts.balance {
            1.0 / clips_per_class[s.label] as f32
        } else {
            1.0
        };
        match opts.train_on {
            TrainOn::Windows => {
                let n = s.windows.len() as f32;
                for win in &s.windows {
                    rows.extend_from_slice(win);
                    y.push(s.label);
                    w.push(class_w / n);
                }
            }
            TrainOn::ClipMeans => {
                let n = s.windows.len() as f32;
                rows.extend((0..dim).map(|d| s.windows.iter().map(|v| v[d]).sum::<f32>() / n));
                y.push(s.label);
                w.push(class_w);
            }
        }
    }
    let x = Array2::from_shape_vec((y.len(), dim), rows).expect("rows of equal length");
    let epochs = fit_opts.epochs;
    let head = fit::fit(x.view(), &y, &w, n_classes, fit_opts, &mut |epoch, loss| {
        if progress.show_epoch(epoch, epochs) {
            progress.status(&format!(
                "{what}: epoch {epoch:>4}/{epochs}, {} rows, loss {loss:.4}",
                y.len()
            ));
        }
    });
    progress.done();
    head
}

/// A scratch folder for the embedding model, removed when training ends (or fails).
struct Staging(PathBuf);

impl Staging {
    fn new() -> Result<Staging> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("hark-train-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|source| TrainError::Write {
            path: dir.clone(),
            source,
        })?;
        Ok(Staging(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write, in `dir`, a copy of the base model that also outputs the input of its final dense
/// layer, with a manifest reading that output. Returns the manifest and a description.
fn expose_internal(base_path: &Path, dir: &Path) -> std::result::Result<(PathBuf, String), String> {
    let base = Manifest::from_file(base_path).map_err(|e| e.to_string())?;
    let src = base_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&base.model);
    let bytes = std::fs::read(&src).map_err(|e| format!("cannot read {}: {e}", src.display()))?;
    let exposed = onnx::expose_embedding(&bytes, base.output_name.as_deref())?;
    let stem = format!("{}-embedding", base.name);
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data).map_err(|e| format!("cannot write {name}: {e}"))
    };
    write(&format!("{stem}.onnx"), &exposed.bytes)?;
    let names: Vec<String> = (0..exposed.dim).map(|i| format!("value {i}")).collect();
    write(
        &format!("{stem}.labels.txt"),
        (names.join("\n") + "\n").as_bytes(),
    )?;
    let m = Manifest {
        name: stem.clone(),
        description: Some(format!(
            "{} with its internal layer {} ({} values) as an extra output; the base of a `hark train` head",
            base.name, exposed.tensor, exposed.dim
        )),
        model: format!("{stem}.onnx").into(),
        labels: format!("{stem}.labels.txt").into(),
        output: model::OutputKind::Embedding,
        output_name: Some(exposed.tensor.clone()),
        multi_label: true,
        ..base.clone()
    };
    let text = format!(
        "# Written by `hark train`: {} with `{}`, the input of its last dense layer, as an extra\n\
         # output. Its values are not scores; the head in the folder above reads them.\n{}",
        base.name,
        exposed.tensor,
        toml::to_string(&m).map_err(|e| e.to_string())?
    );
    let manifest = dir.join(format!("{stem}.toml"));
    write(&format!("{stem}.toml"), text.as_bytes())?;
    Ok((
        manifest,
        format!(
            "{} of {} ({} values)",
            exposed.tensor, base.name, exposed.dim
        ),
    ))
}

/// A clip's class from the head's scores of its windows.
fn predict_clip(head: &Head, windows: &[Vec<f32>], how: ClipScore) -> usize {
    let dim = windows[0].len();
    let flat: Vec<f32> = windows.iter().flatten().copied().collect();
    let x = Array2::from_shape_vec((windows.len(), dim), flat).expect("rows of equal length");
    let p = head.predict_proba(x.view());
    let rows: Vec<Vec<f32>> = p.rows().into_iter().map(|r| r.to_vec()).collect();
    let classes: Vec<usize> = (0..head.classes()).collect();
    clip_decision(&rows, &classes, how)
}

/// Refuse to write into a folder that holds something other than a model: only a new or
/// empty folder, or an earlier model (which is overwritten), will do.
fn check_out_dir(out: &Path) -> Result<()> {
    if out.is_dir() && !out.join("manifest.toml").is_file() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(TrainError::OutNotModel(out.to_path_buf()));
        }
    }
    Ok(())
}

/// Write `DIR/manifest.toml`, `head.onnx`, `labels.txt` and a copy of the base under
/// `DIR/base/`. Returns the manifest's path.
fn write_model_dir(
    out: &Path,
    base_path: &Path,
    base: &Manifest,
    head: &Head,
    classes: &[String],
    doc: &str,
) -> Result<PathBuf> {
    check_out_dir(out)?;
    let manifest_path = out.join("manifest.toml");
    let base_dir = out.join("base");
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TrainError::Write { path, source }
    };
    std::fs::create_dir_all(&base_dir).map_err(werr(&base_dir))?;

    // The base is copied, not referenced, so the folder works wherever it is moved (a
    // Raspberry Pi without this checkout) and cannot silently change under the head when
    // the default model is updated. CED-tiny is 6.6 MB.
    let src_dir = base_path.parent().unwrap_or(Path::new("."));
    let file_name = |p: &Path| p.file_name().map(PathBuf::from).unwrap_or_default();
    let (base_model, base_labels) = (file_name(&base.model), file_name(&base.labels));
    for (from, to) in [(&base.model, &base_model), (&base.labels, &base_labels)] {
        let dst = base_dir.join(to);
        std::fs::copy(src_dir.join(from), &dst).map_err(werr(&dst))?;
    }
    let base_manifest_name = file_name(base_path);
    let base_manifest_dst = base_dir.join(&base_manifest_name);
    let text = if base.model == base_model && base.labels == base_labels {
        // Keep the base manifest as written, comments and all.
        std::fs::read_to_string(base_path).map_err(|source| TrainError::Write {
            path: base_path.to_path_buf(),
            source,
        })?
    } else {
        let mut m = base.clone();
        m.model = base_model;
        m.labels = base_labels;
        toml::to_string(&m).unwrap_or_default()
    };
    std::fs::write(&base_manifest_dst, text).map_err(werr(&base_manifest_dst))?;

    let onnx_path = out.join("head.onnx");
    std::fs::write(&onnx_path, onnx::encode_head(head, doc)).map_err(werr(&onnx_path))?;
    let labels_path = out.join("labels.txt");
    std::fs::write(&labels_path, classes.join("\n") + "\n").map_err(werr(&labels_path))?;

    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "trained".into());
    let manifest = Manifest {
        name,
        description: Some(doc.to_string()),
        model: "head.onnx".into(),
        labels: "labels.txt".into(),
        sample_rate: base.sample_rate,
        window: base.window.or(Some(base.window_seconds())),
        hop: base.hop,
        output: OutputKind::Probabilities,
        multi_label: false,
        input_name: Some(onnx::INPUT_NAME.into()),
        output_name: Some(onnx::OUTPUT_NAME.into()),
        frontend: base.frontend.clone(),
        notes: None,
        head: Some(model::HeadSection {
            base: Path::new("base").join(&base_manifest_name),
        }),
    };
    let body = toml::to_string(&manifest).unwrap_or_default();
    let text = format!(
        "# Written by `hark train`: a classifier head over the scores of the base model in base/.\n\
         # Use this folder as `--model` of `hark classify` or `hark run`; report.json says how it was measured.\n{body}"
    );
    std::fs::write(&manifest_path, text).map_err(werr(&manifest_path))?;
    Ok(manifest_path)
}

/// Load the written model through ONNX Runtime and compare its scores with the head's on a
/// window of up to one clip per class (re-decoded from the files, so the whole path runs).
fn check_export(
    manifest: &Path,
    load: &LoadOptions,
    head: &Head,
    clips: &[&dataset::Clip],
    samples: &[Sample],
) -> Result<f32> {
    let mut model = Model::load(manifest, load)?;
    let mut max_diff = 0f32;
    let mut seen = vec![false; head.classes()];
    for (clip, s) in clips.iter().zip(samples) {
        if std::mem::replace(&mut seen[s.label], true) {
            continue;
        }
        let Ok(audio) = crate::audio::load_mono(&clip.path, model.sample_rate()) else {
            continue;
        };
        let n = model.window_samples().min(audio.len());
        let got = model.predict(&audio[..n])?;
        let x =
            Array2::from_shape_vec((1, s.windows[0].len()), s.windows[0].clone()).expect("one row");
        let want = head.predict_proba(x.view());
        for (g, w) in got.iter().zip(want.iter()) {
            max_diff = max_diff.max((g - w).abs());
        }
    }
    if max_diff > 1e-3 {
        return Err(TrainError::ExportMismatch {
            path: manifest.to_path_buf(),
            diff: max_diff,
        });
    }
    Ok(max_diff)
}
