//! Steady-state inference allocates nothing: proved with a counting global allocator.
//!
//! The allocator counts heap allocations per thread. After a warm-up (buffers reach their
//! working size, ONNX Runtime plans its memory), the model's inference path — front end,
//! `Session::run` with a preallocated output, scores — must make no allocation at all, and the
//! consumer's whole per-window loop (ring, resampler, window, model, smoothing, decision) must
//! allocate exactly what the records it publishes hold (label strings, timestamps), no more.
//!
//! ONNX Runtime's own C++ allocations are outside Rust's allocator; its memory pattern and
//! arena (see `model::runtime::session_builder`) keep those to a plan made on the first run.
//!
//! A test binary of its own: a `#[global_allocator]` serves the whole process, so as a module of
//! the `it` binary it would put every other test on the counting allocator too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use hark::capture::{FileSource, Source};
use hark::frontend::StreamingFrontend;
use hark::model::{LoadOptions, Model};
use hark::pipeline::{self, Consumer, LiveSettings};
use hark::record::Record;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made so far by this thread.
fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

mod common;

use common::hark::manifest_dir as root;
use common::shared::recordings_or_skip;

fn ced_tiny() -> Model {
    let manifest = root().join("models/ced-tiny.toml");
    Model::load(&manifest, &LoadOptions::default())
        .expect("load ced-tiny (scripts/setup.sh installs it)")
}

/// The YAMNet backbone (a log-mel model), from ../shared; None (test skipped) without it.
fn yamnet() -> Option<Model> {
    recordings_or_skip()?;
    let manifest = root().join("tests/fixtures/yamnet/yamnet.toml");
    Some(Model::load(&manifest, &LoadOptions::default()).expect("load the YAMNet backbone"))
}

fn noise(n: usize, seed: u32) -> Vec<f32> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x as f32 / u32::MAX as f32 - 0.5) * 0.2
        })
        .collect()
}

#[test]
fn waveform_model_inference_allocates_nothing_after_warm_up() {
    let mut model = ced_tiny();
    let windows: Vec<Vec<f32>> = (0..3).map(|i| noise(model.window_samples(), i)).collect();
    for w in &windows {
        model.predict(w).unwrap();
    }
    let before = allocations();
    let mut checksum = 0.0;
    for round in 0..20 {
        let scores = model.predict(&windows[round % 3]).unwrap();
        checksum += scores[0];
    }
    let made = allocations() - before;
    assert!(checksum > 0.0);
    assert_eq!(
        made, 0,
        "20 windows through CED-tiny made {made} allocations"
    );
}

#[test]
fn streaming_log_mel_inference_allocates_nothing_after_warm_up() {
    let Some(mut model) = yamnet() else { return };
    let frames = model.frames().unwrap();
    let mut stream = StreamingFrontend::new(model.mel_frontend().unwrap().clone());
    let hop = model.hop_samples();
    let signal = noise(hop * 40, 7);
    let mut scored = 0;
    let mut before = 0;
    for (i, chunk) in signal.chunks(hop).enumerate() {
        if i == 10 {
            before = allocations();
        }
        stream.push(chunk);
        if stream.frames_available() >= frames {
            model
                .predict_stream(&stream)
                .unwrap()
                .expect("a full window");
            stream.discard_before(frames);
            scored += usize::from(i >= 10);
        }
    }
    let made = allocations() - before;
    assert!(scored >= 25, "only {scored} windows scored");
    assert_eq!(
        made, 0,
        "{scored} streamed YAMNet windows made {made} allocations"
    );
}

#[test]
fn batch_log_mel_inference_allocates_nothing_after_warm_up() {
    let Some(mut model) = yamnet() else { return };
    let w = noise(model.window_samples(), 3);
    model.predict(&w).unwrap();
    let before = allocations();
    for _ in 0..10 {
        model.predict(&w).unwrap();
    }
    assert_eq!(allocations() - before, 0);
}

/// One window's share of the consumer's allocations: from just after the previous
/// `prediction` was emitted to this one's emission.
#[derive(Debug)]
struct WindowAllocations {
    /// Allocations the consumer made.
    made: u64,
    /// Allocations the records emitted in that span hold (their clones allocate as much).
    records: u64,
    /// An event started or ended next to this window: the decision stage then keeps its own
    /// bookkeeping (the open event's label), which is per event, not per window.
    near_event: bool,
}

/// Runs the consumer over `file` (lossless) and returns its allocations per window, after
/// ten windows of warm-up.
fn consumer_allocations(file: &Path) -> Vec<WindowAllocations> {
    let model = ced_tiny();
    let mut consumer = Consumer::new(model, LiveSettings::default());
    consumer.set_lossless(true);
    let mut capture = Box::new(FileSource {
        path: file.to_path_buf(),
        realtime: false,
    })
    .start(4.0)
    .unwrap();
    let stop = hark::shutdown::Shutdown::new();
    let mut per_window: Vec<WindowAllocations> = Vec::with_capacity(1000);
    let mut windows = 0;
    let mut mark = 0;
    let mut records = 0;
    let mut event_since_mark = false;
    let mut emit = |r: Record| {
        let now = allocations();
        let c = r.clone();
        records += allocations() - now;
        drop(c);
        match r {
            Record::Prediction { .. } => {
                windows += 1;
                if windows > 10 {
                    per_window.push(WindowAllocations {
                        made: now - mark,
                        records,
                        near_event: event_since_mark,
                    });
                }
                records = 0;
                event_since_mark = false;
                // Our own bookkeeping above is not the consumer's.
                mark = allocations();
            }
            Record::EventStart { .. } | Record::EventEnd { .. } => {
                // The decision for the window before made these: mark both.
                event_since_mark = true;
                if let Some(last) = per_window.last_mut() {
                    last.near_event = true;
                }
            }
            Record::Status { .. } => {}
        }
    };
    pipeline::consume::<()>(&mut consumer, &mut capture, &stop, None, &mut (), &mut emit).unwrap();
    per_window
}

fn assert_only_records_allocate(file: &Path) {
    let per_window = consumer_allocations(file);
    let quiet: Vec<&WindowAllocations> = per_window.iter().filter(|w| !w.near_event).collect();
    assert!(quiet.len() >= 30, "{} windows without events", quiet.len());
    let made: u64 = quiet.iter().map(|w| w.made).sum();
    let records: u64 = quiet.iter().map(|w| w.records).sum();
    let near: Vec<_> = per_window.iter().filter(|w| w.near_event).collect();
    eprintln!(
        "{}: {} windows without events: {:.2} allocations per window, records hold {:.2}; \
         {} windows next to an event: {:?}",
        file.display(),
        quiet.len(),
        made as f64 / quiet.len() as f64,
        records as f64 / quiet.len() as f64,
        near.len(),
        near.iter().map(|w| (w.made, w.records)).collect::<Vec<_>>()
    );
    let extra: Vec<_> = per_window
        .iter()
        .enumerate()
        .filter(|(_, w)| !w.near_event && w.made != w.records)
        .collect();
    assert!(
        extra.is_empty(),
        "windows allocating beyond their records: {extra:?}"
    );
}

#[test]
fn consumer_loop_allocates_only_what_its_records_hold_at_the_model_rate() {
    let Some(recordings) = recordings_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alarm16k.wav");
    let status = std::process::Command::new("sox")
        .arg(recordings.join("first_alert_7010b.wav"))
        .args(["-r", "16000"])
        .arg(&file)
        .status()
        .expect("sox (scripts/setup.sh --test installs it)");
    assert!(status.success());
    assert_only_records_allocate(&file);
}

#[test]
fn consumer_loop_allocates_only_what_its_records_hold_while_resampling() {
    let Some(recordings) = recordings_or_skip() else {
        return;
    };
    assert_only_records_allocate(&recordings.join("first_alert_7010b.wav"));
}
