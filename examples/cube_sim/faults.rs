//! Routing, authentication, request log and the injected faults.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use serde_json::json;

use super::*;

pub(crate) fn router(sim: Arc<Sim>) -> Router {
    let routes: Vec<(&str, MethodRouter<Arc<Sim>>)> = vec![
        ("/api/v1/campaigns", get(list_campaigns)),
        (
            "/api/v1/campaigns/{id}/call_outcomes",
            get(campaign_call_outcomes),
        ),
        (
            "/api/v1/campaigns/{id}/product_registrations",
            get(campaign_product_registrations),
        ),
        ("/api/v1/call_outcomes", get(account_call_outcomes)),
        (
            "/api/v1/data_owners/{owner}/crm/{crm_type}/call_outcomes",
            get(crm_call_outcomes),
        ),
        (
            "/api/v1/product_registrations",
            get(account_product_registrations),
        ),
        (
            "/api/v1/data_owners/{owner}/crm/{crm_type}/product_registrations",
            get(crm_product_registrations),
        ),
        (
            "/api/v1/data_owners/{owner}/crm/{crm_type}/callflow_customers",
            get(crm_callflow_customers),
        ),
        (
            "/api/v1/data_owners/{owner}/{crm_type}/crm_custom_fields",
            get(crm_custom_fields),
        ),
        (
            "/api/v1/data_owners/{owner}/{crm_type}/customers",
            get(crm_customers),
        ),
        (
            "/api/v1/campaigns/{id}/callflow_customers",
            get(campaign_callflow_customers),
        ),
    ];
    let mut router = Router::new();
    let unserved = sim.cfg.faults.unserved.clone();
    for (path, handler) in routes {
        if unserved
            .iter()
            .any(|e| path.rsplit('/').next() == Some(e.as_str()))
        {
            continue;
        }
        // Every path answers with and without a trailing slash.
        router = router
            .route(path, handler.clone())
            .route(&format!("{path}/"), handler);
    }
    router
        .fallback(|| async { not_found("Not found.") })
        .layer(middleware::from_fn_with_state(
            Arc::clone(&sim),
            auth_and_log,
        ))
        .with_state(sim)
}

pub(crate) fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Marks a response answered by an injected failure (read back by [`auth_and_log`]).
#[derive(Clone, Copy)]
pub(crate) struct FaultTag(pub(crate) &'static str);

/// Authenticates (before routing, like DRF's default permission), injects the counted faults
/// and logs every request.
pub(crate) async fn auth_and_log(
    State(sim): State<Arc<Sim>>,
    req: Request,
    next: Next,
) -> Response {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let authorization = header_text(req.headers(), header::AUTHORIZATION);
    let accept = header_text(req.headers(), header::ACCEPT);
    let content_type = header_text(req.headers(), header::CONTENT_TYPE);
    let auth = sim.check_auth(authorization.as_deref());
    // Numbered on arrival, before any latency.
    let number = auth
        .is_ok()
        .then(|| sim.served.fetch_add(1, Ordering::SeqCst) + 1);
    let faults = sim.current_faults();
    // In flight from here until the answer, the latency included.
    let in_flight = InFlight::enter(&sim);
    let over_limit =
        auth.is_ok() && faults.max_in_flight > 0 && in_flight.count > faults.max_in_flight;
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    let every = |n: u32| number.is_some_and(|number| n > 0 && number % u64::from(n) == 0);
    let mut fault = None;
    let response = match auth {
        Err(detail) => {
            let mut response = error(StatusCode::UNAUTHORIZED, detail);
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Token"));
            response
        }
        Ok(()) if over_limit => {
            fault = Some("max_in_flight");
            throttled(&faults)
        }
        Ok(()) if every(faults.throttle_every) => {
            fault = Some("throttle");
            throttled(&faults)
        }
        Ok(()) if every(faults.error_every) => {
            fault = Some("error");
            error(StatusCode::SERVICE_UNAVAILABLE, "Service unavailable.")
        }
        Ok(()) if every(faults.drop_every) => {
            fault = Some("drop");
            cut_body(next.run(req).await).await
        }
        Ok(()) => {
            let response = next.run(req).await;
            fault = response.extensions().get::<FaultTag>().map(|tag| tag.0);
            response
        }
    };
    sim.log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(RequestLog {
            path,
            query,
            status: response.status().as_u16(),
            authorization,
            accept,
            content_type,
            fault,
            at,
        });
    response
}

/// One request counted in [`Sim::in_flight`] until dropped.
struct InFlight<'a> {
    sim: &'a Sim,
    /// Requests in flight with this one.
    count: u32,
}

impl InFlight<'_> {
    fn enter(sim: &Sim) -> InFlight<'_> {
        let count = sim.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        InFlight { sim, count }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.sim.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// DRF's answer to a throttled request.
fn throttled(faults: &Faults) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Request was throttled.");
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, retry_after(faults));
    response
}

/// The `Retry-After` value of a throttled request.
pub(crate) fn retry_after(faults: &Faults) -> HeaderValue {
    if !faults.retry_after_http_date {
        return HeaderValue::from(faults.retry_after_secs);
    }
    let now = chrono::Utc::now();
    let mut at = now.timestamp() + i64::from(faults.retry_after_secs);
    if now.timestamp_subsec_nanos() > 0 {
        at += 1;
    }
    let at = chrono::DateTime::<chrono::Utc>::from_timestamp(at, 0).unwrap_or(now);
    let text = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from(faults.retry_after_secs))
}

/// How long a cut body waits after its first half before it fails, so that hyper flushes the
/// headers and the first half before it aborts the connection.
pub(crate) const DROP_PAUSE: Duration = Duration::from_millis(50);

/// The same response with a `Content-Length` for its full body, but a body that ends with an
/// error after the first half, so that hyper closes the connection with the body cut short.
pub(crate) async fn cut_body(response: Response) -> Response {
    use futures::StreamExt;
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    let half = bytes.slice(..bytes.len() / 2);
    let first = futures::stream::once(async move { Ok::<_, std::io::Error>(half) });
    let fail = futures::stream::once(async {
        tokio::time::sleep(DROP_PAUSE).await;
        Err(std::io::Error::other(
            "cube_sim: fault drop: body cut short",
        ))
    });
    Response::from_parts(parts, Body::from_stream(first.chain(fail)))
}

impl Sim {
    /// DRF's token and basic authentication, with DRF's messages.
    pub(crate) fn check_auth(&self, header: Option<&str>) -> Result<(), &'static str> {
        let Some(value) = header else {
            return Err("Authentication credentials were not provided.");
        };
        let mut parts = value.split_whitespace();
        let scheme = parts.next().unwrap_or("");
        let credentials = parts.next();
        let extra = parts.next().is_some();
        if scheme.eq_ignore_ascii_case("token") {
            match credentials {
                None => Err("Invalid token header. No credentials provided."),
                Some(_) if extra => {
                    Err("Invalid token header. Token string should not contain spaces.")
                }
                Some(token) if token == self.cfg.token => Ok(()),
                Some(_) => Err("Invalid token."),
            }
        } else if scheme.eq_ignore_ascii_case("basic") {
            let decoded = match credentials {
                None => return Err("Invalid basic header. No credentials provided."),
                Some(_) if extra => {
                    return Err(
                        "Invalid basic header. Credentials string should not contain spaces.",
                    )
                }
                Some(c) => base64_decode(c).and_then(|bytes| String::from_utf8(bytes).ok()),
            };
            let Some((user, pass)) = decoded.as_deref().and_then(|s| s.split_once(':')) else {
                return Err("Invalid basic header. Credentials not correctly base64 encoded.");
            };
            if user == self.cfg.username && pass == self.cfg.password {
                Ok(())
            } else {
                Err("Invalid username/password.")
            }
        } else {
            Err("Authentication credentials were not provided.")
        }
    }
}

/// Standard base64 (padding optional); `None` on any invalid character.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

pub(crate) fn error(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

pub(crate) fn not_found(detail: &str) -> Response {
    error(StatusCode::NOT_FOUND, detail)
}
