//! Sinks: where records go after the consumer. Every sink has the same shape:
//!
//! - a task (or, for blocking output, a thread) that takes records from one bounded
//!   broadcast, the [`Fanout`], which the consumer publishes into without ever waiting;
//! - its own config section, validated with the rest of the config, handed to it through a
//!   `watch` so a reload reaches it live;
//! - health counters ([`SinkHealth`]) that every `status` record reports under `sinks`;
//! - an end: it drains and stops when the consumer is done (the fan-out closes), or at the
//!   latest shortly after the shared [`Shutdown`](crate::shutdown::Shutdown).
//!
//! The sinks: `socket` (the Unix socket protocol, `docs/protocol.md`), `hooks` (the user's
//! programs on events), `mqtt` (a broker and Home Assistant, `docs/mqtt.md`), `stdout`
//! (`hark run --print`), `clips` (a sound clip and a picture of every event, `docs/clips.md`),
//! `http` (the web page, its API and `/metrics`, `docs/http.md`). Adding one is described in
//! ARCHITECTURE.md ("How to add a sink").
//!
//! Must not: hold up the consumer, know the config loader (a sink sees only its section), or
//! change what a record says.

pub mod clips;
mod fanout;
pub mod hooks;
pub mod http;
pub mod mqtt;
pub mod socket;
pub mod stdout;

use std::sync::Arc;

use tokio::sync::watch;

pub use fanout::{fault_panic_for, Fanout, Records, SinkHealth, CAPACITY, FAULT_PANIC};

use crate::shutdown::Shutdown;

/// What the running model can say, for sinks that announce it (the socket's `hello`, and
/// later MQTT discovery and the web page). Replaced when a reload changes the model.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningModel {
    /// The model's name, as configured.
    pub name: String,
    pub labels: Vec<String>,
    /// The groups that are on (`[groups]`), with their labels: event names too.
    pub groups: crate::pipeline::decision::Groups,
    /// The model's input rate, Hz.
    pub sample_rate: u32,
    /// Seconds of audio per window.
    pub window: f64,
    /// Seconds between window starts.
    pub hop: f64,
}

/// Everything a sink gets when it starts.
pub struct SinkContext<S> {
    /// Its records.
    pub records: Records,
    /// Its config section; changed on reload.
    pub settings: watch::Receiver<S>,
    /// The running model; changed when a reload swaps it.
    pub model: watch::Receiver<Arc<RunningModel>>,
    pub shutdown: Shutdown,
}

impl<S> SinkContext<S> {
    pub fn health(&self) -> &Arc<SinkHealth> {
        self.records.health()
    }
}
