//! The model folders `hark train` writes.
//!
//! Two of them: a scratch folder holding a copy of the base model that also outputs its
//! embedding (removed when training ends), and the trained model itself (`manifest.toml`,
//! `head.onnx`, `labels.txt`, a copy of the base under `base/`), which is loaded back through
//! ONNX Runtime to check that it computes what was trained. Nothing here fits or measures.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::fit::TrainedHead;
use super::onnx::{self, OnnxError};
use crate::model::{self, LoadOptions, Manifest, Model, ModelError, OutputKind};

/// Errors in writing or checking the trained model's folder.
#[derive(Debug, thiserror::Error)]
pub enum ModelDirError {
    #[error(transparent)]
    Model(#[from] ModelError),
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

/// Why the base's embedding could not be exposed; training then learns from its scores.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingModelError {
    #[error(transparent)]
    Manifest(#[from] ModelError),
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Onnx(#[from] OnnxError),
    #[error("cannot write {name}: {source}")]
    Write {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Toml(#[from] toml::ser::Error),
}

/// An error-mapper for a failed write of `path`.
fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelDirError {
    let path = path.to_path_buf();
    move |source| ModelDirError::Write { path, source }
}

/// A scratch folder for the embedding model, removed when training ends (or fails).
pub struct Staging(PathBuf);

impl Staging {
    pub fn new() -> Result<Staging, ModelDirError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("hark-train-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
        Ok(Staging(dir))
    }

    pub fn path(&self) -> &Path {
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
pub fn write_embedding_model(
    base_path: &Path,
    dir: &Path,
) -> Result<(PathBuf, String), EmbeddingModelError> {
    let base = Manifest::from_file(base_path)?;
    let src = base_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&base.model);
    let bytes = std::fs::read(&src).map_err(|source| EmbeddingModelError::Read {
        path: src.clone(),
        source,
    })?;
    let exposed = onnx::expose_embedding(&bytes, base.output_name.as_deref())?;
    let stem = format!("{}-embedding", base.name);
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data).map_err(|source| EmbeddingModelError::Write {
            name: name.to_string(),
            source,
        })
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
        output: OutputKind::Embedding,
        output_name: Some(exposed.tensor.clone()),
        multi_label: true,
        ..base.clone()
    };
    let text = format!(
        "# Written by `hark train`: {} with `{}`, the input of its last dense layer, as an extra\n\
         # output. Its values are not scores; the head in the folder above reads them.\n{}",
        base.name,
        exposed.tensor,
        toml::to_string(&m)?
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

/// Refuse to write into a folder that holds something other than a model: only a new or
/// empty folder, or an earlier model (which is overwritten), will do.
pub fn check_out_dir(out: &Path) -> Result<(), ModelDirError> {
    if out.is_dir() && !out.join("manifest.toml").is_file() {
        let empty = std::fs::read_dir(out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            return Err(ModelDirError::OutNotModel(out.to_path_buf()));
        }
    }
    Ok(())
}

/// Write `DIR/manifest.toml`, `head.onnx`, `labels.txt` and a copy of the base under
/// `DIR/base/`. Returns the manifest's path.
pub fn write_model_dir(
    out: &Path,
    base_path: &Path,
    base: &Manifest,
    head: &TrainedHead,
    classes: &[String],
    doc: &str,
) -> Result<PathBuf, ModelDirError> {
    check_out_dir(out)?;
    let manifest_path = out.join("manifest.toml");
    let base_manifest_name = copy_base(&out.join("base"), base_path, base)?;

    let onnx_path = out.join("head.onnx");
    std::fs::write(&onnx_path, onnx::encode_head(head, doc)).map_err(write_err(&onnx_path))?;
    let labels_path = out.join("labels.txt");
    std::fs::write(&labels_path, classes.join("\n") + "\n").map_err(write_err(&labels_path))?;

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
    std::fs::write(&manifest_path, text).map_err(write_err(&manifest_path))?;
    Ok(manifest_path)
}

/// Copy the base model (its manifest `base_path`, ONNX file and labels) into `base_dir`.
/// Returns the file name of the copied manifest.
fn copy_base(base_dir: &Path, base_path: &Path, base: &Manifest) -> Result<PathBuf, ModelDirError> {
    std::fs::create_dir_all(base_dir).map_err(write_err(base_dir))?;
    // The base is copied, not referenced, so the folder works wherever it is moved (a
    // Raspberry Pi without this checkout) and cannot silently change under the head when
    // the default model is updated. CED-tiny is 6.6 MB.
    let src_dir = base_path.parent().unwrap_or(Path::new("."));
    let file_name = |p: &Path| p.file_name().map(PathBuf::from).unwrap_or_default();
    let (base_model, base_labels) = (file_name(&base.model), file_name(&base.labels));
    for (from, to) in [(&base.model, &base_model), (&base.labels, &base_labels)] {
        let dst = base_dir.join(to);
        std::fs::copy(src_dir.join(from), &dst).map_err(write_err(&dst))?;
    }
    let base_manifest_name = file_name(base_path);
    let base_manifest_dst = base_dir.join(&base_manifest_name);
    let text = if base.model == base_model && base.labels == base_labels {
        // Keep the base manifest as written, comments and all.
        std::fs::read_to_string(base_path).map_err(write_err(base_path))?
    } else {
        let mut m = base.clone();
        m.model = base_model;
        m.labels = base_labels;
        toml::to_string(&m).unwrap_or_default()
    };
    std::fs::write(&base_manifest_dst, text).map_err(write_err(&base_manifest_dst))?;
    Ok(base_manifest_name)
}

/// One clip to check the written model on: its file, its class and the base's output for
/// its first window (the head's input).
pub struct CheckClip<'a> {
    pub path: &'a Path,
    pub label: usize,
    pub first_window: &'a [f32],
}

/// Load the written model through ONNX Runtime and compare its scores with the head's on a
/// window of up to one clip per class (re-decoded from the files, so the whole path runs).
/// Returns the largest difference.
pub fn check_export<'a>(
    manifest: &Path,
    load: &LoadOptions,
    head: &TrainedHead,
    clips: impl IntoIterator<Item = CheckClip<'a>>,
) -> Result<f32, ModelDirError> {
    let mut model = Model::load(manifest, load)?;
    let mut max_diff = 0f32;
    let mut seen = vec![false; head.classes()];
    for clip in clips {
        if std::mem::replace(&mut seen[clip.label], true) {
            continue;
        }
        let Ok(audio) = crate::audio::load_mono(clip.path, model.sample_rate()) else {
            continue;
        };
        let n = model.window_samples().min(audio.len());
        let got = model.predict(&audio[..n])?;
        let row = clip.first_window;
        let x = Array2::from_shape_vec((1, row.len()), row.to_vec()).expect("one row");
        let want = head.predict_proba(x.view());
        for (g, w) in got.iter().zip(want.iter()) {
            max_diff = max_diff.max((g - w).abs());
        }
    }
    if max_diff > 1e-3 {
        return Err(ModelDirError::ExportMismatch {
            path: manifest.to_path_buf(),
            diff: max_diff,
        });
    }
    Ok(max_diff)
}
