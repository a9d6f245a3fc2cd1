//! Adaptive request concurrency: `--concurrency` is the ceiling, and the number of requests
//! in flight follows how the API feels, the way TCP's congestion window (and Vector's adaptive
//! request concurrency) does.
//!
//! - It grows only on evidence: a healthy answer to a request sent when the requests in flight
//!   had reached the limit. An answer to a request sent below it (the campaign listing, the first
//!   requests of a burst) says nothing about more, and counting it let a window grow before the
//!   throttle of its own burst came back (RFC 7661's reason for not growing an unused window).
//! - It starts at half the ceiling and grows by one with each such answer until the first
//!   decrease, up to the ceiling: under a backlog it doubles each round trip, as TCP's slow start
//!   does, and the first burst of a run never asks for more than half.
//! - A throttle (429 or 503) halves the limit at once, and the limit it came at is remembered.
//!   The other answers to requests sent under the old limit are the same burst: they change
//!   nothing more.
//! - Below the remembered limit it grows by one a healthy window that reached the limit. It asks
//!   for the remembered limit again only after [`PROBE_AFTER`] healthy windows in a row, twice as
//!   many after each probe the API throttled; a probe that passes a window forgets it.
//! - A window whose response time rose well above the baseline, twice in a row, takes a tenth
//!   off: one slow window on a busy machine is noise.
//!
//! Apart from the limit, a `Retry-After` holds every new request of the run until its time
//! ([`AdaptiveConcurrency::hold_until`]): one throttled answer is the API speaking to the whole
//! client, not to one URL.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

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
/// Healthy windows in a row, just below the limit the API throttled at, before asking for it
/// again (doubled after each probe the API throttles).
pub(crate) const PROBE_AFTER: u32 = 8;

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
    /// Bumped at each decrease: an answer to a request sent before it is of the same burst.
    epoch: u64,
    /// Growing by one with each healthy answer sent at the limit, until the first decrease.
    slow_start: bool,
    /// The limit at which the API last throttled, until a probe passes it.
    throttled_at: Option<usize>,
    /// Healthy windows in a row just below `throttled_at`, and how many a probe waits for.
    steady_windows: u32,
    probe_after: u32,
    /// Set while a window at `throttled_at` or above runs.
    probing: bool,
    /// Responses since the last adjustment, and what they said.
    responses: usize,
    /// Whether one of them answered a request sent at the limit: a window below it is no
    /// evidence that the API takes more.
    window_used: bool,
    rtt_sum: Duration,
    rtt_count: u32,
    /// Mean response time of healthy windows (EWMA); `None` until the first.
    baseline: Option<f64>,
    /// Windows in a row whose response time rose: one slow window on a busy machine is noise.
    rising_windows: u32,
    /// No request is sent before this (a `Retry-After`).
    held_until: Option<Instant>,
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
    /// The epoch the request was sent in.
    epoch: u64,
    /// Whether it was sent with the requests in flight at the limit.
    at_limit: bool,
}

impl Slot<'_> {
    pub(crate) fn done(mut self, verdict: Verdict) {
        self.verdict = verdict;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.owner.release(self.verdict, self.epoch, self.at_limit);
    }
}

impl AdaptiveConcurrency {
    /// Up to `ceiling` requests in flight; `adaptive: false` keeps the limit at the ceiling.
    pub(crate) fn new(ceiling: usize, adaptive: bool) -> AdaptiveConcurrency {
        let ceiling = ceiling.max(1);
        let limit = if adaptive {
            ceiling.div_ceil(2)
        } else {
            ceiling
        };
        AdaptiveConcurrency {
            ceiling,
            adaptive,
            state: Mutex::new(State {
                limit,
                in_flight: 0,
                epoch: 0,
                slow_start: true,
                throttled_at: None,
                steady_windows: 0,
                probe_after: PROBE_AFTER,
                probing: false,
                responses: 0,
                window_used: false,
                rtt_sum: Duration::ZERO,
                rtt_count: 0,
                baseline: None,
                rising_windows: 0,
                held_until: None,
                requests: 0,
                limit_sum: 0,
                min: limit,
            }),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot under the current limit, once no `Retry-After` holds requests back.
    pub(crate) async fn acquire(&self) -> Slot<'_> {
        loop {
            // Registered before the check, so a slot freed in between is not missed.
            let freed = self.freed.notified();
            let held = {
                let mut s = self.lock();
                match s.held_until.filter(|until| *until > Instant::now()) {
                    Some(until) => Some(until),
                    None if s.in_flight < s.limit => {
                        s.in_flight += 1;
                        s.requests += 1;
                        s.limit_sum += s.limit as u64;
                        return Slot {
                            owner: self,
                            verdict: Verdict::Neutral,
                            epoch: s.epoch,
                            at_limit: s.in_flight == s.limit,
                        };
                    }
                    None => None,
                }
            };
            match held {
                Some(until) => tokio::time::sleep_until(until).await,
                None => freed.await,
            }
        }
    }

    /// Holds every request not yet sent until `until` (a `Retry-After`); a later time than
    /// the one in force extends it.
    pub(crate) fn hold_until(&self, until: Instant) {
        let mut s = self.lock();
        if s.held_until.is_none_or(|held| held < until) {
            s.held_until = Some(until);
            tracing::debug!(
                ms = until.saturating_duration_since(Instant::now()).as_millis() as u64,
                "requests held for Retry-After"
            );
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

    fn release(&self, verdict: Verdict, epoch: u64, at_limit: bool) {
        let mut s = self.lock();
        s.in_flight -= 1;
        if self.adaptive {
            let before = s.limit;
            match verdict {
                // Only the first throttle of a burst speaks: the others were sent with it.
                Verdict::Throttled if epoch == s.epoch => throttled(&mut s),
                Verdict::Throttled => {}
                Verdict::Healthy(rtt) => {
                    s.responses += 1;
                    s.rtt_sum += rtt;
                    s.rtt_count += 1;
                    if at_limit {
                        s.window_used = true;
                        if s.slow_start {
                            s.limit = (s.limit + 1).min(self.ceiling);
                        }
                    }
                }
                Verdict::Neutral => s.responses += 1,
            }
            if s.responses >= s.limit {
                end_window(&mut s, self.ceiling);
            }
            s.min = s.min.min(s.limit);
            if s.limit != before {
                tracing::debug!(from = before, to = s.limit, "request concurrency");
            }
        }
        drop(s);
        // More than one slot may have opened (the limit grew): wake every waiter to look.
        self.freed.notify_waiters();
    }
}

/// A throttle: halve the limit now, remember where the API began to throttle, and wait
/// longer before the next probe if this was one.
fn throttled(s: &mut State) {
    if s.probing {
        s.probe_after = s.probe_after.saturating_mul(2);
    }
    s.throttled_at = Some(s.limit);
    s.limit = (s.limit / 2).max(1);
    decreased(s);
}

/// What every decrease does: a new epoch, a new window, no more doubling.
fn decreased(s: &mut State) {
    s.epoch += 1;
    s.slow_start = false;
    s.probing = false;
    s.steady_windows = 0;
    new_window(s);
}

fn new_window(s: &mut State) {
    s.responses = 0;
    s.window_used = false;
    s.rtt_sum = Duration::ZERO;
    s.rtt_count = 0;
}

/// The end of a window without a throttle: come down on rising latency, else grow.
fn end_window(s: &mut State, ceiling: usize) {
    let mean_rtt = (s.rtt_count > 0).then(|| s.rtt_sum.as_secs_f64() / f64::from(s.rtt_count));
    let rising = matches!((mean_rtt, s.baseline), (Some(m), Some(b)) if m > b * RISING);
    s.rising_windows = if rising { s.rising_windows + 1 } else { 0 };
    if rising {
        if s.rising_windows >= RISING_WINDOWS {
            // At least one less, at least one.
            s.limit = (s.limit * 9 / 10).min(s.limit - 1).max(1);
            s.rising_windows = 0;
            decreased(s);
            return;
        }
    } else {
        if s.window_used {
            grow(s, ceiling);
        }
        if let Some(m) = mean_rtt {
            s.baseline = Some(match s.baseline {
                None => m,
                Some(b) => b + BASELINE_WEIGHT * (m - b),
            });
        }
    }
    new_window(s);
}

/// After a healthy window that reached the limit: one more (in slow start, its answers grew the
/// limit already), but the limit the API throttled at only after enough healthy windows, and a
/// passed probe forgets that limit.
fn grow(s: &mut State, ceiling: usize) {
    if s.slow_start {
        return;
    }
    if s.probing {
        // A whole window at the old throttling point passed: the API takes more now.
        s.probing = false;
        s.throttled_at = None;
        s.probe_after = PROBE_AFTER;
    }
    let next = s.limit + 1;
    match s.throttled_at {
        Some(at) if next >= at => {
            s.steady_windows += 1;
            if s.steady_windows >= s.probe_after {
                s.steady_windows = 0;
                s.probing = true;
                s.limit = at.min(ceiling);
            } else {
                s.limit = (at - 1).max(s.limit).min(ceiling);
            }
        }
        _ => s.limit = next.min(ceiling),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    /// A run with more requests waiting than the limit lets go: each answer frees a slot the
    /// next request takes at once, so every request after the first burst is sent at the limit.
    struct Backlog<'a> {
        c: &'a AdaptiveConcurrency,
        rt: tokio::runtime::Runtime,
        in_flight: VecDeque<Slot<'a>>,
    }

    impl<'a> Backlog<'a> {
        fn new(c: &'a AdaptiveConcurrency) -> Backlog<'a> {
            Backlog {
                c,
                rt: runtime(),
                in_flight: VecDeque::new(),
            }
        }

        /// `n` answers saying `verdict`, oldest request first, the limit kept full.
        fn answer(&mut self, n: usize, verdict: Verdict) {
            for _ in 0..n {
                while {
                    let s = self.c.lock();
                    s.in_flight < s.limit
                } {
                    let slot = self.rt.block_on(self.c.acquire());
                    self.in_flight.push_back(slot);
                }
                self.in_flight.pop_front().unwrap().done(verdict);
            }
        }

        /// As many answers as the limit.
        fn window(&mut self, verdict: Verdict) {
            self.answer(self.c.limit(), verdict);
        }

        /// Answers until a window has just ended, so the next `window` is one.
        fn align(&mut self) {
            self.answer(1, FAST);
            while self.c.lock().responses != 0 {
                self.answer(1, FAST);
            }
        }
    }

    const FAST: Verdict = Verdict::Healthy(Duration::from_millis(10));

    #[test]
    fn it_starts_at_half_the_ceiling_and_doubles_each_round_trip_up_to_it() {
        let c = AdaptiveConcurrency::new(16, true);
        assert_eq!(c.limit(), 8);
        let mut run = Backlog::new(&c);
        run.answer(8, FAST);
        assert_eq!(
            c.limit(),
            9,
            "of the first burst, only the request that filled the limit is evidence"
        );
        run.answer(9, FAST);
        assert_eq!(c.limit(), 16, "every request sent at the limit is");
        run.window(FAST);
        assert_eq!(c.limit(), 16, "the ceiling holds");
        assert_eq!(AdaptiveConcurrency::new(1, true).limit(), 1);
        let fixed = AdaptiveConcurrency::new(10, false);
        assert_eq!(fixed.limit(), 10);
        Backlog::new(&fixed).window(Verdict::Throttled);
        assert_eq!(fixed.limit(), 10, "a fixed limit never moves");
    }

    /// Requests that never fill the limit (a lone listing, a run with little to do) say nothing
    /// about more: the limit stays.
    #[test]
    fn answers_to_requests_below_the_limit_never_grow_it() {
        let c = AdaptiveConcurrency::new(16, true);
        let rt = runtime();
        for _ in 0..50 {
            let (a, b) = rt.block_on(async { futures::join!(c.acquire(), c.acquire()) });
            a.done(FAST);
            b.done(FAST);
        }
        assert_eq!(c.limit(), 8);
    }

    /// The healthy answers of a run's first burst may come back before its throttle: they were
    /// sent below the limit, as the campaign listing before them was, so the limit has not grown
    /// when the throttle halves it (counted by the window, the listing and three answers doubled
    /// it first, and the requests sent at 8 were throttled too).
    #[test]
    fn a_burst_s_healthy_answers_do_not_outrun_its_throttle() {
        let c = AdaptiveConcurrency::new(8, true);
        let rt = runtime();
        rt.block_on(c.acquire()).done(FAST);
        let mut run = Backlog::new(&c);
        run.answer(3, FAST);
        assert_eq!(c.limit(), 4);
        run.answer(1, Verdict::Throttled);
        assert_eq!(c.limit(), 2);
    }

    /// A burst of throttles halves once; the limit then climbs by one to just below where the
    /// API throttled, stays there for PROBE_AFTER windows, and probes it; a throttled probe
    /// makes the next wait twice as long, a passed one forgets the limit.
    #[test]
    fn the_limit_the_api_throttled_at_is_remembered_and_probed_rarely() {
        let c = AdaptiveConcurrency::new(16, true);
        let mut run = Backlog::new(&c);
        run.answer(8 + 9, FAST);
        assert_eq!(c.limit(), 16);
        run.window(Verdict::Throttled);
        assert_eq!(c.limit(), 8, "a burst of throttles halves once");
        for expected in 9..=15 {
            run.window(FAST);
            assert_eq!(c.limit(), expected);
        }
        let held = |run: &mut Backlog, windows: u32, at: usize| {
            for _ in 0..windows {
                run.window(FAST);
                assert_eq!(run.c.limit(), at, "held below the throttling point");
            }
        };
        held(&mut run, PROBE_AFTER - 1, 15);
        run.window(FAST);
        assert_eq!(c.limit(), 16, "the probe");
        run.window(Verdict::Throttled);
        assert_eq!(c.limit(), 8);
        for _ in 9..=15 {
            run.window(FAST);
        }
        held(&mut run, 2 * PROBE_AFTER - 1, 15);
        run.window(FAST);
        assert_eq!(c.limit(), 16, "the second probe waited twice as long");
        run.window(FAST);
        assert_eq!(c.limit(), 16, "a passed probe");
        let used = c.used();
        assert_eq!((used.ceiling, used.min, used.last), (16, 8, 16));
    }

    #[test]
    fn rising_latency_takes_the_limit_down() {
        let c = AdaptiveConcurrency::new(10, true);
        let mut run = Backlog::new(&c);
        run.answer(5 + 6, FAST);
        run.align();
        assert_eq!(c.limit(), 10);
        run.window(Verdict::Healthy(Duration::from_millis(50)));
        assert_eq!(c.limit(), 10, "one slow window is noise");
        run.window(Verdict::Healthy(Duration::from_millis(50)));
        assert_eq!(c.limit(), 9, "two in a row are not");
    }

    /// A Retry-After holds every request not yet sent until its time, the later of two wins.
    #[test]
    fn a_hold_delays_every_new_request_until_its_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let c = AdaptiveConcurrency::new(4, true);
            let start = Instant::now();
            c.hold_until(start + Duration::from_millis(300));
            c.hold_until(start + Duration::from_millis(100));
            let (a, b) = futures::join!(c.acquire(), c.acquire());
            // Paused time advances only when every task waits: no request went before.
            assert_eq!(start.elapsed(), Duration::from_millis(300));
            drop((a, b));
            let _ = c.acquire().await;
            assert_eq!(start.elapsed(), Duration::from_millis(300), "over");
        });
    }
}
