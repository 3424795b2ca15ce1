//! The model stage: an ONNX model plus its manifest, run through ONNX Runtime.
//!
//! `Model::load` reads a manifest, loads the labels and the ONNX session, and checks that the
//! three agree (input rank and fixed dims, label count) before anything runs. `Model::predict`
//! turns one window of mono samples at the model's rate into one score per label in 0..1.
//! This module does no audio I/O; the thread that calls `predict` owns the model (ort sessions
//! need `&mut` to run), so there is never a lock around it.

pub mod manifest;
pub mod runtime;

use std::path::{Path, PathBuf};

use ndarray::ArrayViewMut2;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session};
use ort::value::{Tensor, TensorElementType, TensorRef, ValueType};

pub use manifest::{Axis, FrontendKind, Head, Manifest, OutputKind};

use crate::frontend::{FrameScratch, MelFrontend, StreamingFrontend};

/// Errors of the model stage. Each names the file involved and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Runtime(String),
    #[error("model {0:?} not found; give a manifest (.toml), a folder holding one, or the name of a model under {1}")]
    NotFound(String, String),
    #[error("manifest {}: {msg}", path.display())]
    Manifest { path: PathBuf, msg: String },
    #[error("labels file {}: {msg}", path.display())]
    Labels { path: PathBuf, msg: String },
    #[error("model {}: {msg}", path.display())]
    Onnx { path: PathBuf, msg: String },
    #[error("model {} does not match its manifest {}: {msg}", model.display(), manifest.display())]
    Mismatch {
        model: PathBuf,
        manifest: PathBuf,
        msg: String,
    },
    #[error("inference failed: {0}")]
    Inference(String),
}

pub type Result<T> = std::result::Result<T, ModelError>;

/// How to load a model: where ONNX Runtime is and how many threads inference may use.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Explicit path of libonnxruntime.so (config `model.onnxruntime`); None = search.
    pub onnxruntime: Option<PathBuf>,
    /// Intra-op threads for ONNX Runtime. One keeps a Raspberry Pi's other cores for capture.
    pub threads: usize,
    /// Window length in seconds instead of the manifest's (waveform models only).
    pub window: Option<f64>,
    /// Hop in seconds instead of the manifest's.
    pub hop: Option<f64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            onnxruntime: None,
            threads: 1,
            window: None,
            hop: None,
        }
    }
}

/// The name of the model used when none is given.
pub const DEFAULT_MODEL: &str = "ced-tiny";

/// Folders searched for a model given by name, in order.
pub fn model_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("HARK_MODEL_DIR").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd.join("models"));
    }
    if let Ok(exe) = std::env::current_exe() {
        for a in exe.ancestors().skip(1) {
            let d = a.join("models");
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs.push(PathBuf::from("/usr/share/hark/models"));
    dirs
}

/// Turn what the user gave (`--model M`) into a manifest path: a manifest file, a folder with
/// one manifest in it, or a model name looked up in `model_dirs()`.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let p = Path::new(spec);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    if p.is_dir() {
        return manifest_in_dir(p);
    }
    let looks_like_path = spec.contains('/') || spec.ends_with(".toml");
    if !looks_like_path {
        for dir in model_dirs() {
            let f = dir.join(format!("{spec}.toml"));
            if f.is_file() {
                return Ok(f);
            }
            let d = dir.join(spec);
            if d.is_dir() {
                return manifest_in_dir(&d);
            }
        }
    }
    let dirs: Vec<String> = model_dirs()
        .iter()
        .map(|d| d.display().to_string())
        .collect();
    Err(ModelError::NotFound(spec.to_string(), dirs.join(", ")))
}

fn manifest_in_dir(dir: &Path) -> Result<PathBuf> {
    let preferred = dir.join("manifest.toml");
    if preferred.is_file() {
        return Ok(preferred);
    }
    let tomls: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ModelError::NotFound(format!("{} ({e})", dir.display()), String::new()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    match tomls.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(ModelError::Manifest {
            path: dir.to_path_buf(),
            msg: "the folder holds no manifest (.toml)".into(),
        }),
        _ => Err(ModelError::Manifest {
            path: dir.to_path_buf(),
            msg: "the folder holds several .toml files; name one, or call it manifest.toml".into(),
        }),
    }
}

/// Read labels: a CSV with a header (column `display_name`, else `label` or `name`, else the
/// last column), or a plain text file with one label per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let err = |msg: String| ModelError::Labels {
        path: path.to_path_buf(),
        msg,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read it: {e}")))?;
    let labels: Vec<String> = if path.extension().is_some_and(|x| x == "csv") {
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let headers = rdr.headers().map_err(|e| err(e.to_string()))?.clone();
        let col = ["display_name", "label", "name"]
            .iter()
            .find_map(|n| headers.iter().position(|h| h == *n))
            .unwrap_or(headers.len().saturating_sub(1));
        let mut out = Vec::new();
        for (i, rec) in rdr.records().enumerate() {
            let rec = rec.map_err(|e| err(format!("row {}: {e}", i + 2)))?;
            let v = rec
                .get(col)
                .ok_or_else(|| err(format!("row {} has no column {}", i + 2, col + 1)))?;
            out.push(v.trim().to_string());
        }
        out
    } else {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    };
    if labels.is_empty() {
        return Err(err("it holds no labels".into()));
    }
    Ok(labels)
}

/// How windows become the input tensor.
#[derive(Debug)]
enum InputPlan {
    /// `[1, samples]` or `[samples]`.
    Waveform { batched: bool },
    /// Log-mel `[n_mels, frames]` permuted into `layout`.
    LogMel {
        frontend: Box<MelFrontend>,
        layout: Vec<Axis>,
        frames: usize,
    },
    /// A head's input: the base model's scores, `[1, dim]` or `[dim]`.
    Embedding { batched: bool, dim: usize },
}

/// A loaded model, ready to run. Owned by exactly one thread.
pub struct Model {
    manifest: Manifest,
    manifest_path: PathBuf,
    labels: Vec<String>,
    session: Session,
    input_name: String,
    output_name: String,
    plan: InputPlan,
    /// One window's input and output, allocated once: steady-state inference allocates nothing.
    io: Io,
    /// The model takes several windows per call (a dynamic batch dimension first in both its
    /// input and its output), which offline classification uses.
    batchable: bool,
    /// The base model of a two-stage model (manifest `[head]`): it hears the audio, this
    /// model's session only maps its scores to the head's labels.
    base: Option<Box<Model>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("manifest", &self.manifest_path)
            .field("labels", &self.labels.len())
            .finish()
    }
}

/// A description of a loaded model for `hark model info` and the socket's `hello`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub manifest: PathBuf,
    pub model: PathBuf,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub frontend: String,
    pub sample_rate: u32,
    pub window: f64,
    pub hop: f64,
    pub output: OutputKind,
    pub multi_label: bool,
    pub labels: usize,
    pub first_labels: Vec<String>,
    /// The base model of a two-stage model, whose scores feed this one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Box<ModelInfo>>,
}

impl Model {
    /// Load a model from its manifest and check that manifest, labels and ONNX graph agree.
    pub fn load(manifest_path: &Path, opts: &LoadOptions) -> Result<Model> {
        let mut manifest = Manifest::from_file(manifest_path)?;
        apply_overrides(&mut manifest, opts).map_err(|msg| ModelError::Manifest {
            path: manifest_path.to_path_buf(),
            msg,
        })?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let base = match &manifest.head {
            Some(head) => Some(Box::new(load_base(manifest_path, &manifest, head, opts)?)),
            None => None,
        };
        let labels = read_labels(&dir.join(&manifest.labels))?;
        let onnx_path = dir.join(&manifest.model);
        let onnx_err = |msg: String| ModelError::Onnx {
            path: onnx_path.clone(),
            msg,
        };
        if !onnx_path.is_file() {
            return Err(onnx_err(
                "file not found; run scripts/setup.sh to fetch the default model, or fix `model` in the manifest".into(),
            ));
        }
        let env = runtime::environment(opts.onnxruntime.as_deref())?;
        let session = runtime::session_builder(&env, opts.threads)
            .and_then(|mut b| b.commit_from_file(&onnx_path))
            .map_err(|e| onnx_err(format!("ONNX Runtime cannot load it: {e}")))?;
        runtime::release_free_heap();

        let mismatch = |msg: String| ModelError::Mismatch {
            model: onnx_path.clone(),
            manifest: manifest_path.to_path_buf(),
            msg,
        };
        let input = match &manifest.input_name {
            Some(n) => session
                .inputs()
                .iter()
                .find(|i| i.name() == n)
                .ok_or_else(|| {
                    mismatch(format!(
                        "the manifest's input_name {n:?} is not an input of the model ({})",
                        names(session.inputs())
                    ))
                })?,
            None => match session.inputs() {
                [one] => one,
                many => {
                    return Err(mismatch(format!(
                        "the model has {} inputs ({}); set input_name in the manifest",
                        many.len(),
                        names(many)
                    )))
                }
            },
        };
        let output = match &manifest.output_name {
            Some(n) => session
                .outputs()
                .iter()
                .find(|o| o.name() == n)
                .ok_or_else(|| {
                    mismatch(format!(
                        "the manifest's output_name {n:?} is not an output of the model ({})",
                        names(session.outputs())
                    ))
                })?,
            None => session
                .outputs()
                .first()
                .ok_or_else(|| mismatch("the model has no outputs".into()))?,
        };
        let in_shape = float_shape(input.dtype()).ok_or_else(|| {
            mismatch(format!(
                "input {:?} is not a float32 tensor ({:?})",
                input.name(),
                input.dtype()
            ))
        })?;
        let out_shape = float_shape(output.dtype()).ok_or_else(|| {
            mismatch(format!(
                "output {:?} is not a float32 tensor ({:?})",
                output.name(),
                output.dtype()
            ))
        })?;

        // Output: [labels] or [1, labels]; the label count must match the labels file.
        let n_out = match out_shape.as_slice() {
            [n] | [_, n] => *n,
            other => {
                return Err(mismatch(format!(
                    "output {:?} has shape {other:?}; expected [labels] or [batch, labels]",
                    output.name()
                )))
            }
        };
        if n_out >= 0 && n_out as usize != labels.len() {
            return Err(mismatch(format!(
                "output {:?} has {n_out} classes but the labels file {} has {} labels",
                output.name(),
                dir.join(&manifest.labels).display(),
                labels.len()
            )));
        }

        let plan = match &base {
            Some(base) => plan_head_input(base.labels().len(), input.name(), &in_shape),
            None => plan_input(&manifest, input.name(), &in_shape),
        }
        .map_err(mismatch)?;
        let input_name = input.name().to_string();
        let output_name = output.name().to_string();
        let in_dims = input_dims(&plan, &manifest);
        let out_dims: Vec<i64> = match out_shape.as_slice() {
            [_] => vec![labels.len() as i64],
            _ => vec![1, labels.len() as i64],
        };
        let batchable = base.is_none()
            && in_dims.len() >= 2
            && in_shape.first() == Some(&-1)
            && out_shape.len() == 2
            && out_shape[0] == -1;
        let io = Io::new(&in_dims, &output_name, &out_dims, labels.len())
            .map_err(|e| onnx_err(format!("cannot allocate its input and output tensors: {e}")))?;
        Ok(Model {
            manifest,
            manifest_path: manifest_path.to_path_buf(),
            labels,
            session,
            input_name,
            output_name,
            plan,
            io,
            batchable,
            base,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn sample_rate(&self) -> u32 {
        self.manifest.sample_rate
    }

    pub fn window_samples(&self) -> usize {
        self.manifest.window_samples()
    }

    pub fn hop_samples(&self) -> usize {
        self.manifest.hop_samples()
    }

    /// The log-mel front end, for log-mel models.
    pub fn mel_frontend(&self) -> Option<&MelFrontend> {
        match &self.plan {
            InputPlan::LogMel { frontend, .. } => Some(frontend.as_ref()),
            InputPlan::Waveform { .. } => None,
            InputPlan::Embedding { .. } => self.base.as_ref()?.mel_frontend(),
        }
    }

    /// Frames per window, for log-mel models.
    pub fn frames(&self) -> Option<usize> {
        match &self.plan {
            InputPlan::LogMel { frames, .. } => Some(*frames),
            InputPlan::Waveform { .. } => None,
            InputPlan::Embedding { .. } => self.base.as_ref()?.frames(),
        }
    }

    /// Scores in 0..1, one per label, for one window of `window_samples()` mono samples at
    /// the model's rate (shorter windows are zero-padded at the end). The slice lives until the
    /// next prediction; nothing is allocated once the model has run once.
    pub fn predict(&mut self, window: &[f32]) -> Result<&[f32]> {
        if let Some(base) = self.base.as_mut() {
            let dim = base.predict(window)?.len();
            return self.run_embedding_of_base(dim);
        }
        self.fill_input(window)?;
        self.run()
    }

    /// Scores for the newest window of a stream's log-mel frames, written straight into the
    /// model's input; None while the stream holds fewer frames than a window.
    pub fn predict_stream(&mut self, stream: &StreamingFrontend) -> Result<Option<&[f32]>> {
        if let Some(base) = self.base.as_mut() {
            return match base.predict_stream(stream)? {
                Some(embedding) => {
                    let n = embedding.len();
                    self.run_embedding_of_base(n).map(Some)
                }
                None => Ok(None),
            };
        }
        let InputPlan::LogMel {
            frontend, layout, ..
        } = &self.plan
        else {
            return Err(ModelError::Inference(
                "this model takes a waveform, not features".into(),
            ));
        };
        let out = features_view(self.io.input.extract_tensor_mut().1, layout, frontend);
        if !stream.window_into(out) {
            return Ok(None);
        }
        self.run().map(Some)
    }

    /// Scores for many windows (each `window_samples()` long or shorter, zero-padded), in
    /// order. Models with a dynamic batch dimension take `batch` windows per ONNX Runtime
    /// call, which amortises per-call overhead; others run one window at a time.
    pub fn predict_batch(&mut self, windows: &[&[f32]], batch: usize) -> Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(windows.len());
        if !self.batchable || batch <= 1 {
            for w in windows {
                out.push(self.predict(w)?.to_vec());
            }
            return Ok(out);
        }
        let per_window = self.io.input_len();
        let mut input = Vec::new();
        for chunk in windows.chunks(batch) {
            input.clear();
            input.resize(chunk.len() * per_window, 0.0);
            for (w, dst) in chunk.iter().zip(input.chunks_mut(per_window)) {
                // Each window is prepared as `predict` prepares it, then copied to its batch row.
                self.fill_input(w)?;
                dst.copy_from_slice(self.io.input_mut());
            }
            let mut shape = self.io.input_dims.clone();
            shape[0] = chunk.len() as i64;
            let tensor = TensorRef::from_array_view((shape, input.as_slice()))
                .map_err(|e| ModelError::Inference(e.to_string()))?;
            let outputs = self
                .session
                .run(ort::inputs![self.input_name.as_str() => tensor])
                .map_err(|e| ModelError::Inference(e.to_string()))?;
            let (_, data) = outputs[self.output_name.as_str()]
                .try_extract_tensor::<f32>()
                .map_err(|e| ModelError::Inference(e.to_string()))?;
            if data.len() != chunk.len() * self.labels.len() {
                return Err(ModelError::Inference(format!(
                    "the model returned {} scores for {} windows of {} labels",
                    data.len(),
                    chunk.len(),
                    self.labels.len()
                )));
            }
            for row in data.chunks(self.labels.len()) {
                let mut scores = row.to_vec();
                postprocess(self.manifest.output, &mut scores);
                out.push(scores);
            }
        }
        Ok(out)
    }

    /// Write one window into the single-window input tensor, as `predict` does, without running.
    fn fill_input(&mut self, window: &[f32]) -> Result<()> {
        let n = self.manifest.window_samples();
        let window = &window[..window.len().min(n)];
        match &self.plan {
            InputPlan::Waveform { .. } => {
                let input = self.io.input_mut();
                input[..window.len()].copy_from_slice(window);
                input[window.len()..].fill(0.0);
            }
            InputPlan::LogMel {
                frontend, layout, ..
            } => {
                let Io {
                    input,
                    scratch,
                    padded,
                    ..
                } = &mut self.io;
                // A short window (the end of a stream) is zero-padded in a reused buffer.
                let samples = if window.len() < n {
                    padded.clear();
                    padded.extend_from_slice(window);
                    padded.resize(n, 0.0);
                    &padded[..]
                } else {
                    window
                };
                let scratch = scratch.get_or_insert_with(|| frontend.scratch());
                let out = features_view(input.extract_tensor_mut().1, layout, frontend);
                frontend.compute_into(samples, scratch, out);
            }
            InputPlan::Embedding { .. } => {
                return Err(ModelError::Inference(
                    "a head model's windows go through its base model".into(),
                ))
            }
        }
        Ok(())
    }

    /// Run this head on the scores its base model just computed.
    fn run_embedding_of_base(&mut self, dim: usize) -> Result<&[f32]> {
        let base = self.base.as_ref().expect("only heads have a base");
        let embedding = base.io.scores.as_slice();
        let input = self.io.input.extract_tensor_mut().1;
        if embedding.len() != dim || input.len() != dim {
            return Err(ModelError::Inference(format!(
                "the base model gave {} scores; the head takes {}",
                embedding.len(),
                input.len()
            )));
        }
        input.copy_from_slice(embedding);
        self.run()
    }

    /// Run the session on the prepared input; the scores land in `io.scores`.
    fn run(&mut self) -> Result<&[f32]> {
        // A model with one input takes it by position, which needs no allocation; naming it
        // (for models with several inputs) puts the name in a Vec.
        let outputs = if self.session.inputs().len() == 1 {
            self.session
                .run_with_options(ort::inputs![&self.io.input], &self.io.options)
        } else {
            self.session.run_with_options(
                ort::inputs![self.input_name.as_str() => &self.io.input],
                &self.io.options,
            )
        }
        .map_err(|e| ModelError::Inference(e.to_string()))?;
        let (_, data) = outputs[self.output_name.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(|e| ModelError::Inference(e.to_string()))?;
        if data.len() != self.labels.len() {
            return Err(ModelError::Inference(format!(
                "the model returned {} scores for {} labels",
                data.len(),
                self.labels.len()
            )));
        }
        self.io.scores.copy_from_slice(data);
        drop(outputs);
        postprocess(self.manifest.output, &mut self.io.scores);
        Ok(&self.io.scores)
    }

    /// Whether `predict_batch` really batches (the model has a dynamic batch dimension).
    pub fn batchable(&self) -> bool {
        self.batchable
    }

    /// Describe the model for `hark model info`.
    pub fn info(&self) -> ModelInfo {
        let describe = |o: &ort::value::Outlet| {
            format!(
                "{} {:?}",
                o.name(),
                float_shape(o.dtype()).unwrap_or_default()
            )
        };
        let base = self.base.as_ref().map(|b| Box::new(b.info()));
        let frontend = match &self.plan {
            InputPlan::Waveform { .. } => "waveform".to_string(),
            InputPlan::Embedding { dim, .. } => match &base {
                Some(b) => format!(
                    "{}, then base model {} ({}) whose {dim} outputs feed this head",
                    b.frontend,
                    b.name,
                    b.manifest.display()
                ),
                None => format!("{dim} outputs of a base model"),
            },
            InputPlan::LogMel {
                frontend,
                layout,
                frames,
            } => {
                let s = frontend.spec();
                format!(
                    "log_mel: {} mels x {frames} frames, layout {layout:?}, n_fft {}, hop {} samples",
                    s.n_mels, s.n_fft, s.hop_length
                )
            }
        };
        ModelInfo {
            name: self.manifest.name.clone(),
            manifest: self.manifest_path.clone(),
            model: self
                .manifest_path
                .parent()
                .unwrap_or(Path::new("."))
                .join(&self.manifest.model),
            inputs: self.session.inputs().iter().map(describe).collect(),
            outputs: self.session.outputs().iter().map(describe).collect(),
            frontend,
            sample_rate: self.manifest.sample_rate,
            window: self.manifest.window_seconds(),
            hop: self.manifest.hop,
            output: self.manifest.output,
            multi_label: self.manifest.multi_label,
            labels: self.labels.len(),
            first_labels: self.labels.iter().take(10).cloned().collect(),
            base,
        }
    }
}

/// A model's single-window input and output tensors, allocated once at load.
struct Io {
    /// The input tensor, written in place for every window.
    input: Tensor<f32>,
    /// Its shape (batch and channel axes 1).
    input_dims: Vec<i64>,
    /// Run options that hand ONNX Runtime a preallocated output tensor and ask only for it.
    options: RunOptions<HasSelectedOutputs>,
    /// Scores of the last run, after `postprocess`.
    scores: Vec<f32>,
    /// Work buffers of the batch front end (log-mel models), made on first use.
    scratch: Option<FrameScratch>,
    /// A short window zero-padded to the model's length.
    padded: Vec<f32>,
}

impl Io {
    fn new(
        input_dims: &[i64],
        output: &str,
        output_dims: &[i64],
        labels: usize,
    ) -> ort::Result<Io> {
        let len: i64 = input_dims.iter().product();
        let input = Tensor::from_array((input_dims.to_vec(), vec![0f32; len as usize]))?;
        let out_len: i64 = output_dims.iter().product();
        let out = Tensor::from_array((output_dims.to_vec(), vec![0f32; out_len as usize]))?;
        let options = RunOptions::new()?.with_outputs(
            OutputSelector::no_default()
                .with(output)
                .preallocate(output, out),
        );
        Ok(Io {
            input,
            input_dims: input_dims.to_vec(),
            options,
            scores: vec![0.0; labels],
            scratch: None,
            padded: Vec::new(),
        })
    }

    fn input_mut(&mut self) -> &mut [f32] {
        self.input.extract_tensor_mut().1
    }

    fn input_len(&self) -> usize {
        self.input_dims.iter().product::<i64>() as usize
    }
}

/// The model's input shape for one window.
fn input_dims(plan: &InputPlan, manifest: &Manifest) -> Vec<i64> {
    match plan {
        InputPlan::Embedding { batched: true, dim } => vec![1, *dim as i64],
        InputPlan::Embedding {
            batched: false,
            dim,
        } => vec![*dim as i64],
        InputPlan::Waveform { batched } => {
            let n = manifest.window_samples() as i64;
            if *batched {
                vec![1, n]
            } else {
                vec![n]
            }
        }
        InputPlan::LogMel {
            frontend,
            layout,
            frames,
        } => layout
            .iter()
            .map(|a| match a {
                Axis::Batch | Axis::Channel => 1,
                Axis::Mels => frontend.spec().n_mels as i64,
                Axis::Frames => *frames as i64,
            })
            .collect(),
    }
}

/// The input tensor's data seen as `[n_mels, frames]`, whatever order the model's layout puts
/// them in (batch and channel axes are 1, so only the mels/frames order matters).
fn features_view<'a>(
    data: &'a mut [f32],
    layout: &[Axis],
    frontend: &MelFrontend,
) -> ArrayViewMut2<'a, f32> {
    let n_mels = frontend.spec().n_mels;
    let frames = data.len() / n_mels;
    let pos = |axis: Axis| layout.iter().position(|a| *a == axis);
    let frames_first = matches!((pos(Axis::Frames), pos(Axis::Mels)), (Some(f), Some(m)) if f < m);
    if frames_first {
        ArrayViewMut2::from_shape((frames, n_mels), data)
            .expect("the input holds n_mels x frames values")
            .reversed_axes()
    } else {
        ArrayViewMut2::from_shape((n_mels, frames), data)
            .expect("the input holds n_mels x frames values")
    }
}

/// Load the base model of a head manifest, run with the head's window and hop, and check that
/// the two manifests agree on what the base hears.
fn load_base(
    manifest_path: &Path,
    manifest: &Manifest,
    head: &Head,
    opts: &LoadOptions,
) -> Result<Model> {
    let dir = manifest_path.parent().unwrap_or(Path::new("."));
    let base_path = dir.join(&head.base);
    let err = |msg: String| ModelError::Manifest {
        path: manifest_path.to_path_buf(),
        msg,
    };
    if !base_path.is_file() {
        return Err(err(format!(
            "head.base {} is not a file; it must name the base model's manifest relative to this folder (retrain with `hark train` or copy the base model back)",
            base_path.display()
        )));
    }
    let base_manifest = Manifest::from_file(&base_path)?;
    if base_manifest.head.is_some() {
        return Err(err(format!(
            "head.base {} is itself a head; a head must sit on a plain model",
            base_path.display()
        )));
    }
    // The head was trained on the base's scores for windows of this length and hop; running
    // the base any other way would feed the head inputs it has never seen.
    let base_opts = LoadOptions {
        window: matches!(base_manifest.frontend, FrontendKind::Waveform)
            .then(|| manifest.window_seconds()),
        hop: Some(manifest.hop),
        ..opts.clone()
    };
    let base = Model::load(&base_path, &base_opts)?;
    let bm = base.manifest();
    if bm.sample_rate != manifest.sample_rate
        || bm.frontend != manifest.frontend
        || bm.window_samples() != manifest.window_samples()
    {
        return Err(err(format!(
            "sample_rate, window or frontend differ from the base model {} ({} Hz, {} s); copy them from the base manifest",
            base_path.display(),
            bm.sample_rate,
            bm.window_seconds()
        )));
    }
    Ok(base)
}

/// A head takes exactly the base's scores: `[1, dim]` or `[dim]`.
fn plan_head_input(
    dim: usize,
    input: &str,
    shape: &[i64],
) -> std::result::Result<InputPlan, String> {
    let fits = |d: i64, want: usize| d < 0 || d as usize == want;
    match shape {
        [d] if fits(*d, dim) => Ok(InputPlan::Embedding {
            batched: false,
            dim,
        }),
        [b, d] if fits(*b, 1) && fits(*d, dim) => Ok(InputPlan::Embedding { batched: true, dim }),
        other => Err(format!(
            "input {input:?} has shape {other:?}, but a head takes the base model's {dim} scores as [1, {dim}]"
        )),
    }
}

/// Apply `--window` / `--hop` to a manifest and check the result.
fn apply_overrides(m: &mut Manifest, opts: &LoadOptions) -> std::result::Result<(), String> {
    if let Some(hop) = opts.hop {
        m.hop = hop;
    }
    if let Some(w) = opts.window {
        if !matches!(m.frontend, FrontendKind::Waveform) {
            return Err(format!(
                "window override {w} s: a log-mel model's window is fixed by frontend.frames"
            ));
        }
        m.window = Some(w);
    }
    m.validate().map_err(|e| {
        format!(
            "after overrides (window {:?}, hop {:?}): {e}",
            opts.window, opts.hop
        )
    })
}

/// Turn raw outputs into scores in 0..1 according to the manifest.
pub fn postprocess(kind: OutputKind, scores: &mut [f32]) {
    match kind {
        OutputKind::Probabilities | OutputKind::Embedding => {}
        OutputKind::LogitsSigmoid => {
            for s in scores.iter_mut() {
                *s = 1.0 / (1.0 + (-*s).exp());
            }
        }
        OutputKind::LogitsSoftmax => {
            let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0.0;
            for s in scores.iter_mut() {
                *s = (*s - max).exp();
                sum += *s;
            }
            for s in scores.iter_mut() {
                *s /= sum;
            }
        }
    }
}

fn names(outlets: &[ort::value::Outlet]) -> String {
    outlets
        .iter()
        .map(|o| o.name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shape of a float32 tensor type (`-1` for dynamic dims), or None for anything else.
fn float_shape(t: &ValueType) -> Option<Vec<i64>> {
    match t {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.to_vec()),
        _ => None,
    }
}

/// Decide how to feed the model from the manifest and the ONNX input shape.
fn plan_input(m: &Manifest, input: &str, shape: &[i64]) -> std::result::Result<InputPlan, String> {
    let fits = |dim: i64, want: usize| dim < 0 || dim as usize == want;
    match &m.frontend {
        FrontendKind::Waveform => {
            let n = m.window_samples();
            let (batched, len) = match shape {
                [len] => (false, *len),
                [b, len] if fits(*b, 1) => (true, *len),
                other => {
                    return Err(format!(
                        "input {input:?} has shape {other:?}; a waveform model takes [batch, samples] or [samples]"
                    ))
                }
            };
            if !fits(len, n) {
                return Err(format!(
                    "input {input:?} takes exactly {len} samples but the manifest's window is {n} samples ({} s at {} Hz)",
                    m.window_seconds(),
                    m.sample_rate
                ));
            }
            Ok(InputPlan::Waveform { batched })
        }
        FrontendKind::LogMel {
            frames,
            layout,
            spec,
        } => {
            let want = |a: &Axis| match a {
                Axis::Batch | Axis::Channel => 1,
                Axis::Mels => spec.n_mels,
                Axis::Frames => *frames,
            };
            let matches = |l: &[Axis]| {
                l.len() == shape.len() && l.iter().zip(shape).all(|(a, d)| fits(*d, want(a)))
            };
            let layout = match layout {
                Some(l) => {
                    let has = |a: Axis| l.iter().filter(|x| **x == a).count() == 1;
                    if !(has(Axis::Mels) && has(Axis::Frames)) {
                        return Err(format!(
                            "frontend.layout {l:?} must name \"mels\" and \"frames\" once each"
                        ));
                    }
                    if !matches(l) {
                        return Err(format!(
                            "input {input:?} has shape {shape:?} but the manifest's layout {l:?} needs {:?} ({} mels, {frames} frames)",
                            l.iter().map(want).collect::<Vec<_>>(),
                            spec.n_mels
                        ));
                    }
                    l.clone()
                }
                None => {
                    use Axis::*;
                    // The layouts the shape alone can reveal, most conventional first.
                    let candidates: &[&[Axis]] = match shape.len() {
                        3 => &[&[Batch, Mels, Frames]],
                        4 if shape[1] == 1 => &[&[Batch, Channel, Mels, Frames]],
                        4 if shape[3] == 1 => &[&[Batch, Mels, Frames, Channel]],
                        _ => &[],
                    };
                    match candidates.iter().find(|l| matches(l)) {
                        Some(l) => l.to_vec(),
                        None => {
                            return Err(format!(
                                "input {input:?} has shape {shape:?}, which does not reveal where mels ({}) and frames ({frames}) go; declare frontend.layout in the manifest, e.g. [\"frames\", \"mels\"]",
                                spec.n_mels
                            ))
                        }
                    }
                }
            };
            let frontend = Box::new(MelFrontend::new(spec.clone()).map_err(|e| e.to_string())?);
            Ok(InputPlan::LogMel {
                frontend,
                layout,
                frames: *frames,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_sigmoid_maps_zero_to_half() {
        let mut s = vec![1.0, 2.0, 3.0];
        postprocess(OutputKind::LogitsSoftmax, &mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(s[2] > s[1] && s[1] > s[0]);
        let mut s = vec![0.0];
        postprocess(OutputKind::LogitsSigmoid, &mut s);
        assert!((s[0] - 0.5).abs() < 1e-7);
    }

    #[test]
    fn labels_from_audioset_csv_keep_commas_inside_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.csv");
        std::fs::write(
            &p,
            "index,mid,display_name\n0,/m/x,\"Male speech, man speaking\"\n1,/m/y,Knock\n",
        )
        .unwrap();
        assert_eq!(
            read_labels(&p).unwrap(),
            vec!["Male speech, man speaking", "Knock"]
        );
    }

    #[test]
    fn empty_labels_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.txt");
        std::fs::write(&p, "\n\n").unwrap();
        let e = read_labels(&p).unwrap_err().to_string();
        assert!(e.contains("labels.txt") && e.contains("no labels"), "{e}");
    }
}
