//! `hark run`: assembles the stages into the running daemon and shuts it down in order.
//!
//! Threads: the capture source (a cpal callback or a reader thread) → `hark-consumer`
//! (`consumer`: the pipeline, owns the model) → records go into one fan-out that every sink
//! reads (`sinks`: the socket, the hooks, stdout). A small tokio runtime (`hark-io`) runs the
//! sink tasks and the signal handler (`signals`: SIGTERM/SIGINT stop, SIGHUP reloads).
//!
//! One [`Shutdown`] stops everything: capture stops, the window in flight finishes, open
//! events end, a final `status` goes out, the fan-out closes, every sink drains and ends
//! (subscribers are closed and the socket file is removed). `systemd` speaks sd_notify.
//!
//! Must not: contain stage logic (that is in `pipeline`, `sinks`, `capture`).

mod consumer;
mod input;
pub(crate) mod overrides;
mod signals;
mod sinks;
pub mod systemd;

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{self, Settings, Sources};
use crate::model::Model;
use crate::pipeline::decision::{active_groups, Groups};
use crate::shutdown::Shutdown;
use crate::sinks::{clips, hooks, http, mqtt, socket, stdout, RunningModel};
use consumer::ConsumerThread;
pub use input::Input;
pub use signals::Rebuild;
use sinks::SinkSet;
pub use stdout::Print;

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

/// Run the daemon until the input ends (with `exit_at_end`) or `shutdown` is triggered (by a
/// signal, or by the caller: tests run the daemon in-process and stop it on demand).
pub fn run(opts: RunOptions, shutdown: Shutdown) -> anyhow::Result<()> {
    let loaded = config::load(&opts.config)?;
    for key in &loaded.unknown {
        tracing::warn!(key = %key, "unknown config key ignored");
    }
    let rt = io_runtime()?;
    let _in_runtime = rt.enter();
    // Before anything that may block: a FIFO input blocks until its writer comes.
    let handlers = signals::install(&shutdown)?;
    let (model, settings) = signals::load_model(&loaded)?;
    // Open the source and bind the socket first, so that "no device" or "socket in use" fails
    // the command before anything else starts.
    let Some(capture) = opts.input.open_until_stopped(&settings, &shutdown)? else {
        return Ok(());
    };
    let listener = if opts.no_socket {
        None
    } else {
        let listener = socket::bind(&settings.socket)?;
        tracing::info!(path = %listener.path().display(), "socket ready");
        Some(listener)
    };

    let clip_link = clips::ClipLink::default();
    // MQTT commands go to the signal handler, which applies them as it applies a SIGHUP.
    let (requests, requests_rx) = tokio::sync::mpsc::channel(8);
    let mut sinks = start_sinks(
        &opts, &model, &settings, listener, &shutdown, requests, &clip_link,
    )?;
    let (commands, commands_rx) = mpsc::channel();
    let running = signals::Running {
        sources: opts.config.clone(),
        settings: settings.clone(),
        loaded: settings.clone(),
        labels: model.labels().to_vec(),
        overrides: Default::default(),
    };
    let targets = signals::Targets {
        consumer: commands,
        sinks: sinks.take_reloader(),
    };
    rt.spawn(signals::handle(
        handlers,
        shutdown.clone(),
        targets,
        running,
        requests_rx,
    ));

    let worker = ConsumerThread {
        input: opts.input.clone(),
        settings,
        model,
        capture,
        fanout: sinks.fanout(),
        model_info: sinks.model(),
        commands: commands_rx,
        shutdown: shutdown.clone(),
        clips: clip_link.take(),
        taps: sinks.taps(),
    }
    .spawn()?;
    let result = worker
        .join()
        .map_err(|_| anyhow::anyhow!("the consumer thread panicked"))
        .and_then(|r| r);
    if result.is_ok() && !opts.exit_at_end {
        idle_until(&shutdown, &sinks.taps().heartbeat);
    }
    systemd::stopping();
    shutdown.trigger();
    let sinks_ok = rt.block_on(sinks.stop());
    rt.shutdown_timeout(Duration::from_millis(200));
    result?;
    anyhow::ensure!(sinks_ok, "a sink failed; see the log above");
    Ok(())
}

/// The one-worker tokio runtime (`hark-io`) of the sinks and signals.
fn io_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("hark-io")
        .enable_all()
        .build()
        .context("starting the I/O runtime")
}

/// Every sink, each with its section of the settings. A new sink is one more line here (see
/// ARCHITECTURE.md, "How to add a sink").
fn start_sinks(
    opts: &RunOptions,
    model: &Model,
    settings: &Settings,
    listener: Option<socket::SocketListener>,
    shutdown: &Shutdown,
    requests: mqtt::Requests,
    clip_link: &clips::ClipLink,
) -> anyhow::Result<SinkSet> {
    let mut sinks = SinkSet::new(model_info(model, &settings.groups), shutdown.clone());
    if let Some(l) = listener {
        sinks.spawn(
            "socket",
            socket::COUNTERS,
            |s| s.socket.clone(),
            settings,
            |ctx| socket::start(l, ctx),
        );
    }
    sinks.spawn(
        "hooks",
        hooks::COUNTERS,
        |s| s.hooks.clone(),
        settings,
        hooks::start,
    );
    let taps = sinks.taps();
    sinks.spawn("http", http::COUNTERS, http_section, settings, |ctx| {
        http::start(ctx, taps)
    });
    sinks.spawn(
        "mqtt",
        mqtt::COUNTERS,
        |s| mqtt::MqttSection::new(&s.mqtt, &s.decision),
        settings,
        |ctx| mqtt::start(ctx, requests),
    );
    sinks.spawn_thread(
        "clips",
        clips::COUNTERS,
        |s| s.clips.clone(),
        settings,
        |ctx| clips::start(ctx, clip_link),
    )?;
    let print = opts.print;
    sinks.spawn_thread(
        "stdout",
        stdout::COUNTERS,
        move |_| print,
        settings,
        stdout::start,
    )?;
    Ok(sinks)
}

/// The web sink's section: `[http]` and where the clips are.
fn http_section(s: &Settings) -> http::HttpSection {
    http::HttpSection {
        http: s.http.clone(),
        clips_dir: clips_dir(s),
    }
}

/// The folder `/clips/` serves from; None while clips are off.
fn clips_dir(s: &Settings) -> Option<std::path::PathBuf> {
    s.clips.enabled.then(|| s.clips.dir.clone())
}

/// The input ended but the daemon keeps serving subscribers until told to stop; it is idle,
/// not wedged, so systemd's watchdog keeps being fed.
fn idle_until(shutdown: &Shutdown, heartbeat: &crate::pipeline::tap::Heartbeat) {
    let mut watchdog = systemd::Watchdog::from_env();
    let step = Duration::from_millis(50);
    while !shutdown.sleep(Duration::from_secs(3600), step, &mut || {
        crate::pipeline::Supervisor::tick(&mut watchdog);
        heartbeat.beat();
    }) {}
}

/// What sinks announce about `model` running with `groups`.
fn model_info(model: &Model, groups: &Groups) -> RunningModel {
    RunningModel {
        name: model.manifest().name.clone(),
        labels: model.labels().to_vec(),
        groups: active_groups(groups)
            .map(|(g, m)| (g.clone(), m.clone()))
            .collect(),
        sample_rate: model.sample_rate(),
        window: model.manifest().window_seconds(),
        hop: model.hop_samples() as f64 / model.sample_rate() as f64,
    }
}
