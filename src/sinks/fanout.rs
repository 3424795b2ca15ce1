//! The one fan-out every sink reads: a bounded broadcast the consumer publishes into without
//! ever waiting, and each sink's health counters.
//!
//! Architecture invariant: [`Fanout::publish`] never blocks on a sink and never fails the
//! consumer. A sink that falls more than [`CAPACITY`] records behind loses the oldest ones;
//! its `lagged` counter says how many.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::broadcast;

use crate::record::{Record, SinksHealth};
use crate::shutdown::Shutdown;

/// Records a sink may fall behind before it loses the oldest: at two records per half-second
/// window that is minutes of events, far beyond any healthy sink's delay.
pub const CAPACITY: usize = 1024;

/// After a stop is asked for, how long a sink keeps taking records the consumer is still
/// sending (the window in flight, the closing events, the final status) before it gives up.
const DRAIN: Duration = Duration::from_secs(5);

/// The publishing side, held by the consumer thread (and the daemon until it stops). The
/// broadcast closes, and every sink drains and ends, once every clone is dropped.
#[derive(Clone)]
pub struct Fanout {
    tx: broadcast::Sender<Arc<Record>>,
    board: Arc<Mutex<Vec<Arc<SinkHealth>>>>,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout::new()
    }
}

impl Fanout {
    pub fn new() -> Fanout {
        Fanout {
            tx: broadcast::channel(CAPACITY).0,
            board: Arc::default(),
        }
    }

    /// A receiver for a new sink called `name`, with its health counters (`lagged` plus the
    /// sink's own `counters`). Records published before this call are not seen.
    pub fn subscribe(&self, name: &str, counters: &[&'static str], shutdown: &Shutdown) -> Records {
        let health = Arc::new(SinkHealth::new(name, counters));
        self.board
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(health.clone());
        Records {
            rx: self.tx.subscribe(),
            fault: fault_panic_for(name),
            health,
            shutdown: shutdown.clone(),
            draining: None,
        }
    }

    /// Hand `rec` to every sink. Never waits. A `status` record gets every sink's health.
    pub fn publish(&self, mut rec: Record) {
        if let Record::Status { sinks, .. } = &mut rec {
            *sinks = Some(self.health());
        }
        // No receiver (no sink running) is not an error.
        let _ = self.tx.send(Arc::new(rec));
    }

    /// Every sink's counters now.
    pub fn health(&self) -> SinksHealth {
        let board = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        board
            .iter()
            .map(|h| (h.name.clone(), h.snapshot()))
            .collect()
    }
}

/// A sink's health: named counters it updates and `status` records report.
#[derive(Debug)]
pub struct SinkHealth {
    name: String,
    counters: Box<[(&'static str, AtomicU64)]>,
}

impl SinkHealth {
    pub(crate) fn new(name: &str, counters: &[&'static str]) -> SinkHealth {
        let mut all = vec![("lagged", AtomicU64::new(0))];
        all.extend(counters.iter().map(|c| (*c, AtomicU64::new(0))));
        SinkHealth {
            name: name.into(),
            counters: all.into(),
        }
    }

    fn counter(&self, key: &str) -> &AtomicU64 {
        let found = self.counters.iter().find(|(k, _)| *k == key);
        &found
            .unwrap_or_else(|| panic!("sink {} has no counter {key}", self.name))
            .1
    }

    /// Add `n` to counter `key` (declared when the sink subscribed).
    pub fn add(&self, key: &str, n: u64) {
        self.counter(key).fetch_add(n, Ordering::Relaxed);
    }

    /// Set gauge `key`.
    pub fn set(&self, key: &str, v: u64) {
        self.counter(key).store(v, Ordering::Relaxed);
    }

    pub fn get(&self, key: &str) -> u64 {
        self.counter(key).load(Ordering::Relaxed)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        self.counters
            .iter()
            .map(|(k, v)| (k.to_string(), v.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Fault injection for tests: `HARK_FAULT_PANIC=<part>` makes that part of the daemon panic
/// (a sink at its first record: `socket`, `hooks`, `mqtt`, `stdout`; or `consumer`, before its
/// first window), so tests can watch a panic end the daemon. Never set in production.
pub const FAULT_PANIC: &str = "HARK_FAULT_PANIC";

/// Whether [`FAULT_PANIC`] names `part`.
pub fn fault_panic_for(part: &str) -> bool {
    std::env::var(FAULT_PANIC).is_ok_and(|v| v == part)
}

/// A sink's receiving end: records in order until the consumer is done (every publisher
/// dropped) or, after a stop was asked for, until the drain time runs out.
pub struct Records {
    rx: broadcast::Receiver<Arc<Record>>,
    /// Test-only fault injection: panic in the sink at its first record ([`FAULT_PANIC`]).
    fault: bool,
    health: Arc<SinkHealth>,
    shutdown: Shutdown,
    draining: Option<tokio::time::Instant>,
}

impl Records {
    pub fn health(&self) -> &Arc<SinkHealth> {
        &self.health
    }

    /// The next record; None when the sink should end.
    pub async fn next(&mut self) -> Option<Arc<Record>> {
        loop {
            let got = match self.draining {
                None => tokio::select! {
                    r = self.rx.recv() => r,
                    () = self.shutdown.wait() => {
                        self.draining = Some(tokio::time::Instant::now() + DRAIN);
                        continue;
                    }
                },
                Some(until) => match tokio::time::timeout_at(until, self.rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return None,
                },
            };
            if let Some(rec) = self.take(got) {
                return rec;
            }
        }
    }

    /// The next record, for a sink on its own thread. Ends only when every publisher is gone.
    pub fn next_blocking(&mut self) -> Option<Arc<Record>> {
        loop {
            let got = self.rx.blocking_recv();
            if let Some(rec) = self.take(got) {
                return rec;
            }
        }
    }

    /// Some(record), Some(None) at the end, None after counting a lag.
    fn take(
        &self,
        got: Result<Arc<Record>, broadcast::error::RecvError>,
    ) -> Option<Option<Arc<Record>>> {
        match got {
            Ok(_) if self.fault => panic!(
                "{FAULT_PANIC}: injected panic in the {} sink",
                self.health.name
            ),
            Ok(rec) => Some(Some(rec)),
            Err(broadcast::error::RecvError::Closed) => Some(None),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.health.add("lagged", n);
                tracing::warn!(sink = %self.health.name, lost = n, "sink fell behind the fan-out; records lost");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Record {
        Record::Status {
            start: 0.0,
            time: String::new(),
            overruns: 0,
            windows: 0,
            skipped_windows: 0,
            inference_ms: 0.0,
            level_db: 0.0,
            message: None,
            sinks: None,
        }
    }

    #[tokio::test]
    async fn every_sink_gets_every_record_in_order_then_the_end() {
        let fanout = Fanout::new();
        let stop = Shutdown::new();
        let mut a = fanout.subscribe("a", &[], &stop);
        let mut b = fanout.subscribe("b", &["runs"], &stop);
        b.health().add("runs", 2);
        fanout.publish(status());
        fanout.publish(status());
        drop(fanout);
        for rx in [&mut a, &mut b] {
            let first = rx.next().await.expect("first");
            let Record::Status { sinks, .. } = &*first else {
                panic!("status")
            };
            assert_eq!(sinks.as_ref().unwrap()["b"]["runs"], 2);
            assert_eq!(sinks.as_ref().unwrap()["a"]["lagged"], 0);
            assert!(rx.next().await.is_some());
            assert!(
                rx.next().await.is_none(),
                "closed once every publisher is gone"
            );
        }
    }

    #[tokio::test]
    async fn a_sink_that_falls_behind_loses_the_oldest_and_counts_them() {
        let fanout = Fanout::new();
        let stop = Shutdown::new();
        let mut slow = fanout.subscribe("slow", &[], &stop);
        for _ in 0..CAPACITY + 10 {
            fanout.publish(status());
        }
        assert!(slow.next().await.is_some());
        assert_eq!(slow.health().get("lagged"), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_stop_a_sink_drains_then_ends_even_if_the_consumer_never_closes() {
        let fanout = Fanout::new();
        let stop = Shutdown::new();
        let mut rx = fanout.subscribe("s", &[], &stop);
        fanout.publish(status());
        stop.trigger();
        assert!(
            rx.next().await.is_some(),
            "what was sent is still delivered"
        );
        assert!(
            rx.next().await.is_none(),
            "then it ends after the drain time"
        );
        drop(fanout);
    }
}
