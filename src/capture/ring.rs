//! The ring's write end: what every source pushes into, with the arrival marks that let the
//! consumer tell when a window's audio came in.
//!
//! Everything here may run in the device callback: a push never allocates, locks, blocks or
//! logs; it bumps the atomics of [`CaptureStats`] and reads the vDSO clock.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ringbuf::traits::{Observer, Producer, Split};
use ringbuf::{HeapCons, HeapProd, HeapRb};

use super::{CaptureError, CaptureStats, Result};

/// The write end a source pushes into: the ring's producer and the shared counters.
pub struct RingSink {
    producer: HeapProd<f32>,
    stats: Arc<CaptureStats>,
    /// When samples entered the ring, for the consumer's latency figures.
    arrivals: HeapProd<Arrival>,
    /// Samples pushed so far (the producer's own count; `stats.delivered` is for others).
    pushed: u64,
}

/// When a push put samples into the capture ring: after it, the ring had received `end`
/// samples in all, and the wall clock read `wall_us` microseconds since the Unix epoch.
/// The consumer maps a window's newest sample to the push that brought it, so a prediction can
/// carry the time its audio arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub end: u64,
    pub wall_us: u64,
}

/// Arrival marks the ring keeps for the consumer: about 2.5 s of 10 ms device periods. When
/// the consumer does not drain them (it is rebuilding), newer marks are dropped, never samples.
const ARRIVAL_MARKS: usize = 256;

impl RingSink {
    /// A ring holding `capacity_samples` mono samples (at least one), split into this sink
    /// and the consumer's end.
    pub fn new(capacity_samples: usize) -> (RingSink, HeapCons<f32>, HeapCons<Arrival>) {
        let (producer, consumer) = HeapRb::<f32>::new(capacity_samples.max(1)).split();
        let (arrivals, arrivals_consumer) = HeapRb::<Arrival>::new(ARRIVAL_MARKS).split();
        let sink = RingSink {
            producer,
            stats: Arc::new(CaptureStats::default()),
            arrivals,
            pushed: 0,
        };
        (sink, consumer, arrivals_consumer)
    }

    /// The counters this sink updates, to hand to the consumer.
    pub fn stats(&self) -> &Arc<CaptureStats> {
        &self.stats
    }

    /// Pushes what fits and counts the rest as overruns, as a device does when nobody keeps up.
    /// Returns how many samples went in. Never allocates, locks, blocks or logs, so it is safe
    /// in an audio callback.
    #[inline]
    pub fn push(&mut self, mono: &[f32]) -> usize {
        let pushed = self.push_some(mono);
        let lost = mono.len() - pushed;
        if lost > 0 {
            self.stats
                .overruns
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        pushed
    }

    /// Pushes what fits and returns how many samples went in; the rest is the caller's to
    /// retry and is not counted as an overrun. For lossless sources that may wait.
    #[inline]
    pub fn push_some(&mut self, mono: &[f32]) -> usize {
        let pushed = self.producer.push_slice(mono);
        if pushed > 0 {
            self.stats
                .delivered
                .fetch_add(pushed as u64, Ordering::Relaxed);
            self.pushed += pushed as u64;
            // The realtime clock is a vDSO read: no syscall, lock or allocation.
            let wall_us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64);
            let _ = self.arrivals.try_push(Arrival {
                end: self.pushed,
                wall_us,
            });
        }
        pushed
    }

    /// Free room in the ring, in samples.
    pub fn vacant(&self) -> usize {
        self.producer.vacant_len()
    }
}

/// Samples in a ring of `seconds` at `sample_rate` (at least one); an error for a length that
/// is not a positive, finite number of seconds.
pub(super) fn ring_capacity(seconds: f32, sample_rate: u32) -> Result<usize> {
    if !(seconds.is_finite() && seconds > 0.0) {
        return Err(CaptureError::RingCapacity(seconds));
    }
    // Rounded, not ceiled: 0.1_f32 is a hair above 0.1, and 0.1 s at 16 kHz should be 1600.
    Ok((f64::from(seconds) * f64::from(sample_rate))
        .round()
        .max(1.0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringbuf::traits::Consumer;

    #[test]
    fn push_counts_what_does_not_fit_as_overruns() {
        let (mut sink, mut consumer, _arrivals) = RingSink::new(4);
        assert_eq!(sink.push(&[1.0, 2.0, 3.0]), 3);
        assert_eq!(sink.push(&[4.0, 5.0, 6.0]), 1);
        let stats = sink.stats();
        assert_eq!(stats.delivered.load(Ordering::Relaxed), 4);
        assert_eq!(stats.overruns.load(Ordering::Relaxed), 2);
        let mut out = [0.0; 8];
        assert_eq!(consumer.pop_slice(&mut out), 4);
        assert_eq!(&out[..4], &[1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn push_some_leaves_the_rest_uncounted() {
        let (mut sink, _consumer, _arrivals) = RingSink::new(2);
        assert_eq!(sink.push_some(&[1.0, 2.0, 3.0]), 2);
        assert_eq!(sink.stats().overruns.load(Ordering::Relaxed), 0);
        assert_eq!(sink.vacant(), 0);
    }

    #[test]
    fn ring_capacity_rejects_nonsense_and_rounds_to_whole_samples() {
        assert!(matches!(
            ring_capacity(0.0, 48000),
            Err(CaptureError::RingCapacity(_))
        ));
        assert!(ring_capacity(f32::NAN, 48000).is_err());
        assert!(ring_capacity(-1.0, 48000).is_err());
        assert_eq!(ring_capacity(0.5, 48000).unwrap(), 24000);
        assert_eq!(ring_capacity(0.1, 16000).unwrap(), 1600);
        assert_eq!(ring_capacity(1e-9, 48000).unwrap(), 1);
    }
}
