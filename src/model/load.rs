//! Loading a model: reading its manifest (with `--window` / `--hop` applied), its labels, its
//! base model if it is a head, and its ONNX session, then checking the graph against the
//! manifest (which input and output, their shapes, the class count) and planning how a window
//! becomes the input tensor.

use std::path::Path;

use ort::session::Session;
use ort::value::{Outlet, TensorElementType, ValueType};

use super::run::Io;
use super::{
    read_labels, runtime, Axis, FrontendKind, HeadSection, LoadOptions, Manifest, Model,
    ModelError, Result,
};
use crate::frontend::{FeatureSpec, MelFrontend};
use crate::validate::Invalid;

/// How windows become the input tensor.
#[derive(Debug)]
pub(super) enum InputPlan {
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

impl Model {
    /// Load a model from its manifest and check that manifest, labels and ONNX graph agree.
    pub fn load(manifest_path: &Path, opts: &LoadOptions) -> Result<Model> {
        let manifest = read_manifest(manifest_path, opts)?;
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let base = match &manifest.head {
            Some(head) => Some(Box::new(load_base(manifest_path, &manifest, head, opts)?)),
            None => None,
        };
        let labels_path = dir.join(&manifest.labels);
        let labels = read_labels(&labels_path)?;
        let onnx_path = dir.join(&manifest.model);
        let session = open_session(&onnx_path, opts)?;
        let check = GraphCheck {
            model: &onnx_path,
            manifest: manifest_path,
        };
        let (input, output) = check.ports(&session, &manifest)?;
        check.class_count(&output, &labels_path, labels.len())?;
        let plan = match &base {
            Some(base) => check.plan_head_input(base.labels().len(), &input),
            None => check.plan_input(&manifest, &input),
        }?;
        let in_dims = input_dims(&plan, &manifest);
        let out_dims: Vec<i64> = match output.shape.as_slice() {
            [_] => vec![labels.len() as i64],
            _ => vec![1, labels.len() as i64],
        };
        let batchable = base.is_none()
            && in_dims.len() >= 2
            && input.shape.first() == Some(&-1)
            && output.shape.len() == 2
            && output.shape[0] == -1;
        let io = Io::new(&in_dims, &output.name, &out_dims, labels.len()).map_err(|e| {
            onnx_error(
                &onnx_path,
                format!("cannot allocate its input and output tensors: {e}"),
            )
        })?;
        Ok(Model {
            manifest,
            manifest_path: manifest_path.to_path_buf(),
            labels,
            session,
            input_name: input.name,
            output_name: output.name,
            plan,
            io,
            batchable,
            base,
        })
    }
}

/// The manifest with `--window` / `--hop` applied, checked again after them.
fn read_manifest(manifest_path: &Path, opts: &LoadOptions) -> Result<Manifest> {
    let mut m = Manifest::from_file(manifest_path)?;
    if let Some(hop) = opts.hop {
        m.hop = hop;
    }
    if let Some(w) = opts.window {
        if !matches!(m.frontend, FrontendKind::Waveform) {
            return Err(ModelError::InvalidManifest {
                path: manifest_path.to_path_buf(),
                problems: Invalid::new(
                    "model.window",
                    format!("{w} s"),
                    "a log-mel model's window is fixed by frontend.frames",
                )
                .into(),
            });
        }
        m.window = Some(w);
    }
    m.validate().map_err(|problems| ModelError::Overrides {
        path: manifest_path.to_path_buf(),
        window: opts.window,
        hop: opts.hop,
        problems,
    })?;
    Ok(m)
}

fn onnx_error(path: &Path, msg: String) -> ModelError {
    ModelError::Onnx {
        path: path.to_path_buf(),
        msg,
    }
}

/// An ONNX Runtime session on the model's file, with hark's settings.
fn open_session(onnx_path: &Path, opts: &LoadOptions) -> Result<Session> {
    if !onnx_path.is_file() {
        return Err(onnx_error(
            onnx_path,
            "file not found; run scripts/setup.sh to fetch the default model, or fix `model` in the manifest".into(),
        ));
    }
    let first = runtime::loaded_path().is_none();
    let env = runtime::environment(opts.onnxruntime.as_deref())?;
    if opts.page_out_after_load && first {
        // Starting the environment registered every ONNX operator schema: code that runs once.
        // Paged out now, not only after the session below, so that it is not resident while
        // the session is built, which is when the process's resident set peaks.
        crate::memory::page_out_file_pages();
    }
    let session = runtime::session_builder(&env, opts.threads)
        .and_then(|mut b| b.commit_from_file(onnx_path))
        .map_err(|e| onnx_error(onnx_path, format!("ONNX Runtime cannot load it: {e}")))?;
    runtime::release_free_heap();
    if opts.page_out_after_load {
        // So does the code that built the session (graph optimisers, kernel registry).
        crate::memory::page_out_file_pages();
    }
    Ok(session)
}

/// Load the base model of a head manifest, run with the head's window and hop, and check that
/// the two manifests agree on what the base hears.
fn load_base(
    manifest_path: &Path,
    manifest: &Manifest,
    head: &HeadSection,
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

/// The input or the output of the graph.
#[derive(Debug, Clone, Copy)]
enum Side {
    Input,
    Output,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Input => "input",
            Side::Output => "output",
        })
    }
}

/// The graph's input or output hark uses: its name and float32 shape (`-1` for dynamic dims).
struct Port {
    name: String,
    shape: Vec<i64>,
}

/// Checks of an ONNX graph against its manifest; each failure is a [`ModelError::Mismatch`]
/// naming both files.
struct GraphCheck<'a> {
    model: &'a Path,
    manifest: &'a Path,
}

impl GraphCheck<'_> {
    fn mismatch(&self, msg: String) -> ModelError {
        ModelError::Mismatch {
            model: self.model.to_path_buf(),
            manifest: self.manifest.to_path_buf(),
            msg,
        }
    }

    /// The input and output hark feeds and reads: the ones the manifest names, else the only
    /// input and the first output.
    fn ports(&self, session: &Session, manifest: &Manifest) -> Result<(Port, Port)> {
        let input = self.pick(
            Side::Input,
            session.inputs(),
            manifest.input_name.as_deref(),
        )?;
        let output = self.pick(
            Side::Output,
            session.outputs(),
            manifest.output_name.as_deref(),
        )?;
        Ok((
            self.port(Side::Input, input)?,
            self.port(Side::Output, output)?,
        ))
    }

    fn pick<'s>(
        &self,
        side: Side,
        outlets: &'s [Outlet],
        wanted: Option<&str>,
    ) -> Result<&'s Outlet> {
        if let Some(n) = wanted {
            return outlets.iter().find(|o| o.name() == n).ok_or_else(|| {
                self.mismatch(format!(
                    "the manifest's {side}_name {n:?} is not an {side} of the model ({})",
                    names(outlets)
                ))
            });
        }
        match (side, outlets) {
            (Side::Input, [one]) => Ok(one),
            (Side::Input, many) => Err(self.mismatch(format!(
                "the model has {} inputs ({}); set input_name in the manifest",
                many.len(),
                names(many)
            ))),
            (Side::Output, outlets) => outlets
                .first()
                .ok_or_else(|| self.mismatch("the model has no outputs".into())),
        }
    }

    fn port(&self, side: Side, outlet: &Outlet) -> Result<Port> {
        let shape = float_shape(outlet.dtype()).ok_or_else(|| {
            self.mismatch(format!(
                "{side} {:?} is not a float32 tensor ({:?})",
                outlet.name(),
                outlet.dtype()
            ))
        })?;
        Ok(Port {
            name: outlet.name().to_string(),
            shape,
        })
    }

    /// The output is `[labels]` or `[1, labels]`, with as many labels as the labels file.
    fn class_count(&self, output: &Port, labels_path: &Path, labels: usize) -> Result<()> {
        let n_out = match output.shape.as_slice() {
            [n] | [_, n] => *n,
            other => {
                return Err(self.mismatch(format!(
                    "output {:?} has shape {other:?}; expected [labels] or [batch, labels]",
                    output.name
                )))
            }
        };
        if n_out >= 0 && n_out as usize != labels {
            return Err(self.mismatch(format!(
                "output {:?} has {n_out} classes but the labels file {} has {labels} labels",
                output.name,
                labels_path.display(),
            )));
        }
        Ok(())
    }

    /// A head takes exactly the base's scores: `[1, dim]` or `[dim]`.
    fn plan_head_input(&self, dim: usize, input: &Port) -> Result<InputPlan> {
        match input.shape.as_slice() {
            [d] if fits(*d, dim) => Ok(InputPlan::Embedding {
                batched: false,
                dim,
            }),
            [b, d] if fits(*b, 1) && fits(*d, dim) => {
                Ok(InputPlan::Embedding { batched: true, dim })
            }
            other => Err(self.mismatch(format!(
                "input {:?} has shape {other:?}, but a head takes the base model's {dim} scores as [1, {dim}]",
                input.name
            ))),
        }
    }

    /// Decide how to feed the model from the manifest and the ONNX input shape.
    fn plan_input(&self, m: &Manifest, input: &Port) -> Result<InputPlan> {
        match &m.frontend {
            FrontendKind::Waveform => self.plan_waveform(m, input),
            FrontendKind::LogMel {
                frames,
                layout,
                spec,
            } => {
                let layout = match layout {
                    Some(l) => self.declared_layout(l, input, spec, *frames)?,
                    None => self.revealed_layout(input, spec, *frames)?,
                };
                let frontend =
                    MelFrontend::new(spec.clone()).map_err(|e| self.mismatch(e.to_string()))?;
                Ok(InputPlan::LogMel {
                    frontend: Box::new(frontend),
                    layout,
                    frames: *frames,
                })
            }
        }
    }

    /// A waveform model takes `[batch, samples]` or `[samples]`, one window long.
    fn plan_waveform(&self, m: &Manifest, input: &Port) -> Result<InputPlan> {
        let name = &input.name;
        let n = m.window_samples();
        let (batched, len) = match input.shape.as_slice() {
            [len] => (false, *len),
            [b, len] if fits(*b, 1) => (true, *len),
            other => {
                return Err(self.mismatch(format!(
                    "input {name:?} has shape {other:?}; a waveform model takes [batch, samples] or [samples]"
                )))
            }
        };
        if !fits(len, n) {
            return Err(self.mismatch(format!(
                "input {name:?} takes exactly {len} samples but the manifest's window is {n} samples ({} s at {} Hz)",
                m.window_seconds(),
                m.sample_rate
            )));
        }
        Ok(InputPlan::Waveform { batched })
    }

    /// The manifest's `frontend.layout`, checked against the input's shape.
    fn declared_layout(
        &self,
        l: &[Axis],
        input: &Port,
        spec: &FeatureSpec,
        frames: usize,
    ) -> Result<Vec<Axis>> {
        let has = |a: Axis| l.iter().filter(|x| **x == a).count() == 1;
        if !(has(Axis::Mels) && has(Axis::Frames)) {
            return Err(self.mismatch(format!(
                "frontend.layout {l:?} must name \"mels\" and \"frames\" once each"
            )));
        }
        if !layout_fits(l, &input.shape, spec.n_mels, frames) {
            return Err(self.mismatch(format!(
                "input {:?} has shape {:?} but the manifest's layout {l:?} needs {:?} ({} mels, {frames} frames)",
                input.name,
                input.shape,
                l.iter().map(|a| axis_len(*a, spec.n_mels, frames)).collect::<Vec<_>>(),
                spec.n_mels
            )));
        }
        Ok(l.to_vec())
    }

    /// The layout the input's shape alone reveals, most conventional first.
    fn revealed_layout(
        &self,
        input: &Port,
        spec: &FeatureSpec,
        frames: usize,
    ) -> Result<Vec<Axis>> {
        use Axis::*;
        let shape = input.shape.as_slice();
        let candidates: &[&[Axis]] = match shape.len() {
            3 => &[&[Batch, Mels, Frames]],
            4 if shape[1] == 1 => &[&[Batch, Channel, Mels, Frames]],
            4 if shape[3] == 1 => &[&[Batch, Mels, Frames, Channel]],
            _ => &[],
        };
        match candidates
            .iter()
            .find(|l| layout_fits(l, shape, spec.n_mels, frames))
        {
            Some(l) => Ok(l.to_vec()),
            None => Err(self.mismatch(format!(
                "input {:?} has shape {shape:?}, which does not reveal where mels ({}) and frames ({frames}) go; declare frontend.layout in the manifest, e.g. [\"frames\", \"mels\"]",
                input.name,
                spec.n_mels
            ))),
        }
    }
}

/// A graph dimension (`-1` for dynamic) takes `want`.
fn fits(dim: i64, want: usize) -> bool {
    dim < 0 || dim as usize == want
}

/// The length of a log-mel input axis for one window.
fn axis_len(axis: Axis, n_mels: usize, frames: usize) -> usize {
    match axis {
        Axis::Batch | Axis::Channel => 1,
        Axis::Mels => n_mels,
        Axis::Frames => frames,
    }
}

/// `layout` has the input's rank and every axis fits the input's dim.
fn layout_fits(layout: &[Axis], shape: &[i64], n_mels: usize, frames: usize) -> bool {
    layout.len() == shape.len()
        && layout
            .iter()
            .zip(shape)
            .all(|(a, d)| fits(*d, axis_len(*a, n_mels, frames)))
}

/// The model's input shape for one window.
pub(super) fn input_dims(plan: &InputPlan, manifest: &Manifest) -> Vec<i64> {
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
            .map(|a| axis_len(*a, frontend.spec().n_mels, *frames) as i64)
            .collect(),
    }
}

fn names(outlets: &[Outlet]) -> String {
    outlets
        .iter()
        .map(|o| o.name().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shape of a float32 tensor type (`-1` for dynamic dims), or None for anything else.
pub(super) fn float_shape(t: &ValueType) -> Option<Vec<i64>> {
    match t {
        ValueType::Tensor {
            ty: TensorElementType::Float32,
            shape,
            ..
        } => Some(shape.to_vec()),
        _ => None,
    }
}
