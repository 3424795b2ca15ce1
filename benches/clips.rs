//! Clips (issue 13): CPU per second of clip for FLAC and WAV encoding and for the PNG picture,
//! and the pre-roll ring's memory at 48 kHz (BENCHMARKS.md, "Clips").
//!
//! The audio is a real recording (`../shared/data/recordings/first_alert_sa302.wav`: speech,
//! then a smoke alarm) resampled to 48 kHz, 20 s of it as one clip, encoded `--rounds` times;
//! the median is reported per second of clip.
//!
//! Usage: `cargo bench --bench clips -- [--rounds N]`

use std::time::Instant;

use hark::sinks::clips::{encode, render, ClipFormat, Picture};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(15usize);
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/recordings/first_alert_sa302.wav");
    let Ok(decoded) = hark::audio::decode_file(&path) else {
        eprintln!("SKIPPED: {} not found", path.display());
        return;
    };
    let mono = hark::audio::downmix(&decoded.samples, decoded.channels);
    let rate = 48_000;
    let at48 = hark::audio::resample(&mono, decoded.sample_rate, rate).expect("resample");
    let clip = &at48[..(20 * rate as usize).min(at48.len())];
    let seconds = clip.len() as f64 / rate as f64;
    let picture = Picture {
        name: "smoke_alarm",
        peak: 0.92,
        event: (3.0, 18.0),
        time: "2026-11-27T03:12:00.123Z",
    };
    println!("clip: {seconds:.1} s at {rate} Hz, {rounds} rounds, median");
    println!(
        "{:<8} {:>14} {:>14} {:>12}",
        "step", "ms per clip", "ms per clip-s", "bytes/clip-s"
    );
    let flac = || encode(ClipFormat::Flac, rate, clip).unwrap().len();
    let wav = || encode(ClipFormat::Wav, rate, clip).unwrap().len();
    let png = || render(clip, rate, &picture).unwrap().len();
    let steps: [(&str, &dyn Fn() -> usize); 3] = [("flac", &flac), ("wav", &wav), ("png", &png)];
    for (name, f) in steps {
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            bytes = std::hint::black_box(f());
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let ms = median(times);
        println!(
            "{name:<8} {ms:>14.2} {:>14.3} {:>12.0}",
            ms / seconds,
            bytes as f64 / seconds
        );
    }
    // The ring the consumer keeps: pre_roll + slack seconds of f32 at the capture rate.
    let slack = 1.0 + 0.5 + 0.0 + 4.0 + 2.0; // window + hop + min_duration + ring_seconds + max_backlog (defaults)
    for pre_roll in [3.0, 10.0] {
        let bytes = ((pre_roll + slack) * rate as f64).ceil() * 4.0;
        println!(
            "pre-roll ring at {rate} Hz, pre_roll {pre_roll} s (+{slack} s slack): {:.2} MB",
            bytes / 1e6
        );
    }
}
