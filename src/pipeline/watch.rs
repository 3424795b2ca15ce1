//! What the consumer watches besides the audio itself: when samples entered the ring
//! (arrival marks, for latency) and whether the capture has gone silent.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use ringbuf::traits::Consumer as _;

use crate::capture::Arrival;

/// The capture's arrival marks the consumer has taken from the ring and still needs.
#[derive(Debug)]
pub(crate) struct Arrivals {
    marks: VecDeque<Arrival>,
}

impl Default for Arrivals {
    fn default() -> Self {
        // Room for every mark the ring can hold, so taking them never reallocates.
        Arrivals {
            marks: VecDeque::with_capacity(512),
        }
    }
}

impl Arrivals {
    /// Move the ring's new marks here, forgetting the oldest ones if there is no room.
    pub(crate) fn take(&mut self, ring: &mut ringbuf::HeapCons<Arrival>) {
        while let Some(mark) = ring.try_pop() {
            if self.marks.len() == self.marks.capacity() {
                self.marks.pop_front();
            }
            self.marks.push_back(mark);
        }
    }

    /// Wall-clock microseconds at which capture sample number `sample` (1-based count of
    /// samples the ring received) arrived; marks before it are dropped, as later windows end
    /// later. None when no mark covers it (a zero-padded tail, or marks that were dropped).
    pub(crate) fn at(&mut self, sample: u64) -> Option<u64> {
        while self.marks.front().is_some_and(|m| m.end < sample) {
            self.marks.pop_front();
        }
        self.marks.front().map(|m| m.wall_us)
    }
}

/// Reports a capture that delivers no samples, or only exact digital silence, for too long.
#[derive(Debug)]
pub(crate) struct SilenceWatch {
    timeout: Option<Duration>,
    pub(crate) last_sample: Instant,
    last_sound: Instant,
    reported: bool,
}

impl SilenceWatch {
    pub(crate) fn new(timeout: Option<f64>) -> SilenceWatch {
        SilenceWatch {
            timeout: timeout.map(Duration::from_secs_f64),
            last_sample: Instant::now(),
            last_sound: Instant::now(),
            reported: false,
        }
    }

    pub(crate) fn saw(&mut self, x: &[f32]) {
        let now = Instant::now();
        self.last_sample = now;
        if x.iter().any(|v| *v != 0.0) {
            self.last_sound = now;
            self.reported = false;
        }
    }

    /// A message once per episode of no samples or digital silence.
    pub(crate) fn check(&mut self) -> Option<String> {
        let timeout = self.timeout?;
        if self.reported {
            return None;
        }
        let msg = if self.last_sample.elapsed() >= timeout {
            format!(
                "no samples from the capture device for {} s",
                timeout.as_secs_f64()
            )
        } else if self.last_sound.elapsed() >= timeout {
            format!(
                "the capture device delivered only digital silence (exact zeros) for {} s; is it muted or disconnected?",
                timeout.as_secs_f64()
            )
        } else {
            return None;
        };
        self.reported = true;
        Some(msg)
    }
}
