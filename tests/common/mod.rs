//! Helpers shared by the integration tests. Three test binaries include this module once each:
//! `it` (`tests/it/main.rs`, every area of the crate, one module per area) and the two that must
//! own their process, `alloc` (a counting global allocator) and `capture_alsa` (a process-wide
//! `ALSA_CONFIG_PATH`).

// `alloc` and `capture_alsa` use only a few of the helpers; the rest would otherwise be
// reported as dead code in those binaries.
#![allow(dead_code)]

pub mod alsa;
pub mod chromium;
pub mod cli;
pub mod daemon;
pub mod hark;
pub mod mosquitto;
pub mod pipewire;
pub mod pulse;
pub mod shared;
pub mod slow;
pub mod sound_server;
pub mod tools;
pub mod wav;
