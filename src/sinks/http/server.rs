//! The HTTP server: what every request can reach ([`App`]), the router, binding, and a
//! running server that stops on demand (a reload with another `[http]`, or the end).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use tokio::sync::{broadcast, watch, Semaphore};
use tokio::task::JoinHandle;

use super::board::Board;
use super::{api, clips, guard, metrics, stream, HttpSection, HttpSettings};
use crate::pipeline::tap::Taps;
use crate::record::Record;
use crate::sinks::SinkHealth;

/// Records queued per stream client before it loses the oldest (counted in `dropped`).
pub(super) const STREAM_QUEUE: usize = 256;

/// What lives as long as the sink, across server restarts.
pub(super) struct Shared {
    pub board: Board,
    /// The fan-out's records again, for the stream clients.
    pub records: broadcast::Sender<Arc<Record>>,
    pub taps: Taps,
    pub health: Arc<SinkHealth>,
}

/// What a request can reach: the shared part and this server's settings.
pub(super) struct App {
    pub shared: Arc<Shared>,
    pub http: HttpSettings,
    pub clips_dir: Option<PathBuf>,
    pub token: Option<String>,
    pub permits: Arc<Semaphore>,
    /// Turns true when this server stops: open streams end.
    pub closing: watch::Receiver<bool>,
}

/// Every route; everything passes [`guard::guard`].
pub(super) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::script))
        .route("/style.css", get(api::style))
        .route("/healthz", get(api::healthz))
        .route("/api/status", get(api::status))
        .route("/api/events", get(api::events))
        .route("/api/stream", get(stream::records))
        .route("/api/spectrogram", get(stream::spectrogram))
        .route("/clips/{name}", get(clips::clip))
        .route("/metrics", get(metrics::metrics))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::guard,
        ))
        .with_state(app)
}

/// A server that is running.
pub(super) struct Server {
    pub address: SocketAddr,
    section: HttpSection,
    close: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error(transparent)]
    Invalid(#[from] crate::validate::Invalid),
    #[error("http.listen: cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

impl Server {
    /// Bind and serve `section` (enabled). Warns when it listens beyond loopback without a
    /// token.
    pub async fn start(section: &HttpSection, shared: Arc<Shared>) -> Result<Server, StartError> {
        let http = &section.http;
        let address = http.address()?;
        let token = http.token()?;
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|source| StartError::Bind { address, source })?;
        let address = listener.local_addr().unwrap_or(address);
        if !address.ip().is_loopback() && token.is_none() {
            tracing::warn!(%address, "the web page and API listen beyond this machine without a token; set http.token_file");
        }
        let (close, closing) = watch::channel(false);
        let app = Arc::new(App {
            shared,
            http: http.clone(),
            clips_dir: section.clips_dir.clone(),
            token,
            permits: Arc::new(Semaphore::new(http.max_clients)),
            closing: closing.clone(),
        });
        let mut stop = closing;
        let serving = axum::serve(listener, router(app)).with_graceful_shutdown(async move {
            let _ = stop.wait_for(|c| *c).await;
        });
        let task = tokio::spawn(async move {
            if let Err(e) = serving.await {
                tracing::warn!(error = %e, "web server");
            }
        });
        tracing::info!(%address, "web page and API ready");
        Ok(Server {
            address,
            section: section.clone(),
            close,
            task,
        })
    }

    pub fn section(&self) -> &HttpSection {
        &self.section
    }

    /// Stop: open streams end, then the server waits for answers in flight.
    pub async fn stop(self) {
        let _ = self.close.send(true);
        if tokio::time::timeout(std::time::Duration::from_secs(3), self.task)
            .await
            .is_err()
        {
            tracing::warn!(address = %self.address, "web server did not stop in time");
        }
    }
}
