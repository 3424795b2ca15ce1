//! One request target answered by the web sink's own router, guards and handlers, without a
//! socket: what the `http_query` fuzz target and its regression inputs reach
//! (`front_door::http_target`). The target is parsed as a URI as the server's HTTP layer
//! parses a request line's target; everything after that is the server's code.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, Uri};
use tokio::sync::{broadcast, watch, Semaphore};
use tower::ServiceExt;

use super::board::Board;
use super::server::{router, App, Shared, STREAM_QUEUE};
use super::HttpSettings;
use crate::pipeline::tap::Taps;
use crate::sinks::{RunningModel, SinkHealth};

/// The status a `GET` of `target` gets from a server with `token` (if any), its clips
/// folder at `clips_dir` and a model with `labels`; None when the target is not a URI (the
/// HTTP layer answers 400 before the router sees it).
pub fn answer(
    target: &[u8],
    token: Option<&str>,
    clips_dir: Option<&std::path::Path>,
    labels: &[String],
) -> Option<u16> {
    let uri = Uri::try_from(target).ok()?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .header(header::HOST, "127.0.0.1")
        .body(Body::empty())
        .ok()?;
    let model = RunningModel {
        name: "offline".into(),
        labels: labels.to_vec(),
        groups: Default::default(),
        sample_rate: 16_000,
        window: 1.0,
        hop: 0.5,
    };
    let (_close, closing) = watch::channel(false);
    let http = HttpSettings::default();
    let app = Arc::new(App {
        shared: Arc::new(Shared {
            board: Board::new(Arc::new(model)),
            records: broadcast::channel(STREAM_QUEUE).0,
            taps: Taps::default(),
            health: Arc::new(SinkHealth::new("http", super::COUNTERS)),
        }),
        permits: Arc::new(Semaphore::new(http.max_clients)),
        http,
        clips_dir: clips_dir.map(ToOwned::to_owned),
        token: token.map(ToOwned::to_owned),
        closing,
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let response = runtime.block_on(router(app).oneshot(request));
    Some(match response {
        Ok(r) => r.status().as_u16(),
        Err(never) => match never {},
    })
}
