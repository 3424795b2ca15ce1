//! The thread a file or reader source runs on: its stop signal, the guard that stops it when
//! the [`Capture`] is dropped, and the pacing helpers its body uses.
//!
//! A device's stream thread uses the same guard; its callback never touches anything here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::ring::{ring_capacity, RingSink};
use super::{Capture, CaptureError, Result};

/// File and reader sources push in blocks of this length, like a device with 10 ms periods,
/// so the consumer sees the same granularity whatever the source.
const CHUNK: Duration = Duration::from_millis(10);

/// How long a lossless (non-realtime) source waits before retrying when the ring is full. Short
/// enough not to starve a fast consumer, long enough not to spin.
const FULL_RING_BACKOFF: Duration = Duration::from_millis(2);

/// How long dropping a `Capture` waits for its thread.
const WORKER_JOIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Tells a source's thread that its [`Capture`] was dropped.
#[derive(Debug, Clone)]
pub struct StopSignal(Arc<AtomicBool>);

impl StopSignal {
    /// A signal not yet raised.
    pub(super) fn new() -> StopSignal {
        StopSignal(Arc::new(AtomicBool::new(false)))
    }

    /// True once the consumer has dropped the [`Capture`].
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Sleeps until `deadline`; returns `false` as soon as a stop is requested instead.
    /// Must be called on the source's own thread: the guard unparks that thread on stop, so a
    /// stop never waits out the sleep.
    pub fn sleep_until(&self, deadline: Instant) -> bool {
        loop {
            if self.is_requested() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            thread::park_timeout(deadline - now);
        }
    }
}

/// What dropping a [`Capture`] does with its source's thread once it has signalled the stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// Wait (a bounded time) for the thread to finish.
    Join,
    /// Do not wait: for threads that may sit in a `read()` nothing can interrupt (stdin), which
    /// could hang shutdown. They exit after their next read returns.
    Detach,
}

/// Stops a source's thread when the [`Capture`] goes away.
pub(super) struct Worker {
    stop: StopSignal,
    handle: Option<JoinHandle<()>>,
    on_drop: OnDrop,
}

impl Worker {
    pub(super) fn new(stop: StopSignal, handle: JoinHandle<()>, on_drop: OnDrop) -> Worker {
        Worker {
            stop,
            handle: Some(handle),
            on_drop,
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.0.store(true, Ordering::Release);
        if let Some(handle) = self.handle.take() {
            handle.thread().unpark();
            if self.on_drop == OnDrop::Join {
                // A device thread can hang in the driver while it drops its stream (a killed
                // sound server leaves alsa-lib's pulse plugin waiting on a lock forever). Wait
                // a bounded time, then leave it: shutdown and reopening must not hang on it.
                let deadline = Instant::now() + WORKER_JOIN_TIMEOUT;
                while !handle.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if handle.is_finished() {
                    // A panic in the worker has already been printed by the panic hook.
                    let _ = handle.join();
                } else {
                    tracing::warn!("capture thread did not stop in time; leaving it behind");
                }
            }
        }
    }
}

impl Capture {
    /// Runs `body` on a thread of its own, handing it the write end of a new ring of
    /// `ring_capacity_seconds` at `sample_rate`. Dropping the returned `Capture` signals the
    /// stop and, with [`OnDrop::Join`], joins the thread, so `body` must check the signal (or
    /// use [`StopSignal::sleep_until`]) while it waits. The building block for sources that
    /// are not driven by a device callback.
    pub fn spawn<F>(
        name: String,
        sample_rate: u32,
        ring_capacity_seconds: f32,
        on_drop: OnDrop,
        body: F,
    ) -> Result<Capture>
    where
        F: FnOnce(RingSink, StopSignal) + Send + 'static,
    {
        let capacity = ring_capacity(ring_capacity_seconds, sample_rate)?;
        let (sink, consumer, arrivals) = RingSink::new(capacity);
        let stats = Arc::clone(sink.stats());
        let stop = StopSignal::new();
        let thread_stop = stop.clone();
        let handle = thread::Builder::new()
            .name("hark-capture".into())
            .spawn(move || body(sink, thread_stop))
            .map_err(|source| CaptureError::Spawn {
                what: name.clone(),
                source,
            })?;
        Ok(Capture {
            consumer,
            arrivals,
            stats,
            sample_rate,
            name,
            _worker: Worker::new(stop, handle, on_drop),
        })
    }
}

/// Samples in one 10 ms block at `sample_rate` (at least one).
pub(super) fn chunk_frames(sample_rate: u32) -> usize {
    ((u128::from(sample_rate) * CHUNK.as_millis() / 1000) as usize).max(1)
}

/// Pushes all of `samples`, waiting while the ring is full; false if stopped first.
pub(super) fn push_all(sink: &mut RingSink, mut samples: &[f32], stop: &StopSignal) -> bool {
    loop {
        samples = &samples[sink.push_some(samples)..];
        if samples.is_empty() {
            return true;
        }
        if !stop.sleep_until(Instant::now() + FULL_RING_BACKOFF) {
            return false;
        }
    }
}

/// Waits until the source reports its end, draining the ring into `out` meanwhile.
#[cfg(test)]
pub(super) fn drain_until_ended(capture: &mut Capture, out: &mut Vec<f32>) {
    use ringbuf::traits::{Consumer, Observer};
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut block = [0.0f32; 512];
    loop {
        let ended = capture.stats.ended.load(Ordering::Acquire);
        let n = capture.consumer.pop_slice(&mut block);
        out.extend_from_slice(&block[..n]);
        if ended && capture.consumer.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "source did not end");
        if n == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_source_stops_when_the_capture_is_dropped() {
        let capture = Capture::spawn(
            "forever".into(),
            1000,
            0.01,
            OnDrop::Join,
            |mut sink, stop| {
                // A source that never ends on its own, blocked on a full ring.
                let block = [0.0f32; 10];
                while push_all(&mut sink, &block, &stop) {}
            },
        )
        .unwrap();
        thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        drop(capture);
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
