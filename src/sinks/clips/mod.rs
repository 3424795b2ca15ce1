//! The clips sink: a sound clip and a spectrogram picture of every event, with the seconds
//! before it, kept within disk limits (`docs/clips.md`).
//!
//! Two halves. On the consumer thread, the [`Recorder`] copies the capture-rate mono samples
//! into a pre-roll ring (`ring`), gathers each event's clip from `pre_roll` before its first
//! window to `post_roll` after its end (cut at `max_length`), writes the paths the clip will
//! have into the event's records, and hands the finished clip (an owned buffer) to a bounded
//! queue with `try_send`: a full queue drops the clip and counts it. On the `hark-clips`
//! thread, the writer (`writer`) encodes it (`encode`: FLAC or WAV), draws its picture
//! (`picture`: hark's own log-mel front end, PNG), writes both under a temporary name and
//! renames them, and applies the retention (`store`: names, listing, `max_disk`, `max_age`,
//! `min_free`). `settings` is the `[clips]` section.
//!
//! Must not: make the consumer wait for any file, encoder or lock held by the writer; give a
//! half-written file a final name; write when the filesystem has less than `min_free`.

mod encode;
mod picture;
mod recorder;
mod ring;
mod settings;
pub mod store;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

pub use encode::encode;
pub use picture::{render, Picture, PICTURE_HEIGHT, PICTURE_WIDTH};
pub use recorder::Recorder;
pub use settings::{default_dir, ClipFormat, ClipsSettings, Size, SizeSetting, MAX_QUEUE};
pub use writer::start;

use super::SinkHealth;

/// The counters this sink reports in `status`: clips written, dropped (the queue was full or
/// clips are disabled by an error), failed (write errors), removed (by the retention).
pub const COUNTERS: &[&str] = &["written", "dropped", "failed", "removed"];

/// One finished clip, handed from the consumer to the writer.
#[derive(Debug)]
pub struct ClipJob {
    /// The audio file's final path (announced in the event's records).
    pub path: PathBuf,
    /// The picture's final path.
    pub image: PathBuf,
    pub format: ClipFormat,
    /// Capture rate, Hz.
    pub rate: u32,
    /// Mono samples at the capture rate.
    pub samples: Vec<f32>,
    /// What the picture's title calls the event (its group, else its label).
    pub name: String,
    pub peak: f32,
    /// The event's span, in seconds from the clip's first sample.
    pub event: (f64, f64),
    /// Wall clock of the event's start (RFC 3339).
    pub time: String,
}

/// What the consumer and the writer share: how many clips are promised to the writer, and
/// whether writing is off after an error.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Clips reserved (announced in an `event_end`) or queued and not yet written.
    outstanding: AtomicUsize,
    /// The writer hit an error; no clip is announced until it clears.
    disabled: AtomicBool,
}

impl Shared {
    /// Reserve a place in the queue of `limit`; false when it is full.
    fn reserve(&self, limit: usize) -> bool {
        self.outstanding
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self) {
        self.outstanding.fetch_sub(1, Ordering::AcqRel);
    }

    fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::Acquire)
    }
}

/// The consumer's end of the clips sink: the queue, the counters, the settings.
pub struct ClipTap {
    jobs: SyncSender<ClipJob>,
    health: Arc<SinkHealth>,
    settings: watch::Receiver<ClipsSettings>,
    shared: Arc<Shared>,
}

/// Where the started sink leaves its [`ClipTap`] for the consumer thread to take.
#[derive(Clone, Default)]
pub struct ClipLink(Arc<Mutex<Option<ClipTap>>>);

impl ClipLink {
    fn put(&self, tap: ClipTap) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(tap);
    }

    /// The tap, once; None if the sink was not started.
    pub fn take(&self) -> Option<ClipTap> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}
