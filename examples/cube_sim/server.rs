//! The HTTP server: state, start/stop, request log.

use std::collections::HashMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use chrono::NaiveDate;
use serde_json::{Map, Value};

use super::*;

/// One request as the simulator saw it (failures included).
#[derive(Clone, Debug)]
pub struct RequestLog {
    pub path: String,
    /// The raw query string ("" when none).
    pub query: String,
    pub status: u16,
    /// The raw `Authorization` header value, if any.
    pub authorization: Option<String>,
    pub accept: Option<String>,
    pub content_type: Option<String>,
    /// The injected failure, if any: "throttle", "error", "drop" (status as answered, the body
    /// cut short) or "failing-day".
    pub fault: Option<&'static str>,
    /// When the request arrived (before any `latency_ms`).
    pub at: Instant,
}

pub(crate) struct Sim {
    pub(crate) cfg: SimConfig,
    pub(crate) addr: SocketAddr,
    pub(crate) log: Mutex<Vec<RequestLog>>,
    /// The most recently generated days: every page of a day would otherwise regenerate the
    /// whole day, which makes large days quadratic.
    pub(crate) cache: Mutex<Vec<(CacheKey, DayRows)>>,
    /// Serialized pages by (host, kind, campaigns, from, to, page), with `cfg.cache_pages`.
    pub(crate) page_cache: Mutex<HashMap<String, bytes::Bytes>>,
    /// The fault settings in force (initially `cfg.faults`).
    pub(crate) faults: RwLock<Arc<Faults>>,
    /// Requests that passed authentication so far.
    pub(crate) served: AtomicU64,
    /// Requests being answered now (fault `max_in_flight`).
    pub(crate) in_flight: std::sync::atomic::AtomicU32,
    /// Inserts so far per (is call outcomes, campaign, day), for `inserts_while_paging`.
    pub(crate) versions: Mutex<HashMap<VersionKey, u32>>,
    /// Changes so far per snapshot listing, for `snapshot_changes`.
    pub(crate) snapshot_versions: Mutex<HashMap<String, u32>>,
}

/// (is call outcomes, campaign, day)
pub(crate) type VersionKey = (bool, u64, NaiveDate);
/// (is call outcomes, campaign, day, version)
pub(crate) type CacheKey = (bool, u64, NaiveDate, u32);
pub(crate) type DayRows = Arc<Vec<Map<String, Value>>>;
pub(crate) const CACHED_DAYS: usize = 32;

/// A running simulator; dropping it shuts the server down and joins its thread.
pub struct SimHandle {
    pub(crate) sim: Arc<Sim>,
    pub(crate) shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub(crate) thread: Option<JoinHandle<()>>,
}

impl SimHandle {
    /// "http://127.0.0.1:PORT"
    pub fn base_url(&self) -> String {
        format!("http://{}", self.sim.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.sim.addr
    }

    pub fn config(&self) -> &SimConfig {
        &self.sim.cfg
    }

    /// Every request served so far, in order.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.sim
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Forgets the requests logged so far (the fault counter keeps counting).
    pub fn clear_requests(&self) {
        self.sim
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The fault settings in force.
    pub fn faults(&self) -> Faults {
        Faults::clone(&self.sim.current_faults())
    }

    /// Replaces every fault setting; takes effect for requests arriving from now on. The
    /// request counter and the inserts already made are kept.
    pub fn set_faults(&self, faults: Faults) {
        *self.sim.faults.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(faults);
    }

    /// Replaces only [`Faults::failing_days`] (an empty list "heals" the API).
    pub fn set_failing_days(&self, days: Vec<NaiveDate>) {
        let mut faults = self.sim.faults.write().unwrap_or_else(|e| e.into_inner());
        let mut updated = Faults::clone(&faults);
        updated.failing_days = days;
        *faults = Arc::new(updated);
    }

    /// Number of requests that passed authentication so far (the counter of the `*_every`
    /// faults: the next such request is number `request_count() + 1`).
    pub fn request_count(&self) -> u64 {
        self.sim.served.load(Ordering::SeqCst)
    }
}

impl SimHandle {
    /// Generates and caches every call-outcome page of the active campaigns for `days` (and,
    /// with `account`, of the account's listing), as a client on `base_url()` will ask for them
    /// (needs `cache_pages`).
    pub fn preload(&self, days: &[NaiveDate], account: bool) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&self.sim.addr.to_string()).unwrap(),
        );
        let mut listings: Vec<(String, Vec<u64>)> = campaign_ids(&self.sim.cfg)
            .into_iter()
            .map(|c| (format!("/api/v1/campaigns/{c}/call_outcomes/"), vec![c]))
            .collect();
        if account {
            listings.push((
                "/api/v1/call_outcomes/".to_owned(),
                campaign_ids(&self.sim.cfg),
            ));
        }
        for (path, campaigns) in &listings {
            for day in days {
                let ymd = day.format("%Y%m%d");
                for page in 1.. {
                    let query = if page == 1 {
                        format!("from_date={ymd}&to_date={ymd}")
                    } else {
                        format!("from_date={ymd}&to_date={ymd}&page={page}")
                    };
                    let uri: Uri = format!("{path}?{query}").parse().unwrap();
                    let response = self.sim.page(Kind::CallOutcomes, campaigns, &uri, &headers);
                    if response.status() != StatusCode::OK {
                        break;
                    }
                }
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Binds 127.0.0.1:0 and serves `cfg` on a dedicated thread with its own tokio runtime.
pub fn start(cfg: SimConfig) -> SimHandle {
    start_on(cfg, 0).expect("cube_sim: cannot bind 127.0.0.1:0")
}

/// Like [`start`] on a chosen port (0 = any free port). The socket is bound before this returns.
pub fn start_on(cfg: SimConfig, port: u16) -> std::io::Result<SimHandle> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let faults = RwLock::new(Arc::new(cfg.faults.clone()));
    let sim = Arc::new(Sim {
        cfg,
        addr,
        log: Mutex::new(Vec::new()),
        cache: Mutex::new(Vec::new()),
        page_cache: Mutex::new(HashMap::new()),
        faults,
        served: AtomicU64::new(0),
        in_flight: std::sync::atomic::AtomicU32::new(0),
        versions: Mutex::new(HashMap::new()),
        snapshot_versions: Mutex::new(HashMap::new()),
    });
    let app = router(Arc::clone(&sim));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("cube-sim".to_owned())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("cube_sim: tokio runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).expect("cube_sim: listener");
                tokio::select! {
                    result = axum::serve(listener, app).into_future() => {
                        if let Err(e) = result {
                            eprintln!("cube_sim: server error: {e}");
                        }
                    }
                    _ = rx => {}
                }
            });
            // Open keep-alive connections are dropped with the runtime.
            runtime.shutdown_timeout(Duration::from_secs(1));
        })?;
    Ok(SimHandle {
        sim,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}
