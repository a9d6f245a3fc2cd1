//! How the tool talks HTTP to an object store. object_store retries failed requests itself; here
//! its retries and timeouts are set deliberately (not left to its defaults), and every attempt
//! that fails is counted (the report's `storage_retries`) and logged like a retried API request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::client::{
    ClientConfigKey, ClientOptions, HttpClient, HttpConnector, HttpError, HttpRequest,
    HttpResponse, HttpService, ReqwestConnector,
};
use object_store::{BackoffConfig, RetryConfig};

/// Retries of one request after its first try, unless `CUBE_EXTRACT_STORAGE_RETRIES` says
/// otherwise. S3 asks clients to back off on 503 `SlowDown`; eight retries, backing off from
/// 200 ms (doubling, with jitter, up to 10 s) ride out a storm of about half a minute.
pub(crate) const MAX_RETRIES: usize = 8;
/// The first backoff, unless `CUBE_EXTRACT_STORAGE_BACKOFF_MS` says otherwise.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// No retry begins later than this after a request's first try: it keeps a request's signature
/// valid (S3 allows 15 minutes of clock skew) and bounds how long a partition waits on storage.
const RETRY_WINDOW: Duration = Duration::from_secs(120);

pub(crate) const RETRIES_VAR: &str = "CUBE_EXTRACT_STORAGE_RETRIES";
pub(crate) const BACKOFF_VAR: &str = "CUBE_EXTRACT_STORAGE_BACKOFF_MS";

/// An environment variable of the storage settings that is not a whole number.
#[derive(Debug, thiserror::Error)]
#[error("{var}={value:?} is not a whole number; set it to e.g. {example} or unset it")]
pub struct BadSetting {
    var: &'static str,
    value: String,
    example: u64,
}

/// The retry settings: the defaults above, or the environment's.
fn retry_config() -> Result<RetryConfig, BadSetting> {
    let read = |var: &'static str, default: u64| match std::env::var(var) {
        Err(_) => Ok(default),
        Ok(value) => value.trim().parse::<u64>().map_err(|_| BadSetting {
            var,
            value,
            example: default,
        }),
    };
    let retries = read(RETRIES_VAR, MAX_RETRIES as u64)?;
    let backoff = read(BACKOFF_VAR, FIRST_BACKOFF.as_millis() as u64)?;
    Ok(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(backoff),
            max_backoff: MAX_BACKOFF.max(Duration::from_millis(backoff)),
            base: 2.,
        },
        max_retries: retries as usize,
        retry_timeout: RETRY_WINDOW,
    })
}

/// Connect timeout unless `AWS_CONNECT_TIMEOUT` says otherwise: a store that does not accept a
/// connection in 5 s is down or unreachable.
const CONNECT_TIMEOUT: &str = "5s";
/// Timeout of one whole request unless `AWS_TIMEOUT` says otherwise: a part is at most 10 MiB,
/// which takes seconds even on a slow link, so 60 s means the store stalled; object_store then
/// retries the request (uploads are idempotent there).
const REQUEST_TIMEOUT: &str = "60s";

/// Applies the tool's retry and timeout settings to `builder`, leaving timeouts set through
/// object_store's own `AWS_TIMEOUT`/`AWS_CONNECT_TIMEOUT` variables as they are.
pub(crate) fn configure(
    mut builder: AmazonS3Builder,
    failed: &Arc<FailedAttempts>,
) -> Result<AmazonS3Builder, BadSetting> {
    let retry = retry_config()?;
    for (var, key, default) in [
        ("AWS_TIMEOUT", ClientConfigKey::Timeout, REQUEST_TIMEOUT),
        (
            "AWS_CONNECT_TIMEOUT",
            ClientConfigKey::ConnectTimeout,
            CONNECT_TIMEOUT,
        ),
    ] {
        if std::env::var_os(var).is_none() {
            builder = builder.with_config(AmazonS3ConfigKey::Client(key), default);
        }
    }
    Ok(builder
        .with_retry(retry)
        .with_http_connector(Observed(failed.clone())))
}

/// Attempts that failed (an error status object_store retries, or a transport error), counted
/// across every request of one destination.
#[derive(Debug, Default)]
pub(crate) struct FailedAttempts(AtomicU64);

impl FailedAttempts {
    pub(crate) fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// object_store's reqwest connector, observed.
#[derive(Debug)]
struct Observed(Arc<FailedAttempts>);

impl HttpConnector for Observed {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(ObservedClient {
            inner,
            failed: self.0.clone(),
        }))
    }
}

#[derive(Debug)]
struct ObservedClient {
    inner: HttpClient,
    failed: Arc<FailedAttempts>,
}

#[async_trait::async_trait]
impl HttpService for ObservedClient {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = req.method().clone();
        // The object's path only: never the query, which may carry a signature.
        let path = req.uri().path().to_owned();
        let answer = self.inner.execute(req).await;
        let cause = match &answer {
            Ok(r) if is_retried(r.status()) => r.status().to_string(),
            Ok(_) => return answer,
            Err(e) => e.to_string(),
        };
        let attempt = self.failed.0.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(op = %method, path = %path, cause = %cause, failed_so_far = attempt, "storage request failed; object_store retries it unless its retries are spent");
        answer
    }
}

/// The statuses object_store retries.
fn is_retried(status: http::StatusCode) -> bool {
    status.is_server_error()
        || status == http::StatusCode::TOO_MANY_REQUESTS
        || status == http::StatusCode::REQUEST_TIMEOUT
}
