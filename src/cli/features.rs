//! `hark features`: the log-mel front end of a whole input, written as a float32 .npy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

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

/// Compute the front end of the whole input and write it as a `[n_mels, frames]` .npy.
pub fn run_features(args: &FeaturesArgs) -> anyhow::Result<ExitCode> {
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
