//! Adaptive request concurrency: `--concurrency` is the ceiling, and the number of requests
//! in flight follows how the API feels, the way TCP's congestion window (and Vector's adaptive
//! request concurrency) does. It starts at the ceiling; each window of responses (as many as
//! the limit) ends in one adjustment: halve on a throttle (429 or 503), take a tenth off when
//! the window's response time rose well above the baseline, otherwise add one, up to the
//! ceiling. Rising latency must last two windows: one slow window on a busy machine is noise.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

/// `--concurrency` and whether the limit adapts below it (not with `--fixed-concurrency`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Concurrency {
    pub(crate) ceiling: usize,
    pub(crate) adaptive: bool,
}

/// How a response went, for the limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Verdict {
    /// A 2xx answer after `Duration`.
    Healthy(Duration),
    /// 429 or 503: the API asks for less.
    Throttled,
    /// Anything else (a transport error, another status): no signal about load.
    Neutral,
}

/// A window's mean response time above this many times the baseline counts as rising latency.
const RISING: f64 = 2.0;
/// Windows in a row with rising latency before the limit comes down.
const RISING_WINDOWS: u32 = 2;
/// The baseline follows healthy windows' mean response time this fast (an EWMA).
const BASELINE_WEIGHT: f64 = 0.2;

/// The concurrency used over a run, for the report.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ConcurrencyUsed {
    pub ceiling: usize,
    /// The limit in force at each request, averaged.
    pub mean: f64,
    pub min: usize,
    #[serde(rename = "final")]
    pub last: usize,
}

struct State {
    limit: usize,
    in_flight: usize,
    /// Responses since the last adjustment, and what they said.
    responses: usize,
    throttled: bool,
    rtt_sum: Duration,
    rtt_count: u32,
    /// Mean response time of healthy windows (EWMA); `None` until the first.
    baseline: Option<f64>,
    /// Windows in a row whose response time rose: one slow window on a busy machine is noise.
    rising_windows: u32,
    // For the report.
    requests: u64,
    limit_sum: u64,
    min: usize,
}

/// The limit on requests in flight.
pub(crate) struct AdaptiveConcurrency {
    ceiling: usize,
    adaptive: bool,
    state: Mutex<State>,
    freed: Notify,
}

/// A request slot; give it back with [`Slot::done`] (dropped, it counts as neutral).
pub(crate) struct Slot<'a> {
    owner: &'a AdaptiveConcurrency,
    verdict: Verdict,
}

impl Slot<'_> {
    pub(crate) fn done(mut self, verdict: Verdict) {
        self.verdict = verdict;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.owner.release(self.verdict);
    }
}

impl AdaptiveConcurrency {
    /// Up to `ceiling` requests in flight; `adaptive: false` keeps the limit at the ceiling.
    pub(crate) fn new(ceiling: usize, adaptive: bool) -> AdaptiveConcurrency {
        let ceiling = ceiling.max(1);
        AdaptiveConcurrency {
            ceiling,
            adaptive,
            state: Mutex::new(State {
                limit: ceiling,
                in_flight: 0,
                responses: 0,
                throttled: false,
                rtt_sum: Duration::ZERO,
                rtt_count: 0,
                baseline: None,
                rising_windows: 0,
                requests: 0,
                limit_sum: 0,
                min: ceiling,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot under the current limit.
    pub(crate) async fn acquire(&self) -> Slot<'_> {
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            {
                let mut s = self.lock();
                if s.in_flight < s.limit {
                    s.in_flight += 1;
                    s.requests += 1;
                    s.limit_sum += s.limit as u64;
                    return Slot {
                        owner: self,
                        verdict: Verdict::Neutral,
                    };
                }
            }
            freed.await;
        }
    }

    /// The limit now.
    #[cfg(test)]
    pub(crate) fn limit(&self) -> usize {
        self.lock().limit
    }

    /// The concurrency used so far.
    pub(crate) fn used(&self) -> ConcurrencyUsed {
        let s = self.lock();
        ConcurrencyUsed {
            ceiling: self.ceiling,
            mean: if s.requests == 0 {
                s.limit as f64
            } else {
                s.limit_sum as f64 / s.requests as f64
            },
            min: s.min,
            last: s.limit,
        }
    }

    fn release(&self, verdict: Verdict) {
        let mut s = self.lock();
        s.in_flight -= 1;
        if self.adaptive {
            s.responses += 1;
            match verdict {
                Verdict::Healthy(rtt) => {
                    s.rtt_sum += rtt;
                    s.rtt_count += 1;
                }
                Verdict::Throttled => s.throttled = true,
                Verdict::Neutral => {}
            }
            if s.responses >= s.limit {
                let before = s.limit;
                adjust(&mut s, self.ceiling);
                if s.limit != before {
                    tracing::debug!(from = before, to = s.limit, "request concurrency");
                }
            }
        }
        drop(s);
        // More than one slot may have opened (the limit grew): wake every waiter to look.
        self.freed.notify_waiters();
    }
}

/// The end of a window: one multiplicative decrease or one additive increase.
fn adjust(s: &mut State, ceiling: usize) {
    let mean_rtt = (s.rtt_count > 0).then(|| s.rtt_sum.as_secs_f64() / f64::from(s.rtt_count));
    let rising = matches!((mean_rtt, s.baseline), (Some(m), Some(b)) if m > b * RISING);
    s.rising_windows = if rising { s.rising_windows + 1 } else { 0 };
    if s.throttled {
        s.limit = (s.limit / 2).max(1);
    } else if rising {
        if s.rising_windows >= RISING_WINDOWS {
            // At least one less, at least one.
            s.limit = (s.limit * 9 / 10).min(s.limit - 1).max(1);
            s.rising_windows = 0;
        }
    } else {
        s.limit = (s.limit + 1).min(ceiling);
        if let Some(m) = mean_rtt {
            s.baseline = Some(match s.baseline {
                None => m,
                Some(b) => b + BASELINE_WEIGHT * (m - b),
            });
        }
    }
    s.min = s.min.min(s.limit);
    s.responses = 0;
    s.throttled = false;
    s.rtt_sum = Duration::ZERO;
    s.rtt_count = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(c: &AdaptiveConcurrency, verdict: Verdict) {
        let n = c.limit();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let slots: Vec<_> = futures::future::join_all((0..n).map(|_| c.acquire())).await;
            for slot in slots {
                slot.done(verdict);
            }
        });
    }

    const FAST: Verdict = Verdict::Healthy(Duration::from_millis(10));

    #[test]
    fn throttles_halve_the_limit_once_a_window_and_health_adds_one_up_to_the_ceiling() {
        let c = AdaptiveConcurrency::new(16, true);
        window(&c, FAST);
        assert_eq!(c.limit(), 16, "the ceiling holds");
        window(&c, Verdict::Throttled);
        assert_eq!(c.limit(), 8, "a window of throttles halves once");
        window(&c, Verdict::Throttled);
        assert_eq!(c.limit(), 4);
        for expected in 5..=16 {
            window(&c, FAST);
            assert_eq!(c.limit(), expected);
        }
        window(&c, FAST);
        assert_eq!(c.limit(), 16);
        let used = c.used();
        assert_eq!((used.ceiling, used.min, used.last), (16, 4, 16));
        assert!(used.mean > 4.0 && used.mean < 16.0, "{used:?}");
    }

    #[test]
    fn rising_latency_takes_the_limit_down_and_a_fixed_limit_never_moves() {
        let c = AdaptiveConcurrency::new(10, true);
        window(&c, FAST);
        window(&c, Verdict::Healthy(Duration::from_millis(50)));
        assert_eq!(c.limit(), 10, "one slow window is noise");
        window(&c, Verdict::Healthy(Duration::from_millis(50)));
        assert_eq!(c.limit(), 9, "two in a row are not");
        let fixed = AdaptiveConcurrency::new(10, false);
        window(&fixed, Verdict::Throttled);
        assert_eq!(fixed.limit(), 10);
    }
}
