//! `hark run`: the daemon's flags, turned into [`crate::daemon::RunOptions`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

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
    /// Sample rate of raw PCM on stdin, Hz (1000 to 768000).
    #[arg(long, default_value_t = 16000, value_parser = clap::value_parser!(u32).range(1000..=768_000))]
    pub rate: u32,
    /// Sample format of raw PCM on stdin: s16le, s24le, s32le, f32le, u8.
    #[arg(long, default_value = "s16le")]
    pub format: crate::audio::RawFormat,
    /// Channels of raw PCM on stdin (1 to 64).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
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
    /// The daemon's options: flags that override config keys, and the input.
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

/// Run the daemon until it is stopped (or its input ends, with `--exit-at-end`).
pub fn run_daemon(args: &RunArgs) -> anyhow::Result<ExitCode> {
    crate::daemon::run(args.options()?, crate::shutdown::Shutdown::new())?;
    Ok(ExitCode::SUCCESS)
}
