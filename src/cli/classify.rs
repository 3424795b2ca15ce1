//! `hark classify`: offline classification of recordings at any length, and its output.
//!
//! Turns the flags into a [`crate::classify`] run: the files (folders walked), one model per
//! job, the settings (`hark run`'s configuration with `--events`), and a formatter from
//! `classify_format`; then writes what comes back, in input order, to stdout or to one label
//! file per input (written under a temporary name and renamed). Shares the pipeline with the
//! daemon; it never touches sockets or hooks.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::classify_format::{self, ClassifyFormat, FormatOptions};
use super::classify_progress::Bars;
use super::interrupt::Interrupts;
use super::ModelArgs;
use crate::classify::{self, JobMessage, OfflineSettings};
use crate::config::{self, Sources};
use crate::model::Model;
use crate::shutdown::Shutdown;

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Labels to print per window.
    #[arg(long, short = 'k', default_value_t = 3)]
    pub top: usize,
    /// One JSON object per line instead of text (the same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// What to write: text, json or csv on stdout; audacity or raven label files per input.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ClassifyFormat,
    /// Where audacity and raven label files go (default: beside each input).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print events (what `hark run` would publish: smoothing and decision from the
    /// configuration) instead of windows.
    #[arg(long)]
    pub events: bool,
    /// Configuration file for --events (default: /etc/hark/hark.toml if it exists).
    #[arg(long, short = 'c', value_name = "FILE", requires = "events")]
    pub config: Option<PathBuf>,
    /// Files classified at once, each with its own model (default: the number of cores).
    #[arg(long, short = 'j', value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// No progress bars (they are drawn on stderr only when it is a terminal).
    #[arg(long)]
    pub no_progress: bool,
    /// Windows per model call (1 to 256), grouped from the start of each file. Batching saves
    /// CPU (BENCHMARKS.md); the scores agree with one window at a time (`--batch 1`, what
    /// `hark run` computes) to about 1e-6, not bit for bit.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub batch: u16,
    /// Audio files (WAV, FLAC, OGG, MP3; any rate and channel count), or folders to search
    /// for them.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

impl ClassifyArgs {
    fn format(&self) -> ClassifyFormat {
        if self.json {
            ClassifyFormat::Json
        } else {
            self.format
        }
    }

    /// The settings the pipeline runs with: `hark run`'s with --events, else the defaults
    /// (whose smoothing does not touch the raw scores printed per window).
    fn settings(&self, labels: &[String]) -> anyhow::Result<OfflineSettings> {
        let batch = usize::from(self.batch);
        if !self.events {
            return Ok(OfflineSettings {
                batch,
                ..OfflineSettings::default()
            });
        }
        let loaded = config::load(&Sources {
            file: self.config.clone(),
            env: true,
            flags: Vec::new(),
            strict: false,
        })?;
        for key in &loaded.unknown {
            tracing::warn!(key = %key, "unknown config key ignored");
        }
        let settings = loaded.for_labels(labels)?;
        Ok(OfflineSettings {
            live: settings.live(),
            ring_seconds: settings.capture.ring_seconds,
            batch,
        })
    }

    /// One model per job, no more than there are files.
    fn models(&self, files: usize) -> anyhow::Result<Vec<Model>> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = self.jobs.map_or(cores, usize::from).clamp(1, files.max(1));
        (0..jobs).map(|_| self.model.load()).collect()
    }
}

/// Classify each file, writing every window's best labels (or every event) and a summary per
/// file. A file that cannot be read gets one error line and is skipped; the exit code is then
/// a failure. Ctrl-C (or SIGTERM) stops at the next window, removes the label file being
/// written and exits with 128 + the signal's number.
pub fn run_classify(args: &ClassifyArgs) -> anyhow::Result<ExitCode> {
    let shutdown = Shutdown::new();
    let interrupts = Interrupts::watch(&shutdown).context("installing the signal handlers")?;
    let files = classify::audio_files(&args.files).context("listing the input folders")?;
    let models = args.models(files.len())?;
    let labels = models[0].labels().to_vec();
    let high_freq = models[0].sample_rate() / 2;
    let settings = args.settings(&labels)?;
    let opts = FormatOptions {
        format: args.format(),
        events: args.events,
        top: args.top,
        labels,
        high_freq,
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let bars = Bars::new(!args.no_progress);
    let mut writer = Writer::new(&opts, args.out.as_deref(), &files, &bars)?;
    let format = |file: &Path| classify_format::formatter(&opts, file);
    let progress = |file: &Path, seconds: Option<f64>| -> Box<dyn FnMut(f64)> {
        let bar = bars.file(file, seconds);
        Box::new(move |at| bar.at(at))
    };
    let progress: Option<&classify::Progress> = bars.active().then_some(&progress);
    classify::classify_files(
        &files,
        models,
        &settings,
        &shutdown,
        (&format, progress),
        &mut |i, msg| writer.deliver(i, msg),
    );
    let finished = writer.finish();
    match interrupts.exit_code() {
        Some(code) => {
            let left = files.len() - finished.as_ref().map_or(0, |f| f.classified);
            eprintln!(
                "hark: interrupted; {left} of {} files not classified",
                files.len()
            );
            Ok(code)
        }
        None => finished.map(|f| f.code),
    }
}

/// Where the output goes, file by file, in input order.
struct Writer<'a> {
    opts: &'a FormatOptions,
    /// Progress bars, cleared while stdout and stderr are written.
    bars: &'a Bars,
    out_dir: Option<&'a Path>,
    files: &'a [PathBuf],
    stdout: std::io::StdoutLock<'static>,
    /// The label file being written (per-input formats): its temporary and final paths.
    label_file: Option<(std::io::BufWriter<std::fs::File>, PathBuf, PathBuf)>,
    started: Option<usize>,
    /// Files classified to their end.
    classified: usize,
    failed: usize,
    error: Option<anyhow::Error>,
}

/// How the output went.
struct Finished {
    code: ExitCode,
    classified: usize,
}

impl<'a> Writer<'a> {
    fn new(
        opts: &'a FormatOptions,
        out_dir: Option<&'a Path>,
        files: &'a [PathBuf],
        bars: &'a Bars,
    ) -> anyhow::Result<Writer<'a>> {
        let mut stdout = std::io::stdout().lock();
        if !opts.format.per_input() {
            if let Some(h) = opts.format.header(opts.events) {
                writeln!(stdout, "{h}")?;
            }
        }
        Ok(Writer {
            opts,
            bars,
            out_dir,
            files,
            stdout,
            label_file: None,
            started: None,
            classified: 0,
            failed: 0,
            error: None,
        })
    }

    fn deliver(&mut self, i: usize, msg: JobMessage) {
        if let Err(e) = self.write(i, msg) {
            self.error.get_or_insert(e);
        }
    }

    fn write(&mut self, i: usize, msg: JobMessage) -> anyhow::Result<()> {
        let file = &self.files[i];
        if self.started != Some(i) {
            self.started = Some(i);
            self.start_file(file)?;
        }
        match msg {
            JobMessage::Started => {}
            JobMessage::Text(text) => match &mut self.label_file {
                Some((w, ..)) => w.write_all(text.as_bytes())?,
                None => self.print(&text)?,
            },
            JobMessage::Done(Ok(report)) => {
                if let Some(line) = classify_format::summary_line(self.opts, file, &report.heard) {
                    self.print(&format!("{line}\n"))?;
                }
                self.end_label_file(true)?;
                self.classified += 1;
            }
            JobMessage::Done(Err(e)) => {
                self.failed += 1;
                self.bars.suspend(|| eprintln!("hark: {e}"));
                self.end_label_file(false)?;
            }
        }
        Ok(())
    }

    /// The text format names each file first; a label file is opened under a temporary name.
    fn start_file(&mut self, file: &Path) -> anyhow::Result<()> {
        if self.opts.format == ClassifyFormat::Text {
            self.print(&format!("{}\n", file.display()))?;
        }
        if self.opts.format.per_input() {
            let path = self.opts.format.output_path(file, self.out_dir);
            let mut tmp = path.clone().into_os_string();
            tmp.push(".partial");
            let tmp = PathBuf::from(tmp);
            let f = std::fs::File::create(&tmp)
                .with_context(|| format!("creating {}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            if let Some(h) = self.opts.format.header(self.opts.events) {
                writeln!(w, "{h}")?;
            }
            self.label_file = Some((w, tmp, path));
        }
        Ok(())
    }

    /// A finished label file takes its name; a failed one is removed.
    fn end_label_file(&mut self, ok: bool) -> anyhow::Result<()> {
        let Some((w, tmp, path)) = self.label_file.take() else {
            return Ok(());
        };
        if ok {
            w.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, &path)
                .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        } else {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
        }
        Ok(())
    }

    /// Write to stdout; with bars on a terminal, flushed while they are cleared.
    fn print(&mut self, text: &str) -> std::io::Result<()> {
        let stdout = &mut self.stdout;
        if !self.bars.active() {
            return stdout.write_all(text.as_bytes());
        }
        self.bars.suspend(|| {
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        })
    }

    fn finish(mut self) -> anyhow::Result<Finished> {
        self.stdout.flush()?;
        if let Some(e) = self.error {
            return Err(e);
        }
        let code = if self.failed > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        };
        Ok(Finished {
            code,
            classified: self.classified,
        })
    }
}
