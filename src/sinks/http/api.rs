//! The page's files, `/api/status`, `/api/events` and `/healthz`.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::board::{Event, HISTORY};
use super::page;
use super::server::App;
use crate::record::Record;

/// Events `/api/events` returns without a `limit`.
const DEFAULT_LIMIT: usize = 50;

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn page() -> Response {
    file("text/html; charset=utf-8", page::HTML)
}

pub(super) async fn script() -> Response {
    file("text/javascript; charset=utf-8", page::JS)
}

pub(super) async fn style() -> Response {
    file("text/css; charset=utf-8", page::CSS)
}

pub(super) async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// 200 while the consumer's loop turns (the condition systemd's watchdog is fed on), 503
/// once it has not for `http.stall_timeout`.
pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let since = app.shared.taps.heartbeat.since_last();
    let limit = Duration::from_secs_f64(app.http.stall_timeout);
    let body = json!({
        "ok": since < limit,
        "last_turn_seconds_ago": (since.as_secs_f64() * 1000.0).round() / 1000.0,
        "stall_timeout": app.http.stall_timeout,
    });
    let code = if since < limit {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Uptime, source, model, the last status and prediction, the current events, clients.
pub(super) async fn status(State(app): State<Arc<App>>) -> Json<Value> {
    let shared = &app.shared;
    let b = shared.board.read();
    let model = b.model.as_ref().map(|m| {
        json!({
            "name": m.name,
            "labels": m.labels.len(),
            "groups": m.groups,
            "sample_rate": m.sample_rate,
            "window": m.window,
            "hop": m.hop,
        })
    });
    let (level_db, top, gated) = match b.prediction.as_deref() {
        Some(Record::Prediction {
            level_db,
            top,
            gated,
            ..
        }) => (Some(*level_db), top.clone(), *gated),
        _ => (None, Vec::new(), false),
    };
    let current: Vec<&Event> = b.events.iter().filter(|e| e.end.is_none()).collect();
    Json(json!({
        "hark_version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.board.started.elapsed().as_secs(),
        "source": shared.taps.source(),
        "model": model,
        "status": b.status.as_deref(),
        "level_db": level_db,
        "top": top,
        "gated": gated,
        "current": current,
        "http": {
            "clients": shared.health.get("clients"),
            "spectrogram_viewers": shared.taps.spectrum.viewers(),
        },
    }))
}

/// `/api/events` query: events that started after `since` (RFC 3339), whose label or group
/// is `label`, the newest `limit` (1 to 1000; 50 by default), newest first.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    since: Option<String>,
    label: Option<String>,
    limit: Option<usize>,
    /// Taken by the guard.
    #[allow(dead_code)]
    token: Option<String>,
}

pub(super) async fn events(
    State(app): State<Arc<App>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return bad_request(format!("{e}; the keys are since, label and limit")),
    };
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=HISTORY).contains(&limit) {
        return bad_request(format!("limit = {limit}: allowed 1 to {HISTORY}"));
    }
    let since = match q.since.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            return bad_request(format!(
                "since: {e}; give an RFC 3339 time such as 2026-11-27T20:00:00Z"
            ))
        }
    };
    let b = app.shared.board.read();
    let after = |e: &Event| match since {
        None => true,
        Some(since) => chrono::DateTime::parse_from_rfc3339(&e.time).is_ok_and(|t| t > since),
    };
    let named = |e: &Event| match &q.label {
        None => true,
        Some(l) => e.label == *l || e.group.as_ref() == Some(l),
    };
    let events: Vec<&Event> = b
        .events
        .iter()
        .rev()
        .filter(|e| after(e) && named(e))
        .take(limit)
        .collect();
    Json(json!({ "events": events })).into_response()
}

pub(super) fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response()
}
