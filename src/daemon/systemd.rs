//! The service layer: systemd's notify protocol (READY, STATUS, STOPPING, WATCHDOG).
//!
//! Everything here is a no-op when hark does not run under systemd (no `NOTIFY_SOCKET`).
//! Watchdog pings come from the consumer loop itself, so a wedged pipeline stops pinging and
//! systemd restarts the service after `WatchdogSec`.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::pipeline::tap::Heartbeat;

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

/// What the daemon's consumer loop calls between windows: the watchdog, and in tests of the
/// service layer an injected stall.
#[derive(Debug)]
pub struct DaemonSupervisor {
    watchdog: Watchdog,
    stall: Option<Stall>,
    /// `HARK_FAULT_PANIC=consumer`: panic before the first window.
    panic: bool,
    /// Beats with every watchdog tick, for `/healthz` (the web sink).
    heartbeat: Option<Heartbeat>,
}

impl DaemonSupervisor {
    pub fn from_env() -> DaemonSupervisor {
        DaemonSupervisor {
            watchdog: Watchdog::from_env(),
            stall: Stall::from_env(),
            panic: crate::sinks::fault_panic_for("consumer"),
            heartbeat: None,
        }
    }

    /// Also beat `heartbeat` whenever the watchdog is fed.
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> DaemonSupervisor {
        self.heartbeat = Some(heartbeat);
        self
    }
}

impl crate::pipeline::Supervisor for DaemonSupervisor {
    fn tick(&mut self) {
        self.watchdog.tick();
        if let Some(h) = &self.heartbeat {
            h.beat();
        }
    }

    fn before_window(&mut self, windows: u64) {
        if self.panic {
            panic!(
                "{}: injected panic in the consumer",
                crate::sinks::FAULT_PANIC
            );
        }
        if let Some(stall) = self.stall.filter(|s| s.after_windows == windows) {
            tracing::warn!(
                seconds = stall.seconds,
                "HARK_FAULT_STALL: wedging the consumer"
            );
            std::thread::sleep(Duration::from_secs_f64(stall.seconds));
        }
    }
}

/// Fault injection: `HARK_FAULT_STALL=N:SECONDS` wedges the consumer for SECONDS before its
/// window N, so tests can watch systemd's watchdog pings stop. Never set in production.
#[derive(Debug, Clone, Copy)]
struct Stall {
    after_windows: u64,
    seconds: f64,
}

impl Stall {
    fn from_env() -> Option<Stall> {
        let v = std::env::var("HARK_FAULT_STALL").ok()?;
        let (n, s) = v.split_once(':')?;
        Some(Stall {
            after_windows: n.parse().ok()?,
            seconds: s.parse().ok()?,
        })
    }
}
