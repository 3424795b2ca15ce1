//! Many files over several threads: each thread owns one model (one ONNX session: ONNX
//! Runtime's own threads scale poorly on small models, whole files in parallel do not), takes
//! the next file when it is done with one, and sends what it found; the caller receives it in
//! input order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use super::file::{classify_file, ClassifyError, FileReport, Found, OfflineSettings};
use crate::model::Model;
use crate::shutdown::Shutdown;

/// Extensions `hark classify DIR` picks up (case-insensitive).
const AUDIO_EXTENSIONS: &[&str] = &["wav", "flac", "mp3", "ogg", "oga", "opus"];

/// Output is sent on in pieces of about this many bytes, so a long file's text never piles up
/// in a worker.
const CHUNK_BYTES: usize = 64 * 1024;

/// What a worker reports about one file, in order: its start, text chunks, then the end.
#[derive(Debug)]
pub enum JobMessage {
    /// The file is being classified (so its output file can be opened before any text).
    Started,
    /// Formatted output for the file (whatever the caller's formatter made of its windows).
    Text(String),
    /// The file is done.
    Done(Result<FileReport, ClassifyError>),
}

/// Makes one file's formatter on the worker's thread: it turns each [`Found`] into output text.
pub type Formatter<'a> = dyn Fn(&Path) -> Box<dyn FnMut(Found) -> Option<String>> + Sync + 'a;

/// Makes one file's progress callback on the worker's thread, given the file and the seconds
/// of audio its header declares (if it does). The callback is told how far into the file
/// classifying has got (seconds), and is dropped when the file ends.
pub type Progress<'a> = dyn Fn(&Path, Option<f64>) -> Box<dyn FnMut(f64)> + Sync + 'a;

/// What every worker shares.
struct Shared<'a> {
    files: &'a [PathBuf],
    settings: &'a OfflineSettings,
    shutdown: &'a Shutdown,
    format: &'a Formatter<'a>,
    progress: Option<&'a Progress<'a>>,
    /// The next file to take.
    next: AtomicUsize,
}

/// Classify `files` with one thread per model in `models`, calling `deliver(index, message)`
/// on the caller's thread with every file's messages in input order; `progress`, if given,
/// follows each file as it is classified.
pub fn classify_files(
    files: &[PathBuf],
    models: Vec<Model>,
    settings: &OfflineSettings,
    shutdown: &Shutdown,
    (format, progress): (&Formatter, Option<&Progress>),
    deliver: &mut dyn FnMut(usize, JobMessage),
) {
    let shared = Shared {
        files,
        settings,
        shutdown,
        format,
        progress,
        next: AtomicUsize::new(0),
    };
    let (tx, rx) = mpsc::channel::<(usize, JobMessage)>();
    std::thread::scope(|scope| {
        for (n, model) in models.into_iter().enumerate() {
            let tx = tx.clone();
            let shared = &shared;
            std::thread::Builder::new()
                .name(format!("hark-classify-{n}"))
                .spawn_scoped(scope, move || work(shared, model, &tx))
                .expect("start a classify thread");
        }
        drop(tx);
        in_order(rx, deliver);
    });
}

/// One worker: take files until none is left or a stop is asked for.
fn work(shared: &Shared, mut model: Model, tx: &mpsc::Sender<(usize, JobMessage)>) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let Some(path) = shared.files.get(i) else {
            return;
        };
        if shared.shutdown.is_triggered() {
            return;
        }
        let mut fmt = (shared.format)(path);
        let mut progress = shared
            .progress
            .map(|p| p(path, super::file::declared_seconds(path)));
        let _ = tx.send((i, JobMessage::Started));
        let mut text = String::new();
        let mut found = |f: Found| {
            if let (Some(p), Found::Window { end, .. }) = (&mut progress, &f) {
                p(*end);
            }
            if let Some(line) = fmt(f) {
                text.push_str(&line);
                if text.len() >= CHUNK_BYTES {
                    let _ = tx.send((i, JobMessage::Text(std::mem::take(&mut text))));
                }
            }
        };
        let (back, result) =
            classify_file(model, shared.settings, path, shared.shutdown, &mut found);
        model = back;
        drop(progress);
        if !text.is_empty() {
            let _ = tx.send((i, JobMessage::Text(text)));
        }
        let _ = tx.send((i, JobMessage::Done(result)));
    }
}

/// Deliver messages in file order, holding those of later files until the earlier ones end.
fn in_order(rx: mpsc::Receiver<(usize, JobMessage)>, deliver: &mut dyn FnMut(usize, JobMessage)) {
    let mut current = 0;
    let mut held: BTreeMap<usize, Vec<JobMessage>> = BTreeMap::new();
    for (i, msg) in rx {
        if i != current {
            held.entry(i).or_default().push(msg);
            continue;
        }
        let done = matches!(msg, JobMessage::Done(_));
        deliver(i, msg);
        if !done {
            continue;
        }
        // The current file ended: the next ones may already be complete.
        current += 1;
        while let Some(msgs) = held.remove(&current) {
            let ended = msgs.iter().any(|m| matches!(m, JobMessage::Done(_)));
            for m in msgs {
                deliver(current, m);
            }
            if !ended {
                break;
            }
            current += 1;
        }
    }
}

/// The files to classify: each argument that is a file, and the audio files (by extension)
/// anywhere under each argument that is a folder, sorted by path. Arguments that do not exist
/// are kept, so they get their error line.
pub fn audio_files(args: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for arg in args {
        if arg.is_dir() {
            let mut found = Vec::new();
            walk(arg, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(arg.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_audio(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn is_audio(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| AUDIO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_for_audio_files_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        for f in ["z.wav", "a.FLAC", "notes.txt", "b/c.mp3"] {
            std::fs::write(dir.path().join(f), b"").unwrap();
        }
        let got = audio_files(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<String> = got
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["a.FLAC", "b/c.mp3", "z.wav"]);
    }

    #[test]
    fn messages_arrive_in_file_order() {
        let (tx, rx) = mpsc::channel();
        let text = |s: &str| JobMessage::Text(s.into());
        let done = || JobMessage::Done(Err(ClassifyError::Stopped { path: "x".into() }));
        for (i, m) in [(1, text("b")), (2, text("c")), (2, done()), (0, text("a"))] {
            tx.send((i, m)).unwrap();
        }
        tx.send((1, done())).unwrap();
        tx.send((0, done())).unwrap();
        drop(tx);
        let mut order = Vec::new();
        in_order(rx, &mut |i, m| {
            order.push((i, matches!(m, JobMessage::Done(_))));
        });
        assert_eq!(
            order,
            [
                (0, false),
                (0, true),
                (1, false),
                (1, true),
                (2, false),
                (2, true)
            ]
        );
    }
}
