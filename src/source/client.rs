//! The HTTP client: one origin, credentials on every request to it and to nothing else, one
//! semaphore bounding the requests in flight, retries per [`super::retry`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::{redirect, StatusCode};
use url::Url;

use super::adaptive::{AdaptiveConcurrency, Concurrency, ConcurrencyUsed, Verdict};
use super::retry::{is_retryable_status, retry_after, RetryPolicy};
use super::{BodyError, SourceError};
use crate::datasets::{Dataset, CAMPAIGNS, CRM_CUSTOM_FIELDS};
use crate::unit::{Crm, Scope, Unit};

/// A campaign as `GET /api/v1/campaigns` lists it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Campaign {
    pub(crate) id: u64,
    pub(crate) archived: bool,
    pub(crate) data_owner_id: Option<u64>,
    pub(crate) crm_type: Option<String>,
}

pub(crate) struct CubeClient {
    http: reqwest::Client,
    api_root: Url,
    auth: HeaderValue,
    retry: RetryPolicy,
    /// Requests in flight: adaptive up to `--concurrency`.
    concurrency: AdaptiveConcurrency,
    /// Requests sent and retried, for the report.
    requests: AtomicU64,
    retries: AtomicU64,
    /// Bodies that planning fetched from endpoints that are also tables (the campaign listing,
    /// custom-field definitions), handed once to the first read of that table, so that a run
    /// asks for each of them once.
    fetched: std::sync::Mutex<std::collections::HashMap<Url, Bytes>>,
}

impl CubeClient {
    /// `api_root` ends in `/api/v1/`; `auth` is the full `Authorization` header value.
    pub(crate) fn new(
        api_root: Url,
        mut auth: HeaderValue,
        concurrency: Concurrency,
        retry: RetryPolicy,
    ) -> Result<CubeClient, SourceError> {
        auth.set_sensitive(true);
        let origin = api_root.origin();
        // Follow redirects only within the configured origin, so credentials never leave it.
        let policy = redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 || attempt.url().origin() != origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("cube-extract/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .timeout(Duration::from_secs(300))
            .redirect(policy)
            .build()
            .map_err(|source| SourceError::Transport {
                url: api_root.to_string(),
                source,
            })?;
        Ok(CubeClient {
            http,
            api_root,
            auth,
            retry,
            concurrency: AdaptiveConcurrency::new(concurrency.ceiling, concurrency.adaptive),
            requests: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            fetched: Default::default(),
        })
    }

    /// Requests sent so far, retries included.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests sent again so far.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The concurrency used so far.
    pub(crate) fn concurrency_used(&self) -> ConcurrencyUsed {
        self.concurrency.used()
    }

    fn origin(&self) -> String {
        self.api_root.origin().ascii_serialization()
    }

    /// GETs `url` (on the configured origin) and returns the whole body of a 2xx answer.
    async fn get(&self, url: &Url) -> Result<Bytes, SourceError> {
        self.get_page(url, None).await
    }

    /// As [`CubeClient::get`], keeping the body for the first read of the same URL as a table.
    async fn get_kept(&self, url: &Url) -> Result<Bytes, SourceError> {
        let body = self.get(url).await?;
        self.fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(url.clone(), body.clone());
        Ok(body)
    }

    /// As [`CubeClient::get`], for page `page` of a unit's listing: its retries are logged
    /// with the campaign, day and page.
    async fn get_page(&self, url: &Url, page: Option<(&Unit, u32)>) -> Result<Bytes, SourceError> {
        if url.origin() != self.api_root.origin() {
            // Unreachable by construction; kept so no future caller can leak the credentials.
            return Err(SourceError::ForeignOrigin {
                url: url.to_string(),
            });
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let outcome = {
                let slot = self.concurrency.acquire().await;
                self.requests.fetch_add(1, Ordering::Relaxed);
                let sent = Instant::now();
                let outcome = self.attempt(url).await;
                slot.done(verdict(&outcome, sent.elapsed()));
                outcome
            };
            let (error, wait_hint) = match outcome {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry(e, hint) => (e, hint),
            };
            if let (Some(wait), true) = (wait_hint, is_throttle(&error)) {
                self.concurrency
                    .hold_until(tokio::time::Instant::now() + wait.min(self.retry.max_delay));
            }
            match self.retry.next_delay(attempt, started, wait_hint) {
                Some(delay) => {
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    let (partition, page) = match page {
                        Some((unit, n)) => (Some(unit), Some(n)),
                        None => (None, None),
                    };
                    tracing::warn!(url = %url, partition = partition.map(tracing::field::display), page, attempt, delay_ms = delay.as_millis() as u64, cause = %error.cause(), "retrying request");
                    tokio::time::sleep(delay).await;
                }
                None => return Err(error),
            }
        }
    }

    async fn attempt(&self, url: &Url) -> Attempt {
        let transport = |source: reqwest::Error| {
            Attempt::Retry(
                SourceError::Transport {
                    url: url.to_string(),
                    source,
                },
                None,
            )
        };
        let response = match self
            .http
            .get(url.clone())
            .header(ACCEPT, "application/json")
            // Headshed's notes list it for every request, bodiless GETs included.
            .header(CONTENT_TYPE, "application/json")
            .header(AUTHORIZATION, self.auth.clone())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return transport(e),
        };
        let status = response.status();
        if status.is_success() {
            // Reading the whole body inside the attempt makes a body cut short a retryable error.
            return match response.bytes().await {
                Ok(body) => Attempt::Done(body),
                Err(e) => transport(e),
            };
        }
        let hint = retry_after(response.headers());
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Attempt::Fatal(SourceError::Auth {
                origin: self.origin(),
                status: status.as_u16(),
            });
        }
        if status == StatusCode::NOT_FOUND {
            return Attempt::Fatal(SourceError::NotFound {
                url: url.to_string(),
            });
        }
        let detail = response
            .text()
            .await
            .ok()
            .map(|t| detail_of(&t))
            .unwrap_or_default();
        let error = SourceError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            detail,
        };
        if is_retryable_status(status) {
            Attempt::Retry(error, hint)
        } else {
            Attempt::Fatal(error)
        }
    }

    /// `GET /api/v1/campaigns`.
    pub(crate) async fn campaigns(&self) -> Result<Vec<Campaign>, SourceError> {
        let unit = Unit {
            scope: Scope::Account,
            day: None,
        };
        // The table's own URL, so that its first read takes this body.
        let url = self.page_url(&CAMPAIGNS, &unit, 1);
        let body = self.get_kept(&url).await?;
        let bad = |cause: BodyError| SourceError::BadResponse {
            url: url.to_string(),
            cause,
        };
        let list: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&body).map_err(|e| bad(BodyError::NotCampaigns(e)))?;
        list.iter()
            .map(|c| {
                let id = as_u64(c.get("campaign__id"))
                    .ok_or_else(|| bad(BodyError::CampaignWithoutId))?;
                let text = |k: &str| match c.get(k) {
                    Some(serde_json::Value::String(s)) => Some(s.clone()),
                    _ => None,
                };
                Ok(Campaign {
                    id,
                    archived: text("campaign__archived_date").is_some_and(|s| !s.is_empty()),
                    data_owner_id: as_u64(c.get("data_owner__id")),
                    crm_type: text("campaign__crm_type"),
                })
            })
            .collect()
    }

    /// `GET /api/v1/data_owners/{owner}/{crm_type}/crm_custom_fields/`: the labels of a CRM's
    /// custom fields, as (JSON key, label) pairs (`lookup__id`, `key`).
    pub(crate) async fn custom_field_labels(
        &self,
        crm: Crm,
    ) -> Result<Vec<(String, String)>, SourceError> {
        // The table's own URL, so that its first read takes this body.
        let unit = Unit {
            scope: Scope::Crm(crm),
            day: None,
        };
        let url = self.page_url(&CRM_CUSTOM_FIELDS, &unit, 1);
        let body = self.get_kept(&url).await?;
        let list: Vec<serde_json::Map<String, serde_json::Value>> =
            serde_json::from_slice(&body).map_err(|e| SourceError::BadResponse {
                url: url.to_string(),
                cause: BodyError::NotFieldDefinitions(e),
            })?;
        Ok(list
            .iter()
            .filter_map(|f| {
                let text = |k: &str| f.get(k)?.as_str().filter(|s| !s.is_empty());
                Some((text("lookup__id")?.to_owned(), text("key")?.to_owned()))
            })
            .collect())
    }

    /// The URL of page `number` of a unit's listing: the endpoint of the table's scope with the
    /// unit's values in it, its day as `from_date`/`to_date`, and `?page=N` (on the configured
    /// origin: real `next` links cannot be trusted).
    fn page_url(&self, dataset: &Dataset, unit: &Unit, number: u32) -> Url {
        let day_key = dataset.day_key();
        let mut path = dataset.endpoint().to_owned();
        for (key, value) in unit.folders(day_key) {
            path = path.replace(&format!("{{{key}}}"), &value);
        }
        let mut url = self.api_root.join(&path).expect("relative path joins");
        if let Some(day) = unit.day.filter(|_| dataset.by_day()) {
            let day = day.format("%Y%m%d").to_string();
            url.query_pairs_mut()
                .append_pair("from_date", &day)
                .append_pair("to_date", &day);
        }
        if number > 1 {
            url.query_pairs_mut()
                .append_pair("page", &number.to_string());
        }
        url
    }

    /// Fetches page 1 of a unit's listing while planning (to learn whether the account serves
    /// the endpoint at all, or to have it while the labels come); the body is kept for the
    /// unit's first read, so it costs no request.
    pub(crate) async fn first_page_kept(
        &self,
        dataset: &Dataset,
        unit: &Unit,
    ) -> Result<(), SourceError> {
        self.get_kept(&self.page_url(dataset, unit, 1))
            .await
            .map(drop)
    }

    /// Fetches page `number` of a unit's listing: its URL and raw body (parse with
    /// [`Page::parse`], off the async workers).
    pub(crate) async fn page_body(
        &self,
        dataset: &Dataset,
        unit: &Unit,
        number: u32,
    ) -> Result<(Url, Bytes), SourceError> {
        let url = self.page_url(dataset, unit, number);
        let kept = self
            .fetched
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&url);
        let body = match kept {
            Some(body) => body,
            None => self.get_page(&url, Some((unit, number))).await?,
        };
        tracing::debug!(partition = %unit, page = number, bytes = body.len(), "page fetched");
        Ok((url, body))
    }
}

/// What one attempt says about the API's load: 429 and 503 ask for fewer requests.
fn verdict(outcome: &Attempt, took: Duration) -> Verdict {
    match outcome {
        Attempt::Done(_) => Verdict::Healthy(took),
        Attempt::Retry(e, _) if is_throttle(e) => Verdict::Throttled,
        _ => Verdict::Neutral,
    }
}

/// A 429 or 503: the API asks the client for less.
fn is_throttle(error: &SourceError) -> bool {
    matches!(
        error,
        SourceError::Status {
            status: 429 | 503,
            ..
        }
    )
}

enum Attempt {
    Done(Bytes),
    Retry(SourceError, Option<Duration>),
    Fatal(SourceError),
}

fn as_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// DRF puts the reason in `{"detail": ...}`; show it, shortened, so users see the API's words.
fn detail_of(body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned));
    match detail {
        Some(d) => format!(": {}", d.chars().take(200).collect::<String>()),
        None => String::new(),
    }
}
