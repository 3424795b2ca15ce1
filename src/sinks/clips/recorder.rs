//! The consumer's half of the clips sink: the pre-roll ring, the clips being gathered, and the
//! paths written into event records. Never waits: a finished clip goes to the writer with
//! `try_send` into a queue whose room was reserved when the event ended.

use std::path::PathBuf;

use super::ring::PreRoll;
use super::{store, ClipFormat, ClipJob, ClipTap, ClipsSettings};
use crate::record::Record;

/// A clip being gathered.
#[derive(Debug)]
struct OpenClip {
    id: u64,
    path: PathBuf,
    image: PathBuf,
    format: ClipFormat,
    time: String,
    /// Stream seconds of the event's start and (once known) end.
    event_start: f64,
    event_end: Option<f64>,
    name: String,
    peak: f32,
    /// Absolute capture index of `samples[0]`.
    from: u64,
    samples: Vec<f32>,
    /// Where the clip stops: `max_length` after `from`, or `post_roll` after the event.
    until: u64,
    /// The event ended and the writer's queue has room reserved for this clip.
    reserved: bool,
}

impl OpenClip {
    fn have(&self) -> u64 {
        self.from + self.samples.len() as u64
    }

    /// Take the part of `x` (first sample at absolute `first`) that belongs to the clip.
    /// Returns whether the clip is complete (or cannot continue across a jump in the stream).
    fn feed(&mut self, first: u64, x: &[f32]) -> bool {
        let have = self.have();
        if first > have {
            return true;
        }
        let end = (first + x.len() as u64).min(self.until);
        if end > have {
            self.samples
                .extend_from_slice(&x[(have - first) as usize..(end - first) as usize]);
        }
        self.have() >= self.until
    }
}

/// Gathers clips on the consumer thread. Without a tap (the sink not started) or with clips
/// off, it only checks its settings: no ring, no copy.
pub struct Recorder {
    tap: Option<ClipTap>,
    settings: ClipsSettings,
    ring: PreRoll,
    rate: u32,
    /// Seconds the ring holds beyond `pre_roll`: how far behind the newest sample an event's
    /// first window can be when its `event_start` is decided.
    slack: f64,
    open: Vec<OpenClip>,
    /// Events whose clip was cut at `max_length` while they went on: id → whether it was queued.
    cut: Vec<(u64, Option<(PathBuf, PathBuf)>)>,
}

impl Recorder {
    /// A recorder for the clips sink's `tap`; `slack` as in [`Recorder::set_slack`].
    pub fn new(tap: Option<ClipTap>, slack: f64) -> Recorder {
        let settings = tap
            .as_ref()
            .map(|t| t.settings.borrow().clone())
            .unwrap_or_default();
        Recorder {
            tap,
            settings,
            ring: PreRoll::default(),
            rate: 0,
            slack,
            open: Vec::new(),
            cut: Vec::new(),
        }
    }

    /// Seconds the ring keeps beyond `pre_roll` (a window, a hop, the longest `min_duration`,
    /// the capture ring and the backlog: how late an `event_start` can come).
    pub fn set_slack(&mut self, slack: f64) {
        self.slack = slack;
        self.resize();
    }

    /// Bytes the pre-roll ring takes.
    pub fn ring_bytes(&self) -> usize {
        self.ring.capacity() * std::mem::size_of::<f32>()
    }

    fn active(&self) -> bool {
        self.tap.is_some() && self.settings.enabled
    }

    fn resize(&mut self) {
        let want = if self.active() && self.rate > 0 {
            ((self.settings.pre_roll + self.slack) * self.rate as f64).ceil() as usize
        } else {
            0
        };
        if want != self.ring.capacity() {
            self.ring = PreRoll::new(want);
        }
    }

    /// A reload changed `[clips]`: take it (clips being gathered keep their paths).
    fn follow_settings(&mut self) {
        let Some(tap) = &mut self.tap else { return };
        if !tap.settings.has_changed().unwrap_or(false) {
            return;
        }
        self.settings = tap.settings.borrow_and_update().clone();
        if !self.settings.enabled {
            self.abandon_open();
        }
        self.resize();
    }

    /// Forget the clips being gathered (clips turned off, or the capture rate changed),
    /// giving back the queue room reserved for them.
    fn abandon_open(&mut self) {
        for clip in self.open.drain(..) {
            if let (true, Some(tap)) = (clip.reserved, &self.tap) {
                tap.shared.release();
                tap.health.add("dropped", 1);
            }
        }
    }

    /// Capture-rate mono samples `x`, the first at absolute index `first`.
    pub fn captured(&mut self, first: u64, rate: u32, x: &[f32]) {
        self.follow_settings();
        if !self.active() {
            return;
        }
        if rate != self.rate {
            self.rate = rate;
            self.abandon_open();
            self.resize();
        }
        self.ring.push(first, x);
        let mut i = 0;
        while i < self.open.len() {
            if self.open[i].feed(first, x) {
                let clip = self.open.swap_remove(i);
                self.complete(clip);
            } else {
                i += 1;
            }
        }
    }

    /// A record on its way to the fan-out: an event gets the paths of its clip.
    pub fn on_record(&mut self, rec: Record) -> Record {
        match rec {
            Record::EventStart { .. } => self.start_record(rec),
            Record::EventEnd { .. } => self.end_record(rec),
            other => other,
        }
    }

    fn start_record(&mut self, mut rec: Record) -> Record {
        let Record::EventStart {
            id,
            label,
            group,
            start,
            time,
            clip,
            image,
            ..
        } = &mut rec
        else {
            return rec;
        };
        if let Some((c, i)) = self.begin(*id, label, group.as_deref(), *start, time) {
            *clip = Some(path_string(&c));
            *image = Some(path_string(&i));
        }
        rec
    }

    fn end_record(&mut self, mut rec: Record) -> Record {
        let name = rec.event_name().unwrap_or_default().to_owned();
        let Record::EventEnd {
            id,
            end,
            peak,
            clip,
            image,
            ..
        } = &mut rec
        else {
            return rec;
        };
        if let Some((c, i)) = self.end(*id, *end, *peak, name) {
            *clip = Some(path_string(&c));
            *image = Some(path_string(&i));
        }
        rec
    }

    /// Start gathering a clip for an event that began at stream second `start`.
    fn begin(
        &mut self,
        id: u64,
        label: &str,
        group: Option<&str>,
        start: f64,
        time: &str,
    ) -> Option<(PathBuf, PathBuf)> {
        if !self.active() || self.rate == 0 || !self.settings.wants(label, group) {
            return None;
        }
        let tap = self.tap.as_ref()?;
        if tap.shared.is_disabled() {
            tap.health.add("dropped", 1);
            return None;
        }
        let rate = self.rate as f64;
        let name = group.unwrap_or(label).to_owned();
        let ext = self.settings.format.extension();
        let stem = store::stem(time, &name, id);
        let dir = &self.settings.dir;
        let wanted = ((start - self.settings.pre_roll).max(0.0) * rate).round() as u64;
        let mut samples = Vec::new();
        let from = self.ring.copy_from(wanted, &mut samples);
        let until = from + (self.settings.max_length * rate).round() as u64;
        samples.truncate((until - from) as usize);
        let clip = OpenClip {
            id,
            path: dir.join(format!("{stem}.{ext}")),
            image: dir.join(format!("{stem}.png")),
            format: self.settings.format,
            time: time.to_owned(),
            event_start: start,
            event_end: None,
            name,
            peak: 0.0,
            from,
            samples,
            until,
            reserved: false,
        };
        let paths = (clip.path.clone(), clip.image.clone());
        self.open.push(clip);
        Some(paths)
    }

    /// The event `id` ended at stream second `end`: returns the clip's paths if it is (or
    /// will be, once its post-roll is in) queued for writing.
    fn end(&mut self, id: u64, end: f64, peak: f32, name: String) -> Option<(PathBuf, PathBuf)> {
        if let Some(at) = self.cut.iter().position(|(i, _)| *i == id) {
            return self.cut.swap_remove(at).1;
        }
        let at = self.open.iter().position(|c| c.id == id)?;
        let tap = self.tap.as_ref()?;
        let mut clip = self.open.swap_remove(at);
        if !tap.shared.reserve(self.settings.queue) {
            tap.health.add("dropped", 1);
            tracing::warn!(clip = %clip.path.display(), "clip queue full: clip dropped");
            return None;
        }
        let rate = self.rate as f64;
        let stop = ((end + self.settings.post_roll) * rate).round() as u64;
        clip.until = clip.until.min(stop.max(clip.from));
        clip.samples.truncate((clip.until - clip.from) as usize);
        clip.event_end = Some(end);
        clip.peak = peak;
        clip.name = name;
        clip.reserved = true;
        let paths = (clip.path.clone(), clip.image.clone());
        if clip.have() >= clip.until {
            // Complete already (no post-roll, or `hold` outlasted it).
            self.send(clip);
        } else {
            self.open.push(clip);
        }
        Some(paths)
    }

    /// A clip has all its samples (or can get no more).
    fn complete(&mut self, clip: OpenClip) {
        if clip.reserved {
            self.send(clip);
            return;
        }
        // Cut at `max_length` while the event goes on: queue it now if there is room.
        let Some(tap) = &self.tap else { return };
        let id = clip.id;
        if tap.shared.reserve(self.settings.queue) {
            let paths = (clip.path.clone(), clip.image.clone());
            self.send(clip);
            self.cut.push((id, Some(paths)));
        } else {
            tap.health.add("dropped", 1);
            self.cut.push((id, None));
        }
    }

    /// Hand a reserved clip to the writer.
    fn send(&mut self, clip: OpenClip) {
        let Some(tap) = &self.tap else { return };
        let rate = self.rate as f64;
        let offset = clip.from as f64 / rate;
        let end = clip.event_end.unwrap_or(clip.have() as f64 / rate);
        let job = ClipJob {
            path: clip.path,
            image: clip.image,
            format: clip.format,
            rate: self.rate,
            samples: clip.samples,
            name: clip.name,
            peak: clip.peak,
            event: (clip.event_start - offset, end - offset),
            time: clip.time,
        };
        if tap.jobs.try_send(job).is_err() {
            // Only if the writer is gone (the daemon is stopping after a sink failed).
            tap.shared.release();
            tap.health.add("dropped", 1);
        }
    }

    /// The consumer is done: clips whose event ended go to the writer with what they have.
    pub fn flush(&mut self) {
        for clip in std::mem::take(&mut self.open) {
            if clip.reserved {
                self.send(clip);
            }
        }
    }
}

fn path_string(p: &std::path::Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use tokio::sync::watch;

    use super::*;
    use crate::shutdown::Shutdown;
    use crate::sinks::Fanout;

    fn start(id: u64, at: f64) -> Record {
        Record::EventStart {
            id,
            label: "Dog".into(),
            group: None,
            start: at,
            time: "2026-11-27T03:12:00.123Z".into(),
            score: 0.8,
            clip: None,
            image: None,
        }
    }

    fn end(id: u64, from: f64, to: f64) -> Record {
        Record::EventEnd {
            id,
            label: "Dog".into(),
            group: None,
            start: from,
            end: to,
            time: "2026-11-27T03:12:01.123Z".into(),
            peak: 0.9,
            clip: None,
            image: None,
        }
    }

    fn clip_of(r: &Record) -> Option<&String> {
        match r {
            Record::EventStart { clip, .. } | Record::EventEnd { clip, .. } => clip.as_ref(),
            _ => None,
        }
    }

    #[test]
    fn a_clip_spans_pre_roll_to_post_roll_and_a_full_queue_drops_the_next() {
        let fanout = Fanout::new();
        let records = fanout.subscribe("clips", super::super::COUNTERS, &Shutdown::new());
        let settings = ClipsSettings {
            enabled: true,
            dir: "/clips".into(),
            pre_roll: 1.0,
            post_roll: 0.5,
            queue: 1,
            ..ClipsSettings::default()
        };
        let (jobs, rx) = mpsc::sync_channel(4);
        let tap = ClipTap {
            jobs,
            health: records.health().clone(),
            settings: watch::channel(settings).1,
            shared: Default::default(),
        };
        let mut r = Recorder::new(Some(tap), 1.0);
        let ramp: Vec<f32> = (0..3000).map(|i| i as f32).collect();
        r.captured(0, 1000, &ramp[..2000]);
        let s1 = r.on_record(start(1, 1.5));
        assert!(clip_of(&s1)
            .unwrap()
            .starts_with("/clips/20261127T031200.123Z-dog-1."));
        let s2 = r.on_record(start(2, 1.6));
        assert!(clip_of(&s2).is_some());
        r.captured(2000, 1000, &ramp[2000..2400]);
        let e1 = r.on_record(end(1, 1.5, 2.0));
        assert_eq!(
            clip_of(&e1),
            clip_of(&s1),
            "room reserved: event_end carries it"
        );
        assert!(rx.try_recv().is_err(), "it waits for its post-roll");
        let e2 = r.on_record(end(2, 1.6, 2.1));
        assert_eq!(clip_of(&e2), None, "the queue of 1 is full");
        assert_eq!(records.health().get("dropped"), 1);
        r.captured(2400, 1000, &ramp[2400..]);
        let job = rx.try_recv().expect("complete at end + post_roll");
        assert_eq!(
            job.samples,
            ramp[500..2500],
            "pre_roll before the start to post_roll after the end"
        );
        assert_eq!(job.event, (1.0, 1.5));
    }
}
