//! The inference floor: the bare `Session::run` calls on a file's windows and nothing else.
//!
//! Decodes and resamples the file (untimed), cuts the model's windows, then times only the
//! ONNX Runtime calls, in thread CPU time and wall time. `benches/pipeline.sh` compares hark's
//! whole pipeline (`hark run --fast`) against this figure and against a Python peer.
//!
//! cargo bench --bench inference_floor -- FILE [--model M] [--batch N] [--opt LEVEL] [--decision]
//! `--opt` overrides hark's graph optimisation level (disable, basic, extended, layout, all),
//! to measure what that session option is worth. `--decision` also times the decision stage
//! (smoothing and the event decisions, with the default configuration fitted to the model's
//! labels, as `hark run` and `hark classify --events` build them) over the scores the runs
//! produced, so its cost can be set against inference's.
//! Prints one JSON object.

use std::path::PathBuf;
use std::time::Instant;

use hark::model::{self, LoadOptions};
use ort::session::Session;
use ort::value::TensorRef;

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

fn main() -> anyhow::Result<()> {
    let mut file = None;
    let mut model_name = model::DEFAULT_MODEL.to_string();
    let mut batch = 1usize;
    let mut opt = None;
    let mut decision = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--bench" => {} // cargo bench passes it to harness = false targets
            "--model" => model_name = args.next().expect("--model M"),
            "--batch" => batch = args.next().expect("--batch N").parse()?,
            "--opt" => opt = Some(args.next().expect("--opt LEVEL")),
            "--decision" => decision = true,
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let file =
        file.ok_or_else(|| anyhow::anyhow!("usage: inference_floor FILE [--model M] [--batch N]"))?;
    let manifest_path = model::resolve(&model_name)?;
    let manifest = model::Manifest::from_file(&manifest_path)?;
    let opts = LoadOptions::default();
    let samples = hark::audio::load_mono(&file, manifest.sample_rate)?;
    let (window, hop) = (manifest.window_samples(), manifest.hop_samples());
    let starts = hark::windowing::window_starts(samples.len(), window, hop);
    let mut padded = samples.clone();
    padded.resize(starts.last().copied().unwrap_or(0) + window, 0.0);

    let env = model::runtime::environment(opts.onnxruntime.as_deref())?;
    let onnx = manifest_path.parent().unwrap().join(&manifest.model);
    let mut builder = model::runtime::session_builder(&env, opts.threads)?;
    if let Some(level) = &opt {
        use ort::session::builder::GraphOptimizationLevel as L;
        let level = match level.as_str() {
            "disable" => L::Disable,
            "basic" => L::Level1,
            "extended" => L::Level2,
            "layout" => L::Level3,
            "all" => L::All,
            other => anyhow::bail!("--opt {other}: one of disable, basic, extended, layout, all"),
        };
        builder = builder
            .with_optimization_level(level)
            .map_err(|e| anyhow::anyhow!(e.to_string()))?;
    }
    let mut session: Session = builder.commit_from_file(&onnx)?;
    let input_name = session.inputs()[0].name().to_string();

    // Every call's input is built before the clock starts: only the runs are timed.
    let inputs: Vec<Vec<f32>> = starts
        .chunks(batch)
        .map(|chunk| {
            chunk
                .iter()
                .flat_map(|&s| &padded[s..s + window])
                .copied()
                .collect()
        })
        .collect();
    let (cpu0, wall0) = (thread_cpu_seconds(), Instant::now());
    let mut checksum = 0f64;
    let mut scores: Vec<Vec<f32>> = Vec::new();
    for input in &inputs {
        let n = (input.len() / window) as i64;
        let tensor = TensorRef::from_array_view(([n, window as i64], input.as_slice()))?;
        let out = session.run(ort::inputs![input_name.as_str() => tensor])?;
        let (_, data) = out[0].try_extract_tensor::<f32>()?;
        checksum += data.iter().map(|&v| v as f64).sum::<f64>();
        if decision {
            scores.extend(data.chunks(data.len() / n as usize).map(<[f32]>::to_vec));
        }
    }
    let (cpu, wall) = (thread_cpu_seconds() - cpu0, wall0.elapsed().as_secs_f64());
    let decision_cpu = if decision {
        let labels = model::read_labels(&manifest_path.parent().unwrap().join(&manifest.labels))?;
        let rate = manifest.sample_rate as f64;
        Some(decision_seconds(
            &labels,
            &scores,
            hop as f64 / rate,
            window as f64 / rate,
        )?)
    } else {
        None
    };
    println!(
        "{}",
        serde_json::json!({
            "file": file,
            "audio_seconds": samples.len() as f64 / manifest.sample_rate as f64,
            "windows": starts.len(),
            "batch": batch,
            "opt": opt.as_deref().unwrap_or("hark (all)"),
            "run_cpu_s": cpu,
            "run_wall_s": wall,
            "ms_per_window": cpu * 1000.0 / starts.len() as f64,
            "checksum": checksum,
            "decision_cpu_s": decision_cpu.map(|(c, _)| c),
            "decision_us_per_window": decision_cpu.map(|(c, _)| c * 1e6 / starts.len() as f64),
            "decision_share_of_inference": decision_cpu.map(|(c, _)| c / cpu),
            "events": decision_cpu.map(|(_, e)| e),
        })
    );
    Ok(())
}

/// Thread CPU seconds of smoothing and deciding over `scores` (one row per window of `window_s`,
/// `hop_s` apart), with the default configuration as `hark run` fits it to `labels`; and the number of
/// records the decisions produced (event starts and ends), which keeps the work observable.
fn decision_seconds(
    labels: &[String],
    scores: &[Vec<f32>],
    hop_s: f64,
    window_s: f64,
) -> anyhow::Result<(f64, usize)> {
    use hark::pipeline::decision::Decider;
    use hark::pipeline::smoothing::Smoother;
    let loaded = hark::config::load(&hark::config::Sources::default())?;
    let live = loaded.for_labels(labels)?.live();
    let mut smoother = Smoother::new(&live.smoothing, labels.len());
    let mut decider = Decider::with_groups(&live.decision, &live.groups, labels);
    let cpu0 = thread_cpu_seconds();
    let mut records = 0;
    for (i, row) in scores.iter().enumerate() {
        let start = i as f64 * hop_s;
        let smoothed = smoother.push(row);
        records += decider.update(start, start + window_s, smoothed, "t").len();
    }
    records += decider
        .finish(scores.len() as f64 * hop_s + window_s, "t")
        .len();
    Ok((thread_cpu_seconds() - cpu0, records))
}
