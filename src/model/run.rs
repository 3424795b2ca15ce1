//! Running a loaded model: the single-window input and output tensors allocated at load, and
//! `predict` (one window), `predict_stream` (features written straight into the input),
//! `predict_batch` (many windows, batched where the model allows) and the streamed batch of
//! `hark classify` (`batch_push`, `batch_push_stream`, `batch_run`, `batch_scores`).
//!
//! Architecture invariant: once a model has run once, `predict` and `predict_stream` allocate
//! nothing (`tests/alloc.rs` counts): the input is written in place and ONNX Runtime writes
//! into a preallocated output.

use ndarray::ArrayViewMut2;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, SessionOutputs};
use ort::value::{Tensor, TensorRef};

use super::load::InputPlan;
use super::{Axis, Model, ModelError, OutputKind, Result};
use crate::frontend::{FrameScratch, MelFrontend, StreamingFrontend};

impl Model {
    /// Scores in 0..1, one per label, for one window of `window_samples()` mono samples at
    /// the model's rate (shorter windows are zero-padded at the end). The slice lives until the
    /// next prediction; nothing is allocated once the model has run once.
    pub fn predict(&mut self, window: &[f32]) -> Result<&[f32]> {
        if let Some(base) = self.base.as_mut() {
            let dim = base.predict(window)?.len();
            return self.run_embedding_of_base(dim);
        }
        self.fill_input(window)?;
        self.run_session()
    }

    /// The scores of the last `predict` or `predict_stream`.
    pub fn last_scores(&self) -> &[f32] {
        &self.io.scores
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
        if !self.stream_window_into_input(stream)? {
            return Ok(None);
        }
        self.run_session().map(Some)
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
            let tensor =
                TensorRef::from_array_view((shape, input.as_slice())).map_err(inference)?;
            let outputs = self
                .session
                .run(ort::inputs![self.input_name.as_str() => tensor])
                .map_err(inference)?;
            let data = scores_in(&outputs, &self.output_name)?;
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

    /// Add one window to the batch being gathered, prepared as `predict` prepares it. A model
    /// without a batch dimension scores it at once. [`batch_run`](Self::batch_run) scores the
    /// batch; the next push after it starts a new one.
    pub fn batch_push(&mut self, window: &[f32]) -> Result<()> {
        self.io.batch.begin_row();
        if self.batchable {
            self.fill_input(window)?;
            self.io.push_input_row();
        } else {
            self.predict(window)?;
            self.io.push_scores_row();
        }
        Ok(())
    }

    /// Add the newest window of a stream's log-mel frames to the batch, as
    /// [`predict_stream`](Self::predict_stream) would score it; false (nothing added) while the
    /// stream holds fewer frames than a window.
    pub fn batch_push_stream(&mut self, stream: &StreamingFrontend) -> Result<bool> {
        self.io.batch.begin_row();
        if !self.batchable {
            let scored = self.predict_stream(stream)?.is_some();
            if scored {
                self.io.push_scores_row();
            }
            return Ok(scored);
        }
        if !self.stream_window_into_input(stream)? {
            return Ok(false);
        }
        self.io.push_input_row();
        Ok(true)
    }

    /// Write the newest window of a stream's log-mel frames into the model's input; false while
    /// the stream holds fewer frames than a window. An error for a waveform model.
    fn stream_window_into_input(&mut self, stream: &StreamingFrontend) -> Result<bool> {
        let InputPlan::LogMel {
            frontend, layout, ..
        } = &self.plan
        else {
            return Err(ModelError::Inference(
                "this model takes a waveform, not features".into(),
            ));
        };
        let out = features_view(self.io.input.extract_tensor_mut().1, layout, frontend);
        Ok(stream.window_into(out))
    }

    /// Score the windows pushed since the last run in one ONNX Runtime call (models without a
    /// batch dimension scored them as they came); [`batch_scores`](Self::batch_scores) then
    /// has them. A batch row's scores may differ from `predict`'s for the same window in the
    /// last bits (batched matrix kernels round differently); the same batch sizes give the
    /// same scores.
    pub fn batch_run(&mut self) -> Result<()> {
        let labels = self.labels.len();
        let batch = &mut self.io.batch;
        if batch.done {
            return Ok(());
        }
        batch.done = true;
        if !self.batchable || batch.rows == 0 {
            return Ok(());
        }
        let mut shape = self.io.input_dims.clone();
        shape[0] = batch.rows as i64;
        let tensor =
            TensorRef::from_array_view((shape, batch.input.as_slice())).map_err(inference)?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => tensor])
            .map_err(inference)?;
        let data = scores_in(&outputs, &self.output_name)?;
        if data.len() != batch.rows * labels {
            return Err(ModelError::Inference(format!(
                "the model returned {} scores for {} windows of {labels} labels",
                data.len(),
                batch.rows,
            )));
        }
        batch.scores.clear();
        batch.scores.extend_from_slice(data);
        for row in batch.scores.chunks_mut(labels) {
            postprocess(self.manifest.output, row);
        }
        Ok(())
    }

    /// The scores of row `row` of the last batch run.
    pub fn batch_scores(&self, row: usize) -> &[f32] {
        let n = self.labels.len();
        &self.io.batch.scores[row * n..(row + 1) * n]
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
        self.run_session()
    }

    /// Run the session on the prepared input; the scores land in `io.scores`.
    fn run_session(&mut self) -> Result<&[f32]> {
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
        .map_err(inference)?;
        let data = scores_in(&outputs, &self.output_name)?;
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
}

/// A model's single-window input and output tensors, allocated once at load.
pub(super) struct Io {
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
    /// The streamed batch being gathered (`batch_push`), grown to its size on first use.
    batch: Batch,
}

/// Windows gathered for one batched call, and the scores of the last call.
#[derive(Debug, Default)]
struct Batch {
    /// The rows' inputs, one window's input after another.
    input: Vec<f32>,
    rows: usize,
    /// `rows x labels` scores, after `postprocess`.
    scores: Vec<f32>,
    /// The scores are those of a finished batch: the next push starts a new one.
    done: bool,
}

impl Batch {
    fn begin_row(&mut self) {
        if self.done {
            self.input.clear();
            self.scores.clear();
            self.rows = 0;
            self.done = false;
        }
    }
}

impl Io {
    pub(super) fn new(
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
            batch: Batch::default(),
        })
    }

    fn input_mut(&mut self) -> &mut [f32] {
        self.input.extract_tensor_mut().1
    }

    /// The prepared input becomes the batch's newest row.
    fn push_input_row(&mut self) {
        self.batch
            .input
            .extend_from_slice(self.input.extract_tensor_mut().1);
        self.batch.rows += 1;
    }

    /// The scores just computed become the batch's newest row (models without a batch axis).
    fn push_scores_row(&mut self) {
        self.batch.scores.extend_from_slice(&self.scores);
        self.batch.rows += 1;
    }

    fn input_len(&self) -> usize {
        self.input_dims.iter().product::<i64>() as usize
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

/// The raw scores in the run's output called `name`.
fn scores_in<'a>(outputs: &'a SessionOutputs<'_>, name: &str) -> Result<&'a [f32]> {
    let (_, data) = outputs[name]
        .try_extract_tensor::<f32>()
        .map_err(inference)?;
    Ok(data)
}

/// An ONNX Runtime failure while running.
fn inference(e: ort::Error) -> ModelError {
    ModelError::Inference(e.to_string())
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
}
