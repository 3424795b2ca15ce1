//! `hark check-config`: validate a configuration file and print the effective configuration.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Config file (default: /etc/hark/hark.toml if it exists, else the built-in defaults).
    pub file: Option<PathBuf>,
    /// Unknown keys are an error instead of a warning.
    #[arg(long)]
    pub strict: bool,
}

/// Load the configuration as `hark run` would, print it with where each value came from, and
/// warn about unknown keys.
pub fn run_check_config(args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let loaded = crate::config::load(&crate::config::Sources {
        file: args.file,
        env: true,
        flags: Vec::new(),
        strict: args.strict,
    })?;
    print!("{}", crate::config::describe(&loaded));
    for key in &loaded.unknown {
        eprintln!("hark: warning: unknown config key {key:?} (ignored)");
    }
    Ok(ExitCode::SUCCESS)
}
