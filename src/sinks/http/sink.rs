//! The web sink's task: keeps the board from the fan-out's records, hands them on to stream
//! clients, and runs the server while `[http]` is enabled, restarting it when a reload
//! changes the section.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::board::Board;
use super::server::{Server, Shared, STREAM_QUEUE};
use super::HttpSection;
use crate::pipeline::tap::Taps;
use crate::sinks::SinkContext;

/// The counters this sink reports in `status`: requests being served (streams included),
/// records stream clients lost, requests refused by `max_clients`.
pub const COUNTERS: &[&str] = &["clients", "dropped", "refused", "reload_failed"];

/// Start the web sink. An enabled server that cannot start (address in use) stops hark with
/// an error at start; after a reload it is logged and the running server is kept.
pub fn start(ctx: SinkContext<HttpSection>, taps: Taps) -> JoinHandle<()> {
    tokio::spawn(run(ctx, taps))
}

async fn run(mut ctx: SinkContext<HttpSection>, taps: Taps) {
    let shared = Arc::new(Shared {
        board: Board::new(ctx.model.borrow().clone()),
        records: broadcast::channel(STREAM_QUEUE).0,
        taps,
        health: ctx.health().clone(),
    });
    let section = ctx.settings.borrow_and_update().clone();
    let mut server = None;
    if section.http.enabled {
        match Server::start(&section, shared.clone()).await {
            Ok(s) => server = Some(s),
            Err(e) => panic!("{e}"),
        }
    }
    loop {
        tokio::select! {
            rec = ctx.records.next() => match rec {
                Some(rec) => {
                    shared.board.take(&rec);
                    let _ = shared.records.send(rec);
                }
                None => break,
            },
            Ok(()) = ctx.model.changed() => {
                shared.board.set_model(ctx.model.borrow_and_update().clone());
            }
            Ok(()) = ctx.settings.changed() => {
                let new = ctx.settings.borrow_and_update().clone();
                server = reload(server, &new, &shared).await;
            }
        }
    }
    if let Some(s) = server {
        s.stop().await;
    }
}

/// Apply a new section: stop, start or restart the server. A server on another address that
/// cannot start leaves the running one in place.
async fn reload(server: Option<Server>, new: &HttpSection, shared: &Arc<Shared>) -> Option<Server> {
    if server.as_ref().is_some_and(|s| s.section() == new) {
        return server;
    }
    if !new.http.enabled {
        if let Some(s) = server {
            tracing::info!("[http] disabled; the web server stops");
            s.stop().await;
        }
        return None;
    }
    let same_address = server
        .as_ref()
        .is_some_and(|s| s.section().http.listen == new.http.listen);
    // The same address cannot be bound twice: stop first, then start.
    let server = if same_address {
        if let Some(s) = server {
            s.stop().await;
        }
        None
    } else {
        server
    };
    match Server::start(new, shared.clone()).await {
        Ok(started) => {
            if let Some(old) = server {
                old.stop().await;
            }
            Some(started)
        }
        Err(e) => {
            tracing::error!(error = %e, "[http] reload: the new web server could not start");
            shared.health.add("reload_failed", 1);
            server
        }
    }
}
