//! hark: a realtime sound-event daemon.
//!
//! The modules follow the data's path through the daemon:
//! capture → (ring) → pipeline (resample, window, frontend, model, smoothing, decision)
//! → sinks (socket, hooks, stdout), assembled by `daemon`. Offline commands (`classify`,
//! `features`) reuse the same stages on files through `windowing`; `learn` trains
//! (`hark train`) and measures (`hark eval`) models on labelled datasets.
//! See ARCHITECTURE.md for the map and the invariants each module keeps.

pub mod audio;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod exit;
pub mod front_door;
pub mod frontend;
pub mod learn;
pub mod logging;
pub mod memory;
pub mod model;
pub mod npy;
pub mod pipeline;
pub mod record;
pub mod shutdown;
pub mod sinks;
pub mod subscribe;
pub mod text;
pub mod validate;
pub mod windowing;
