//! The daemon's sinks: each is started with its own context (records, its config section,
//! the running model, the shutdown), given its section again on every reload, and watched:
//! a sink that dies stops the daemon with an error instead of leaving it running without it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::pipeline::decision::{active_groups, Groups};
use crate::pipeline::tap::Taps;
use crate::shutdown::Shutdown;
use crate::sinks::{Fanout, RunningModel, SinkContext};

/// How long stopping waits for a sink to deliver what it holds.
const SINK_STOP: Duration = Duration::from_secs(8);

/// Gives each sink its section of a new configuration.
type Reload = Box<dyn Fn(&Settings) + Send + Sync>;

/// The running sinks.
pub(super) struct SinkSet {
    fanout: Option<Fanout>,
    shutdown: Shutdown,
    model: watch::Sender<Arc<RunningModel>>,
    reloads: Vec<Reload>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    threads: Vec<(&'static str, std::thread::JoinHandle<()>)>,
    /// Set when a sink died: the daemon then exits with an error.
    failed: Arc<AtomicBool>,
    /// What the consumer shares besides records (the web sink reads them).
    taps: Taps,
}

impl SinkSet {
    pub(super) fn new(model: RunningModel, shutdown: Shutdown) -> SinkSet {
        SinkSet {
            fanout: Some(Fanout::new()),
            shutdown,
            model: watch::channel(Arc::new(model)).0,
            reloads: Vec::new(),
            tasks: Vec::new(),
            threads: Vec::new(),
            failed: Arc::default(),
            taps: Taps::default(),
        }
    }

    /// The consumer's taps, for the consumer and the sinks that read them.
    pub(super) fn taps(&self) -> Taps {
        self.taps.clone()
    }

    /// The publishing side, for the consumer.
    pub(super) fn fanout(&self) -> Fanout {
        self.fanout.clone().expect("sinks are running")
    }

    /// Where the consumer announces a new model.
    pub(super) fn model(&self) -> watch::Sender<Arc<RunningModel>> {
        self.model.clone()
    }

    /// A context for a new sink `name` whose section `section` picks out of the settings.
    fn context<S, F>(
        &mut self,
        name: &'static str,
        counters: &[&'static str],
        section: F,
        settings: &Settings,
    ) -> SinkContext<S>
    where
        S: Clone + PartialEq + Send + Sync + 'static,
        F: Fn(&Settings) -> S + Send + Sync + 'static,
    {
        let (tx, rx) = watch::channel(section(settings));
        self.reloads.push(Box::new(move |s| {
            let new = section(s);
            tx.send_if_modified(|cur| {
                let changed = *cur != new;
                if changed {
                    *cur = new.clone();
                }
                changed
            });
        }));
        let fanout = self.fanout.as_ref().expect("sinks are running");
        SinkContext {
            records: fanout.subscribe(name, counters, &self.shutdown),
            settings: rx,
            model: self.model.subscribe(),
            shutdown: self.shutdown.clone(),
        }
    }

    /// Start a sink that runs as a tokio task (call inside the runtime).
    pub(super) fn spawn<S, F>(
        &mut self,
        name: &'static str,
        counters: &[&'static str],
        section: F,
        settings: &Settings,
        start: impl FnOnce(SinkContext<S>) -> JoinHandle<()>,
    ) where
        S: Clone + PartialEq + Send + Sync + 'static,
        F: Fn(&Settings) -> S + Send + Sync + 'static,
    {
        let ctx = self.context(name, counters, section, settings);
        let task = start(ctx);
        // A sink that panics must not leave the daemon running without it.
        let (failed, shutdown) = (self.failed.clone(), self.shutdown.clone());
        let watched = tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(sink = name, error = %e, "sink died; stopping hark");
                failed.store(true, Ordering::Relaxed);
                shutdown.trigger();
            }
        });
        self.tasks.push((name, watched));
    }

    /// Start a sink that runs on a thread of its own.
    pub(super) fn spawn_thread<S, F>(
        &mut self,
        name: &'static str,
        counters: &[&'static str],
        section: F,
        settings: &Settings,
        start: impl FnOnce(SinkContext<S>) -> std::io::Result<std::thread::JoinHandle<()>>,
    ) -> anyhow::Result<()>
    where
        S: Clone + PartialEq + Send + Sync + 'static,
        F: Fn(&Settings) -> S + Send + Sync + 'static,
    {
        let ctx = self.context(name, counters, section, settings);
        let thread = start(ctx).map_err(|e| anyhow::anyhow!("starting the {name} sink: {e}"))?;
        // A sink thread that panics stops the daemon at once, as a sink task does.
        let (failed, shutdown) = (self.failed.clone(), self.shutdown.clone());
        let watcher = std::thread::Builder::new()
            .name(format!("hark-watch-{name}"))
            .spawn(move || {
                if thread.join().is_err() {
                    tracing::error!(sink = name, "sink died; stopping hark");
                    failed.store(true, Ordering::Relaxed);
                    shutdown.trigger();
                }
            })
            .map_err(|e| anyhow::anyhow!("starting the {name} sink's watcher: {e}"))?;
        self.threads.push((name, watcher));
        Ok(())
    }

    /// What gives every sink its section of a new configuration (those whose section
    /// changed see it). Call once, after the last sink was added.
    pub(super) fn take_reloader(&mut self) -> impl Fn(&Settings) + Send + Sync + 'static {
        let reloads = std::mem::take(&mut self.reloads);
        let model = self.model.clone();
        move |settings: &Settings| {
            // Groups are event names: sinks that announce or filter by name see them change.
            let groups: Groups = active_groups(&settings.groups)
                .map(|(g, m)| (g.clone(), m.clone()))
                .collect();
            model.send_if_modified(|m| {
                let changed = m.groups != groups;
                if changed {
                    let mut new = RunningModel::clone(m);
                    new.groups = groups.clone();
                    *m = Arc::new(new);
                }
                changed
            });
            for reload in &reloads {
                reload(settings);
            }
        }
    }

    /// Stop: close the fan-out (once the consumer has let go of its clone, every sink drains
    /// and ends) and wait for the sinks. Returns whether every sink ended well.
    pub(super) async fn stop(mut self) -> bool {
        self.fanout = None;
        let mut ok = true;
        for (name, task) in self.tasks.drain(..) {
            match tokio::time::timeout(SINK_STOP, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(sink = name, error = %e, "sink failed");
                    ok = false;
                }
                Err(_) => tracing::warn!(sink = name, "sink did not stop in time"),
            }
        }
        for (name, watcher) in self.threads.drain(..) {
            if watcher.join().is_err() {
                tracing::error!(sink = name, "sink watcher panicked");
                ok = false;
            }
        }
        ok && !self.failed.load(Ordering::Relaxed)
    }
}
