//! The command line: flags for every subcommand and the dispatch to the library.
//!
//! Parsing lives here so that `main.rs` stays a few lines. Each command has a file holding
//! its argument struct and the function that runs it, named after it (`run_classify`,
//! `run_train`, ...); the work itself lives in the module of the stage it exercises. Errors
//! travel up as `anyhow::Error` with context and are printed once by `main`.
//!
//! Must not: hold stage logic. A command's file turns flags into the library's options, calls
//! the library, and formats what it returns.

pub mod check_config;
pub mod classify;
pub mod classify_format;
pub mod classify_progress;
pub mod clips;
pub mod dataset_args;
pub mod devices;
pub mod eval;
pub mod features;
pub mod interrupt;
pub mod model_args;
pub mod model_info;
pub mod run;
pub mod subscribe;
pub mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use check_config::CheckConfigArgs;
pub use classify::ClassifyArgs;
pub use clips::ClipsArgs;
pub use dataset_args::DatasetRunArgs;
pub use eval::EvalArgs;
pub use features::FeaturesArgs;
pub use model_args::ModelArgs;
pub use model_info::{ModelCommand, ModelInfoArgs};
pub use run::RunArgs;
pub use subscribe::SubscribeArgs;
pub use train::TrainArgs;

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
    CheckConfig(CheckConfigArgs),
    /// Inspect models.
    Model {
        #[command(subcommand)]
        command: ModelCommand,
    },
    /// Train a detector for your own sounds (a folder per class) and write a ready model folder.
    Train(Box<TrainArgs>),
    /// Measure a model on a labelled dataset: accuracy, balanced accuracy, per class, confusion.
    Eval(Box<EvalArgs>),
    /// List the clips of events (`[clips]`): time, label, duration, peak, path; `prune`
    /// applies the retention now.
    Clips(ClipsArgs),
}

/// Run the parsed command; its exit code on success.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    if !matches!(cli.command, Command::Run(_)) {
        // One-shot commands end quietly when their reader goes away (`hark model info | head`),
        // as command-line tools do. The daemon keeps Rust's default (writes fail, it goes on).
        // SAFETY: setting a signal disposition to SIG_DFL before any threads are started.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match cli.command {
        Command::Run(args) => run::run_daemon(&args),
        Command::Devices => devices::run_devices(),
        Command::Subscribe(args) => subscribe::run_subscribe(args),
        Command::CheckConfig(args) => check_config::run_check_config(args),
        Command::Classify(args) => classify::run_classify(&args),
        Command::Features(args) => features::run_features(&args),
        Command::Model {
            command: ModelCommand::Info(args),
        } => model_info::run_model_info(&args),
        Command::Train(args) => train::run_train(&args),
        Command::Eval(args) => eval::run_eval(&args),
        Command::Clips(args) => clips::run_clips(args),
    }
}
