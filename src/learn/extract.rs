//! Running a model over every clip of a dataset, window by window, on worker threads.
//!
//! Training runs the base model here to get each window's output (the head's input); `hark
//! eval` runs the model under test. Clips are cut into windows exactly as `hark classify`
//! and the daemon cut them ([`crate::windowing::classify_samples`]), so what is learned and
//! measured is what runs later. Each worker thread loads and owns its own model (sessions
//! are never shared); results come back over a channel to the calling thread, which alone
//! prints progress. Files that cannot be decoded are collected, not fatal: the caller
//! decides how many it tolerates.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use serde::Serialize;

use super::dataset::Clip;
use super::metrics::Progress;
use crate::model::{Model, ModelError};

/// One clip's window scores.
#[derive(Debug, Clone)]
pub struct ClipScores {
    /// One score vector per window, in time order; at least one.
    pub windows: Vec<Vec<f32>>,
    /// The clip was shorter than one window and was zero-padded to it.
    pub padded: bool,
    /// Length of the decoded clip in seconds.
    pub seconds: f64,
}

/// A file that could not be used, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub file: String,
    pub error: String,
}

/// Scores of every clip, by the clip's index in the input list (`None` = unreadable).
#[derive(Debug)]
pub struct Extracted {
    pub clips: Vec<Option<ClipScores>>,
    pub unreadable: Vec<Unreadable>,
    pub seconds: f64,
}

impl Extracted {
    /// Names of the clips (the list scored, in its order) that were shorter than one window.
    pub fn padded_names(&self, clips: &[Clip]) -> Vec<String> {
        clips
            .iter()
            .zip(&self.clips)
            .filter(|(_, s)| s.as_ref().is_some_and(|s| s.padded))
            .map(|(c, _)| c.name.clone())
            .collect()
    }
}

/// Why scoring a dataset's clips stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Unreadable(#[from] TooManyUnreadable),
}

/// Run `load()`'s model over `clips` on `jobs` threads, warn about each file that did not
/// decode, and stop when more than `max_unreadable` percent of them did not (see
/// [`check_unreadable`]).
pub fn score_clips(
    clips: &[Clip],
    load: &(dyn Fn() -> Result<Model, ModelError> + Sync),
    jobs: usize,
    max_unreadable: f64,
    progress: &Progress,
) -> Result<Extracted, ExtractError> {
    let files: Vec<(PathBuf, String)> = clips
        .iter()
        .map(|c| (c.path.clone(), c.name.clone()))
        .collect();
    let ex = run_over_clips(&files, load, jobs, progress)?;
    for u in &ex.unreadable {
        progress.warn(&format!("skipped unreadable file {}: {}", u.file, u.error));
    }
    check_unreadable(&ex.unreadable, files.len(), max_unreadable)?;
    Ok(ex)
}

/// Run `load()`'s model over the files `(path, name)` on `jobs` threads.
///
/// Returns an error only when a model cannot be loaded or inference itself fails; a file
/// that does not decode is listed in [`Extracted::unreadable`].
pub fn run_over_clips(
    files: &[(PathBuf, String)],
    load: &(dyn Fn() -> Result<Model, ModelError> + Sync),
    jobs: usize,
    progress: &Progress,
) -> Result<Extracted, ModelError> {
    let start = Instant::now();
    let next = AtomicUsize::new(0);
    let jobs = jobs.clamp(1, files.len().max(1));
    let mut clips: Vec<Option<ClipScores>> = vec![None; files.len()];
    let mut unreadable = Vec::new();
    let mut failure: Option<ModelError> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::channel::<Scored>();
        for _ in 0..jobs {
            let tx = tx.clone();
            let next = &next;
            scope.spawn(move || worker(files, load, next, tx));
        }
        // Dropping our sender lets the loop end once every worker has finished.
        drop(tx);
        let total = files.len();
        let mut done = 0;
        for (i, r) in rx {
            match r {
                Err(ClipError::Model(e)) => {
                    // Stop handing out work; the workers finish their current file.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    failure.get_or_insert(e);
                }
                Err(ClipError::Audio(msg)) => {
                    done += 1;
                    progress.status(&format!("[{done:>5}/{total}] {}: UNREADABLE", files[i].1));
                    unreadable.push(Unreadable {
                        file: files[i].1.clone(),
                        error: msg,
                    });
                }
                Ok(c) => {
                    done += 1;
                    progress.status(&format!(
                        "[{done:>5}/{total}] {}: {:.2} s, {} window(s){}",
                        files[i].1,
                        c.seconds,
                        c.windows.len(),
                        if c.padded { ", padded" } else { "" }
                    ));
                    clips[i] = Some(c);
                }
            }
        }
    });
    progress.done();
    if let Some(e) = failure {
        return Err(e);
    }
    unreadable.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Extracted {
        clips,
        unreadable,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// What a worker sends back: the file's index and its scores, or why there are none.
type Scored = (usize, Result<ClipScores, ClipError>);

/// One worker thread: load its own model, then score the next file not yet taken until
/// there are none left, the model fails, or the receiver is gone.
fn worker(
    files: &[(PathBuf, String)],
    load: &(dyn Fn() -> Result<Model, ModelError> + Sync),
    next: &AtomicUsize,
    tx: mpsc::Sender<Scored>,
) {
    let mut model = match load() {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send((usize::MAX, Err(ClipError::Model(e))));
            return;
        }
    };
    loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some((path, _)) = files.get(i) else { break };
        let r = score_file(&mut model, path);
        let fatal = matches!(r, Err(ClipError::Model(_)));
        if tx.send((i, r)).is_err() || fatal {
            break;
        }
    }
}

enum ClipError {
    /// The file is not usable audio; skip it.
    Audio(String),
    /// The model failed; stop.
    Model(ModelError),
}

fn score_file(model: &mut Model, path: &std::path::Path) -> Result<ClipScores, ClipError> {
    let samples = crate::audio::load_mono(path, model.sample_rate())
        .map_err(|e| ClipError::Audio(e.to_string()))?;
    if samples.is_empty() {
        return Err(ClipError::Audio(format!(
            "{} holds no audio samples",
            path.display()
        )));
    }
    let windows =
        crate::windowing::classify_samples(model, &samples, 1).map_err(ClipError::Model)?;
    Ok(ClipScores {
        padded: samples.len() < model.window_samples(),
        seconds: samples.len() as f64 / model.sample_rate() as f64,
        windows: windows.into_iter().map(|w| w.scores).collect(),
    })
}

/// More files failed to decode than the user allows.
#[derive(Debug, thiserror::Error)]
#[error("{} of {total} files could not be read, more than the limit of {limit_percent}% ({}; the reasons are listed above); fix or remove them, or raise --max-unreadable", .unreadable.len(), list(.unreadable))]
pub struct TooManyUnreadable {
    pub unreadable: Vec<Unreadable>,
    pub total: usize,
    pub limit_percent: f64,
}

fn list(u: &[Unreadable]) -> String {
    let mut s: Vec<String> = u.iter().take(5).map(|u| u.file.clone()).collect();
    if u.len() > 5 {
        s.push(format!("and {} more", u.len() - 5));
    }
    s.join("; ")
}

/// Accept up to `limit_percent` % of `total` files unreadable, and at least one file unless
/// the limit is 0, so that a stray README in a small dataset does not stop training (it is
/// still listed).
pub fn check_unreadable(
    unreadable: &[Unreadable],
    total: usize,
    limit_percent: f64,
) -> Result<(), TooManyUnreadable> {
    let allowed = if limit_percent <= 0.0 {
        0
    } else {
        ((total as f64 * limit_percent / 100.0).floor() as usize).max(1)
    };
    if unreadable.len() > allowed {
        return Err(TooManyUnreadable {
            unreadable: unreadable.to_vec(),
            total,
            limit_percent,
        });
    }
    Ok(())
}
