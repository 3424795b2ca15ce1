//! Signals: SIGTERM and SIGINT trigger the shutdown; SIGHUP reloads the configuration and
//! hands each part its share (the consumer its live settings or a rebuilt model, each sink
//! its section).

use std::sync::mpsc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::config::{self, Settings, Sources};
use crate::model::Model;
use crate::pipeline::ConsumerCommand;
use crate::shutdown::Shutdown;

/// A new pipeline's parts, prepared (and checked) before the old one is torn down.
pub struct Rebuild {
    pub model: Model,
    pub settings: Settings,
}

impl std::fmt::Debug for Rebuild {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rebuild")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

/// What the consumer thread takes while it runs.
pub type ToConsumer = ConsumerCommand<Box<Rebuild>>;

/// The running configuration, as the signal handler tracks it.
pub(super) struct Running {
    pub(super) sources: Sources,
    pub(super) settings: Settings,
    pub(super) labels: Vec<String>,
}

/// The daemon's signal handlers, installed before anything that may block (opening the input,
/// loading the model), so that SIGTERM or SIGINT always means an orderly stop and SIGHUP never
/// the default action (which ends the process).
pub(super) struct Handlers {
    hup: Signal,
}

/// Install the handlers (inside the runtime) and start the task that triggers `shutdown` on
/// SIGTERM or SIGINT.
pub(super) fn install(shutdown: &Shutdown) -> anyhow::Result<Handlers> {
    use anyhow::Context;
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let shutdown = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        shutdown.trigger();
    });
    Ok(Handlers { hup })
}

/// Handle reloads (SIGHUP) until the shutdown is triggered (by a signal or by anyone else).
pub(super) async fn handle(
    handlers: Handlers,
    shutdown: Shutdown,
    commands: mpsc::Sender<ToConsumer>,
    mut running: Running,
    reload_sinks: impl Fn(&Settings) + Send + Sync + 'static,
) {
    let Handlers { mut hup } = handlers;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = hup.recv() => on_hangup(&mut running, &commands, &reload_sinks).await,
        }
    }
}

async fn on_hangup(
    running: &mut Running,
    commands: &mpsc::Sender<ToConsumer>,
    reload_sinks: &(impl Fn(&Settings) + Send + Sync),
) {
    let (src, old, old_labels) = (
        running.sources.clone(),
        running.settings.clone(),
        running.labels.clone(),
    );
    let result = tokio::task::spawn_blocking(move || reload(&src, &old, &old_labels)).await;
    match result {
        Ok(Ok((new, msg))) => {
            reload_sinks(&new);
            if let ConsumerCommand::Rebuild(r) = &msg {
                running.labels = r.model.labels().to_vec();
            }
            let _ = commands.send(msg);
            running.settings = new;
            tracing::info!("SIGHUP: configuration reloaded");
        }
        Ok(Err(e)) => tracing::error!(
            error = %crate::logging::error_chain(&e),
            "SIGHUP: new configuration rejected; keeping the running one"
        ),
        Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed"),
    }
}

/// Load and check a new configuration. What can change live becomes
/// `ConsumerCommand::Settings`; a changed model, window or device becomes
/// `ConsumerCommand::Rebuild` with the new model already loaded, so a model that fails to load
/// leaves the running pipeline untouched.
fn reload(
    sources: &Sources,
    running: &Settings,
    labels: &[String],
) -> anyhow::Result<(Settings, ToConsumer)> {
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
        return Ok((new, ConsumerCommand::Rebuild(Box::new(r))));
    }
    let new = loaded.for_labels(labels)?;
    Ok((new.clone(), ConsumerCommand::Settings(Box::new(new.live()))))
}

/// Load the configured model and fit the settings to its labels.
pub(super) fn load_model(loaded: &config::Loaded) -> anyhow::Result<(Model, Settings)> {
    let path = crate::model::resolve(&loaded.settings.model.name)?;
    let model = Model::load(&path, &loaded.settings.model.load_options())?;
    let settings = loaded.for_labels(model.labels())?;
    Ok((model, settings))
}
