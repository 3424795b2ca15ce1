//! Device capture against a real ALSA PCM: the `file` plugin reading a synthesized sine, as set
//! up by `common::alsa` (see its docs for how that device behaves).
//!
//! ALSA reads `ALSA_CONFIG_PATH` when cpal first loads its configuration, so every test here
//! starts with [`device`], which sets the variable once, before any cpal call. Only ALSA tests
//! live in this binary, so the process-wide variable cannot affect anything else: that is why
//! this is a test binary of its own and not a module of `it` (`tests/it/main.rs`), where it would
//! leak into every child the other areas start and be set while their threads read the
//! environment.

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use common::alsa::{self, AlsaFileDevice};
use cpal::traits::{DeviceTrait, HostTrait};
use hark::capture::{list_devices, CaptureError, DeviceSource, HostChoice, Source};
use hark::config::CaptureSettings;
use ringbuf::traits::{Consumer, Observer};

const NAME: &str = "harkfiledev";
const RATE: u32 = 48_000;
const FREQ: f32 = 1000.0;
const AMPLITUDE: f32 = 0.5;

struct Fixture {
    device: AlsaFileDevice,
    /// The file's content averaged to mono: what the device source must deliver.
    expected: Vec<f32>,
}

/// The file device, created and announced to ALSA on first use.
fn device() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let work = tempfile::tempdir().unwrap();
        let wav = work.path().join("sine.wav");
        let raw = work.path().join("sine.raw");
        alsa::synth_wav(&wav, RATE, &["1", "sine", "1000", "vol", "0.5"]);
        alsa::make_raw_f32_stereo_48k(&wav, &raw);
        let expected = alsa::raw_f32_stereo_to_mono(&raw);
        assert_eq!(expected.len(), RATE as usize);
        let device = AlsaFileDevice::new(NAME, &raw);
        let (key, value) = device.env();
        // Before any cpal call in this process: every test goes through here first.
        std::env::set_var(key, value);
        Fixture { device, expected }
    })
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
}

fn zero_crossings_per_second(samples: &[f32], rate: u32) -> f32 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
        .count();
    crossings as f32 * rate as f32 / samples.len() as f32
}

/// Waits until the ring holds `n` samples (the device runs unpaced, so this is quick).
fn wait_for(consumer: &impl Observer, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while consumer.occupied_len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} samples arrived",
            consumer.occupied_len()
        );
        thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn file_device_is_listed_with_its_configurations() {
    device();
    let devices = list_devices(HostChoice::Alsa).unwrap();
    for info in &devices {
        println!("{info}");
    }
    let info = devices
        .iter()
        .find(|d| d.id == NAME)
        .unwrap_or_else(|| panic!("{NAME} not in {devices:?}"));
    assert_eq!(info.name, NAME);
    assert!(!info.is_default);
    assert_eq!(info.unavailable, None);
    assert!(info.channels.contains(&1) && info.channels.contains(&2));
    assert!(info.sample_formats.contains(&cpal::SampleFormat::F32));
    assert!(info.sample_formats.contains(&cpal::SampleFormat::I16));
    assert!(info.min_rate <= RATE && RATE <= info.max_rate);
    let shown = info.to_string();
    assert!(shown.starts_with(NAME) && shown.contains("f32"), "{shown}");
}

/// Pins what `common::alsa` documents: the raw file must be f32 stereo 48 kHz because that is
/// the configuration cpal opens this device with.
#[test]
fn cpal_opens_the_file_device_as_f32_stereo_48k() {
    device();
    let host = cpal::host_from_id(cpal::HostId::Alsa).unwrap();
    let dev = host
        .input_devices()
        .unwrap()
        .find(|d| d.id().map(|id| id.id() == NAME).unwrap_or(false))
        .expect("file device listed by cpal");
    let config = dev.default_input_config().unwrap();
    assert_eq!(config.sample_format(), cpal::SampleFormat::F32);
    assert_eq!(config.channels(), 2);
    assert_eq!(config.sample_rate(), RATE);
}

#[test]
fn device_matched_by_substring_captures_the_file_content() {
    let fixture = device();
    let source = DeviceSource {
        host: HostChoice::Alsa,
        device: Some("FileDev".to_owned()),
        // What the daemon asks for by default (capture.period).
        period: Some(CaptureSettings::default().period),
    };
    assert!(source.describe().contains("FileDev"));
    let mut capture = Box::new(source).start(1.0).unwrap();
    assert_eq!(capture.sample_rate, RATE);
    assert_eq!(capture.name, fixture.device.name);
    assert_eq!(capture.consumer.capacity().get(), RATE as usize);

    wait_for(&capture.consumer, RATE as usize);
    let mut got = vec![0.0f32; RATE as usize];
    assert_eq!(capture.consumer.pop_slice(&mut got), got.len());

    // The device delivers the file from its first frame, averaged to mono, unchanged.
    assert_eq!(got, fixture.expected);
    let level = rms(&got);
    let want = AMPLITUDE / 2f32.sqrt();
    assert!((level - want).abs() < 0.005, "rms {level}, want {want}");
    let zcr = zero_crossings_per_second(&got, RATE);
    assert!(
        (zcr - 2.0 * FREQ).abs() < 0.01 * 2.0 * FREQ,
        "{zcr} zero crossings/s, want {}",
        2.0 * FREQ
    );
    let stats = &capture.stats;
    assert!(stats.delivered.load(Ordering::Relaxed) >= u64::from(RATE));
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    assert!(!stats.device_lost.load(Ordering::Relaxed));
}

/// The end of the infile is not an end for the device: it keeps delivering, without an error,
/// and a device source never reports `ended` (see `common::alsa`).
#[test]
fn file_device_keeps_delivering_after_the_end_of_its_file() {
    device();
    let source = DeviceSource {
        host: HostChoice::Alsa,
        device: Some(NAME.to_owned()),
        // What the daemon asks for by default (capture.period).
        period: Some(CaptureSettings::default().period),
    };
    let mut capture = Box::new(source).start(3.0).unwrap();
    let total = 3 * RATE as usize;
    wait_for(&capture.consumer, total);
    let mut got = vec![0.0f32; total];
    capture.consumer.pop_slice(&mut got);
    let after_end = &got[RATE as usize..];
    let stats = &capture.stats;
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    assert!(!stats.device_lost.load(Ordering::Relaxed));
    assert!(!stats.ended.load(Ordering::Relaxed));
    println!(
        "after the end of the infile: rms {} (the file's: {})",
        rms(after_end),
        rms(&got[..RATE as usize])
    );
}

#[test]
fn unknown_device_error_names_it_and_lists_the_devices() {
    device();
    let source = DeviceSource {
        host: HostChoice::Alsa,
        device: Some("no-such-mic-xyz".to_owned()),
        period: None,
    };
    let err = Box::new(source).start(1.0).unwrap_err();
    assert!(
        matches!(err, CaptureError::DeviceNotFound { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("no-such-mic-xyz"), "{message}");
    assert!(message.contains(NAME), "{message}");
    assert!(message.contains("hark devices"), "{message}");
}

#[test]
fn overruns_are_counted_when_nobody_drains_the_ring() {
    device();
    let source = DeviceSource {
        host: HostChoice::Alsa,
        device: Some(NAME.to_owned()),
        // What the daemon asks for by default (capture.period).
        period: Some(CaptureSettings::default().period),
    };
    // 10 ms of ring against a device that delivers as fast as it is read.
    let capture = Box::new(source).start(0.01).unwrap();
    let capacity = capture.consumer.capacity().get();
    assert_eq!(capacity, 480);
    thread::sleep(Duration::from_millis(300));
    let stats = &capture.stats;
    assert!(stats.overruns.load(Ordering::Relaxed) > 0);
    assert_eq!(stats.delivered.load(Ordering::Relaxed), capacity as u64);
    assert_eq!(capture.consumer.occupied_len(), capacity);
    drop(capture);
}

/// Only meaningful where ALSA has no card, as in CI containers: then the default device cannot
/// be opened and the error tells the user what to do instead.
#[test]
fn missing_default_device_says_how_to_read_a_file_instead() {
    device();
    if has_sound_card() {
        eprintln!("skipped: this machine has a sound card, so a default device exists");
        return;
    }
    let err = Box::new(DeviceSource {
        host: HostChoice::Alsa,
        device: None,
        period: None,
    })
    .start(1.0)
    .unwrap_err();
    assert!(matches!(err, CaptureError::NoDevice), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("no audio capture device found"),
        "{message}"
    );
    assert!(message.contains("--input"), "{message}");
}

fn has_sound_card() -> bool {
    match std::fs::read_to_string(Path::new("/proc/asound/cards")) {
        Ok(cards) => !cards.contains("no soundcards"),
        Err(_) => false,
    }
}
