//! The socket as a sink: forwards the fan-out's records into the hub, keeps `hello` in step
//! with the running model, and closes the server once the records are done.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{serve, Hello, Hub, SocketListener, SocketSettings, PROTOCOL_VERSION};
use crate::sinks::{RunningModel, SinkContext};

/// The counters this sink reports in `status`.
pub const COUNTERS: &[&str] = &["subscribers", "dropped"];

/// The `hello` for `model`.
pub fn hello(model: &RunningModel) -> Hello {
    Hello {
        protocol: PROTOCOL_VERSION,
        hark_version: env!("CARGO_PKG_VERSION").into(),
        model: model.name.clone(),
        labels: model.labels.clone(),
        groups: model.groups.clone(),
        sample_rate: model.sample_rate,
        window: model.window,
        hop: model.hop,
    }
}

/// Serve `listener` (already bound, so a bad path fails before anything starts) and feed it
/// the fan-out's records until they end. Runs on the tokio runtime.
pub fn start(listener: SocketListener, ctx: SinkContext<SocketSettings>) -> JoinHandle<()> {
    let hub = Hub::with_health(
        hello(&ctx.model.borrow()),
        &ctx.settings.borrow(),
        Some(ctx.health().clone()),
    );
    tokio::spawn(forward(listener, hub, ctx))
}

async fn forward(listener: SocketListener, hub: Hub, mut ctx: SinkContext<SocketSettings>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, hub.clone(), async {
        let _ = stopped.await;
    }));
    let running = ctx.settings.borrow_and_update().clone();
    loop {
        tokio::select! {
            rec = ctx.records.next() => match rec {
                Some(rec) => hub.publish(&rec),
                None => break,
            },
            Ok(()) = ctx.model.changed() => {
                let info: Arc<RunningModel> = ctx.model.borrow_and_update().clone();
                hub.set_hello(hello(&info));
            }
            Ok(()) = ctx.settings.changed() => note_reload(&running, &mut ctx.settings),
        }
    }
    let _ = stop.send(());
    match server.await {
        Ok(Err(e)) => tracing::warn!(error = %e, "socket server"),
        Err(e) => tracing::error!(error = %e, "socket server task failed"),
        Ok(Ok(())) => {}
    }
}

/// The socket is bound once: a changed `[socket]` section is reported and takes effect at
/// the next start, since rebinding would cut every subscriber off.
fn note_reload(running: &SocketSettings, new: &mut watch::Receiver<SocketSettings>) {
    let new = new.borrow_and_update();
    if *new != *running {
        tracing::warn!("[socket] changed; the socket keeps its settings until hark restarts");
    }
}
