//! `hark subscribe`: print what a running `hark run` publishes on its socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::subscribe::SubscribeOptions;

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

/// Run the socket client until stdout closes or it gives up connecting.
pub fn run_subscribe(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    crate::subscribe::follow(&SubscribeOptions {
        socket: args.socket.unwrap_or_else(crate::subscribe::default_socket),
        predictions: args.predictions,
        labels: args.labels,
        json: args.json,
        max_attempts: args.max_attempts,
    })?;
    Ok(ExitCode::SUCCESS)
}
