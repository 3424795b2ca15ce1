//! hark: a realtime sound-event daemon.
//!
//! The modules follow the data's path through the daemon:
//! capture → (ring) → pipeline (resample, window) → frontend → model → smoothing → decision
//! → publish / hooks. Offline commands (`classify`, `features`) reuse the same stages on files;
//! `learn` trains (`hark train`) and measures (`hark eval`) models on labelled datasets.
//! See ARCHITECTURE.md for the map and the invariants each module keeps.

pub mod audio;
pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decision;
pub mod exit;
pub mod frontend;
pub mod hooks;
pub mod learn;
pub mod logging;
pub mod model;
pub mod npy;
pub mod pipeline;
pub mod publish;
pub mod record;
pub mod service;
pub mod smoothing;
pub mod subscribe;
pub mod validate;
pub mod windowing;
