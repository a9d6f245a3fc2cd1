//! When and how long to wait before asking the API again.
//!
//! Retried: 408, 429, 5xx and transport failures (refused/reset connections, timeouts, bodies cut
//! short). Not retried: every other 4xx, which a retry cannot fix. Waits grow exponentially with
//! full jitter, and stop at a per-request attempt limit or an overall time budget, whichever
//! comes first. A `Retry-After` (seconds or an HTTP date, capped) makes the wait longer, never
//! shorter: `Retry-After: 0`, or a date already past, still backs off, or a throttled client
//! would ask again at once, as often as it may.

use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest time one request may spend retrying.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
            budget: Duration::from_secs(300),
        }
    }
}

/// Whether an HTTP status is worth another attempt.
pub(crate) fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (attempt counts from 1), or `None` when the attempts or
    /// the budget are spent.
    pub(crate) fn next_delay(
        &self,
        attempt: u32,
        started: Instant,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        let exp = self.base_delay.saturating_mul(1 << (attempt - 1).min(16));
        // Full jitter spreads the retries of many concurrent requests apart.
        let backoff = exp
            .min(self.max_delay)
            .mul_f64(rand::rng().random_range(0.5..=1.0));
        let delay = retry_after
            .unwrap_or_default()
            .max(backoff)
            .min(self.max_delay);
        (started.elapsed() + delay <= self.budget).then_some(delay)
    }
}

/// `Retry-After` as seconds or an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 422] {
            assert!(
                !is_retryable_status(StatusCode::from_u16(s).unwrap()),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let future = (chrono::Utc::now() + chrono::Duration::seconds(100)).to_rfc2822();
        h.insert(RETRY_AFTER, HeaderValue::from_str(&future).unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(95) && d <= Duration::from_secs(100),
            "{d:?}"
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
    }

    #[test]
    fn delays_grow_are_capped_and_stop() {
        let p = RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(250),
            budget: Duration::from_secs(60),
        };
        let t = Instant::now();
        let d1 = p.next_delay(1, t, None).unwrap();
        assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
        let d3 = p.next_delay(3, t, None).unwrap();
        assert!(d3 <= Duration::from_millis(250));
        assert_eq!(
            p.next_delay(2, t, Some(Duration::from_secs(99))),
            Some(Duration::from_millis(250))
        );
        assert_eq!(p.next_delay(4, t, None), None);
        for hint in [Duration::ZERO, Duration::from_millis(10)] {
            let d = p.next_delay(1, t, Some(hint)).unwrap();
            assert!(
                d >= Duration::from_millis(50),
                "Retry-After {hint:?} still backs off: {d:?}"
            );
        }
        let tight = RetryPolicy {
            budget: Duration::from_millis(10),
            ..p
        };
        assert_eq!(tight.next_delay(1, t, Some(Duration::from_secs(1))), None);
    }
}
