//! Signals: SIGTERM and SIGINT trigger the shutdown; SIGHUP reloads the configuration and
//! hands each part its share (the consumer its live settings or a rebuilt model, each sink
//! its section). MQTT commands take the same path: a change of the live settings, checked
//! like the file, kept as runtime overrides that a reload applies again (`overrides`).

use std::sync::mpsc;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc as tokio_mpsc;

use super::overrides::Overrides;
use crate::config::{self, Settings, Sources};
use crate::model::Model;
use crate::pipeline::ConsumerCommand;
use crate::shutdown::Shutdown;
use crate::sinks::mqtt::Request;

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
    /// The running settings: the configuration as loaded plus `overrides`.
    pub(super) settings: Settings,
    /// The configuration as loaded (and fitted to the model's labels).
    pub(super) loaded: Settings,
    pub(super) labels: Vec<String>,
    /// What MQTT commands changed.
    pub(super) overrides: Overrides,
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

/// Where the reload path reaches the rest of the daemon.
pub(super) struct Targets<R> {
    pub(super) consumer: mpsc::Sender<ToConsumer>,
    pub(super) sinks: R,
}

/// Handle signals and commands until the shutdown is triggered (by a signal or by anyone
/// else).
pub(super) async fn handle<R: Fn(&Settings) + Send + Sync + 'static>(
    handlers: Handlers,
    shutdown: Shutdown,
    targets: Targets<R>,
    mut running: Running,
    mut requests: tokio_mpsc::Receiver<Request>,
) {
    let Handlers { mut hup } = handlers;
    loop {
        tokio::select! {
            () = shutdown.wait() => return,
            _ = hup.recv() => on_hangup(&mut running, &targets).await,
            Some(req) = requests.recv() => on_command(&mut running, &targets, req),
        }
    }
}

/// An MQTT command: the overrides with its change, applied to the loaded configuration and
/// checked; on success handed out as a reload's live settings are.
fn on_command<R: Fn(&Settings)>(running: &mut Running, targets: &Targets<R>, req: Request) {
    let overrides = running.overrides.with(&req.change);
    let result = overrides
        .apply(&running.loaded, &running.labels)
        .map(|new| {
            (targets.sinks)(&new);
            let _ = targets
                .consumer
                .send(ConsumerCommand::Settings(Box::new(new.live())));
            running.settings = new;
            running.overrides = overrides;
            tracing::info!(overrides = %running.overrides, "MQTT command applied");
        });
    if let Err(e) = &result {
        tracing::info!(error = %e, "MQTT command rejected");
    }
    let _ = req.reply.send(result);
}

async fn on_hangup<R: Fn(&Settings)>(running: &mut Running, targets: &Targets<R>) {
    let (src, old, labels, overrides) = (
        running.sources.clone(),
        running.settings.clone(),
        running.labels.clone(),
        running.overrides.clone(),
    );
    let result = tokio::task::spawn_blocking(move || reload(&src, &old, &labels, &overrides)).await;
    match result {
        Ok(Ok(r)) => {
            (targets.sinks)(&r.settings);
            if let ConsumerCommand::Rebuild(rb) = &r.consumer {
                running.labels = rb.model.labels().to_vec();
            }
            let _ = targets.consumer.send(r.consumer);
            running.settings = r.settings;
            running.loaded = r.loaded;
            if let Some(e) = r.dropped {
                tracing::warn!(
                    error = %e, overrides = %running.overrides,
                    "SIGHUP: the MQTT command overrides do not fit the new configuration; dropped"
                );
                running.overrides = Overrides::default();
            } else if !running.overrides.is_empty() {
                tracing::info!(
                    overrides = %running.overrides,
                    "SIGHUP: MQTT command overrides applied again on top of the file"
                );
            }
            tracing::info!("SIGHUP: configuration reloaded");
        }
        Ok(Err(e)) => tracing::error!(
            error = %crate::logging::error_chain(&e),
            "SIGHUP: new configuration rejected; keeping the running one"
        ),
        Err(e) => tracing::error!(error = %e, "SIGHUP: reload failed"),
    }
}

/// A reloaded configuration, ready to hand out.
struct Reloaded {
    /// As loaded, fitted to the model's labels.
    loaded: Settings,
    /// With the overrides (or as loaded, when they were dropped).
    settings: Settings,
    consumer: ToConsumer,
    /// Why the overrides were dropped, if they were.
    dropped: Option<crate::validate::Problems>,
}

/// Load and check a new configuration. What can change live becomes
/// `ConsumerCommand::Settings`; a changed model, window or device becomes
/// `ConsumerCommand::Rebuild` with the new model already loaded, so a model that fails to load
/// leaves the running pipeline untouched. The overrides are applied on top.
fn reload(
    sources: &Sources,
    running: &Settings,
    labels: &[String],
    overrides: &Overrides,
) -> anyhow::Result<Reloaded> {
    let loaded = config::load(sources)?;
    for key in &loaded.unknown {
        tracing::warn!(key = %key, "unknown config key ignored");
    }
    let (model, new) =
        if loaded.settings.model != running.model || loaded.settings.capture != running.capture {
            let (model, new) = load_model(&loaded)?;
            (Some(model), new)
        } else {
            (None, loaded.for_labels(labels)?)
        };
    let labels = model.as_ref().map_or(labels, |m| m.labels());
    let (settings, dropped) = match overrides.apply(&new, labels) {
        Ok(s) => (s, None),
        Err(e) => (new.clone(), Some(e)),
    };
    let consumer = match model {
        Some(model) => ConsumerCommand::Rebuild(Box::new(Rebuild {
            model,
            settings: settings.clone(),
        })),
        None => ConsumerCommand::Settings(Box::new(settings.live())),
    };
    Ok(Reloaded {
        loaded: new,
        settings,
        consumer,
        dropped,
    })
}

/// Load the configured model and fit the settings to its labels.
pub(super) fn load_model(loaded: &config::Loaded) -> anyhow::Result<(Model, Settings)> {
    let path = crate::model::resolve(&loaded.settings.model.name)?;
    let opts = crate::model::LoadOptions {
        // A long-running process: its resident set should be what inference uses.
        page_out_after_load: true,
        ..loaded.settings.model.load_options()
    };
    let model = Model::load(&path, &opts)?;
    let settings = loaded.for_labels(model.labels())?;
    Ok((model, settings))
}
