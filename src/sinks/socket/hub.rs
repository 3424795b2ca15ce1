//! The hub: each subscriber's filter and bounded queue. Publishing serializes a record once
//! and offers the line to every interested queue; a full queue drops and counts.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

use crate::record::Record;

use super::protocol::*;
use super::*;
use crate::sinks::SinkHealth;

/// One item of a subscriber's queue.
pub(super) enum Out {
    Line(Arc<str>),
    /// This many records were dropped here because the queue was full.
    Dropped(u64),
}

/// A subscriber's queue: at most `cap` records. Records that do not fit are counted in
/// `dropped`, which stays above zero only while the queue is full, so the gap always comes
/// after everything queued. Allocated with room for the marker `take` appends, so neither
/// side ever reallocates.
pub(super) struct Queue {
    pub(super) items: VecDeque<Out>,
    /// Records dropped since the writer last took the queue.
    pub(super) dropped: u64,
}

pub(super) struct Outbox {
    pub(super) queue: Mutex<Queue>,
    pub(super) ready: Notify,
}

impl Outbox {
    /// Queue `line`; false if the queue was full and it was dropped (and counted).
    pub(super) fn push(&self, line: &Arc<str>, cap: usize) -> bool {
        {
            let mut q = lock(&self.queue);
            if q.items.len() >= cap {
                q.dropped += 1;
                return false;
            }
            q.items.push_back(Out::Line(line.clone()));
        }
        self.ready.notify_one();
        true
    }

    /// Swaps the queued items into `into`, which must be empty (and has the same capacity,
    /// so neither side ever allocates). Records dropped after the last queued one are
    /// reported at the end at once, rather than with the next record.
    pub(super) fn take(&self, into: &mut VecDeque<Out>) {
        debug_assert!(into.is_empty());
        let mut q = lock(&self.queue);
        std::mem::swap(&mut q.items, into);
        if q.dropped > 0 {
            into.push_back(Out::Dropped(std::mem::take(&mut q.dropped)));
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The data under these locks stays consistent even if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct Subscriber {
    pub(super) id: u64,
    pub(super) filter: Filter,
    pub(super) outbox: Arc<Outbox>,
}

pub(super) struct HubState {
    pub(super) hello: Arc<str>,
    pub(super) labels: Arc<[String]>,
    pub(super) next_id: u64,
    pub(super) subscribers: Vec<Subscriber>,
}

pub(super) struct Shared {
    pub(super) state: Mutex<HubState>,
    pub(super) queue: usize,
    pub(super) max_subscribers: usize,
    /// Records dropped from full queues, all subscribers together.
    pub(super) dropped: AtomicU64,
    /// The sink's health, kept current as subscribers come and go and records drop.
    pub(super) health: Option<Arc<SinkHealth>>,
}

/// The pipeline's handle on the subscribers: cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct Hub {
    pub(super) shared: Arc<Shared>,
}

impl Hub {
    /// A hub with no subscribers yet. `settings` gives the per-subscriber queue length and
    /// the subscriber cap.
    pub fn new(hello: Hello, settings: &SocketSettings) -> Hub {
        Hub::with_health(hello, settings, None)
    }

    /// A hub that keeps `health`'s `subscribers` and `dropped` current.
    pub fn with_health(
        hello: Hello,
        settings: &SocketSettings,
        health: Option<Arc<SinkHealth>>,
    ) -> Hub {
        Hub {
            shared: Arc::new(Shared {
                state: Mutex::new(HubState {
                    hello: hello.line(),
                    labels: hello.names(),
                    next_id: 0,
                    subscribers: Vec::new(),
                }),
                queue: settings.queue.max(1),
                max_subscribers: settings.max_subscribers.max(1),
                dropped: AtomicU64::new(0),
                health,
            }),
        }
    }

    /// Hands `rec` to every subscriber that wants it. Never blocks: the record is serialized
    /// once (only if someone wants it) and queued; a subscriber whose queue is full loses it
    /// and is told how many it lost once it catches up.
    pub fn publish(&self, rec: &Record) {
        let Some(bit) = kind_bit(rec.kind()) else {
            return;
        };
        let (label, group) = (rec.label(), rec.group());
        let state = lock(&self.shared.state);
        if !state
            .subscribers
            .iter()
            .any(|s| s.filter.wants(bit, label, group))
        {
            return;
        }
        let mut json = rec.to_json();
        json.push('\n');
        let line: Arc<str> = json.into();
        for s in state
            .subscribers
            .iter()
            .filter(|s| s.filter.wants(bit, label, group))
        {
            if !s.outbox.push(&line, self.shared.queue) {
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(h) = &self.shared.health {
                    h.set("dropped", dropped);
                }
            }
        }
    }

    /// Records dropped from full subscriber queues so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Subscribers connected now.
    pub fn subscriber_count(&self) -> usize {
        lock(&self.shared.state).subscribers.len()
    }

    /// Replaces the hello (the pipeline was rebuilt with another model). New connections get
    /// the new one; connected subscribers get it too, in order with the records.
    pub fn set_hello(&self, hello: Hello) {
        let line = hello.line();
        let mut state = lock(&self.shared.state);
        state.hello = line.clone();
        state.labels = hello.names();
        for s in &state.subscribers {
            s.outbox.push(&line, self.shared.queue);
        }
    }

    fn count_subscribers(&self, n: usize) {
        if let Some(h) = &self.shared.health {
            h.set("subscribers", n as u64);
        }
    }

    pub(super) fn register(&self) -> Registration {
        let outbox = Arc::new(Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(self.shared.queue + 1),
                dropped: 0,
            }),
            ready: Notify::new(),
        });
        let mut state = lock(&self.shared.state);
        let id = state.next_id;
        state.next_id += 1;
        state.subscribers.push(Subscriber {
            id,
            filter: Filter::default(),
            outbox: outbox.clone(),
        });
        self.count_subscribers(state.subscribers.len());
        Registration {
            hub: self.clone(),
            id,
            outbox,
            hello: state.hello.clone(),
        }
    }
}

/// A connected subscriber's entry in the hub; dropping it removes the subscriber at once.
pub(super) struct Registration {
    pub(super) hub: Hub,
    pub(super) id: u64,
    pub(super) outbox: Arc<Outbox>,
    pub(super) hello: Arc<str>,
}

impl Registration {
    /// Applies a request line. Returns the reply line.
    pub(super) fn request(&self, line: &[u8]) -> Option<String> {
        let mut state = lock(&self.hub.shared.state);
        let labels = state.labels.clone();
        let me = state.subscribers.iter_mut().find(|s| s.id == self.id)?;
        match parse_request(line, &me.filter, &labels) {
            Ok(None) => None,
            Ok(Some(filter)) => {
                me.filter = filter;
                Some(
                    ControlLine::Subscribed {
                        subscribe: me.filter.kind_names(),
                        labels: &me.filter.labels,
                    }
                    .line(),
                )
            }
            Err(message) => Some(ControlLine::Error { message: &message }.line()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut state = lock(&self.hub.shared.state);
        state.subscribers.retain(|s| s.id != self.id);
        self.hub.count_subscribers(state.subscribers.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_queue_drops_and_reports_the_gap_when_taken() {
        let outbox = Outbox {
            queue: Mutex::new(Queue {
                items: VecDeque::with_capacity(3),
                dropped: 0,
            }),
            ready: Notify::new(),
        };
        let line: Arc<str> = "x\n".into();
        for _ in 0..5 {
            outbox.push(&line, 2);
        }
        let mut batch = VecDeque::with_capacity(3);
        outbox.take(&mut batch);
        assert_eq!(batch.len(), 3);
        assert!(matches!(batch[0], Out::Line(_)));
        assert!(matches!(batch[1], Out::Line(_)));
        assert!(matches!(batch[2], Out::Dropped(3)));
        batch.clear();
        outbox.push(&line, 2);
        outbox.take(&mut batch);
        assert_eq!(batch.len(), 1);
        assert!(matches!(batch[0], Out::Line(_)));
    }
}
