//! A failing object store: an HTTP proxy on 127.0.0.1 in front of the shared S3 server that
//! answers every Nth request of a kind (PUT, multipart part, complete, GET, LIST, ...) with
//! 500, 503 `SlowDown` (S3's XML error body), a reset connection, or a stall.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

/// The kind of an S3 request, from its method and query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// A whole-object PUT.
    Put,
    /// `POST ?uploads`: a multipart upload begins.
    Initiate,
    /// `PUT ?partNumber&uploadId`.
    Part,
    /// `POST ?uploadId`: the upload completes (the object appears).
    Complete,
    /// `DELETE ?uploadId`.
    Abort,
    Get,
    Head,
    List,
    /// `DELETE`, or `POST ?delete` (several objects at once).
    Delete,
}

/// What the proxy does instead of forwarding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 `InternalError`.
    InternalError,
    /// 503 `SlowDown`, S3's way of asking a client to back off.
    SlowDown,
    /// The connection is closed without an answer.
    Reset,
    /// No answer for this long, then the connection is closed.
    Stall(Duration),
    /// 403 `AccessDenied`, as a bucket policy without the permission answers.
    AccessDenied,
}

/// Every `every`th request of `op` (counted from 1) whose path contains `path_contains` gets
/// `fault`.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub op: Op,
    pub every: u32,
    pub fault: Fault,
    pub path_contains: &'static str,
}

impl Rule {
    pub fn every(every: u32, op: Op, fault: Fault) -> Rule {
        Rule {
            op,
            every,
            fault,
            path_contains: "",
        }
    }

    /// The same, for paths containing `part` only.
    pub fn on(self, part: &'static str) -> Rule {
        Rule {
            path_contains: part,
            ..self
        }
    }
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    rules: Mutex<Vec<Rule>>,
    /// Requests each rule (by index) matched so far.
    seen: Mutex<HashMap<usize, u32>>,
    injected: Mutex<Vec<(Op, Fault)>>,
    /// Notified at each injected fault.
    injecting: std::sync::Condvar,
}

pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<ProxyState>,
    _runtime: tokio::runtime::Runtime,
}

impl FaultProxy {
    /// A proxy in front of the shared S3 server, with these rules.
    pub fn start(rules: &[Rule]) -> FaultProxy {
        let state = Arc::new(ProxyState {
            upstream: crate::support::S3Server::shared().endpoint.clone(),
            client: reqwest::Client::builder().no_gzip().build().unwrap(),
            rules: Mutex::new(rules.to_vec()),
            seen: Mutex::default(),
            injected: Mutex::default(),
            injecting: std::sync::Condvar::new(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(forward)
            .layer(DefaultBodyLimit::disable())
            .with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await });
        FaultProxy {
            endpoint,
            state,
            _runtime: runtime,
        }
    }

    /// The environment that points the binary at the proxy (and gives up on a stalled request
    /// after 1 s).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = crate::support::S3Server::shared().env();
        for (k, v) in &mut env {
            if k == "AWS_ENDPOINT_URL" {
                *v = self.endpoint.clone();
            }
        }
        env.push(("AWS_TIMEOUT".into(), "1s".into()));
        env
    }

    /// As [`FaultProxy::env`], with storage retries that give up after two, quickly: for a
    /// fault that never stops.
    pub fn env_giving_up_soon(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env.push(("CUBE_EXTRACT_STORAGE_RETRIES".into(), "2".into()));
        env.push(("CUBE_EXTRACT_STORAGE_BACKOFF_MS".into(), "10".into()));
        env
    }

    /// As [`FaultProxy::env`] with object_store's own request timeout (60 s): a stall then
    /// lasts as long as the rule says.
    pub fn env_patient(&self) -> Vec<(String, String)> {
        let mut env = self.env();
        env.retain(|(k, _)| k != "AWS_TIMEOUT");
        env
    }

    /// Replaces the rules, counting afresh.
    pub fn set_rules(&self, rules: &[Rule]) {
        *self.state.rules.lock().unwrap() = rules.to_vec();
        self.state.seen.lock().unwrap().clear();
    }

    /// Waits until `until` holds for the faults injected so far (or a minute has passed).
    pub fn wait_for(&self, until: impl Fn(&[(Op, Fault)]) -> bool) -> bool {
        let injected = self.state.injected.lock().unwrap();
        let (injected, _) = self
            .state
            .injecting
            .wait_timeout_while(injected, Duration::from_secs(60), |i| !until(i))
            .unwrap();
        until(&injected)
    }

    /// The faults injected so far, in order.
    pub fn injected(&self) -> Vec<(Op, Fault)> {
        self.state.injected.lock().unwrap().clone()
    }
}

fn op_of(method: &Method, uri: &Uri) -> Op {
    let query = uri.query().unwrap_or("");
    let has = |key: &str| query.split('&').any(|p| p.split('=').next() == Some(key));
    // `/bucket` or `/bucket/` is the bucket itself: a GET there lists.
    let bucket_only = uri.path().trim_matches('/').split('/').count() <= 1;
    match *method {
        Method::PUT if has("partNumber") => Op::Part,
        Method::PUT => Op::Put,
        Method::POST if has("uploads") => Op::Initiate,
        Method::POST if has("uploadId") => Op::Complete,
        // `POST ?delete`: several objects deleted in one request.
        Method::POST => Op::Delete,
        Method::DELETE if has("uploadId") => Op::Abort,
        Method::DELETE => Op::Delete,
        Method::HEAD => Op::Head,
        Method::GET if bucket_only || has("list-type") => Op::List,
        _ => Op::Get,
    }
}

fn s3_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    (status, [("content-type", "application/xml")], body).into_response()
}

async fn forward(
    State(proxy): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let op = op_of(&method, &uri);
    // Keys as written (object_store escapes the `=` of partition folders).
    let path = uri.path().replace("%3D", "=");
    // Each rule counts the requests it matches.
    let fault = {
        let rules = proxy.rules.lock().unwrap();
        let mut seen = proxy.seen.lock().unwrap();
        rules
            .iter()
            .enumerate()
            .filter(|(_, r)| r.op == op && path.contains(r.path_contains))
            .map(|(i, r)| {
                let n = seen.entry(i).or_insert(0);
                *n += 1;
                (*n % r.every == 0).then_some(r.fault)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flatten()
            .next()
    };
    if let Some(fault) = fault {
        proxy.injected.lock().unwrap().push((op, fault));
        proxy.injecting.notify_all();
        match fault {
            Fault::InternalError => {
                return s3_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "We encountered an internal error. Please try again.",
                )
            }
            Fault::SlowDown => {
                return s3_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "SlowDown",
                    "Please reduce your request rate.",
                )
            }
            Fault::AccessDenied => {
                return s3_error(StatusCode::FORBIDDEN, "AccessDenied", "Access Denied")
            }
            Fault::Stall(d) => {
                tokio::time::sleep(d).await;
                // Unwinding the connection's task closes it without an answer; resume_unwind
                // skips the panic hook, so nothing is printed.
                std::panic::resume_unwind(Box::new("injected stall"));
            }
            Fault::Reset => std::panic::resume_unwind(Box::new("injected reset")),
        }
    }
    let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = proxy
        .client
        .request(method, format!("{}{path_and_query}", proxy.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != "content-length" {
            request = request.header(name, value);
        }
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut out_headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if !matches!(name.as_str(), "transfer-encoding" | "connection") {
            out_headers.insert(name.clone(), value.clone());
        }
    }
    let bytes = answer.bytes().await.unwrap_or_default();
    (status, out_headers, bytes).into_response()
}

use crate::support::*;

fn sim_with(quirks: Quirks) -> (SimConfig, SimHandle) {
    let cfg = SimConfig {
        quirks,
        ..SimConfig::default()
    };
    (cfg.clone(), cube_sim::start(cfg))
}

/// `extract` through the proxy: the workspace's S3 settings with the proxy's endpoint.
fn extract_through(ws: &Workspace, proxy: &FaultProxy, sim: &SimHandle, args: &[&str]) -> Outcome {
    let env = proxy.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    ws.extract_with("call-outcomes", sim, args, &env)
}

/// Only committed partitions' files are under the table root, and no multipart upload is open.
fn assert_nothing_partial(ws: &Workspace, report: &serde_json::Value) {
    let server = S3Server::shared();
    let committed: Vec<String> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["file"].as_str().map(|f| format!("lake/{f}")))
        .collect();
    for key in server.keys(ws.bucket(), "lake/call_outcomes") {
        assert!(
            committed.contains(&key) || !key.ends_with(".parquet") || key.is_empty(),
            "{key} is under the table root but no committed partition has it"
        );
        assert!(key.ends_with("/part-00000.parquet"), "{key}");
    }
    assert_eq!(
        server.open_uploads(ws.bucket()),
        0,
        "an upload was left open"
    );
}

/// A storm of 500s, 503 SlowDowns, resets and stalls on every kind of request. object_store's
/// retries ride out most of it; a run ends exact (exit 0) or with exit 1 naming the partitions it
/// could not place, with nothing partial under the table root, and `--resume` (in the same storm)
/// completes it. Every failed attempt is in the reports' `storage_retries`, and logged.
#[test]
fn a_storm_of_storage_faults_ends_exact_or_resumable_and_is_counted() {
    use Fault::*;
    let (cfg, sim) = sim_with(Quirks {
        drift: true,
        ..Quirks::default()
    });
    let ws = Workspace::on(Backend::S3);
    let proxy = FaultProxy::start(&[
        Rule::every(3, Op::Put, SlowDown),
        Rule::every(5, Op::Put, InternalError),
        Rule::every(7, Op::Put, Stall(Duration::from_secs(3))),
        Rule::every(4, Op::Get, InternalError),
        Rule::every(3, Op::List, SlowDown),
        Rule::every(4, Op::List, Reset),
        Rule::every(2, Op::Delete, Reset),
    ]);
    let mut args = vec![
        "--campaign",
        "101,102",
        "--from",
        "2019-08-12",
        "--to",
        "2019-08-17",
    ];
    let mut counted = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        let out = extract_through(&ws, &proxy, &sim, &args);
        let report = out.report();
        let this_run = report["storage_retries"].as_u64().unwrap();
        counted += this_run;
        // Each failed attempt is logged once: the log and the count agree.
        let logged = out.stderr.matches("storage request failed").count() as u64;
        assert_eq!(logged, this_run, "{}", out.stderr);
        assert_nothing_partial(&ws, report);
        if out.code == 0 {
            break;
        }
        out.assert_code(1);
        let failed: Vec<&serde_json::Value> = report["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "failed")
            .collect();
        assert!(
            !failed.is_empty() || report["error"].is_string(),
            "exit 1 names what failed: {report}"
        );
        assert!(
            runs < 4,
            "the storm should not stop three runs in a row: {report}"
        );
        if runs == 1 {
            args.push("--resume");
        }
    }
    let injected = proxy.injected();
    assert!(injected.len() >= 10, "the storm was too mild: {injected:?}");
    for kind in [
        SlowDown,
        InternalError,
        Reset,
        Stall(Duration::from_secs(3)),
    ] {
        assert!(
            injected.iter().any(|(_, f)| *f == kind),
            "no {kind:?} in {injected:?}"
        );
    }
    // Every injected fault is a failed attempt. On a busy machine a request can also time out
    // of itself (1 s here), which counts too, so the count may be higher, never lower.
    assert!(
        counted >= injected.len() as u64,
        "{counted} failed attempts counted, {} faults injected",
        injected.len()
    );
    assert_exact_table(&ws.view(), &cfg, &[101, 102], "2019-08-12", "2019-08-17");
}

/// A partition whose data file the store keeps refusing (every try, past the retries): exit 1
/// naming it, nothing of it under the table root, the others committed; `--resume` once the store
/// heals fetches it alone and the table is exact.
#[test]
fn a_file_the_store_keeps_refusing_fails_its_partition_alone_and_resume_completes_it() {
    let (cfg, sim) = sim_with(Quirks::default());
    let ws = Workspace::on(Backend::S3);
    let proxy = FaultProxy::start(&[Rule::every(1, Op::Put, Fault::InternalError)
        .on("call_outcomes/campaign_id=102/date=2019-08-02")]);
    let range = [
        "--campaign",
        "101,102",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-03",
    ];
    let env = proxy.env_giving_up_soon();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = ws.extract_with("call-outcomes", &sim, &range, &env_refs);
    out.assert_code(1);
    let failed: Vec<&serde_json::Value> = out.report()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{}", out.report());
    assert_eq!(
        (
            failed[0]["campaign_id"].as_u64(),
            failed[0]["date"].as_str()
        ),
        (Some(102), Some("2019-08-02"))
    );
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("date=2019-08-02"),
        "{}",
        failed[0]
    );
    // One try and two retries of the refused PUT (and any request that timed out of itself).
    assert!(
        out.report()["storage_retries"].as_u64().unwrap() >= 3,
        "{}",
        out.report()
    );
    assert_nothing_partial(&ws, out.report());

    proxy.set_rules(&[]);
    let mut resume = range.to_vec();
    resume.push("--resume");
    let before = listing_requests(&sim).len();
    let out = ws.extract_with("call-outcomes", &sim, &resume, &env_refs);
    out.assert_code(0);
    let fetched: Vec<String> = listing_requests(&sim)[before..]
        .iter()
        .map(|(_, d)| d.clone())
        .collect();
    assert_eq!(
        fetched,
        ["20190802"],
        "only the failed partition is fetched again"
    );
    assert_exact_table(&ws.view(), &cfg, &[101, 102], "2019-08-01", "2019-08-03");
}

/// A multipart upload whose completion keeps failing: the partition fails (exit 1), the upload
/// is aborted (none left open), nothing is visible, and `--resume` completes it.
#[test]
fn a_multipart_upload_that_cannot_complete_is_aborted_and_resume_completes_it() {
    let cfg = one_multipart_day();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(Backend::S3);
    let proxy = FaultProxy::start(&[
        Rule::every(2, Op::Part, Fault::SlowDown),
        Rule::every(1, Op::Complete, Fault::InternalError),
    ]);
    let env = proxy.env_giving_up_soon();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let range = ["--campaign", "101", "--from", "2019-08-01"];
    let out = ws.extract_with("call-outcomes", &sim, &range, &env_refs);
    out.assert_code(1);
    assert_eq!(out.report()["partitions"][0]["status"], "failed");
    assert!(
        proxy.injected().iter().any(|(op, _)| *op == Op::Part),
        "parts were uploaded"
    );
    assert_nothing_partial(&ws, out.report());
    assert!(S3Server::shared()
        .keys(ws.bucket(), "lake/call_outcomes")
        .is_empty());

    proxy.set_rules(&[Rule::every(2, Op::Part, Fault::SlowDown)]);
    let mut resume = range.to_vec();
    resume.push("--resume");
    let out = ws.extract_with("call-outcomes", &sim, &resume, &env_refs);
    out.assert_code(0);
    assert_nothing_partial(&ws, out.report());
    assert_exact_table(&ws.view(), &cfg, &[101], "2019-08-01", "2019-08-01");
}

/// SIGINT while a multipart upload is in flight (its part stalled at the store): the run stops
/// with 130 and aborts the upload instead of leaving it open for a lifecycle rule.
#[test]
fn sigint_aborts_the_multipart_uploads_in_flight() {
    let cfg = one_multipart_day();
    let sim = cube_sim::start(cfg);
    let ws = Workspace::on(Backend::S3);
    let proxy = FaultProxy::start(&[Rule::every(
        1,
        Op::Part,
        Fault::Stall(Duration::from_secs(40)),
    )]);
    // The stalled part must not time out before the signal.
    let env = proxy.env_patient();
    let dest = ws.dest_arg();
    let url = sim.base_url();
    let args = [
        "call-outcomes",
        "--base-url",
        &url,
        "--token",
        TOKEN,
        "--campaign",
        "101",
        "--from",
        "2019-08-01",
        "--dest",
        &dest,
        "-q",
    ];
    let child = bin_command(&args, &env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        proxy.wait_for(|i| i.iter().any(|(op, _)| *op == Op::Part)),
        "a part upload began"
    );
    assert_eq!(
        S3Server::shared().open_uploads(ws.bucket()),
        1,
        "the upload is open while its part stalls"
    );
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        S3Server::shared().open_uploads(ws.bucket()),
        0,
        "the upload was aborted"
    );
    assert!(S3Server::shared()
        .keys(ws.bucket(), "lake/call_outcomes")
        .is_empty());
}

/// SIGKILL during the rewrite window (a drifting range, so the first days' files are rewritten
/// to the widened schema, near the end of the run and at its end; the store stalls a rewrite's
/// read, and the kill lands then, possibly before the last partitions were committed). A reader
/// sees only whole files, some still in the older layout, which status names; the next run, with
/// `--resume` and a few more days, fetches only what was not committed, brings every file up to
/// date, and the table is exact.
#[test]
fn sigkill_during_the_rewrite_window_leaves_whole_files_and_the_next_run_settles_them() {
    let (cfg, sim) = sim_with(Quirks {
        drift: true,
        ..Quirks::default()
    });
    let ws = Workspace::on(Backend::S3);
    // Data files are read only by the rewrite: every second such read stalls.
    let proxy =
        FaultProxy::start(&[
            Rule::every(2, Op::Get, Fault::Stall(Duration::from_secs(30)))
                .on("/lake/call_outcomes/campaign_id="),
        ]);
    let dest = ws.dest_arg();
    let url = sim.base_url();
    let args = [
        "call-outcomes",
        "--base-url",
        &url,
        "--token",
        TOKEN,
        "--campaign",
        "101,102,103",
        "--from",
        "2019-08-08",
        "--to",
        "2019-08-17",
        "--concurrency",
        "1",
        "--dest",
        &dest,
        "-q",
    ];
    // The stalled read must not time out (and be retried to the end) before the kill.
    let mut child = bin_command(&args, &proxy.env_patient())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        proxy.wait_for(|i| !i.is_empty()),
        "the run reached its rewrites"
    );
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    // Whole files only; some in the older layout, which status names.
    let view = ws.view();
    assert_clean_table_root(&view);
    let before = read_dataset(&view);
    assert!(
        !before.files.is_empty() && before.files.len() <= 30,
        "{} files",
        before.files.len()
    );
    assert!(
        before.schemas.windows(2).any(|w| w[0] != w[1]),
        "the kill landed before every file had the final layout"
    );
    let status = run_bin_env(&["status", "--dest", &dest, "--json"], &ws.env());
    status.assert_code(0);
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert!(
        status["not_in_final_layout"].as_u64().unwrap() > 0,
        "{status}"
    );

    // The next run settles them, and fetches only what was not committed.
    let next = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102,103",
            "--from",
            "2019-08-08",
            "--to",
            "2019-08-20",
            "--resume",
        ],
    );
    next.assert_code(0);
    let skipped = next.report()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "skipped")
        .count();
    assert!(
        skipped > 0 && skipped <= before.files.len(),
        "skipped {skipped} partitions committed before the kill"
    );
    let after = read_dataset(&ws.view());
    assert!(after.schemas.windows(2).all(|w| w[0] == w[1]), "one layout");
    let expected = expected_rows(
        &cfg,
        &[101, 102, 103],
        &days("2019-08-08", "2019-08-20"),
        &after.schema_json,
    );
    assert_rows(&after.rows, &expected);
    let status = run_bin_env(&["status", "--dest", &dest, "--json"], &ws.env());
    let status: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(status["not_in_final_layout"], 0, "{status}");
}

/// A bucket that can be listed but not written (every PUT answers 403 AccessDenied, as a bucket
/// policy without `s3:PutObject` does): exit 2 before any page is fetched, naming the probe.
#[test]
fn a_bucket_that_can_be_listed_but_not_written_exits_2_before_any_page_is_fetched() {
    let (_, sim) = sim_with(Quirks::default());
    let ws = Workspace::on(Backend::S3);
    let proxy = FaultProxy::start(&[Rule::every(1, Op::Put, Fault::AccessDenied)]);
    let out = extract_through(
        &ws,
        &proxy,
        &sim,
        &["--campaign", "101", "--from", "2019-08-01"],
    );
    assert_refused_by_the_write_probe(&out);
    assert!(listing_requests(&sim).is_empty(), "no page was fetched");
    assert!(S3Server::shared().keys(ws.bucket(), "lake").is_empty());
}
