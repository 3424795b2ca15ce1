//! The `hark-clips` thread: takes finished clips from the queue, encodes them and their
//! pictures, writes each file once under a temporary name and renames it, and applies the
//! retention. An error (disk full, read-only or missing folder, no permission) is logged once
//! and turns clips off until the next reload, or, for a full disk, until space returns.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::picture::{render, Picture};
use super::store::{self, Limits};
use super::{encode, ClipJob, ClipLink, ClipTap, ClipsSettings, Shared, MAX_QUEUE};
use crate::sinks::{SinkContext, SinkHealth};

/// How often a disk that was full is looked at again, and old clips are looked for.
const RECHECK: Duration = Duration::from_secs(10);

/// Start the writer; the consumer's end of its queue is left in `link`. It ends when the
/// fan-out closes, after writing every clip queued before.
pub fn start(ctx: SinkContext<ClipsSettings>, link: &ClipLink) -> std::io::Result<JoinHandle<()>> {
    let (jobs, rx) = mpsc::sync_channel(MAX_QUEUE);
    let shared = Arc::new(Shared::default());
    link.put(ClipTap {
        jobs,
        health: ctx.health().clone(),
        settings: ctx.settings.clone(),
        shared: shared.clone(),
    });
    std::thread::Builder::new()
        .name("hark-clips".into())
        .spawn(move || Writer::new(ctx, rx, shared).run())
}

/// Why clips are off.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Off {
    /// Less free space than `min_free` (or none at all): on again once there is.
    Space,
    /// Any other error: on again at the next reload.
    Error,
}

struct Writer {
    ctx: SinkContext<ClipsSettings>,
    jobs: Receiver<ClipJob>,
    shared: Arc<Shared>,
    settings: ClipsSettings,
    off: Option<Off>,
    last_check: Instant,
}

impl Writer {
    fn new(
        ctx: SinkContext<ClipsSettings>,
        jobs: Receiver<ClipJob>,
        shared: Arc<Shared>,
    ) -> Writer {
        let settings = ctx.settings.borrow().clone();
        Writer {
            ctx,
            jobs,
            shared,
            settings,
            off: None,
            last_check: Instant::now(),
        }
    }

    fn health(&self) -> &Arc<SinkHealth> {
        self.ctx.health()
    }

    /// Records pace the loop: every record, look for clips, a reload and the periodic checks.
    fn run(mut self) {
        self.prepare();
        while self.ctx.records.next_blocking().is_some() {
            if self.ctx.settings.has_changed().unwrap_or(false) {
                self.settings = self.ctx.settings.borrow_and_update().clone();
                self.prepare();
            }
            self.write_queued();
            if self.last_check.elapsed() >= RECHECK {
                self.last_check = Instant::now();
                self.periodic();
            }
        }
        self.write_queued();
    }

    /// On start and reload: make the folder, delete leftovers, apply the retention.
    fn prepare(&mut self) {
        self.set_off(None);
        if !self.settings.enabled {
            return;
        }
        let dir = self.settings.dir.clone();
        let ready = std::fs::create_dir_all(&dir).and_then(|()| store::remove_leftovers(&dir));
        match ready {
            Ok(n) if n > 0 => {
                tracing::info!(dir = %dir.display(), removed = n, "clips: leftovers of an interrupted write deleted")
            }
            Ok(_) => {}
            Err(e) => return self.fail(&e),
        }
        self.retention();
        if !self.has_room() {
            self.turn_off(Off::Space, "less free space than clips.min_free");
        }
    }

    fn periodic(&mut self) {
        if !self.settings.enabled {
            return;
        }
        if self.off == Some(Off::Space) && self.has_room() {
            tracing::info!(dir = %self.settings.dir.display(), "clips: free space is back; writing clips again");
            self.set_off(None);
        }
        if self.off.is_none() {
            self.retention();
        }
    }

    fn write_queued(&mut self) {
        while let Ok(job) = self.jobs.try_recv() {
            self.write(job);
            self.shared.release();
        }
    }

    fn write(&mut self, job: ClipJob) {
        if self.off.is_some() || !self.settings.enabled {
            self.health().add("dropped", 1);
            return;
        }
        if !self.has_room() {
            self.turn_off(Off::Space, "less free space than clips.min_free");
            self.health().add("dropped", 1);
            return;
        }
        let picture = Picture {
            name: &job.name,
            peak: job.peak,
            event: job.event,
            time: &job.time,
        };
        let audio = match encode(job.format, job.rate, &job.samples) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(clip = %job.path.display(), error = %e, "clips: encoding failed");
                self.health().add("failed", 1);
                return;
            }
        };
        let image = render(&job.samples, job.rate, &picture);
        let written = store::write_new(&job.path, &audio).and_then(|()| match image {
            Ok(png) => store::write_new(&job.image, &png),
            Err(e) => Err(std::io::Error::other(e)),
        });
        match written {
            Ok(()) => {
                self.health().add("written", 1);
                self.retention();
            }
            Err(e) => {
                self.health().add("failed", 1);
                self.fail(&e);
            }
        }
    }

    /// Whether the folder's filesystem has at least `min_free` free.
    fn has_room(&self) -> bool {
        match store::space(&self.settings.dir) {
            Ok((total, free)) => free >= self.settings.min_free().bytes_of(total).max(1),
            Err(_) => false,
        }
    }

    fn retention(&mut self) {
        let dir = &self.settings.dir;
        let total = store::space(dir).map(|(t, _)| t).unwrap_or(0);
        let limits = Limits {
            max_disk: self.settings.max_disk().bytes_of(total),
            max_age: self.settings.max_age,
        };
        match store::apply_retention(dir, limits, chrono::Utc::now()) {
            Ok(0) => {}
            Ok(n) => self.health().add("removed", n as u64),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "clips: retention failed"),
        }
    }

    fn fail(&mut self, e: &std::io::Error) {
        let off = if e.raw_os_error() == Some(libc::ENOSPC) {
            Off::Space
        } else {
            Off::Error
        };
        self.turn_off(off, &e.to_string());
    }

    /// Log once and stop announcing clips.
    fn turn_off(&mut self, off: Off, why: &str) {
        if self.off.is_none() {
            let until = match off {
                Off::Space => "until space returns or the next reload",
                Off::Error => "until the next reload",
            };
            tracing::error!(dir = %self.settings.dir.display(), error = %why, "clips disabled {until}");
        }
        self.set_off(Some(off));
    }

    fn set_off(&mut self, off: Option<Off>) {
        self.off = off;
        self.shared.disabled.store(off.is_some(), Ordering::Release);
    }
}
