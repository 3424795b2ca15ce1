//! `hark model info`: what a model takes and gives.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::ModelArgs;
use crate::pipeline::decision::{active_groups, Groups};

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
    /// Config file whose `[groups]` to list (default: /etc/hark/hark.toml if it exists, else
    /// the built-in defaults), as `hark run` would read it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The groups `hark run` would use with this model and config, fitted to its labels.
fn groups_for(model: &crate::model::Model, config: &Option<PathBuf>) -> anyhow::Result<Groups> {
    let loaded = crate::config::load(&crate::config::Sources {
        file: config.clone(),
        env: true,
        flags: Vec::new(),
        strict: false,
    })?;
    let settings = loaded.for_labels(model.labels())?;
    Ok(active_groups(&settings.groups)
        .map(|(g, m)| (g.clone(), m.clone()))
        .collect())
}

/// Print the model's inputs, outputs, front end, window, hop and labels, as text or JSON.
pub fn run_model_info(args: &ModelInfoArgs) -> anyhow::Result<ExitCode> {
    let model = args.model.load()?;
    let info = model.info();
    let groups = groups_for(&model, &args.config)?;
    if args.json {
        let mut v = serde_json::to_value(&info)?;
        v["groups"] = serde_json::to_value(&groups)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
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
        println!(
            "groups:      {}",
            if groups.is_empty() { "none" } else { "" }
        );
        for (name, labels) in &groups {
            println!("  {name} = {}", labels.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}
