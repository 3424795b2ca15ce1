//! `hark model info`: what a model takes and gives.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::ModelArgs;

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Inputs, outputs, front end, window and hop, labels of a model.
    Info(ModelInfoArgs),
}

#[derive(Debug, Args)]
pub struct ModelInfoArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Print the model's inputs, outputs, front end, window, hop and labels, as text or JSON.
pub fn run_model_info(args: &ModelInfoArgs) -> anyhow::Result<ExitCode> {
    let model = args.model.load()?;
    let info = model.info();
    if args.json {
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
