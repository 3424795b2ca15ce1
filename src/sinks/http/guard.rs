//! What every request passes before a handler: the client cap (`max_clients`, a clear 503),
//! refused bodies, the token, and the security headers on every answer.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::server::App;
use crate::sinks::SinkHealth;

/// Scripts, styles and data only from hark itself; no frames, plugins or remote anything.
pub(super) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self'; connect-src 'self'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The cookie a `?token=` sets.
const COOKIE: &str = "hark_token";

/// One client being served: counted in `clients` until dropped. A stream takes it out of
/// the request ([`ClientSlot::take`]) so that it counts for as long as the stream runs.
pub(super) struct Client {
    _permit: OwnedSemaphorePermit,
    gauge: ClientGauge,
}

#[derive(Clone)]
struct ClientGauge {
    permits: Arc<Semaphore>,
    max: usize,
    health: Arc<SinkHealth>,
}

impl ClientGauge {
    fn update(&self, leaving: usize) {
        let in_use = self.max - self.permits.available_permits() - leaving;
        self.health.set("clients", in_use as u64);
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // The permit goes back after this body: count it as gone already.
        self.gauge.update(1);
    }
}

/// Where a request's [`Client`] waits for a stream to take it.
#[derive(Clone)]
pub(super) struct ClientSlot(Arc<Mutex<Option<Client>>>);

impl ClientSlot {
    pub fn take(&self) -> Option<Client> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The guards, in order: client cap, body, token; then the headers.
pub(super) async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let gauge = ClientGauge {
        permits: app.permits.clone(),
        max: app.http.max_clients,
        health: app.shared.health.clone(),
    };
    let Ok(permit) = app.permits.clone().try_acquire_owned() else {
        app.shared.health.add("refused", 1);
        return with_headers(too_many(app.http.max_clients));
    };
    gauge.update(0);
    let slot = ClientSlot(Arc::new(Mutex::new(Some(Client {
        _permit: permit,
        gauge,
    }))));
    req.extensions_mut().insert(slot.clone());
    let mut response = if has_body(req.headers()) {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "hark's HTTP API takes no request bodies; nothing here changes settings\n",
        )
            .into_response()
    } else {
        match authorize(app.token.as_deref(), &req) {
            Access::Denied => unauthorized(),
            Access::Granted => next.run(req).await,
            Access::GrantedByQuery(token) => {
                let mut r = next.run(req).await;
                let cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
                if let Ok(v) = HeaderValue::from_str(&cookie) {
                    r.headers_mut().insert(header::SET_COOKIE, v);
                }
                r
            }
        }
    };
    drop(slot.take());
    set_security_headers(response.headers_mut());
    response
}

fn with_headers(mut r: Response) -> Response {
    set_security_headers(r.headers_mut());
    r
}

fn set_security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}

fn too_many(max: usize) -> Response {
    let mut r = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!(
            "hark serves at most {max} clients at once (http.max_clients); close a page or try again later\n"
        ),
    )
        .into_response();
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    r
}

fn unauthorized() -> Response {
    let mut r = (
        StatusCode::UNAUTHORIZED,
        "a token is required: send Authorization: Bearer <token>, or open the page once with ?token=<token>\n",
    )
        .into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"hark\""),
    );
    r
}

/// A body announced by a length above zero or by chunked transfer.
fn has_body(h: &HeaderMap) -> bool {
    let length = h
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    length || h.contains_key(header::TRANSFER_ENCODING)
}

enum Access {
    Denied,
    Granted,
    /// Granted by `?token=`: the answer sets the cookie.
    GrantedByQuery(String),
}

fn authorize(token: Option<&str>, req: &Request) -> Access {
    let Some(token) = token else {
        return Access::Granted;
    };
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .any(|c| same(c, token));
    if cookie || bearer.is_some_and(|b| same(b.trim(), token)) {
        return Access::Granted;
    }
    if query_token(req.uri().query()).is_some_and(|q| same(&q, token)) {
        return Access::GrantedByQuery(token.to_owned());
    }
    Access::Denied
}

/// The `token` parameter of a query string, decoded.
fn query_token(query: Option<&str>) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query?).ok()?;
    pairs
        .into_iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v)
}

/// Compares in time that does not depend on where the strings differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert!(!same("", "a"));
    }

    #[test]
    fn the_query_token_is_decoded() {
        assert_eq!(query_token(Some("a=1&token=x%2By")).as_deref(), Some("x+y"));
        assert_eq!(query_token(Some("a=1")), None);
        assert_eq!(query_token(None), None);
    }
}
