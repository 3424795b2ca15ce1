//! One recording through the daemon's pipeline, reporting what `hark classify` prints.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::summary::{Heard, Summarizer};
use crate::capture::{CaptureError, FileSource, Source};
use crate::model::Model;
use crate::pipeline::{self, Consumer, LiveSettings, PipelineError, Supervisor};
use crate::record::Record;
use crate::shutdown::Shutdown;

/// What the pipeline runs with offline: the live settings `hark run` would use (smoothing,
/// decision, groups) and the capture ring's length.
#[derive(Debug, Clone)]
pub struct OfflineSettings {
    pub live: LiveSettings,
    /// Seconds of audio the ring between the decoder and the pipeline holds.
    pub ring_seconds: f32,
    /// Windows per model call (`--batch`); 1 gives `hark run`'s scores bit for bit.
    pub batch: usize,
}

impl Default for OfflineSettings {
    fn default() -> Self {
        OfflineSettings {
            live: LiveSettings::default(),
            ring_seconds: crate::config::CaptureSettings::default().ring_seconds,
            batch: 1,
        }
    }
}

/// What a file's run reports, as it goes.
#[derive(Debug)]
pub enum Found<'a> {
    /// The model's raw scores for one window (seconds from the start of the file).
    Window {
        start: f64,
        end: f64,
        scores: &'a [f32],
    },
    /// An event that ended: the `event_end` record `hark run` publishes for it.
    Event(&'a Record),
}

/// A file's totals, once it has been read to its end.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub windows: u64,
    /// Seconds of audio read.
    pub seconds: f64,
    pub heard: Vec<Heard>,
}

/// Why a file could not be classified (to its end).
#[derive(Debug, thiserror::Error)]
pub enum ClassifyError {
    #[error(transparent)]
    Open(#[from] CaptureError),
    #[error("{}: {source}", path.display())]
    Pipeline {
        path: PathBuf,
        source: PipelineError,
    },
    #[error("{}: the file holds no audio samples", path.display())]
    Empty { path: PathBuf },
    #[error("{}: decoding failed after {seconds:.1} s of audio; the rest of the file was not classified", path.display())]
    Partway { path: PathBuf, seconds: f64 },
    #[error("{}: stopped before the end", path.display())]
    Stopped { path: PathBuf },
}

/// Hands each window's raw scores to the caller and to the summary.
struct Windows<'f, 'a> {
    found: &'f RefCell<&'a mut dyn FnMut(Found)>,
    summary: Summarizer,
}

impl Supervisor for Windows<'_, '_> {
    fn scored(&mut self, start: f64, end: f64, raw: &[f32]) {
        self.summary.add(raw);
        (self.found.borrow_mut())(Found::Window {
            start,
            end,
            scores: raw,
        });
    }
}

/// Seconds of audio `path`'s header declares, if it opens and says (for progress).
pub fn declared_seconds(path: &Path) -> Option<f64> {
    crate::audio::AudioReader::open(path)
        .ok()?
        .declared_seconds()
}

/// Classify `path` with `model`, block by block, calling `found` for every window and every
/// ended event in stream order. The model comes back whatever happened, for the next file.
pub fn classify_file(
    model: Model,
    settings: &OfflineSettings,
    path: &Path,
    shutdown: &Shutdown,
    found: &mut dyn FnMut(Found),
) -> (Model, Result<FileReport, ClassifyError>) {
    let source = Box::new(FileSource {
        path: path.to_path_buf(),
        realtime: false,
    });
    let mut capture = match source.start(settings.ring_seconds) {
        Ok(c) => c,
        Err(e) => return (model, Err(e.into())),
    };
    let labels = model.labels().to_vec();
    let mut consumer = Consumer::new(model, settings.live.clone());
    consumer.set_lossless(true);
    consumer.set_batch(settings.batch);
    let found = RefCell::new(found);
    let mut windows = Windows {
        found: &found,
        summary: Summarizer::new(labels.len()),
    };
    let mut emit = |r: Record| {
        if matches!(r, Record::EventEnd { .. }) {
            (found.borrow_mut())(Found::Event(&r));
        }
    };
    let outcome = pipeline::consume::<()>(
        &mut consumer,
        &mut capture,
        shutdown,
        None,
        &mut windows,
        &mut emit,
    );
    let seconds = consumer.position();
    let count = consumer.counters().windows;
    let decode_errors = capture.stats.errors.load(Ordering::Relaxed);
    let model = consumer.into_model();
    let path = path.to_path_buf();
    let result = match outcome {
        Err(source) => Err(ClassifyError::Pipeline { path, source }),
        Ok(pipeline::Outcome::Ended) if count == 0 => Err(ClassifyError::Empty { path }),
        Ok(pipeline::Outcome::Ended) if decode_errors > 0 => {
            Err(ClassifyError::Partway { path, seconds })
        }
        Ok(pipeline::Outcome::Ended) => Ok(FileReport {
            windows: count,
            seconds,
            heard: windows.summary.heard(&labels),
        }),
        Ok(_) => Err(ClassifyError::Stopped { path }),
    };
    (model, result)
}
