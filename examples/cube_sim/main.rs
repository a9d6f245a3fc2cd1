//! `cube_sim`: a seeded, fully deterministic simulator of the Headshed Cube REST API
//! (`/api/v1/`, see `docs/cube-api.md`), served over plain HTTP on 127.0.0.1 only.
//!
//! As a binary:
//!
//! ```text
//! cargo run --example cube_sim -- serve --port 0 --quirks drift,new-keys --page-size 50
//!     first stdout line: "listening on http://127.0.0.1:PORT"; then serves until killed
//! cargo run --example cube_sim -- dump --campaign 101,199 --from 2024-03-01 --to 2024-03-03
//!     NDJSON on stdout: every record exactly as served, with two extra leading keys
//!     "__campaign_id" and "__date", per campaign (given order) then per day
//!     (with --inserts-while-paging K: as served once all K inserts have happened)
//! cargo run --example cube_sim -- serve --port 0 --throttle-every 3 --retry-after 2 \
//!     --error-every 5 --drop-every 7 --failing-day 2024-03-02 --inserts-while-paging 2
//! ```
//!
//! Fault switches (`SimConfig::faults`, all off by default; serve flags in brackets). The
//! `*_every` counters count every request that passes authentication (any endpoint, 1-based,
//! in arrival order, per simulator instance); when several hit one request the first listed wins:
//! - `throttle_every` [--throttle-every N]: 429 `{"detail":"Request was throttled."}` with
//!   `Retry-After: <retry_after_secs>` [--retry-after SECS], or an HTTP date (now + SECS) with
//!   `retry_after_http_date` [--retry-after-date];
//! - `error_every` [--error-every N]: 503 `{"detail":"Service unavailable."}`;
//! - `drop_every` [--drop-every N]: the normal status and a `Content-Length` for the full body,
//!   but only the first half of the body, then the connection is closed.
//!
//! Not counted: `latency_ms` [--latency-ms MS] delays every answer (401s included);
//! `failing_days` [--failing-day DATE, repeatable]: every listing request (call outcomes or
//! product registrations, any scope) whose date range covers such a day answers 500
//! `{"detail":"Internal error."}`; `inserts_while_paging` [--inserts-while-paging K, also on
//! dump]: a live table, where each listing request for page >= 2 first inserts one record at
//! the front of every non-empty (campaign, day) of its range, until a day has K inserts (see
//! `records_at`, `final_records`); `unserved` [--unserved ENDPOINT, repeatable]: an endpoint the
//! account does not serve answers 404 `{"detail":"Not found."}` (read when the server starts);
//! `max_in_flight` [--max-in-flight N]: requests beyond N in flight at once answer 429.
//! `RequestLog::fault` names the fault that answered a request.
//! At runtime: `SimHandle::set_faults`, `SimHandle::set_failing_days` (counters keep counting).
//!
//! As a module of a Rust integration test:
//!
//! ```text
//! #[path = "../examples/cube_sim/main.rs"]
//! mod cube_sim;
//! let sim = cube_sim::start(cube_sim::SimConfig::default());   // bound before it returns
//! let url = sim.base_url();                                      // "http://127.0.0.1:PORT"
//! let expected = cube_sim::records(&cfg, 101, day);             // what the API serves for that day
//! let stable = cube_sim::final_records(&cfg, 101, day);         // .. after inserts_while_paging
//! sim.set_failing_days(vec![]);                                  // heal the API at runtime
//! let log = sim.requests();                                      // every request served so far
//! ```
//!
//! Data is a pure function of (seed, campaigns, rows_per_day, data-changing quirks). Every value
//! comes from a splitmix64 stream keyed by (seed, stream, campaign, day, row), so turning a quirk
//! on adds or alters only that quirk's keys and never changes the base values of other rows.
//! Auth: `Authorization: Token <token>` or `Authorization: Basic base64(user:pass)`; anything else
//! is 401. Paging follows Django REST Framework's page-number pagination.
#![allow(dead_code)]

mod campaigns;
mod config;
mod customers;
mod endpoints;
mod faults;
mod paging;
mod records;
mod rng;
mod server;

pub use campaigns::*;
pub use config::*;
pub use customers::*;
use endpoints::*;
use faults::*;
use paging::*;
pub use records::*;
use rng::*;
pub use server::*;

use std::io::Write;
use std::process::ExitCode;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value};

// The command line of the binary.
#[derive(Parser, Debug)]
#[command(
    name = "cube_sim",
    about = "Deterministic simulator of the Headshed Cube REST API (127.0.0.1 only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the API until killed; the first stdout line is "listening on http://127.0.0.1:PORT".
    Serve(ServeArgs),
    /// Print the records of campaigns and days as NDJSON (with "__campaign_id" and "__date").
    Dump(DumpArgs),
}

/// Flags that decide the data.
#[derive(Args, Debug)]
struct DataArgs {
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Number of active campaigns (ids 101, 102, ..); archived campaign 199 is always there too.
    #[arg(long, default_value_t = 3)]
    campaigns: u32,
    /// Mean rows per (campaign, day); actual counts lie in [rows/2, rows*3/2].
    #[arg(long, default_value_t = 60)]
    rows_per_day: u32,
    /// Comma list: drift,new-keys,odd-keys,case-keys,foreign-next,malformed-next,empty-days,wide,sparse,all
    #[arg(long, default_value = "", value_parser = Quirks::parse)]
    quirks: Quirks,
    /// Fault: each listing request for page >= 2 inserts one more record (up to K) at the front
    /// of every day of its range; dump prints the days after all K inserts.
    #[arg(long, value_name = "K", default_value_t = 0)]
    inserts_while_paging: u32,
    /// Customers of every CRM.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    customers_per_crm: usize,
    /// Fault: each request for page >= 2 of a snapshot (customers, call-flow status) changes it
    /// once more (up to K: an insert, then a move, ...); dump prints it after all K.
    #[arg(long, value_name = "K", default_value_t = 0)]
    snapshot_changes: u32,
    /// From this day (YYYY-MM-DD) on, every record has one more key,
    /// `call_outcome__extra__Oppfølging` (an integer).
    #[arg(long, value_name = "DATE", value_parser = parse_cli_date)]
    new_column_from: Option<NaiveDate>,
    /// Every Nth customer of each CRM is anonymized wherever it appears
    /// (crm__customer_id "", name "Anonymized").
    #[arg(long, value_name = "N", default_value_t = 0)]
    anonymize_every: usize,
}

/// Fault switches of `serve` (counters count authenticated requests, 1-based; 0 = off).
#[derive(Args, Debug)]
struct FaultArgs {
    /// Every request waits this long before it is answered.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Every Nth request answers 429 with Retry-After.
    #[arg(long, value_name = "N", default_value_t = 0)]
    throttle_every: u32,
    /// Retry-After of throttled requests, in seconds.
    #[arg(long = "retry-after", value_name = "SECS", default_value_t = 0)]
    retry_after_secs: u32,
    /// Send Retry-After as an HTTP date (now + SECS) instead of seconds.
    #[arg(long = "retry-after-date")]
    retry_after_http_date: bool,
    /// Every Nth request answers 503.
    #[arg(long, value_name = "N", default_value_t = 0)]
    error_every: u32,
    /// Every Nth request sends only half of its body (with a full Content-Length), then closes.
    #[arg(long, value_name = "N", default_value_t = 0)]
    drop_every: u32,
    /// Listing requests whose date range covers this day answer 500; repeatable, or a comma list.
    #[arg(long = "failing-day", value_name = "DATE", value_delimiter = ',', value_parser = parse_cli_date)]
    failing_days: Vec<NaiveDate>,
    /// The customers and custom fields of this CRM (OWNER:TYPE) answer 403; repeatable.
    #[arg(long = "forbidden-crm", value_name = "OWNER:TYPE", value_parser = parse_crm)]
    forbidden_crms: Vec<(u64, String)>,
    /// An endpoint the account does not serve, by its last path segment (e.g.
    /// product_registrations): every request to it answers 404; repeatable.
    #[arg(long = "unserved", value_name = "ENDPOINT")]
    unserved: Vec<String>,
    /// Requests beyond N in flight at once answer 429 (0 = no limit).
    #[arg(long, value_name = "N", default_value_t = 0)]
    max_in_flight: u32,
}

fn parse_crm(text: &str) -> Result<(u64, String), String> {
    text.split_once(':')
        .and_then(|(o, t)| Some((o.parse().ok()?, t.to_ascii_uppercase())))
        .ok_or_else(|| format!("invalid CRM '{text}': expected OWNER:TYPE, e.g. 11:B2C"))
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Port on 127.0.0.1 (0 = any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    faults: FaultArgs,
    #[arg(long, default_value_t = 500)]
    page_size: usize,
    #[arg(long, default_value = "sim-token")]
    token: String,
    #[arg(long, default_value = "sim")]
    username: String,
    #[arg(long, default_value = "sim-pass")]
    password: String,
    /// Scheme and host put into next/previous links under quirk foreign-next.
    #[arg(long)]
    next_host: Option<String>,
    /// Keep every serialized page in memory (benchmarks).
    #[arg(long)]
    cache_pages: bool,
    /// With --cache-pages: generate every page of the active campaigns from this day on before
    /// listening, so a benchmark measures the client, not the simulator.
    #[arg(long, value_parser = parse_cli_date, requires = "cache_pages")]
    preload_from: Option<NaiveDate>,
    /// Last preloaded day (default: --preload-from).
    #[arg(long, value_parser = parse_cli_date, requires = "preload_from")]
    preload_to: Option<NaiveDate>,
    /// With --preload-from: also generate the account's call-outcome pages of those days.
    #[arg(long, requires = "preload_from")]
    preload_account: bool,
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// Campaign id; repeatable and/or comma separated. For customers and crm-custom-fields:
    /// the CRMs of these campaigns; ignored for campaigns.
    #[arg(long, value_delimiter = ',')]
    campaign: Vec<u64>,
    /// Which table: call-outcomes (default), product-registrations, customers,
    /// customer-status, campaigns, crm-custom-fields.
    #[arg(long, default_value = "call-outcomes")]
    table: String,
    /// For call outcomes, product registrations and customer-status: one partition per
    /// campaign (default), per CRM of the campaigns ("__data_owner_id", "__crm_type"), or for
    /// the whole account (call outcomes and product registrations; --campaign ignored).
    #[arg(long, default_value = "campaign")]
    scope: String,
    /// First day, YYYY-MM-DD (or YYYYMMDD); for call outcomes and product registrations.
    #[arg(long, value_parser = parse_cli_date)]
    from: Option<NaiveDate>,
    /// Last day (inclusive); defaults to --from.
    #[arg(long, value_parser = parse_cli_date)]
    to: Option<NaiveDate>,
    #[command(flatten)]
    data: DataArgs,
}

fn parse_cli_date(text: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .or_else(|| parse_api_date(text))
        .ok_or_else(|| format!("invalid date '{text}': expected YYYY-MM-DD"))
}

impl DataArgs {
    fn config(self) -> SimConfig {
        SimConfig {
            seed: self.seed,
            campaigns: self.campaigns,
            rows_per_day: self.rows_per_day,
            quirks: self.quirks,
            customers_per_crm: self.customers_per_crm,
            new_column_from: self.new_column_from,
            anonymize_every: self.anonymize_every,
            faults: Faults {
                inserts_while_paging: self.inserts_while_paging,
                snapshot_changes: self.snapshot_changes,
                ..Faults::default()
            },
            ..SimConfig::default()
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Serve(args) => serve(args),
        Command::Dump(args) => dump(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let data = args.data.config();
    let f = args.faults;
    let faults = Faults {
        latency_ms: f.latency_ms,
        throttle_every: f.throttle_every,
        retry_after_secs: f.retry_after_secs,
        retry_after_http_date: f.retry_after_http_date,
        error_every: f.error_every,
        drop_every: f.drop_every,
        failing_days: f.failing_days,
        forbidden_crms: f.forbidden_crms,
        unserved: f.unserved,
        max_in_flight: f.max_in_flight,
        ..data.faults.clone()
    };
    let cfg = SimConfig {
        page_size: args.page_size,
        token: args.token,
        username: args.username,
        password: args.password,
        next_host: args.next_host,
        faults,
        cache_pages: args.cache_pages,
        ..data
    };
    let handle = match start_on(cfg, args.port) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("cube_sim: cannot bind 127.0.0.1:{}: {e}", args.port);
            return ExitCode::from(2);
        }
    };
    if let Some(from) = args.preload_from {
        let to = args.preload_to.unwrap_or(from);
        let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= to).collect();
        handle.preload(&days, args.preload_account);
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", handle.base_url());
    let _ = stdout.flush();
    // Serve until the process is killed (SIGTERM/SIGINT end it with their default action).
    loop {
        std::thread::park();
    }
}

/// One JSON object: a record, or a partition's `__key` values.
type Record = Map<String, Value>;

fn dump(args: DumpArgs) -> ExitCode {
    let cfg = args.data.config();
    let known = campaign_ids(&cfg);
    if let Some(id) = args.campaign.iter().find(|id| !known.contains(id)) {
        eprintln!("cube_sim: unknown campaign {id} (known: {known:?})");
        return ExitCode::from(2);
    }
    let by_day = matches!(
        args.table.as_str(),
        "call-outcomes" | "product-registrations"
    );
    let from = match (by_day, args.from) {
        (true, Some(from)) => from,
        (true, None) => {
            eprintln!("cube_sim: --from is needed for {}", args.table);
            return ExitCode::from(2);
        }
        (false, _) => NaiveDate::MIN,
    };
    let to = args.to.unwrap_or(from);
    // The CRMs of the campaigns, in order.
    let mut crms: Vec<(u64, &str)> = Vec::new();
    for meta in args
        .campaign
        .iter()
        .filter_map(|&id| campaign_meta(&cfg, id))
    {
        if !crms.contains(&(meta.owner_id, meta.crm_type)) {
            crms.push((meta.owner_id, meta.crm_type));
        }
    }
    // (partition columns, records) of every partition of the table.
    let mut partitions: Vec<(Record, Vec<Record>)> = Vec::new();
    let crm_key = |owner: u64, crm_type: &str| {
        let mut m = Map::new();
        put(&mut m, "__data_owner_id", owner);
        put(&mut m, "__crm_type", crm_type);
        m
    };
    let day_records = |campaign_id: u64, day: NaiveDate| {
        if args.table == "product-registrations" {
            final_product_registrations(&cfg, campaign_id, day)
        } else {
            final_records(&cfg, campaign_id, day)
        }
    };
    match (args.table.as_str(), args.scope.as_str()) {
        ("call-outcomes" | "product-registrations", "crm") => {
            for &(owner_id, crm_type) in &crms {
                let ids = crm_campaign_ids(&cfg, owner_id, crm_type).unwrap_or_default();
                for day in from.iter_days().take_while(|d| *d <= to) {
                    let mut m = crm_key(owner_id, crm_type);
                    put(&mut m, "__date", ymd(day));
                    let records = ids.iter().flat_map(|&c| day_records(c, day)).collect();
                    partitions.push((m, records));
                }
            }
        }
        ("call-outcomes" | "product-registrations", "account") => {
            for day in from.iter_days().take_while(|d| *d <= to) {
                let mut m = Map::new();
                put(&mut m, "__date", ymd(day));
                let records = known.iter().flat_map(|&c| day_records(c, day)).collect();
                partitions.push((m, records));
            }
        }
        ("customer-status", "crm") => {
            for &(owner_id, crm_type) in &crms {
                let snapshot = Snapshot::CrmStatus {
                    owner_id,
                    crm_type: crm_type.to_owned(),
                };
                partitions.push((crm_key(owner_id, crm_type), final_snapshot(&cfg, &snapshot)));
            }
        }
        (_, "campaign") => {}
        (table, scope) => {
            eprintln!("cube_sim: no {table} per {scope}");
            return ExitCode::from(2);
        }
    }
    match args.table.as_str() {
        _ if args.scope != "campaign" => {}
        "call-outcomes" | "product-registrations" => {
            for &campaign_id in &args.campaign {
                for day in from.iter_days().take_while(|d| *d <= to) {
                    let mut m = Map::new();
                    put(&mut m, "__campaign_id", campaign_id);
                    put(&mut m, "__date", ymd(day));
                    partitions.push((m, day_records(campaign_id, day)));
                }
            }
        }
        "customers" => {
            for &(owner_id, crm_type) in &crms {
                let snapshot = Snapshot::Customers {
                    owner_id,
                    crm_type: crm_type.to_owned(),
                };
                partitions.push((crm_key(owner_id, crm_type), final_snapshot(&cfg, &snapshot)));
            }
        }
        "customer-status" => {
            for &campaign_id in &args.campaign {
                let mut m = Map::new();
                put(&mut m, "__campaign_id", campaign_id);
                partitions.push((m, final_snapshot(&cfg, &Snapshot::Status { campaign_id })));
            }
        }
        "crm-custom-fields" => {
            for &(owner_id, crm_type) in &crms {
                let fields = custom_fields(&cfg, owner_id, crm_type).unwrap_or_default();
                let records = fields
                    .into_iter()
                    .filter_map(|f| match f {
                        Value::Object(m) => Some(m),
                        _ => None,
                    })
                    .collect();
                partitions.push((crm_key(owner_id, crm_type), records));
            }
        }
        "campaigns" => {
            let records = campaigns(&cfg)
                .into_iter()
                .filter_map(|c| match c {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect();
            partitions.push((Map::new(), records));
        }
        other => {
            eprintln!("cube_sim: unknown table {other}");
            return ExitCode::from(2);
        }
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let write_all = || -> std::io::Result<()> {
        for (key, records) in partitions {
            for record in records {
                let mut line = key.clone();
                line.extend(record);
                serde_json::to_writer(&mut out, &line)?;
                out.write_all(b"\n")?;
            }
        }
        out.flush()
    };
    match write_all() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cube_sim: {e}");
            ExitCode::FAILURE
        }
    }
}
