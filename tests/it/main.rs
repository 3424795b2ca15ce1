//! Every integration test of hark but two, in one test binary (ripgrep's layout): one module per
//! area, named as its test file was before, the shared helpers in `tests/common/`. One binary
//! links once instead of once per area, and its tests share the test threads.
//!
//! Two areas stay binaries of their own because they own their process: `tests/alloc.rs` (a
//! counting global allocator) and `tests/capture_alsa.rs` (it points ALSA at a file device with
//! a process-wide `ALSA_CONFIG_PATH`, set while other threads may be starting processes).
//!
//! Run one area with `cargo test --release --test it AREA::`, e.g. `--test it models::`.

#[path = "../common/mod.rs"]
mod common;

mod aarch64;
mod audio_decode;
mod capture_hosts;
mod classify;
mod classify_terminal;
mod clips;
mod config_layers;
mod config_ranges;
mod daemon_hooks;
mod daemon_inprocess;
mod daemon_socket;
mod frontend_golden;
mod fuzz_regressions;
mod groups;
mod hooks;
mod http;
mod lifecycle;
mod memory;
mod models;
mod mqtt;
mod pi_selftest;
mod publish_socket;
mod realtime;
mod reliability_daemon;
mod reliability_input;
mod resampler;
mod run_records;
mod service_unit;
mod tools;
mod train;
