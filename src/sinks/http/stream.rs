//! Server-Sent Events: `/api/stream` carries the socket's records (a `hello` first, then the
//! records its filter wants: the socket's `subscribe` and `labels`, comma-separated, as
//! query parameters), and `/api/spectrogram` carries log-mel columns while it is open.
//!
//! Each client reads its own bounded queue: a slow one loses the oldest records, is told so
//! with a `dropped` message (as on the socket) and counted in `dropped`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use super::api::bad_request;
use super::guard::{Client, ClientSlot};
use super::server::App;
use crate::pipeline::tap::MelColumns;
use crate::record::Record;
use crate::sinks::socket::{self, kind_bit, parse_request, Filter};
use crate::sinks::SinkHealth;

/// `/api/stream` query: the socket's request, as parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StreamQuery {
    /// Record types, comma-separated (the socket's `subscribe`).
    subscribe: Option<String>,
    /// Labels or groups, comma-separated (the socket's `labels`).
    labels: Option<String>,
    /// Taken by the guard.
    #[allow(dead_code)]
    token: Option<String>,
}

impl StreamQuery {
    /// The socket request line these parameters stand for.
    fn request_line(&self) -> String {
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut req = serde_json::Map::new();
        if let Some(s) = &self.subscribe {
            req.insert("subscribe".into(), json!(list(s)));
        }
        if let Some(l) = &self.labels {
            req.insert("labels".into(), json!(list(l)));
        }
        serde_json::Value::Object(req).to_string()
    }
}

pub(super) async fn records(
    State(app): State<Arc<App>>,
    Extension(slot): Extension<ClientSlot>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_request(format!("{e}; the keys are subscribe and labels")),
    };
    let model = app.shared.board.read().model.clone();
    let hello = model.as_deref().map(socket::hello);
    let names: Vec<String> = hello
        .as_ref()
        .map(|h| h.names().to_vec())
        .unwrap_or_default();
    let filter = match parse_request(q.request_line().as_bytes(), &Filter::default(), &names) {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return bad_request(e),
    };
    let state = RecordStream {
        hello: hello.map(|h| serde_json::to_string(&h).expect("hello serializes")),
        rx: app.shared.records.subscribe(),
        filter,
        closing: app.closing.clone(),
        draining: false,
        health: app.shared.health.clone(),
        _client: slot.take(),
    };
    sse(stream::unfold(state, RecordStream::next))
}

struct RecordStream {
    hello: Option<String>,
    rx: broadcast::Receiver<Arc<Record>>,
    filter: Filter,
    closing: watch::Receiver<bool>,
    /// The server is stopping: send what is queued, then end.
    draining: bool,
    health: Arc<SinkHealth>,
    _client: Option<Client>,
}

impl RecordStream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if let Some(hello) = self.hello.take() {
            return Some((Ok(Event::default().data(hello)), self));
        }
        loop {
            let got = if self.draining {
                match self.rx.try_recv() {
                    Ok(r) => Ok(r),
                    Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                    Err(_) => return None,
                }
            } else {
                tokio::select! {
                    r = self.rx.recv() => r,
                    _ = self.closing.wait_for(|c| *c) => {
                        self.draining = true;
                        continue;
                    }
                }
            };
            match got {
                Ok(rec) => {
                    let bit = kind_bit(rec.kind()).expect("every record kind has a bit");
                    if self.filter.wants(bit, rec.label(), rec.group()) {
                        return Some((Ok(Event::default().data(rec.to_json())), self));
                    }
                }
                Err(RecvError::Lagged(n)) => {
                    self.health.add("dropped", n);
                    let line = json!({"type": "dropped", "count": n}).to_string();
                    return Some((Ok(Event::default().data(line)), self));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

/// Log-mel columns while this stream is open: the consumer computes them only while some
/// page holds one.
pub(super) async fn spectrogram(
    State(app): State<Arc<App>>,
    Extension(slot): Extension<ClientSlot>,
) -> Response {
    let viewer = app.shared.taps.spectrum.watch();
    let state = (viewer, app.closing.clone(), slot.take());
    let columns = stream::unfold(state, |(mut viewer, mut closing, client)| async move {
        loop {
            let got = tokio::select! {
                r = viewer.rx.recv() => r,
                _ = closing.wait_for(|c| *c) => return None,
            };
            match got {
                Ok(c) => {
                    let event = Event::default().event("mel").data(columns_json(&c));
                    return Some((Ok::<_, Infallible>(event), (viewer, closing, client)));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return None,
            }
        }
    });
    sse(columns)
}

fn sse(s: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}

/// Columns as JSON: values quantized to bytes between `lo` and `hi`, in base64.
fn columns_json(c: &MelColumns) -> String {
    let lo = c.values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = c.values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let span = (hi - lo).max(1e-6);
    let bytes: Vec<u8> = c
        .values
        .iter()
        .map(|v| ((v - lo) / span * 255.0).round() as u8)
        .collect();
    json!({
        "start": c.start,
        "step": c.step,
        "n_mels": c.n_mels,
        "lo": if lo.is_finite() { lo } else { 0.0 },
        "hi": if hi.is_finite() { hi } else { 0.0 },
        "data": base64(&bytes),
    })
    .to_string()
}

/// Standard base64 with padding (what the page's `atob` reads).
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[255, 0, 128]), "/wCA");
    }

    #[test]
    fn query_parameters_become_the_socket_request() {
        let q = StreamQuery {
            subscribe: Some("event_start, prediction".into()),
            labels: Some("Knock".into()),
            token: None,
        };
        let names = vec!["Knock".to_string()];
        let f = parse_request(q.request_line().as_bytes(), &Filter::default(), &names)
            .unwrap()
            .unwrap();
        assert!(f.wants(kind_bit("prediction").unwrap(), None, None));
        assert!(!f.wants(kind_bit("status").unwrap(), None, None));
        assert!(!f.wants(kind_bit("event_start").unwrap(), Some("Dog"), None));
        let bad = StreamQuery {
            subscribe: Some("events".into()),
            labels: None,
            token: None,
        };
        let err = parse_request(bad.request_line().as_bytes(), &Filter::default(), &names);
        assert!(err.unwrap_err().contains("unknown record type"));
    }
}
