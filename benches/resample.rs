//! The resampler against the one it replaced and against libsoxr: CPU per audio second,
//! response, aliasing and latency, in one run (BENCHMARKS.md, "The resampler").
//!
//! Engines, each fed like the pipeline feeds hark's (10 ms pushes, output appended to a
//! vector, its declared delay dropped):
//! - `hark`: `hark::audio::StreamResampler`, the polyphase Kaiser-windowed sinc;
//! - `rubato-fft-160`: rubato 0.16's `FftFixedInOut` with 160-sample blocks, hark's resampler
//!   before issue 17;
//! - `rubato-sinc-512`: rubato 0.16's `SincFixedIn`, a 512-tap Blackman-Harris sinc at
//!   rubato's own cut-off for that length, 256× oversampled, linear interpolation (the
//!   "longer filter" rubato; rubato 5 needs Rust 1.87, above hark's rust-version);
//! - `libsoxr-hq`: libsoxr 0.1.3 at `SOXR_HQ` (librosa's `soxr_hq`), one thread, through the
//!   `soxr` crate; only with `--features soxr` (needs `libsoxr-dev`).
//!
//! Usage: `cargo bench --bench resample [--features soxr] -- [--seconds S] [--rounds N]`
//! Pin it for steadier figures: `taskset -c 1 cargo bench ...`.

use std::f64::consts::PI;

use hark::audio::measure::tone_amplitude as amplitude;
use rubato::{
    calculate_cutoff, FftFixedInOut, SincFixedIn, SincInterpolationParameters,
    SincInterpolationType, WindowFunction,
};

/// A resampler as the bench drives it.
trait Engine {
    /// Push `input`, append what became ready.
    fn process(&mut self, input: &[f32], out: &mut Vec<f32>);
    /// Leading output samples that belong before time 0.
    fn delay(&self) -> usize;
}

struct Hark(hark::audio::StreamResampler);

impl Engine for Hark {
    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.0.process(input, out);
    }
    fn delay(&self) -> usize {
        self.0.delay()
    }
}

/// A rubato resampler that takes fixed input blocks, plus the buffer that lets it take any
/// amount (hark's wrapper before issue 17, shared by both rubato engines).
struct Rubato<R> {
    resampler: R,
    pending: Vec<f32>,
    block_out: Vec<Vec<f32>>,
}

impl<R: rubato::Resampler<f32>> Rubato<R> {
    fn new(resampler: R) -> Self {
        let pending = Vec::with_capacity(resampler.input_frames_max());
        let block_out = resampler.output_buffer_allocate(true);
        Rubato {
            resampler,
            pending,
            block_out,
        }
    }
}

impl<R: rubato::Resampler<f32>> Engine for Rubato<R> {
    fn process(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
        let chunk = self.resampler.input_frames_next();
        while !input.is_empty() {
            let take = (chunk - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() == chunk {
                let (_, written) = self
                    .resampler
                    .process_into_buffer(&[&self.pending], &mut self.block_out, None)
                    .expect("blocks are sized by the resampler");
                out.extend_from_slice(&self.block_out[0][..written]);
                self.pending.clear();
            }
        }
    }
    fn delay(&self) -> usize {
        self.resampler.output_delay()
    }
}

/// hark's engine before issue 17: blocks of at least 160 samples on both sides.
fn rubato_fft_160(from: u32, to: u32) -> Box<dyn Engine> {
    let wanted_in = 160.max(160 * from / to) as usize;
    let r = FftFixedInOut::<f32>::new(from as usize, to as usize, wanted_in, 1).unwrap();
    Box::new(Rubato::new(r))
}

fn rubato_sinc_512(from: u32, to: u32) -> Box<dyn Engine> {
    let window = WindowFunction::BlackmanHarris2;
    let params = SincInterpolationParameters {
        sinc_len: 512,
        f_cutoff: calculate_cutoff(512, window),
        oversampling_factor: 256,
        interpolation: SincInterpolationType::Linear,
        window,
    };
    let ratio = f64::from(to) / f64::from(from);
    let chunk = (from / 100) as usize;
    Box::new(Rubato::new(
        SincFixedIn::<f32>::new(ratio, 1.0, params, chunk, 1).unwrap(),
    ))
}

#[cfg(feature = "soxr")]
mod libsoxr {
    use soxr::format::Mono;
    use soxr::params::{QualityRecipe, QualitySpec, RuntimeSpec};
    use soxr::Soxr;

    pub struct Engine {
        soxr: Soxr<Mono<f32>>,
        block: Vec<f32>,
    }

    pub fn hq(from: u32, to: u32) -> Box<dyn super::Engine> {
        let soxr = Soxr::new_with_params(
            f64::from(from),
            f64::from(to),
            QualitySpec::new(QualityRecipe::high()),
            RuntimeSpec::new(1),
        )
        .unwrap();
        Box::new(Engine {
            soxr,
            block: vec![0.0; 65_536],
        })
    }

    impl super::Engine for Engine {
        fn process(&mut self, mut input: &[f32], out: &mut Vec<f32>) {
            loop {
                let done = self.soxr.process(input, &mut self.block).unwrap();
                out.extend_from_slice(&self.block[..done.output_frames]);
                input = &input[done.input_frames..];
                if input.is_empty() && done.output_frames < self.block.len() {
                    break;
                }
            }
        }
        fn delay(&self) -> usize {
            0
        }
    }
}

type Builder = fn(u32, u32) -> Box<dyn Engine>;

fn engines() -> Vec<(&'static str, Builder)> {
    let hark: Builder =
        |from, to| Box::new(Hark(hark::audio::StreamResampler::new(from, to).unwrap()));
    let rubato: [(&'static str, Builder); 3] = [
        ("hark", hark),
        ("rubato-fft-160", rubato_fft_160),
        ("rubato-sinc-512", rubato_sinc_512),
    ];
    #[cfg(feature = "soxr")]
    let soxr: Option<(&'static str, Builder)> = Some(("libsoxr-hq", libsoxr::hq));
    #[cfg(not(feature = "soxr"))]
    let soxr: Option<(&'static str, Builder)> = None;
    rubato.into_iter().chain(soxr).collect()
}

/// Everything `engine` outputs for `x` pushed in 10 ms blocks, its delay dropped.
fn run(engine: &mut dyn Engine, x: &[f32], from: u32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() + 100_000);
    for block in x.chunks(from as usize / 100) {
        engine.process(block, &mut out);
    }
    engine.process(&vec![0.0; from as usize / 10], &mut out);
    out.drain(..engine.delay().min(out.len()));
    out
}

fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_THREAD_CPUTIME_ID is supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn sine(rate: u32, secs: f64, freq: f64) -> Vec<f32> {
    let w = 2.0 * PI * freq / f64::from(rate);
    (0..(secs * f64::from(rate)) as usize)
        .map(|i| (w * i as f64).sin() as f32)
        .collect()
}

fn noise(rate: u32, secs: f64) -> Vec<f32> {
    let mut s = 0x9E37_79B9_7F4A_7C15u64;
    (0..(secs * f64::from(rate)) as usize)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

fn middle(y: &[f32]) -> &[f32] {
    &y[y.len() / 5..y.len() * 4 / 5]
}

/// Gain in dB of a sine at `freq` (landing on `heard`).
fn gain_db(build: Builder, from: u32, to: u32, freq: f64, heard: f64) -> f64 {
    let y = run(&mut *build(from, to), &sine(from, 1.0, freq), from);
    20.0 * amplitude(middle(&y), to, heard).log10()
}

/// (gain at 0.875 and 0.93 of Nyquist, worst alias of 8.5, 9, 12, 20 kHz-like probes).
fn response(build: Builder, from: u32, to: u32) -> (f64, f64, f64) {
    let ny = f64::from(from.min(to)) / 2.0;
    let g1 = gain_db(build, from, to, 0.875 * ny, 0.875 * ny);
    let g2 = gain_db(build, from, to, 0.93 * ny, 0.93 * ny);
    let half = f64::from(to) / 2.0;
    let alias = [1.0625, 1.125, 1.5, 2.5]
        .iter()
        .map(|k| k * half)
        .filter(|&f| f < 0.98 * f64::from(from) / 2.0)
        .map(|f| {
            gain_db(
                build,
                from,
                to,
                f,
                (f - (f / f64::from(to)).round() * f64::from(to)).abs(),
            )
        })
        .fold(f64::MIN, f64::max);
    (g1, g2, alias)
}

/// (where a click comes out relative to its ideal place once the engine's declared delay is
/// dropped, in output samples: 0 when the declaration is right; the latency: how long after
/// an instant its output sample appears, pushing one input sample at a time, ms, with the
/// instants placed where the click showed them to be).
fn timing(build: Builder, from: u32, to: u32) -> (f64, f64) {
    let mut x = vec![0.0f32; from as usize / 2];
    let n = from as usize / 4;
    x[n] = 1.0;
    let mut e = build(from, to);
    let declared = e.delay();
    let mut out = Vec::new();
    // When each output sample appeared: the input samples pushed by then.
    let mut arrived = Vec::new();
    for (i, &v) in x.iter().enumerate() {
        e.process(&[v], &mut out);
        arrived.resize(out.len(), i + 1);
    }
    let at = (0..out.len())
        .max_by(|&a, &b| out[a].total_cmp(&out[b]))
        .unwrap_or(0);
    let ideal = n as f64 * f64::from(to) / f64::from(from);
    let shift = at as f64 - declared as f64 - ideal;
    // Output k is the instant (k - delay) / to, with the delay the click showed.
    let delay = declared as f64 + shift.round();
    let latency = arrived
        .iter()
        .enumerate()
        .map(|(k, &pushed)| ((k as f64 - delay) / f64::from(to), pushed))
        .filter(|&(instant, _)| instant > 0.05)
        .map(|(instant, pushed)| pushed as f64 / f64::from(from) - instant)
        .fold(0.0, f64::max);
    (shift, latency * 1000.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

/// The response around the top of the band at 44.1 -> 16 kHz, every engine side by side.
fn band_edge(engines: &[(&'static str, Builder)]) {
    let freqs = [
        7_000.0, 7_400.0, 7_440.0, 7_500.0, 7_550.0, 7_600.0, 7_700.0, 7_800.0, 7_900.0,
    ];
    println!("\n44100 Hz -> 16000 Hz, sine gain near the top of the band, dB");
    print!("{:<16}", "engine");
    for f in freqs {
        print!(" {:>8}", format!("{f:.0} Hz"));
    }
    println!();
    for (name, build) in engines {
        print!("{name:<16}");
        for f in freqs {
            print!(" {:>8.2}", gain_db(*build, 44_100, 16_000, f, f));
        }
        println!();
    }
}

fn main() {
    let seconds = arg("--seconds", 60.0);
    let rounds = arg("--rounds", 5.0) as usize;
    let engines = engines();
    band_edge(&engines);
    for (from, to) in [
        (44_100u32, 16_000u32),
        (48_000, 16_000),
        (96_000, 16_000),
        (8_000, 16_000),
    ] {
        println!(
            "\n{from} Hz -> {to} Hz ({seconds} s of noise, {rounds} interleaved rounds, medians)"
        );
        println!(
            "{:<16} {:>12} {:>9} {:>10} {:>10} {:>10} {:>8} {:>10}",
            "engine",
            "CPU us/s",
            "vs hark",
            "dB@0.875",
            "dB@0.93",
            "alias dB",
            "click",
            "latency ms"
        );
        let x = noise(from, seconds);
        let mut cpu = vec![Vec::new(); engines.len()];
        for _ in 0..rounds {
            for (i, (_, build)) in engines.iter().enumerate() {
                let mut e = build(from, to);
                let t0 = thread_cpu_secs();
                let y = run(&mut *e, &x, from);
                cpu[i].push((thread_cpu_secs() - t0) / seconds * 1e6);
                std::hint::black_box(y);
            }
        }
        let per_s: Vec<f64> = cpu.iter_mut().map(|v| median(v)).collect();
        for (i, (name, build)) in engines.iter().enumerate() {
            let (g1, g2, alias) = response(*build, from, to);
            let (shift, latency) = timing(*build, from, to);
            let alias = if alias == f64::MIN {
                "-".to_string()
            } else {
                format!("{alias:.1}")
            };
            println!(
                "{name:<16} {:>12.0} {:>9.2} {g1:>10.3} {g2:>10.3} {alias:>10} {shift:>+8.2} {latency:>10.2}",
                per_s[i],
                per_s[i] / per_s[0]
            );
        }
    }
}
