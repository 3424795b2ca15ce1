//! The service layer: systemd's notify protocol (READY, STATUS, STOPPING, WATCHDOG).
//!
//! Everything here is a no-op when hark does not run under systemd (no `NOTIFY_SOCKET`).
//! Watchdog pings come from the consumer loop itself, so a wedged pipeline stops pinging and
//! systemd restarts the service after `WatchdogSec`.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Tell systemd the daemon is ready (model loaded, capture started).
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tell systemd the daemon is stopping.
pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// Set the status line `systemctl status` shows.
pub fn status(line: &str) {
    notify(&[NotifyState::Status(line)]);
}

fn notify(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!(error = %e, "sd_notify failed");
    }
}

/// Pings systemd's watchdog from the consumer loop, at half the configured interval.
#[derive(Debug)]
pub struct Watchdog {
    interval: Option<Duration>,
    last: Instant,
}

impl Watchdog {
    /// Reads `WATCHDOG_USEC` (set by systemd when `WatchdogSec` is on).
    pub fn from_env() -> Watchdog {
        let mut usec = 0u64;
        let enabled = sd_notify::watchdog_enabled(false, &mut usec);
        Watchdog {
            interval: (enabled && usec > 0).then(|| Duration::from_micros(usec / 2)),
            last: Instant::now(),
        }
    }
}

impl crate::pipeline::Supervisor for Watchdog {
    fn tick(&mut self) {
        if let Some(every) = self.interval {
            if self.last.elapsed() >= every {
                self.last = Instant::now();
                notify(&[NotifyState::Watchdog]);
            }
        }
    }
}
