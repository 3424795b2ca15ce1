//! `hark run`: assembles the stages into the running daemon and shuts it down in order.
//!
//! Threads: the capture source (a cpal callback or a reader thread) → the consumer thread
//! (pipeline, owns the model) → records fan out to the socket hub, the hooks and stdout. A
//! small tokio runtime runs the socket server, hook processes and signal handling. SIGTERM and
//! SIGINT lead to one orderly stop: capture stops, the window in flight finishes, open events
//! end, a final `status` goes out, subscribers are closed and the socket file is removed.
//! SIGHUP reloads the configuration (see `reload`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::audio::RawFormat;
use crate::capture::{Capture, DeviceSource, FileSource, Source, StdinSource};
use crate::config::{self, Settings, Sources};
use crate::hooks::Hooks;
use crate::model::{self, Model};
use crate::pipeline::{self, Consumer, Control, Outcome, Rebuild, Supervisor};
use crate::publish::{self, Hello, Hub};
use crate::record::Record;

/// Where audio comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A capture device by name or substring; None = the configured or default device.
    Device(Option<String>),
    /// A file played at real time (or as fast as possible with `realtime: false`).
    File { path: PathBuf, realtime: bool },
    /// Raw PCM on stdin.
    Stdin {
        rate: u32,
        format: RawFormat,
        channels: u16,
    },
}

/// What `hark run` writes to stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Print {
    /// Short readable lines, events only.
    Text,
    /// Every record as one JSON line (the socket's records).
    Json,
    /// Nothing.
    None,
}

/// Everything `hark run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub config: Sources,
    pub input: Input,
    pub exit_at_end: bool,
    pub print: Print,
    /// Do not listen on a socket.
    pub no_socket: bool,
}

/// Run the daemon until the input ends (with `exit_at_end`) or a stop signal arrives.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let loaded = config::load(&opts.config)?;
    for key in &loaded.unknown {
        tracing::warn!(key = %key, "unknown config key ignored");
    }
    let (model, settings) = load_model(&loaded)?;
    let labels = model.labels().to_vec();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hark-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")?;

    // Open the source first, so that "no device" fails the command before anything else starts.
    let mut capture = open_source(&opts.input, &settings)?;
    let hub = Hub::new(hello(&model), &settings.socket);
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let server = if opts.no_socket {
        None
    } else {
        let listener = publish::bind(&settings.socket)?;
        tracing::info!(path = %listener.path().display(), "socket ready");
        let hub = hub.clone();
        Some(rt.spawn(async move {
            publish::serve(listener, hub, async {
                let _ = shutdown_rx.await;
            })
            .await
        }))
    };
    let hooks = Arc::new(Hooks::start(settings.hooks.clone(), rt.handle()));

    let stop = Arc::new(AtomicBool::new(false));
    let (control_tx, control_rx) = mpsc::channel::<Control>();
    let signals = rt.spawn(handle_signals(
        stop.clone(),
        control_tx,
        opts.config.clone(),
        settings.clone(),
        labels,
        hooks.clone(),
    ));

    let hook_sender = hooks.sender();
    let print = opts.print;
    let consumer_stop = stop.clone();
    let pub_hub = hub.clone();
    let input = opts.input.clone();
    let worker = std::thread::Builder::new()
        .name("hark-consumer".into())
        .spawn(move || -> anyhow::Result<()> {
            let stdout = std::io::stdout();
            let mut emit = |r: Record| {
                pub_hub.publish(&r);
                hook_sender.handle(&r);
                print_record(&mut stdout.lock(), print, &r);
            };
            let mut watchdog = crate::service::Watchdog::from_env();
            let mut settings = settings;
            let mut consumer = Consumer::new(model, settings.live());
            consumer.set_lossless(is_lossless(&input));
            consumer.set_stall_timeout(stall_timeout(&input, &settings));
            crate::service::ready(&format!("listening on {}", capture.name));
            loop {
                tracing::info!(
                    source = %capture.name,
                    rate = capture.sample_rate,
                    model = %consumer.model().manifest().name,
                    "listening"
                );
                let outcome = pipeline::run(
                    &mut consumer,
                    &mut capture,
                    &consumer_stop,
                    Some(&control_rx),
                    &mut watchdog as &mut dyn Supervisor,
                    &mut emit,
                )?;
                match outcome {
                    Outcome::Ended | Outcome::Stopped => {
                        let c = consumer.counters();
                        tracing::info!(
                            windows = c.windows,
                            skipped = c.skipped_windows,
                            overruns = c.overruns,
                            "input finished"
                        );
                        return Ok(());
                    }
                    Outcome::DeviceLost => {
                        drop(capture);
                        match reopen(&input, &settings, &consumer_stop, &mut watchdog) {
                            Some(c) => {
                                emit(consumer.status_record(Some(format!("capture device {} is back", c.name))));
                                capture = c;
                            }
                            None => return Ok(()),
                        }
                    }
                    Outcome::Rebuild(r) => {
                        let Rebuild { model, settings: new } = *r;
                        pub_hub.set_hello(hello(&model));
                        let position = consumer.position();
                        if new.capture != settings.capture {
                            drop(capture);
                            capture = match reopen(&input, &new, &consumer_stop, &mut watchdog) {
                                Some(c) => c,
                                None => return Ok(()),
                            };
                        }
                        consumer = Consumer::new(model, new.live());
                        consumer.set_lossless(is_lossless(&input));
                        consumer.set_stall_timeout(stall_timeout(&input, &new));
                        consumer.seek(position);
                        settings = new;
                        tracing::info!(model = %consumer.model().manifest().name, "pipeline rebuilt");
                    }
                }
            }
        })
        .context("starting the consumer thread")?;
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))??;

    if !opts.exit_at_end {
        // The input ended but the daemon keeps serving subscribers until told to stop; it is
        // idle, not wedged, so systemd's watchdog keeps being fed.
        let mut watchdog = crate::service::Watchdog::from_env();
        while !stop.load(Ordering::Relaxed) {
            watchdog.tick();
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    crate::service::stopping();
    let _ = shutdown_tx.send(());
    signals.abort();
    rt.block_on(async {
        let _ = signals.await;
        if let Some(server) = server {
            match tokio::time::timeout(Duration::from_secs(2), server).await {
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "socket server"),
                Err(_) => tracing::warn!("socket server did not stop in time"),
                _ => {}
            }
        }
        match Arc::try_unwrap(hooks) {
            Ok(hooks) => hooks.shutdown().await,
            Err(_) => tracing::warn!("hooks still referenced at shutdown"),
        }
    });
    rt.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

/// Sources that wait for the consumer instead of dropping samples: a file read as fast as
/// possible, and stdin (the pipe pushes back on its writer). Skipping windows there would
/// throw away audio that is already here.
fn is_lossless(input: &Input) -> bool {
    matches!(
        input,
        Input::File {
            realtime: false,
            ..
        } | Input::Stdin { .. }
    )
}

/// How long a device may deliver nothing before it is reopened (devices only).
fn stall_timeout(input: &Input, settings: &Settings) -> Option<Duration> {
    let t = settings.capture.stall_timeout;
    (matches!(input, Input::Device(_)) && t > 0.0).then(|| Duration::from_secs_f64(t))
}

/// Build and start the source `input` names.
fn open_source(input: &Input, settings: &Settings) -> anyhow::Result<Capture> {
    let source: Box<dyn Source> = match input {
        Input::Device(name) => Box::new(DeviceSource {
            device: name.clone().or_else(|| settings.capture.device.clone()),
            period: (settings.capture.period > 0.0).then_some(settings.capture.period),
        }),
        Input::File { path, realtime } => Box::new(FileSource {
            path: path.clone(),
            realtime: *realtime,
        }),
        Input::Stdin {
            rate,
            format,
            channels,
        } => Box::new(StdinSource {
            rate: *rate,
            format: *format,
            channels: *channels,
        }),
    };
    let described = source.describe();
    source
        .start(settings.capture.ring_seconds)
        .with_context(|| format!("starting capture from {described}"))
}

/// Reopen a lost device with exponential backoff until it is back or `stop` is set.
fn reopen(
    input: &Input,
    settings: &Settings,
    stop: &AtomicBool,
    watchdog: &mut dyn Supervisor,
) -> Option<Capture> {
    let mut backoff = Duration::from_millis(250);
    let mut attempts = 0u32;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        attempts += 1;
        match open_source(input, settings) {
            Ok(c) => {
                tracing::info!(attempts, device = %c.name, "capture device reopened");
                return Some(c);
            }
            Err(e) => {
                tracing::warn!(attempts, retry_in_ms = backoff.as_millis() as u64, error = %crate::logging::error_chain(&e), "capture device not available");
                crate::service::status(&format!(
                    "waiting for the capture device (attempt {attempts})"
                ));
            }
        }
        // Sleep in small steps: keep the watchdog fed and notice a stop at once.
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            watchdog.tick();
            std::thread::sleep(Duration::from_millis(20));
        }
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

/// Load the configured model and fit the settings to its labels.
fn load_model(loaded: &config::Loaded) -> anyhow::Result<(Model, Settings)> {
    let path = model::resolve(&loaded.settings.model.name)?;
    let model = Model::load(&path, &loaded.settings.model.load_options())?;
    let settings = loaded.for_labels(model.labels())?;
    Ok((model, settings))
}

fn hello(model: &Model) -> Hello {
    Hello {
        protocol: publish::PROTOCOL_VERSION,
        hark_version: env!("CARGO_PKG_VERSION").into(),
        model: model.manifest().name.clone(),
        labels: model.labels().to_vec(),
        sample_rate: model.sample_rate(),
        window: model.manifest().window_seconds(),
        hop: model.hop_samples() as f64 / model.sample_rate() as f64,
    }
}

/// SIGTERM / SIGINT stop; SIGHUP reloads the configuration.
async fn handle_signals(
    stop: Arc<AtomicBool>,
    control: mpsc::Sender<Control>,
    sources: Sources,
    mut running: Settings,
    mut labels: Vec<String>,
    hooks: Arc<Hooks>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
            _ = hup.recv() => {
                let (src, old, old_labels) = (sources.clone(), running.clone(), labels.clone());
                let result = tokio::task::spawn_blocking(move || reload(&src, &old, &old_labels)).await;
                match result {
                    Ok(Ok((new, msg))) => {
                        hooks.set_settings(new.hooks.clone());
                        if let Control::Rebuild(r) = &msg {
                            labels = r.model.labels().to_vec();
                        }
                        let _ = control.send(msg);
                        running = new;
                        tracing::info!("SIGHUP: configuration reloaded");
                    }
                    Ok(Err(e)) => tracing::error!(
                        error = %crate::logging::error_chain(&e),
                        "SIGHUP: new configuration rejected; keeping the running one"
                    ),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed"),
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
}

/// Load and check a new configuration. What can change live becomes `Control::Settings`; a
/// changed model, window or device becomes `Control::Rebuild` with the new model already
/// loaded, so a model that fails to load leaves the running pipeline untouched.
fn reload(
    sources: &Sources,
    running: &Settings,
    labels: &[String],
) -> anyhow::Result<(Settings, Control)> {
    let loaded = config::load(sources)?;
    for key in &loaded.unknown {
        tracing::warn!(key = %key, "unknown config key ignored");
    }
    if loaded.settings.model != running.model || loaded.settings.capture != running.capture {
        let (model, new) = load_model(&loaded)?;
        let r = Rebuild {
            model,
            settings: new.clone(),
        };
        return Ok((new, Control::Rebuild(Box::new(r))));
    }
    let new = loaded.for_labels(labels)?;
    Ok((new.clone(), Control::Settings(Box::new(new.live()))))
}

/// Write one record to stdout in the chosen form.
fn print_record(out: &mut impl Write, print: Print, r: &Record) {
    let line = match (print, r) {
        (Print::None, _) => return,
        (Print::Json, r) => r.to_json(),
        (
            Print::Text,
            Record::EventStart {
                label,
                start,
                score,
                ..
            },
        ) => format!("{start:9.2}s  start  {label}  (score {score:.2})"),
        (
            Print::Text,
            Record::EventEnd {
                label,
                start,
                end,
                peak,
                ..
            },
        ) => format!(
            "{end:9.2}s  end    {label}  ({:.1} s, peak {peak:.2})",
            end - start
        ),
        (Print::Text, _) => return,
    };
    // A closed stdout (hark run | head) must not stop the daemon.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
