//! The command line: flags for every subcommand and the dispatch to the library.
//!
//! Parsing lives here so that `main.rs` stays a few lines; each command's work lives in the
//! module of the stage it exercises. Errors travel up as `anyhow::Error` with context and are
//! printed once by `main`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::classify;
use crate::model::{self, LoadOptions, Model};

/// hark: hears sound events (alarms, knocks, doorbells, glass breaking ...) and reports them.
#[derive(Debug, Parser)]
#[command(name = "hark", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (error, warn, info, debug, trace, or a tracing directive). Also RUST_LOG.
    #[arg(long, global = true, env = "HARK_LOG", default_value = "info")]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Classify audio files offline, window by window.
    Classify(ClassifyArgs),
    /// Compute log-mel features of a whole input and write them as a float32 .npy [n_mels, frames].
    Features(FeaturesArgs),
    /// Listen continuously and report sound events (the daemon).
    Run(Box<RunArgs>),
    /// List audio capture devices with their rates, formats and channel counts.
    Devices,
    /// Print what a running `hark run` publishes on its socket; reconnects when it restarts.
    Subscribe(SubscribeArgs),
    /// Validate a configuration file and print the effective configuration.
    CheckConfig {
        /// Config file (default: /etc/hark/hark.toml if it exists, else the built-in defaults).
        file: Option<PathBuf>,
        /// Unknown keys are an error instead of a warning.
        #[arg(long)]
        strict: bool,
    },
    /// Inspect models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Train a detector for your own sounds (a folder per class) and write a ready model folder.
    Train(Box<TrainArgs>),
    /// Measure a model on a labelled dataset: accuracy, balanced accuracy, per class, confusion.
    Eval(Box<EvalArgs>),
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Inputs, outputs, front end, window and hop, labels of a model.
    Info {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which model to load and how.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Model: a manifest (.toml), a folder holding one, or a name under models/.
    #[arg(long, short = 'm', default_value = model::DEFAULT_MODEL)]
    pub model: String,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, third_party/onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Threads ONNX Runtime may use for one inference.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Window length in seconds instead of the manifest's (waveform models).
    #[arg(long, value_name = "SECONDS")]
    pub window: Option<f64>,
    /// Hop between windows in seconds instead of the manifest's.
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
}

impl ModelArgs {
    pub fn load(&self) -> anyhow::Result<Model> {
        let path = model::resolve(&self.model)?;
        let opts = LoadOptions {
            onnxruntime: self.onnxruntime.clone(),
            threads: self.threads,
            window: self.window,
            hop: self.hop,
        };
        Ok(Model::load(&path, &opts)?)
    }
}

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels to print per window.
    #[arg(long, short = 'k', default_value_t = 3)]
    pub top: usize,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Windows per ONNX Runtime call, for models with a dynamic batch dimension (others run
    /// one window at a time). Scores agree across batch sizes to float rounding (about 1e-6);
    /// see BENCHMARKS.md for the speed.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Audio files (WAV, FLAC, OGG, MP3; any rate and channel count).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// Feature spec: TOML or JSON with the front end's fields.
    #[arg(long)]
    pub spec: PathBuf,
    /// Input: a .wav (any format; converted to mono at the spec's rate) or a .npy of float32 mono samples at the spec's rate.
    pub input: PathBuf,
    /// Output .npy file.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Socket path (default: as `hark run` chooses it).
    #[arg(long, short = 's', value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Also print predictions (one per window).
    #[arg(long)]
    pub predictions: bool,
    /// Only events with these labels.
    #[arg(long, short = 'l', num_args = 1..)]
    pub labels: Vec<String>,
    /// Print the raw JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Give up after this many failed connection attempts in a row (default: retry forever).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (default: /etc/hark/hark.toml if it exists).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Unknown config keys are an error instead of a warning.
    #[arg(long)]
    pub strict: bool,
    /// Model: a manifest, a folder holding one, or a name under models/ (config model.name).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Path of libonnxruntime.so (config model.onnxruntime).
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Hop between windows in seconds (config model.hop).
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
    /// Capture device name or part of it (config capture.device; see `hark devices`).
    #[arg(long, short = 'd', conflicts_with = "input")]
    pub device: Option<String>,
    /// Read a file instead of a device (played at real time), or `-` for raw PCM on stdin.
    #[arg(long, short = 'i', value_name = "FILE|-")]
    pub input: Option<PathBuf>,
    /// With --input FILE: read the file as fast as the pipeline takes it, not at real time.
    #[arg(long, requires = "input")]
    pub fast: bool,
    /// Sample rate of raw PCM on stdin, Hz.
    #[arg(long, default_value_t = 16000)]
    pub rate: u32,
    /// Sample format of raw PCM on stdin: s16le, s24le, s32le, f32le, u8.
    #[arg(long, default_value = "s16le")]
    pub format: crate::audio::RawFormat,
    /// Channels of raw PCM on stdin.
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Stop when the file or stdin ends (default: keep serving until stopped).
    #[arg(long)]
    pub exit_at_end: bool,
    /// What to print on stdout: readable event lines, every record as JSON, or nothing.
    #[arg(long, value_enum, default_value = "text")]
    pub print: crate::daemon::Print,
    /// Unix socket path (config socket.path).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Do not listen on a socket.
    #[arg(long, conflicts_with = "socket")]
    pub no_socket: bool,
}

impl RunArgs {
    fn options(&self) -> anyhow::Result<crate::daemon::RunOptions> {
        use crate::daemon::Input;
        let mut flags: Vec<(String, config::Value)> = Vec::new();
        let mut flag = |k: &str, v: config::Value| flags.push((k.to_string(), v));
        if let Some(m) = &self.model {
            flag("model.name", m.clone().into());
        }
        if let Some(p) = &self.onnxruntime {
            flag("model.onnxruntime", p.display().to_string().into());
        }
        if let Some(h) = self.hop {
            flag("model.hop", h.into());
        }
        if let Some(d) = &self.device {
            flag("capture.device", d.clone().into());
        }
        if let Some(s) = &self.socket {
            flag("socket.path", s.display().to_string().into());
        }
        let input = match &self.input {
            None => Input::Device(None),
            Some(p) if p.as_os_str() == "-" => Input::Stdin {
                rate: self.rate,
                format: self.format,
                channels: self.channels,
            },
            Some(p) => Input::File {
                path: p.clone(),
                realtime: !self.fast,
            },
        };
        Ok(crate::daemon::RunOptions {
            config: crate::config::Sources {
                file: self.config.clone(),
                env: true,
                flags,
                strict: self.strict,
            },
            input,
            exit_at_end: self.exit_at_end,
            print: self.print,
            no_socket: self.no_socket,
        })
    }
}

/// Run the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(cli.command, Command::Run(_)) {
        // One-shot commands end quietly when their reader goes away (`hark model info | head`),
        // as command-line tools do. The daemon keeps Rust's default (writes fail, it goes on).
        // SAFETY: setting a signal disposition to SIG_DFL before any threads are started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Run(args) => {
            crate::daemon::run(args.options()?, crate::shutdown::Shutdown::new())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Devices => devices(),
        Command::Subscribe(a) => {
            crate::subscribe::run(&crate::subscribe::SubscribeOptions {
                socket: a.socket.unwrap_or_else(crate::subscribe::default_socket),
                predictions: a.predictions,
                labels: a.labels,
                json: a.json,
                max_attempts: a.max_attempts,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::CheckConfig { file, strict } => check_config(file, strict),
        Command::Classify(args) => classify_files(&args),
        Command::Features(args) => features(&args),
        Command::Model {
            command: ModelCommand::Info { model, json },
        } => model_info(&model, json),
        Command::Train(args) => train(&args),
        Command::Eval(args) => eval(&args),
    }
}

fn devices() -> anyhow::Result<ExitCode> {
    let devices = crate::capture::list_devices()?;
    if devices.is_empty() {
        println!("no capture devices found");
        return Ok(ExitCode::from(crate::exit::NO_DEVICE));
    }
    for d in devices {
        println!("{d}");
    }
    Ok(ExitCode::SUCCESS)
}

fn check_config(file: Option<PathBuf>, strict: bool) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(&crate::config::Sources {
        file,
        env: true,
        flags: Vec::new(),
        strict,
    })?;
    print!("{}", crate::config::describe(&loaded));
    for key in &loaded.unknown {
        eprintln!("hark: warning: unknown config key {key:?} (ignored)");
    }
    Ok(ExitCode::SUCCESS)
}

fn classify_files(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let mut model = args.model.load()?;
    let labels = model.labels().to_vec();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = 0;
    for file in &args.files {
        let samples = match crate::audio::load_mono(file, model.sample_rate()) {
            Ok(s) if s.is_empty() => {
                tracing::error!(file = %file.display(), "no audio samples in file");
                eprintln!("hark: {}: the file holds no audio samples", file.display());
                failed += 1;
                continue;
            }
            Ok(s) => s,
            Err(e) => {
                eprintln!("hark: {e}");
                failed += 1;
                continue;
            }
        };
        let windows =
            crate::windowing::classify_samples(&mut model, &samples, usize::from(args.batch))
                .with_context(|| format!("classifying {}", file.display()))?;
        if !args.json {
            writeln!(out, "{}", file.display())?;
        }
        for w in &windows {
            let top = crate::windowing::top_k(&w.scores, &labels, args.top);
            if args.json {
                writeln!(out, "{}", classify::window_json(file, w, &top))?;
            } else {
                writeln!(out, "{}", classify::window_text(w, &top))?;
            }
        }
        let heard = classify::summarize(&windows, &labels);
        if args.json {
            writeln!(out, "{}", classify::summary_json(file, &heard))?;
        } else {
            writeln!(out, "{}", classify::summary_text(&heard))?;
        }
    }
    Ok(if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn features(args: &FeaturesArgs) -> anyhow::Result<ExitCode> {
    let spec = crate::frontend::FeatureSpec::from_file(&args.spec)?;
    let samples = read_samples(&args.input, spec.sample_rate)?;
    let frontend = crate::frontend::MelFrontend::new(spec)?;
    let feats = frontend.compute(&samples);
    let shape = [feats.nrows(), feats.ncols()];
    let data: Vec<f32> = feats.as_standard_layout().iter().copied().collect();
    crate::npy::write_f32(&args.out, &shape, &data)?;
    tracing::info!(out = %args.out.display(), mels = shape[0], frames = shape[1], "wrote features");
    Ok(ExitCode::SUCCESS)
}

/// Samples of a features input: a .npy of float32 mono samples, or any audio file.
fn read_samples(path: &Path, rate: u32) -> anyhow::Result<Vec<f32>> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        let (shape, data) = crate::npy::read_f32(path)?;
        if shape.len() != 1 {
            anyhow::bail!(
                "{}: expected a 1-D array of mono samples, got shape {shape:?}",
                path.display()
            );
        }
        Ok(data)
    } else {
        Ok(crate::audio::load_mono(path, rate)?)
    }
}

fn model_info(args: &ModelArgs, json: bool) -> anyhow::Result<ExitCode> {
    let model = args.load()?;
    let info = model.info();
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("name:        {}", info.name);
        println!("manifest:    {}", info.manifest.display());
        println!("model:       {}", info.model.display());
        println!("inputs:      {}", info.inputs.join(", "));
        println!("outputs:     {}", info.outputs.join(", "));
        println!("front end:   {}", info.frontend);
        println!("sample rate: {} Hz", info.sample_rate);
        println!("window:      {} s", info.window);
        println!("hop:         {} s", info.hop);
        println!(
            "output:      {:?}, {}",
            info.output,
            if info.multi_label {
                "multi-label"
            } else {
                "single-label"
            }
        );
        println!(
            "labels:      {} ({}, ...)",
            info.labels,
            info.first_labels.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset: a folder with one sub-folder of recordings per class, or with a labels.csv
    /// (columns file,label and optionally group, fold).
    pub dataset: PathBuf,
    /// Model folder to write (manifest.toml, head.onnx, labels.txt, base/, report.json).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub out: PathBuf,
    /// What to train: `head` = a classifier on the base model's output. (A log-mel CNN is
    /// trained in Python by training/train_cnn.py on `hark features`; see docs/training.md.)
    #[arg(long, value_enum, default_value = "head")]
    pub approach: crate::train::Approach,
    /// Base model whose output the head learns from.
    #[arg(long, default_value = model::DEFAULT_MODEL, value_name = "MODEL")]
    pub base: String,
    /// Labels CSV instead of DATASET/labels.csv (paths in it relative to DATASET).
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// labels.csv column naming the recording each clip was cut from (default: `group`).
    #[arg(long, value_name = "COLUMN")]
    pub group_by: Option<String>,
    /// Regex on each file's path relative to DATASET; its first capture group names the
    /// recording (e.g. '^(.*)_chunk\d+' for chunks of one recording). Files it does not
    /// match are their own recording.
    #[arg(long, value_name = "REGEX")]
    pub group_pattern: Option<String>,
    /// Use only these classes (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub classes: Option<Vec<String>>,
    /// Cross-validation rounds over recording groups (when the dataset has no `fold` column;
    /// with one, each fold is held out in turn).
    #[arg(long, default_value_t = 5, value_name = "K")]
    pub folds: usize,
    /// Hold out this fold of the dataset only; the model written is the one trained without it.
    #[arg(long, value_name = "FOLD", conflicts_with = "no_eval")]
    pub test_fold: Option<String>,
    /// Train on everything and measure nothing (for datasets too small to hold anything out).
    #[arg(long)]
    pub no_eval: bool,
    /// Training epochs (full-batch Adam steps).
    #[arg(long, default_value_t = 300)]
    pub epochs: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 0.01)]
    pub learning_rate: f32,
    /// L2 penalty on the weights.
    #[arg(long, default_value_t = 1e-3)]
    pub l2: f32,
    /// Hidden units of a one-hidden-layer MLP; 0 = logistic regression.
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// What the head learns from: the base model's last hidden layer (`internal`), or its
    /// scores as log-odds or as they are.
    #[arg(long, value_enum, default_value = "internal")]
    pub embedding: crate::train::Embedding,
    /// Fit on every window, or on one mean score vector per clip.
    #[arg(long, value_enum, default_value = "windows")]
    pub train_on: crate::train::TrainOn,
    /// Do not weigh classes equally (by default a class with few clips counts as much as one
    /// with many).
    #[arg(long)]
    pub no_balance: bool,
    /// How a held-out clip's windows become one decision.
    #[arg(long, value_enum, default_value = "mean")]
    pub clip_score: crate::eval::ClipScore,
    /// Seed for the split's tie-breaking and the MLP's initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub run: DatasetRunArgs,
}

/// How `hark train` and `hark eval` read a dataset, run the model over it and report.
#[derive(Debug, Args)]
pub struct DatasetRunArgs {
    /// Percentage of files that may fail to decode (listed and skipped) before the command stops.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    pub max_unreadable: f64,
    /// Threads running the model, each with its own copy (default: all cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Path of libonnxruntime.so (default: ORT_DYLIB_PATH, third_party/onnxruntime, system paths).
    #[arg(long, value_name = "PATH")]
    pub onnxruntime: Option<PathBuf>,
    /// Print the report (metrics) as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr (warnings still appear).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model: a manifest (.toml), a folder holding one, or a name under models/.
    pub model: String,
    /// Dataset: a folder per class, or a folder with a labels.csv. Its class names must be
    /// labels of the model (case, `_` and `-` aside).
    pub dataset: PathBuf,
    /// Labels CSV instead of DATASET/labels.csv.
    #[arg(long, value_name = "CSV")]
    pub labels: Option<PathBuf>,
    /// Use only these classes (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "A,B,...")]
    pub classes: Option<Vec<String>>,
    /// Evaluate only clips of these folds (comma-separated), e.g. the fold held out in training.
    #[arg(long, value_delimiter = ',', value_name = "FOLD")]
    pub fold: Vec<String>,
    /// How a clip's windows become one decision.
    #[arg(long, value_enum, default_value = "mean")]
    pub clip_score: crate::eval::ClipScore,
    /// Hop between windows in seconds instead of the manifest's.
    #[arg(long, value_name = "SECONDS")]
    pub hop: Option<f64>,
    #[command(flatten)]
    pub run: DatasetRunArgs,
}

fn default_jobs(jobs: Option<usize>) -> usize {
    jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn dataset_options(
    labels: &Option<PathBuf>,
    group_by: Option<String>,
    group_pattern: Option<&str>,
    classes: &Option<Vec<String>>,
) -> anyhow::Result<crate::train::dataset::DatasetOptions> {
    let group_pattern = group_pattern
        .map(|p| {
            regex::Regex::new(p)
                .with_context(|| format!("--group-pattern {p:?} is not a valid regex"))
        })
        .transpose()?;
    Ok(crate::train::dataset::DatasetOptions {
        labels_csv: labels.clone(),
        group_by,
        group_pattern,
        classes: classes.clone(),
    })
}

/// A report as one JSON object, with the metrics' keys (`accuracy`, `balanced_accuracy`,
/// `per_class`, `confusion`, ...) at the top level; null when nothing was measured.
fn flatten_metrics(mut v: serde_json::Value) -> serde_json::Value {
    let metrics = v
        .as_object_mut()
        .and_then(|o| o.remove("metrics"))
        .unwrap_or(serde_json::Value::Null);
    if let Some(o) = v.as_object_mut() {
        for key in [
            "accuracy",
            "balanced_accuracy",
            "per_class",
            "confusion",
            "labels",
        ] {
            o.insert(key.into(), serde_json::Value::Null);
        }
        if let serde_json::Value::Object(m) = metrics {
            o.extend(m);
        }
    }
    v
}

fn train(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    use crate::train::{fit, split::SplitRequest, TrainOptions};
    let opts = TrainOptions {
        dataset: args.dataset.clone(),
        dataset_opts: dataset_options(
            &args.labels,
            args.group_by.clone(),
            args.group_pattern.as_deref(),
            &args.classes,
        )?,
        out: args.out.clone(),
        approach: args.approach,
        base: args.base.clone(),
        embedding: args.embedding,
        load: LoadOptions {
            onnxruntime: args.run.onnxruntime.clone(),
            ..LoadOptions::default()
        },
        jobs: default_jobs(args.run.jobs),
        split: match (&args.test_fold, args.no_eval) {
            (_, true) => None,
            (Some(f), false) => Some(SplitRequest::TestFold(f.clone())),
            (None, false) => Some(SplitRequest::CrossValidate { k: args.folds }),
        },
        seed: args.seed,
        fit: fit::FitOptions {
            epochs: args.epochs.max(1),
            learning_rate: args.learning_rate,
            l2: args.l2,
            hidden: args.hidden,
            seed: args.seed,
            ..fit::FitOptions::default()
        },
        train_on: args.train_on,
        balance: !args.no_balance,
        clip_score: args.clip_score,
        max_unreadable: args.run.max_unreadable,
    };
    let progress = crate::train::Progress::stderr(args.run.quiet);
    let report = crate::train::train(&opts, &progress)
        .with_context(|| format!("training on {}", args.dataset.display()))?;
    if args.run.json {
        println!("{}", flatten_metrics(serde_json::to_value(&report)?));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "model: {} ({} classes: {})",
        report.out.display(),
        report.classes.len(),
        report.classes.join(", ")
    );
    println!(
        "use:   hark classify --model {} FILE...",
        report.out.display()
    );
    println!(
        "data:  {} clips, {} windows; groups: {}",
        report.readable_clips, report.windows, report.grouping
    );
    println!("split: {}", report.split);
    if let Some(m) = &report.metrics {
        println!(
            "\nheld-out results (each clip scored by a model that never heard its recording):"
        );
        print!("{}", m.text());
        if report.rounds.len() > 1 {
            let per: Vec<String> = report
                .rounds
                .iter()
                .map(|r| format!("{} {:.1}%", r.name, r.accuracy * 100.0))
                .collect();
            println!("per round: {}", per.join(", "));
        }
    }
    if !report.untested.is_empty() {
        println!(
            "not tested (too few recordings to hold one out): {}",
            report.untested.join(", ")
        );
    }
    if !report.unreadable.is_empty() {
        println!("skipped {} unreadable file(s):", report.unreadable.len());
        for u in &report.unreadable {
            println!("  {}: {}", u.file, u.error);
        }
    }
    if !report.padded.is_empty() {
        println!(
            "{} clip(s) shorter than a window were zero-padded",
            report.padded.len()
        );
    }
    println!(
        "time:  {:.1} s (base model over the clips {:.1} s, fitting {:.1} s)",
        report.total_seconds, report.extract_seconds, report.fit_seconds
    );
    Ok(ExitCode::SUCCESS)
}

fn eval(args: &EvalArgs) -> anyhow::Result<ExitCode> {
    let opts = crate::eval::EvalOptions {
        dataset: dataset_options(&args.labels, None, None, &args.classes)?,
        folds: args.fold.clone(),
        load: LoadOptions {
            onnxruntime: args.run.onnxruntime.clone(),
            hop: args.hop,
            ..LoadOptions::default()
        },
        jobs: default_jobs(args.run.jobs),
        clip_score: args.clip_score,
        max_unreadable: args.run.max_unreadable,
    };
    let progress = crate::train::Progress::stderr(args.run.quiet);
    let report = crate::eval::evaluate(&args.model, &args.dataset, &opts, &progress)
        .with_context(|| format!("evaluating {} on {}", args.model, args.dataset.display()))?;
    if args.run.json {
        println!("{}", serde_json::to_value(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("model:   {}", report.model.display());
    println!("dataset: {}", report.dataset.display());
    print!("{}", report.metrics.text());
    if !report.unreadable.is_empty() {
        println!("skipped {} unreadable file(s):", report.unreadable.len());
        for u in &report.unreadable {
            println!("  {}: {}", u.file, u.error);
        }
    }
    if !report.padded.is_empty() {
        println!(
            "{} clip(s) shorter than a window were zero-padded",
            report.padded.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
