//! The log-mel front end's speed: hark against its own FFT floor, and streaming against
//! recomputing a window. `benches/frontend.sh` runs this and the librosa peer
//! (`benches/peer_frontend.py`) and prints the ratios.
//!
//! For the golden configs fsd2018 (44.1 kHz, n_fft 2560, centred) and small16k (16 kHz,
//! n_fft 1024, centred, reflect), on the same 10 s signal (a chirp plus noise from a fixed
//! seed, at each config's rate):
//! - `hark_compute`: [`MelFrontend::compute`] on the whole 10 s;
//! - `fft_only`: the floor, the bare realfft calls hark makes for as many frames (same plan,
//!   same buffers, nothing else);
//!
//! and, for the non-centred YAMNet-like specs (htk16k, yamnet) with YAMNet's 0.96 s window
//! (96 frames) and 0.48 s hop (48 frames), the cost of one hop:
//! - `stream_hop`: [`StreamingFrontend::push`] of 48 hops of samples, `window_into` over 96
//!   frames, `discard_before`;
//! - `recompute_hop`: [`MelFrontend::compute_into`] over the whole window.
//!
//! `cargo bench --bench frontend` runs criterion and then a summary: the pairs above timed in
//! alternation (so a noisy machine slows both alike), their medians as JSON lines on stdout and
//! in `target/bench-frontend-rust.json`, plus heap allocations per steady-state call. It also
//! writes each signal to `target/bench-signal-<config>.f32` and hark's features to
//! `target/bench-features-<config>.f32` (raw little-endian f32) for the Python peer.
//! Environment: `HARK_BENCH_SUMMARY_ONLY=1` skips criterion; `HARK_BENCH_ROUNDS` (default 31)
//! sets the summary's rounds.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput};
use hark::frontend::{FeatureSpec, MelFrontend, StreamingFrontend};
use ndarray::Array2;
use realfft::RealFftPlanner;

/// Counts heap allocations, to show the steady-state calls make none.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SECONDS: usize = 10;
/// YAMNet: 0.96 s windows every 0.48 s, in 10 ms frames.
const WINDOW_FRAMES: usize = 96;
const HOP_FRAMES: usize = 48;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A golden config, read the way `tests/it/frontend_golden.rs` reads them.
fn golden_spec(name: &str) -> FeatureSpec {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/cases.json");
    let text = std::fs::read_to_string(&path).expect("read cases.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("parse cases.json");
    let spec: FeatureSpec =
        serde_json::from_value(json["configs"][name].clone()).expect("config is a FeatureSpec");
    spec.validate().expect("valid config");
    spec
}

/// 10 s of an exponential chirp (50 Hz to 0.45·rate) at 0.5 plus uniform noise at ±0.05 from
/// a fixed-seed LCG; the same recipe at every rate.
fn signal(rate: u32) -> Vec<f32> {
    let n = SECONDS * rate as usize;
    let (f0, f1) = (50.0f64, 0.45 * f64::from(rate));
    let k = (f1 / f0).ln() / SECONDS as f64;
    let mut state = 0x2545_f491u32;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = 2.0 * std::f64::consts::PI * f0 * ((k * t).exp() - 1.0) / k;
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = f64::from(state >> 8) / f64::from(1u32 << 24) - 0.5;
            (0.5 * phase.sin() + 0.1 * noise) as f32
        })
        .collect()
}

fn write_f32(path: &PathBuf, data: &[f32]) {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The bare FFT calls `compute` makes: one realfft forward transform per frame, same plan
/// (from the same planner), same buffers, nothing else. The FFT's cost does not depend on the
/// values it transforms (there are no data-dependent branches, and zeros are not subnormal), so
/// the input buffer is left as the plan made it: zeros, which the transform keeps at zero.
struct FftOnly {
    fft: std::sync::Arc<dyn realfft::RealToComplex<f64>>,
    input: Vec<f64>,
    spectrum: Vec<realfft::num_complex::Complex<f64>>,
    scratch: Vec<realfft::num_complex::Complex<f64>>,
    frames: usize,
}

impl FftOnly {
    fn new(spec: &FeatureSpec, frames: usize) -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(spec.n_fft);
        Self {
            input: fft.make_input_vec(),
            spectrum: fft.make_output_vec(),
            scratch: fft.make_scratch_vec(),
            fft,
            frames,
        }
    }

    fn run(&mut self) {
        for _ in 0..self.frames {
            self.fft
                .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
                .unwrap();
            black_box(&self.spectrum);
        }
    }
}

/// One YAMNet-like stream: the state for a hop of streaming and for recomputing the window.
struct Hops {
    fe: MelFrontend,
    stream: StreamingFrontend,
    scratch: hark::frontend::FrameScratch,
    signal: Vec<f32>,
    /// Samples in one window: frame_len + (WINDOW_FRAMES - 1) · hop.
    window_samples: usize,
    hop_samples: usize,
    /// End of the samples pushed so far (index into `signal`, wrapping).
    pos: usize,
    out: Array2<f32>,
}

impl Hops {
    fn new(spec: FeatureSpec) -> Self {
        let fe = MelFrontend::new(spec).unwrap();
        let hop = fe.spec().hop_length;
        let window_samples = fe.frame_len() + (WINDOW_FRAMES - 1) * hop;
        let signal = signal(fe.spec().sample_rate);
        let mut stream = StreamingFrontend::new(fe.clone());
        stream.push(&signal[..window_samples]);
        assert_eq!(stream.frames_available(), WINDOW_FRAMES);
        let mut hops = Self {
            scratch: fe.scratch(),
            out: Array2::zeros((fe.n_mels(), WINDOW_FRAMES)),
            fe,
            stream,
            signal,
            window_samples,
            hop_samples: HOP_FRAMES * hop,
            pos: window_samples,
        };
        // Warm up so every buffer has reached its steady size.
        for _ in 0..4 {
            hops.stream_hop();
            hops.recompute_hop();
        }
        hops
    }

    /// Push one hop of samples, take the window, drop the frames no window needs again.
    fn stream_hop(&mut self) {
        if self.pos + self.hop_samples > self.signal.len() {
            self.pos = self.window_samples;
        }
        let chunk = &self.signal[self.pos..self.pos + self.hop_samples];
        self.pos += self.hop_samples;
        self.stream.push(chunk);
        assert!(self.stream.window_into(self.out.view_mut()));
        self.stream.discard_before(WINDOW_FRAMES);
        black_box(&self.out);
    }

    /// Compute the window ending at the current position from its samples.
    fn recompute_hop(&mut self) {
        let end = self.pos.max(self.window_samples);
        let samples = &self.signal[end - self.window_samples..end];
        self.fe
            .compute_into(samples, &mut self.scratch, self.out.view_mut());
        black_box(&self.out);
    }
}

fn criterion_benches(c: &mut Criterion) {
    for name in ["fsd2018", "small16k"] {
        let spec = golden_spec(name);
        let fe = MelFrontend::new(spec.clone()).unwrap();
        let x = signal(spec.sample_rate);
        let mut fft = FftOnly::new(&spec, fe.num_frames(x.len()));
        let mut group = c.benchmark_group(format!("{name}_10s"));
        group.throughput(Throughput::Elements(x.len() as u64));
        group.bench_function("hark_compute", |b| b.iter(|| fe.compute(black_box(&x))));
        let mut scratch = fe.scratch();
        let mut out = Array2::zeros((fe.n_mels(), fe.num_frames(x.len())));
        group.bench_function("hark_compute_into", |b| {
            b.iter(|| fe.compute_into(black_box(&x), &mut scratch, out.view_mut()))
        });
        group.bench_function("fft_only", |b| b.iter(|| fft.run()));
        group.finish();
    }
    for name in ["htk16k", "yamnet"] {
        let mut hops = Hops::new(golden_spec(name));
        let mut group = c.benchmark_group(format!("{name}_hop48_of_96"));
        group.bench_function("stream_hop", |b| b.iter(|| hops.stream_hop()));
        group.bench_function("recompute_hop", |b| b.iter(|| hops.recompute_hop()));
        group.finish();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// This thread's CPU time: on a shared machine, time spent preempted is not the code's cost.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Wall and thread CPU seconds `f` takes.
fn time(f: &mut impl FnMut()) -> (f64, f64) {
    let (t, c) = (Instant::now(), thread_cpu_seconds());
    f();
    (t.elapsed().as_secs_f64(), thread_cpu_seconds() - c)
}

/// Medians of two interleaved series of (wall, cpu) timings, and the median of their
/// round-by-round CPU-time ratio a/b (rounds share the machine's state, so the ratio is steadier
/// than the ratio of medians).
struct Pair {
    a_wall: f64,
    a_cpu: f64,
    b_wall: f64,
    b_cpu: f64,
    ratio: f64,
}

fn pair(a: &[(f64, f64)], b: &[(f64, f64)]) -> Pair {
    let m = |v: Vec<f64>| median(&mut v.clone());
    Pair {
        a_wall: m(a.iter().map(|t| t.0).collect()),
        a_cpu: m(a.iter().map(|t| t.1).collect()),
        b_wall: m(b.iter().map(|t| t.0).collect()),
        b_cpu: m(b.iter().map(|t| t.1).collect()),
        ratio: m(a.iter().zip(b).map(|(x, y)| x.1 / y.1).collect()),
    }
}

/// Heap allocations made by `f`.
fn allocations(f: &mut impl FnMut()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    f();
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// Times the pairs in alternation and prints one JSON object per line.
fn summary(rounds: usize) {
    let mut lines = Vec::new();
    for name in ["fsd2018", "small16k"] {
        let spec = golden_spec(name);
        let fe = MelFrontend::new(spec.clone()).unwrap();
        let x = signal(spec.sample_rate);
        let features = fe.compute(&x);
        write_f32(&target_dir().join(format!("bench-signal-{name}.f32")), &x);
        write_f32(
            &target_dir().join(format!("bench-features-{name}.f32")),
            features.as_slice().unwrap(),
        );
        let frames = fe.num_frames(x.len());
        let mut fft = FftOnly::new(&spec, frames);
        let mut scratch = fe.scratch();
        let mut out = Array2::zeros((fe.n_mels(), frames));
        let mut hark = || {
            black_box(fe.compute(black_box(&x)));
        };
        let mut hark_into = || fe.compute_into(black_box(&x), &mut scratch, out.view_mut());
        let mut floor = || fft.run();
        for _ in 0..3 {
            hark();
            hark_into();
            floor();
        }
        let (mut th, mut ti, mut tf) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            th.push(time(&mut hark));
            ti.push(time(&mut hark_into));
            tf.push(time(&mut floor));
        }
        let (h, f) = (pair(&th, &tf), pair(&ti, &tf));
        let allocs_into = allocations(&mut hark_into);
        let audio = SECONDS as f64;
        lines.push(format!(
            "{{\"config\":\"{name}\",\"audio_s\":{audio},\"frames\":{frames},\"n_mels\":{},\"rounds\":{rounds},\
             \"hark_compute_cpu_s\":{:.6e},\"hark_compute_wall_s\":{:.6e},\
             \"hark_compute_into_cpu_s\":{:.6e},\"fft_only_cpu_s\":{:.6e},\"fft_only_wall_s\":{:.6e},\
             \"hark_s_per_audio_s\":{:.6e},\"fft_only_s_per_audio_s\":{:.6e},\
             \"hark_over_fft_only\":{:.4},\"hark_into_over_fft_only\":{:.4},\
             \"allocations_per_compute_into\":{allocs_into}}}",
            fe.n_mels(),
            h.a_cpu,
            h.a_wall,
            f.a_cpu,
            h.b_cpu,
            h.b_wall,
            h.a_cpu / audio,
            h.b_cpu / audio,
            h.ratio,
            f.ratio
        ));
    }
    for name in ["htk16k", "yamnet"] {
        let mut hops = Hops::new(golden_spec(name));
        let reps = 20;
        let (mut ts, mut tr) = (Vec::new(), Vec::new());
        let per_hop = |(wall, cpu): (f64, f64)| (wall / reps as f64, cpu / reps as f64);
        for _ in 0..rounds {
            tr.push(per_hop(time(&mut || {
                (0..reps).for_each(|_| hops.recompute_hop())
            })));
            ts.push(per_hop(time(&mut || {
                (0..reps).for_each(|_| hops.stream_hop())
            })));
        }
        let p = pair(&tr, &ts);
        let (s, r) = (p.b_cpu, p.a_cpu);
        let allocs_stream = allocations(&mut || hops.stream_hop());
        let allocs_recompute = allocations(&mut || hops.recompute_hop());
        let hop_audio =
            (HOP_FRAMES * hops.fe.spec().hop_length) as f64 / f64::from(hops.fe.spec().sample_rate);
        lines.push(format!(
            "{{\"config\":\"{name}\",\"window_frames\":{WINDOW_FRAMES},\"hop_frames\":{HOP_FRAMES},\"rounds\":{rounds},\
             \"stream_hop_cpu_s\":{s:.6e},\"recompute_hop_cpu_s\":{r:.6e},\
             \"stream_s_per_audio_s\":{:.6e},\"recompute_s_per_audio_s\":{:.6e},\
             \"stream_hop_wall_s\":{:.6e},\"recompute_hop_wall_s\":{:.6e},\
             \"streaming_speedup\":{:.4},\"allocations_per_stream_hop\":{allocs_stream},\
             \"allocations_per_recompute_hop\":{allocs_recompute}}}",
            s / hop_audio,
            r / hop_audio,
            p.b_wall,
            p.a_wall,
            p.ratio
        ));
    }
    let text = lines.join("\n") + "\n";
    print!("{text}");
    std::fs::write(target_dir().join("bench-frontend-rust.json"), text).unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo test --benches` runs this without --bench: criterion's quick test mode only.
    let bench_mode = args.iter().any(|a| a == "--bench");
    if std::env::var_os("HARK_BENCH_SUMMARY_ONLY").is_none() || !bench_mode {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    if bench_mode {
        let rounds = std::env::var("HARK_BENCH_ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(31);
        summary(rounds);
    }
}
