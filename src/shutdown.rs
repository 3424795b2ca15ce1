//! One way to stop: a [`Shutdown`] is handed to everything that must stop (the consumer
//! thread, every sink task, the signal handler, the idle wait after a file ends), and
//! triggering any clone stops them all.
//!
//! Threads poll [`Shutdown::is_triggered`] (an atomic load) or sleep with
//! [`Shutdown::sleep`]; tokio tasks `select!` on [`Shutdown::wait`]. Triggering is
//! idempotent and never blocks. Modelled on mini-redis's `Shutdown`, but one type serves
//! threads and tasks alike.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A cheap, clonable stop signal shared by threads and tasks.
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// For threads: one atomic load per check.
    flag: AtomicBool,
    /// For tasks: woken once when the flag is set.
    notify: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown {
            inner: Arc::new(Inner {
                flag: AtomicBool::new(false),
                notify: watch::channel(false).0,
            }),
        }
    }

    /// Ask everything holding a clone to stop. Safe to call from any thread, any number of
    /// times.
    pub fn trigger(&self) {
        self.inner.flag.store(true, Ordering::Release);
        self.inner.notify.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.inner.flag.load(Ordering::Acquire)
    }

    /// Resolves once a stop was asked for (at once if it already was).
    pub async fn wait(&self) {
        let mut rx = self.inner.notify.subscribe();
        // The sender lives in `self`, so `wait_for` can only end by seeing `true`.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Sleep on a thread for `d`, waking early on a stop; calls `tick` every `step` (to keep a
    /// watchdog fed). Returns true if a stop was asked for.
    pub fn sleep(&self, d: Duration, step: Duration, tick: &mut dyn FnMut()) -> bool {
        let until = Instant::now() + d;
        loop {
            if self.is_triggered() {
                return true;
            }
            let now = Instant::now();
            if now >= until {
                return false;
            }
            tick();
            std::thread::sleep(step.min(until - now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_reaches_every_clone_on_threads() {
        let s = Shutdown::new();
        let c = s.clone();
        let t = std::thread::spawn(move || {
            c.sleep(
                Duration::from_secs(30),
                Duration::from_millis(5),
                &mut || {},
            )
        });
        assert!(!s.is_triggered());
        s.trigger();
        s.trigger();
        assert!(t.join().unwrap(), "the sleeper saw the stop");
        assert!(!Shutdown::new().sleep(
            Duration::from_millis(10),
            Duration::from_millis(5),
            &mut || {}
        ));
    }

    #[tokio::test]
    async fn a_trigger_wakes_waiting_tasks_and_later_waits_end_at_once() {
        let s = Shutdown::new();
        let c = s.clone();
        let task = tokio::spawn(async move { c.wait().await });
        tokio::task::yield_now().await;
        s.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("woken")
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), s.wait())
            .await
            .expect("already triggered");
    }
}
