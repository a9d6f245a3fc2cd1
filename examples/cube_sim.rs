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
//! `records_at`, `final_records`). `RequestLog::fault` names the fault that answered a request.
//! At runtime: `SimHandle::set_faults`, `SimHandle::set_failing_days` (counters keep counting).
//!
//! As a module of a Rust integration test:
//!
//! ```text
//! #[path = "../examples/cube_sim.rs"]
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

use std::collections::HashMap;
use std::future::IntoFuture;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use chrono::{Datelike, Days, NaiveDate};
use clap::{Args, Parser, Subcommand};
use serde_json::{json, Map, Value};

// ============================================================================================
// Configuration
// ============================================================================================

/// Id of the one archived campaign that is always listed (and has data).
pub const ARCHIVED_CAMPAIGN_ID: u64 = 199;
/// Its `campaign__archived_date`.
pub const ARCHIVED_DATE: &str = "2019-01-31";
/// Host put into `next`/`previous` links under quirk `foreign_next` when `next_host` is unset.
pub const DEFAULT_NEXT_HOST: &str = "http://internal-proxy.invalid:8000";
/// Number of extra keys added by quirk `wide` (`crm__custom_info__5000` ..).
pub const WIDE_KEYS: u64 = 300;

#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every data stream.
    pub seed: u64,
    /// Number of active campaigns (ids 101, 102, ..; 199 is skipped). Campaign 199 is always
    /// listed as well, archived, with data.
    pub campaigns: u32,
    /// Mean rows per (campaign, day); the actual count lies in [rows/2, rows*3/2].
    pub rows_per_day: u32,
    /// Records per page (at least 1 is used).
    pub page_size: usize,
    pub quirks: Quirks,
    pub token: String,
    pub username: String,
    pub password: String,
    /// Scheme + host put into `next`/`previous` under quirk `foreign_next`
    /// (default [`DEFAULT_NEXT_HOST`]). Ignored without that quirk.
    pub next_host: Option<String>,
    /// Failures to inject (default: none). Can be replaced at runtime with
    /// [`SimHandle::set_faults`]; [`SimHandle::config`] keeps the values given at start.
    pub faults: Faults,
    /// Keep every serialized page for the life of the server (benchmarks: the simulator then
    /// costs a memcpy per page instead of generating and serializing JSON). Off while rows are
    /// inserted during paging.
    pub cache_pages: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 7,
            campaigns: 3,
            rows_per_day: 60,
            page_size: 500,
            quirks: Quirks::default(),
            token: "sim-token".to_owned(),
            username: "sim".to_owned(),
            password: "sim-pass".to_owned(),
            next_host: None,
            faults: Faults::default(),
            cache_pages: false,
        }
    }
}

/// Failures the simulator can inject, to exercise a client's retries, completeness checks and
/// handling of partial failures. The `*_every` switches count every request that passes
/// authentication (1-based, in arrival order, per simulator instance, never reset); 0 = off.
/// When several hit the same request: throttle, then error, then drop.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Every request (authenticated or not) waits this long before it is answered.
    pub latency_ms: u64,
    /// Every Nth request answers 429 `{"detail":"Request was throttled."}` with `Retry-After`.
    pub throttle_every: u32,
    /// The `Retry-After` of throttled requests, in seconds.
    pub retry_after_secs: u32,
    /// Send `Retry-After` as an HTTP date (now + `retry_after_secs`, rounded up to the next
    /// whole second) instead of a number of seconds.
    pub retry_after_http_date: bool,
    /// Every Nth request answers 503 `{"detail":"Service unavailable."}`.
    pub error_every: u32,
    /// Every Nth request is answered normally (status and headers, normally 200) with a
    /// `Content-Length` for the full body, but only the first half of the body is sent before
    /// the connection is closed.
    pub drop_every: u32,
    /// Rows inserted into the live table while a client pages: see [`records_at`]. Each listing
    /// request for page >= 2 inserts one more record (up to this many) at the front of every
    /// non-empty (campaign, day) of its range, before the page is computed.
    pub inserts_while_paging: u32,
    /// Every listing request (call outcomes or product registrations, any scope) whose
    /// from_date..=to_date covers one of these days answers 500 `{"detail":"Internal error."}`.
    pub failing_days: Vec<NaiveDate>,
}

/// Misbehaviours of the real API that can be switched on. Data quirks: `drift`, `new_keys`,
/// `odd_keys`, `case_keys`, `empty_days`, `wide`; paging quirks: `foreign_next`, `malformed_next`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Quirks {
    /// Late days (15..31): `crm__custom_info__220` partly fractional, `crm__custom_info__1407`
    /// partly "ukjent", `call_outcome__extra__Samtykke` partly "Ja" (booleans or "" early).
    pub drift: bool,
    /// `call_outcome__extra__Kampanjekode` from day 10, `crm__custom_info__4100` from day 20.
    pub new_keys: bool,
    /// Labels with spaces, `%`, `?`, `(kr)`, Norwegian letters and one NFD-encoded key.
    pub odd_keys: bool,
    /// `call_outcome__extra__Kommentar` + `call_outcome__extra__kommentar`, `Date`, `campaign_id`.
    pub case_keys: bool,
    /// `next`/`previous` carry another scheme+host (see [`SimConfig::next_host`]).
    pub foreign_next: bool,
    /// `next`/`previous` lack the `?` before the query, like the published example.
    pub malformed_next: bool,
    /// Days whose day of month is divisible by 7 have no records at all.
    pub empty_days: bool,
    /// 300 extra keys `crm__custom_info__5000` ..= `crm__custom_info__5299`.
    pub wide: bool,
}

impl Quirks {
    /// Every quirk except `wide`.
    pub fn all() -> Self {
        Quirks {
            drift: true,
            new_keys: true,
            odd_keys: true,
            case_keys: true,
            foreign_next: true,
            malformed_next: true,
            empty_days: true,
            wide: false,
        }
    }

    /// Parses a comma list of: drift, new-keys, odd-keys, case-keys, foreign-next,
    /// malformed-next, empty-days, wide, all (also accepts `_` for `-`, and `none`/empty).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut q = Quirks::default();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().replace('_', "-").as_str() {
                "drift" => q.drift = true,
                "new-keys" => q.new_keys = true,
                "odd-keys" => q.odd_keys = true,
                "case-keys" => q.case_keys = true,
                "foreign-next" => q.foreign_next = true,
                "malformed-next" => q.malformed_next = true,
                "empty-days" => q.empty_days = true,
                "wide" => q.wide = true,
                "all" => {
                    q = Quirks {
                        wide: q.wide,
                        ..Quirks::all()
                    }
                }
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown quirk '{other}' (expected a comma list of: drift, new-keys, \
                         odd-keys, case-keys, foreign-next, malformed-next, empty-days, wide, all)"
                    ))
                }
            }
        }
        Ok(q)
    }
}

// ============================================================================================
// Deterministic randomness (splitmix64; stable across platforms and crate versions)
// ============================================================================================

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 output function.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Rng {
    state: u64,
}

impl Rng {
    /// A stream keyed by an ordered tuple of numbers.
    fn new(parts: &[u64]) -> Self {
        let mut h: u64 = 0x243F_6A88_85A3_08D3;
        for &p in parts {
            h = mix64(h.rotate_left(23) ^ mix64(p.wrapping_add(GOLDEN)));
        }
        Rng { state: h }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in 0..n (0 when n == 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in lo..=hi.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p` percent.
    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// Independent streams, so that switching a quirk on never shifts the values of another.
const STREAM_COUNT: u64 = 1;
const STREAM_ROW: u64 = 2;
const STREAM_DRIFT: u64 = 3;
const STREAM_NEW_KEYS: u64 = 4;
const STREAM_ODD_KEYS: u64 = 5;
const STREAM_CASE_KEYS: u64 = 6;
const STREAM_WIDE: u64 = 7;
const STREAM_PRODUCT: u64 = 8;
const STREAM_INSERT: u64 = 9;
/// Row number of the first inserted record (fault `inserts_while_paging`) in the product
/// stream, far above any base row index.
const INSERTED_ROW_BASE: u64 = 1 << 40;

fn day_number(day: NaiveDate) -> u64 {
    i64::from(day.num_days_from_ce()) as u64
}

fn stream(cfg: &SimConfig, stream: u64, campaign_id: u64, day: NaiveDate, row: u64) -> Rng {
    Rng::new(&[cfg.seed, stream, campaign_id, day_number(day), row])
}

// ============================================================================================
// Campaigns, data owners and custom field definitions
// ============================================================================================

/// (data_owner__id, data_owner__name, client__short_name)
const OWNERS: [(u64, &str, &str); 2] = [
    (11, "NorgesForsikring AS", "NorgesForsikring"),
    (12, "Nordlys Energi AS", "Nordlys Energi"),
];

const CAMPAIGN_NAMES: [&str; 8] = [
    "Forsikringskampanje 2019",
    "Strømavtale Vinter",
    "Bedriftsforsikring Høst",
    "Fiber & Bredbånd – Bedrift",
    "Innbo og Reise Vår",
    "Gjenvinning Tapte Kunder",
    "Næringsstrøm Nord",
    "Alarm Øst",
];

#[derive(Clone, Debug)]
struct CampaignMeta {
    id: u64,
    name: String,
    archived_date: &'static str,
    crm_type: &'static str,
    owner_id: u64,
    owner_name: &'static str,
    client_short_name: &'static str,
    service_id: u64,
    service_name: &'static str,
    assignment_name: &'static str,
}

/// Ids of the active campaigns: 101, 102, .. (skipping the archived id).
fn active_campaign_ids(cfg: &SimConfig) -> Vec<u64> {
    (101u64..)
        .filter(|&id| id != ARCHIVED_CAMPAIGN_ID)
        .take(cfg.campaigns as usize)
        .collect()
}

/// Every listed campaign id (active ones and the archived one), ascending.
pub fn campaign_ids(cfg: &SimConfig) -> Vec<u64> {
    let mut ids = active_campaign_ids(cfg);
    ids.push(ARCHIVED_CAMPAIGN_ID);
    ids.sort_unstable();
    ids
}

fn campaign_meta(cfg: &SimConfig, id: u64) -> Option<CampaignMeta> {
    let (index, archived) = if id == ARCHIVED_CAMPAIGN_ID {
        (0, true)
    } else {
        (
            active_campaign_ids(cfg).iter().position(|&c| c == id)?,
            false,
        )
    };
    let (owner_id, owner_name, client_short_name) = OWNERS[index % 2];
    let crm_type = if (index / 2) % 2 == 0 { "B2C" } else { "B2B" };
    let (service_id, service_name) = if crm_type == "B2C" {
        (31, "Telefonsalg privat")
    } else {
        (32, "Telefonsalg bedrift")
    };
    let assignment_name = match (crm_type, index % 3) {
        ("B2C", 0) => "Nysalg-privatkunder",
        ("B2C", 1) => "Mersalg-privatkunder",
        ("B2C", _) => "Vinn tilbake – privat",
        (_, 0) => "Nysalg-bedrift",
        (_, 1) => "Mersalg-bedrift",
        _ => "Reforhandling-bedrift",
    };
    let name = if archived {
        "Julekampanje 2018".to_owned()
    } else {
        let base = CAMPAIGN_NAMES[index % CAMPAIGN_NAMES.len()];
        match index / CAMPAIGN_NAMES.len() {
            0 => base.to_owned(),
            round => format!("{base} {}", round + 1),
        }
    };
    Some(CampaignMeta {
        id,
        name,
        archived_date: if archived { ARCHIVED_DATE } else { "" },
        crm_type,
        owner_id,
        owner_name,
        client_short_name,
        service_id,
        service_name,
        assignment_name,
    })
}

/// Campaign objects as served by `GET /api/v1/campaigns` (ascending id, archived 199 included).
pub fn campaigns(cfg: &SimConfig) -> Vec<Value> {
    campaign_ids(cfg)
        .into_iter()
        .filter_map(|id| campaign_meta(cfg, id))
        .map(|m| {
            json!({
                "campaign__id": m.id,
                "campaign__name": m.name,
                "campaign__archived_date": m.archived_date,
                "campaign__is_active": if m.archived_date.is_empty() { json!(true) } else { json!("") },
                "campaign__crm_type": m.crm_type,
                "service__id": m.service_id,
                "service__name": m.service_name,
                "data_owner__id": m.owner_id,
                "data_owner__name": m.owner_name,
            })
        })
        .collect()
}

/// Campaign ids of one data owner and CRM type (`None` if the owner or type is unknown).
fn crm_campaign_ids(cfg: &SimConfig, owner_id: u64, crm_type: &str) -> Option<Vec<u64>> {
    let crm_type = crm_type.to_ascii_uppercase();
    if !OWNERS.iter().any(|o| o.0 == owner_id) || !matches!(crm_type.as_str(), "B2C" | "B2B") {
        return None;
    }
    Some(
        campaign_ids(cfg)
            .into_iter()
            .filter(|&id| {
                campaign_meta(cfg, id)
                    .is_some_and(|m| m.owner_id == owner_id && m.crm_type == crm_type)
            })
            .collect(),
    )
}

/// (id, label, type, max_length, hint) of the custom CRM fields every record carries.
/// Field ids are global in Cube, so a label is the same in every CRM.
const BASE_CUSTOM_FIELDS: [(u64, &str, &str, u64, &str); 7] = [
    (3900, "Address street", "text", 200, ""),
    (3901, "Postnummer", "text", 4, "Fire siffer"),
    (3902, "Poststed", "text", 100, ""),
    (1405, "Målepunkt-ID", "text", 18, ""),
    (1406, "Avtalens startdato", "text", 10, "ÅÅÅÅ-MM-DD"),
    (220, "Alder", "number", 3, ""),
    (1407, "Household size", "number", 3, ""),
];
const NEW_KEYS_CUSTOM_FIELD: (u64, &str, &str, u64, &str) = (
    4100,
    "Bonuspoeng",
    "number",
    10,
    "Poeng fra lojalitetsprogrammet",
);

#[derive(Clone, Copy, PartialEq, Eq)]
enum WideKind {
    Text,
    Int,
    Bool,
}

fn wide_kind(k: u64) -> WideKind {
    match k % 3 {
        0 => WideKind::Text,
        1 => WideKind::Int,
        _ => WideKind::Bool,
    }
}

fn custom_field(id: u64, label: &str, kind: &str, max_length: u64, hint: &str) -> Value {
    json!({
        "id": id,
        "key": label,
        "type": kind,
        "max_length": max_length,
        "hint": hint,
        "lookup__id": format!("crm__custom_info__{id}"),
    })
}

/// Custom field definitions as served by `GET /api/v1/data_owners/{owner}/{crm_type}/crm_custom_fields/`:
/// every `crm__custom_info__N` the records of that CRM can contain under the configured quirks.
/// `None` for an unknown owner or CRM type; empty for a CRM without campaigns.
pub fn custom_fields(cfg: &SimConfig, owner_id: u64, crm_type: &str) -> Option<Vec<Value>> {
    if crm_campaign_ids(cfg, owner_id, crm_type)?.is_empty() {
        return Some(Vec::new());
    }
    let mut fields: Vec<Value> = BASE_CUSTOM_FIELDS
        .iter()
        .map(|&(id, label, kind, len, hint)| custom_field(id, label, kind, len, hint))
        .collect();
    if cfg.quirks.new_keys {
        let (id, label, kind, len, hint) = NEW_KEYS_CUSTOM_FIELD;
        fields.push(custom_field(id, label, kind, len, hint));
    }
    if cfg.quirks.wide {
        for k in 0..WIDE_KEYS {
            let id = 5000 + k;
            let label = if k % 2 == 0 {
                format!("Tilleggsfelt {id}")
            } else {
                format!("Extra field {id}")
            };
            let (kind, len) = match wide_kind(k) {
                WideKind::Text => ("text", 200),
                WideKind::Int => ("number", 10),
                WideKind::Bool => ("checkbox", 1),
            };
            fields.push(custom_field(id, &label, kind, len, ""));
        }
    }
    Some(fields)
}

// ============================================================================================
// Record data tables
// ============================================================================================

const FIRST_NAMES: [&str; 24] = [
    "Ola", "Kari", "Bjørn", "Åse", "Ståle", "Øystein", "Sigrid", "Håkon", "Ingrid", "Tor", "Mette",
    "Jørgen", "Solveig", "Ærlend", "Åsmund", "Marit", "Nils", "Linnéa", "Per", "Gro", "Henrik",
    "Astrid", "Sindre", "Bodil",
];
const LAST_NAMES: [&str; 22] = [
    "Nordmann",
    "Løvås",
    "Ærø",
    "Hansen",
    "Johansen",
    "Bråten",
    "Sæther",
    "Østby",
    "Haugen",
    "Dåvøy",
    "Kjærnes",
    "Berg",
    "Solberg",
    "Aas",
    "Nilsen",
    "Lie",
    "Grønli",
    "Strøm",
    "Bjørnstad",
    "Fjærli",
    "Myhre",
    "Håland",
];
const EMAIL_DOMAINS: [&str; 6] = [
    "online.no",
    "gmail.com",
    "hotmail.com",
    "live.no",
    "outlook.com",
    "broadpark.no",
];
const STREETS: [&str; 12] = [
    "Olavegen",
    "Storgata",
    "Kongens gate",
    "Øvre Slottsgate",
    "Bjørnstjerne Bjørnsons vei",
    "Åsveien",
    "Fjordgata",
    "Kirkegata",
    "Sjøgata",
    "Ærfuglveien",
    "Trollstigvegen",
    "Lærkeveien",
];
/// (postal code, city): codes are strings, several with a leading zero.
const POSTAL_PLACES: [(&str, &str); 14] = [
    ("0235", "OSLO"),
    ("0562", "OSLO"),
    ("0150", "OSLO"),
    ("1337", "SANDVIKA"),
    ("1440", "DRØBAK"),
    ("2609", "LILLEHAMMER"),
    ("4950", "RISØR"),
    ("5003", "BERGEN"),
    ("6002", "ÅLESUND"),
    ("6300", "ÅNDALSNES"),
    ("6210", "TROLLSTIGEN"),
    ("7010", "TRONDHEIM"),
    ("8006", "BODØ"),
    ("9008", "TROMSØ"),
];
const UPDATERS: [&str; 4] = [
    "import@headshed.com",
    "kari.selger@salgsbyraa.no",
    "api@norgesforsikring.no",
    "ola.hansen@salgsbyraa.no",
];
const UPDATE_METHODS: [&str; 4] = ["Import", "Manuell", "API", "Samtale"];
/// (email, team, department)
const SELLERS: [(&str, &str, &str); 8] = [
    ("kari.selger@salgsbyraa.no", "Team Nord", "Trondheim"),
    ("ola.hansen@salgsbyraa.no", "Team Øst", "Oslo"),
    ("siri.aasen@salgsbyraa.no", "Team Vest", "Bergen"),
    ("per.ostli@salgsbyraa.no", "Team Nord", "Tromsø"),
    ("tor.bjorgum@salgsbyraa.no", "Team Øst", "Oslo"),
    ("aase.laerdal@salgsbyraa.no", "Team Vest", "Bergen"),
    ("jorgen.sather@salgsbyraa.no", "Team Midt", "Trondheim"),
    ("selger@selskap.no", "Team Midt", "Trondheim"),
];
const SUBTYPES_SALE: [&str; 3] = ["Ja - Salg", "Ja - Oppgradering", "Ja - Verving"];
const SUBTYPES_NO_SALE: [&str; 4] = [
    "Nei - Ikke interessert",
    "Nei - Har allerede avtale",
    "Nei - For dyrt",
    "Nei - Reservert mot telefonsalg",
];
const SUBTYPES_CALLBACK: [&str; 2] = ["Ring tilbake senere", "Ring tilbake - avtalt tid"];
const SUBTYPES_NOT_REACHED: [&str; 3] = ["Ikke svar", "Opptatt", "Feil nummer"];
const COMMENTS: [&str; 10] = [
    "Kunden ønsker å bli ringt etter kl. 17",
    "Sa \"kanskje\" – ring tilbake neste uke",
    "Har allerede avtale med konkurrent",
    "Linje 1\nLinje 2: kunden vil ha tilbud på e-post",
    "Sti til avtale: C:\\kunder\\2019\\ærlig.pdf",
    "Veldig fornøyd 😀👍",
    "Tab\tseparert kommentar",
    "Kunden svarte: «nei takk»",
    "Æ e itj interessert, sa han 🙃",
    "Sjekk 'adresse' \\ postnummer\r\nstemmer ikke",
];
const ADDITIONAL_INPUT: [&str; 4] = [
    "Ønsker tilbud på bredbånd",
    "Kontaktes igjen i mars",
    "Referanse: 12-345/B",
    "Betaler med eFaktura",
];
const SEGMENTS_B2C: [&str; 3] = ["Privat 18-35", "Privat 36-60", "Privat 60+"];
const SEGMENTS_B2B: [&str; 3] = ["SMB", "Storkunde", "Offentlig sektor"];
const CAMPAIGN_CODES: [&str; 5] = ["HØST-A", "VIP24", "VERV-10", "TILBUD50", ""];
const CONTACT_WISHES: [&str; 4] = ["Ja, på telefon", "Ja, på e-post", "Nei", ""];
const RESUMES: [&str; 4] = [
    "Kort samtale",
    "Lang samtale – kunden var positiv",
    "Ingen",
    "",
];
const WIDE_WORDS: [&str; 6] = ["alfa", "bøtte", "østers", "ærfugl", "åker", "fjell"];
/// (product__name, product__price)
const PRODUCTS: [(&str, f64); 6] = [
    ("Innboforsikring", 249.5),
    ("Bilforsikring Pluss", 412.75),
    ("Strøm Spot", 39.9),
    ("Fiber 500", 649.0),
    ("Alarmpakke", 399.9),
    ("Reiseforsikring", 189.25),
];

// ============================================================================================
// Records
// ============================================================================================

fn put(r: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    r.insert(key.to_owned(), value.into());
}

fn ymd(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn days_before(day: NaiveDate, n: u64) -> NaiveDate {
    day.checked_sub_days(Days::new(n)).unwrap_or(day)
}

/// Lower-case ASCII for e-mail addresses ("Bjørn" -> "bjorn", "Ærø" -> "aero").
fn ascii_fold(s: &str) -> String {
    let mut out = String::new();
    for c in s.to_lowercase().chars() {
        match c {
            'æ' => out.push_str("ae"),
            'ø' => out.push('o'),
            'å' => out.push('a'),
            'é' => out.push('e'),
            c if c.is_ascii_alphanumeric() => out.push(c),
            _ => {}
        }
    }
    out
}

fn mobile_phone(rng: &mut Rng) -> String {
    format!("{}{:07}", rng.pick(&[4, 9]), rng.below(10_000_000))
}

fn landline_phone(rng: &mut Rng) -> String {
    format!("{}{:07}", rng.range(2, 7), rng.below(10_000_000))
}

/// Last Sunday of a month.
fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let first_of_next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    }
    .expect("valid date");
    let last = first_of_next.pred_opt().expect("valid date");
    days_before(last, u64::from(last.weekday().num_days_from_sunday()))
}

/// UTC offset of Europe/Oslo during office hours of `day` (CEST from the last Sunday of March
/// to the last Sunday of October).
fn oslo_offset(day: NaiveDate) -> &'static str {
    let year = day.year();
    if day >= last_sunday(year, 3) && day < last_sunday(year, 10) {
        "+0200"
    } else {
        "+0100"
    }
}

/// Number of records of one campaign on one day (0 for an unknown campaign).
pub fn row_count(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> usize {
    if campaign_meta(cfg, campaign_id).is_none() || (cfg.quirks.empty_days && day.day() % 7 == 0) {
        return 0;
    }
    let mean = u64::from(cfg.rows_per_day);
    let (lo, hi) = (mean / 2, mean * 3 / 2);
    stream(cfg, STREAM_COUNT, campaign_id, day, 0).range(lo, hi) as usize
}

/// The records the API serves for one campaign and one day, in API order. A pure function of
/// the data fields of `cfg` (seed, campaigns, rows_per_day, data-changing quirks). Empty for an
/// unknown campaign. Within a (campaign, day), `crm__customer_id` is unique (its last five
/// digits are the row index, so keep rows_per_day * 3/2 below 100000).
pub fn records(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> Vec<Map<String, Value>> {
    let Some(meta) = campaign_meta(cfg, campaign_id) else {
        return Vec::new();
    };
    let n = row_count(cfg, campaign_id, day);
    (0..n).map(|idx| record(cfg, &meta, day, idx, n)).collect()
}

/// The records of one campaign and day after `version` inserts (fault `inserts_while_paging`):
/// `version` extra records in front of the base [`records`], the latest insert first, so that
/// going from version v to v + 1 shifts every row by one place. Inserted record j (0-based) is
/// a copy of base record j % n whose `crm__customer_id` (unique: its last five digits are
/// n + j), `crm__standard_info__name`, `phone_1` and (if not empty) `email` are replaced, so
/// the key set and the JSON kind of every value are those of a base record of that day.
/// A day without base records stays empty; version 0 is [`records`].
pub fn records_at(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    version: u32,
) -> Vec<Map<String, Value>> {
    let base = records(cfg, campaign_id, day);
    if base.is_empty() || version == 0 {
        return base;
    }
    let n = base.len();
    let mut out: Vec<Map<String, Value>> = (0..version as usize)
        .rev()
        .map(|j| inserted_record(cfg, campaign_id, day, &base[j % n], n, j))
        .collect();
    out.extend(base);
    out
}

/// The records of one campaign and day as served once every insert of fault
/// `inserts_while_paging` has happened (`records_at(.., cfg.faults.inserts_while_paging)`);
/// equal to [`records`] without that fault.
pub fn final_records(cfg: &SimConfig, campaign_id: u64, day: NaiveDate) -> Vec<Map<String, Value>> {
    records_at(cfg, campaign_id, day, cfg.faults.inserts_while_paging)
}

/// Inserted record `j` of a day with `n` base records, copied from `template`.
fn inserted_record(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    template: &Map<String, Value>,
    n: usize,
    j: usize,
) -> Map<String, Value> {
    let mut rng = stream(cfg, STREAM_INSERT, campaign_id, day, j as u64);
    let mut r = template.clone();
    let customer_id = format!(
        "{:07}{:05}",
        rng.range(1_000_000, 9_999_999),
        (n + j) % 100_000
    );
    let (first, last) = (*rng.pick(&FIRST_NAMES), *rng.pick(&LAST_NAMES));
    put(&mut r, "crm__customer_id", customer_id);
    put(
        &mut r,
        "crm__standard_info__name",
        format!("{first} {last}"),
    );
    put(
        &mut r,
        "crm__standard_info__phone_1",
        mobile_phone(&mut rng),
    );
    let has_email = r
        .get("crm__standard_info__email")
        .and_then(Value::as_str)
        .is_some_and(|e| !e.is_empty());
    if has_email {
        let domain = *rng.pick(&EMAIL_DOMAINS);
        let email = format!("{}.{}@{domain}", ascii_fold(first), ascii_fold(last));
        put(&mut r, "crm__standard_info__email", email);
    }
    r
}

/// The product registrations of one campaign and day: the rows with `call_outcome__type` "Sale"
/// (about a third), each with `product__name`, `product__price` (number) and
/// `product__quantity` (integer) appended.
pub fn product_registrations(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
) -> Vec<Map<String, Value>> {
    product_registrations_at(cfg, campaign_id, day, 0)
}

/// The product registrations of [`records_at`] `version`: those of [`product_registrations`]
/// preceded by the sales among the inserted records (with their own product values).
pub fn product_registrations_at(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
    version: u32,
) -> Vec<Map<String, Value>> {
    let records = records_at(cfg, campaign_id, day, version);
    let inserted = records.len().min(version as usize);
    records
        .into_iter()
        .enumerate()
        .filter(|(_, r)| r.get("call_outcome__type").and_then(Value::as_str) == Some("Sale"))
        .map(|(pos, mut r)| {
            // Base rows keep their own index (so inserts never change them); inserted rows use
            // a number of their own.
            let row = if pos < inserted {
                INSERTED_ROW_BASE + (inserted - 1 - pos) as u64
            } else {
                (pos - inserted) as u64
            };
            let mut rng = stream(cfg, STREAM_PRODUCT, campaign_id, day, row);
            let (name, price) = *rng.pick(&PRODUCTS);
            put(&mut r, "product__name", name);
            put(&mut r, "product__price", price);
            put(&mut r, "product__quantity", rng.range(1, 5));
            r
        })
        .collect()
}

/// The product registrations once every insert of fault `inserts_while_paging` has happened.
pub fn final_product_registrations(
    cfg: &SimConfig,
    campaign_id: u64,
    day: NaiveDate,
) -> Vec<Map<String, Value>> {
    product_registrations_at(cfg, campaign_id, day, cfg.faults.inserts_while_paging)
}

/// One call outcome. All base values come from the row stream in a fixed order; every quirk
/// draws from its own stream, so quirks never change the base values.
fn record(
    cfg: &SimConfig,
    meta: &CampaignMeta,
    day: NaiveDate,
    idx: usize,
    n: usize,
) -> Map<String, Value> {
    let q = &cfg.quirks;
    let (cid, row) = (meta.id, idx as u64);
    let date = ymd(day);
    let dom = day.day();
    let late = dom >= 15;
    let mut rng = stream(cfg, STREAM_ROW, cid, day, row);
    let mut r = Map::new();

    // --- Customer: crm__customer_id and crm__standard_info__* --------------------------------
    let customer_id = format!("{:07}{:05}", rng.range(1_000_000, 9_999_999), idx % 100_000);
    let first = *rng.pick(&FIRST_NAMES);
    let last = *rng.pick(&LAST_NAMES);
    let phone_1 = mobile_phone(&mut rng);
    let phone_2 = match rng.below(10) {
        0..=2 => String::new(),
        3..=5 => landline_phone(&mut rng),
        _ => mobile_phone(&mut rng),
    };
    let phone_3 = if rng.percent(70) {
        String::new()
    } else {
        landline_phone(&mut rng)
    };
    let email = if rng.percent(85) {
        let sep = *rng.pick(&[".", "_", ""]);
        let domain = *rng.pick(&EMAIL_DOMAINS);
        format!("{}{sep}{}@{domain}", ascii_fold(first), ascii_fold(last))
    } else {
        String::new()
    };
    put(&mut r, "crm__customer_id", customer_id);
    put(
        &mut r,
        "crm__standard_info__name",
        format!("{first} {last}"),
    );
    put(&mut r, "crm__standard_info__phone_1", phone_1);
    put(&mut r, "crm__standard_info__phone_2", phone_2);
    put(&mut r, "crm__standard_info__phone_3", phone_3);
    put(&mut r, "crm__standard_info__email", email);

    // --- crm__change_log__* -------------------------------------------------------------------
    let (updated, updated_by, method) = if rng.percent(70) {
        let when = days_before(day, rng.range(1, 400));
        (ymd(when), *rng.pick(&UPDATERS), *rng.pick(&UPDATE_METHODS))
    } else {
        (String::new(), "", "")
    };
    put(&mut r, "crm__change_log__updated", updated);
    put(&mut r, "crm__change_log__updated_by", updated_by);
    put(&mut r, "crm__change_log__update_method", method);

    // --- crm__custom_info__* ------------------------------------------------------------------
    let street = format!(
        "{} {}{}",
        rng.pick(&STREETS),
        rng.range(1, 120),
        if rng.percent(15) {
            *rng.pick(&["A", "B", "C"])
        } else {
            ""
        }
    );
    let (postal_code, city) = *rng.pick(&POSTAL_PLACES);
    let meter_id = format!("{:010}", rng.below(10_000_000_000));
    let start_date = if rng.percent(75) {
        ymd(days_before(day, rng.below(3650)))
    } else {
        String::new()
    };
    let age = rng.range(18, 90);
    let age_empty = rng.percent(10);
    let household = rng.range(1, 8);
    let mut age_value = if age_empty {
        Value::from("")
    } else {
        Value::from(age)
    };
    let mut household_value = Value::from(household);
    let mut drift = stream(cfg, STREAM_DRIFT, cid, day, row);
    if q.drift && late {
        if !age_empty && drift.percent(33) {
            age_value = Value::from(age as f64 + 0.5);
        }
        if drift.percent(15) {
            household_value = Value::from("ukjent");
        }
    }
    put(&mut r, "crm__custom_info__3900", street);
    put(&mut r, "crm__custom_info__3901", postal_code);
    put(&mut r, "crm__custom_info__3902", city);
    put(&mut r, "crm__custom_info__1405", meter_id);
    put(&mut r, "crm__custom_info__1406", start_date);
    put(&mut r, "crm__custom_info__220", age_value);
    put(&mut r, "crm__custom_info__1407", household_value);
    let mut new_keys = stream(cfg, STREAM_NEW_KEYS, cid, day, row);
    if q.new_keys && dom >= 20 {
        put(&mut r, "crm__custom_info__4100", new_keys.below(10_000));
    }
    if q.wide {
        let mut wide = stream(cfg, STREAM_WIDE, cid, day, row);
        for k in 0..WIDE_KEYS {
            let value = if wide.percent(15) {
                Value::from("")
            } else {
                match wide_kind(k) {
                    WideKind::Text => {
                        Value::from(format!("{} {}", wide.pick(&WIDE_WORDS), wide.below(1000)))
                    }
                    WideKind::Int => Value::from(wide.below(100_000)),
                    WideKind::Bool => Value::from(wide.percent(50)),
                }
            };
            put(&mut r, &format!("crm__custom_info__{}", 5000 + k), value);
        }
    }

    // --- call_outcome__* ----------------------------------------------------------------------
    let (seller, team, department) = *rng.pick(&SELLERS);
    // Rows are spread over 08:00..20:00 in order, so submitted_when never decreases.
    let slot = (720 / n.max(1)).max(1) as u64;
    let minute = 480 + (idx * 720 / n.max(1)) as u64 + rng.below(slot);
    let (otype, subtypes): (&str, &[&str]) = match rng.below(100) {
        0..=29 => ("Sale", &SUBTYPES_SALE),
        30..=64 => ("No sale", &SUBTYPES_NO_SALE),
        65..=79 => ("Callback", &SUBTYPES_CALLBACK),
        _ => ("Not reached", &SUBTYPES_NOT_REACHED),
    };
    let subtype = *rng.pick(subtypes);
    let comment = if rng.percent(55) {
        ""
    } else {
        *rng.pick(&COMMENTS)
    };
    let additional = if rng.percent(70) {
        ""
    } else {
        *rng.pick(&ADDITIONAL_INPUT)
    };
    let report_by = if rng.percent(90) {
        seller
    } else {
        rng.pick(&SELLERS).0
    };
    let report_minute = minute + if rng.percent(80) { 0 } else { rng.range(1, 3) };
    let (seconds, millis) = (rng.below(60), rng.below(1000));
    let incoming = if rng.percent(60) {
        ""
    } else {
        *rng.pick(&["Ja", "Nei"])
    };
    let segment = if meta.crm_type == "B2C" {
        *rng.pick(&SEGMENTS_B2C)
    } else {
        *rng.pick(&SEGMENTS_B2B)
    };
    let hhmm = |m: u64| format!("{:02}:{:02}", m / 60, m % 60);
    put(&mut r, "call_outcome__submitted_by", seller);
    put(
        &mut r,
        "call_outcome__submitted_when",
        format!("{date} {}", hhmm(minute)),
    );
    put(&mut r, "call_outcome__type", otype);
    put(&mut r, "call_outcome__subtype", subtype);
    put(&mut r, "call_outcome__submitted_in_department", department);
    put(&mut r, "call_outcome__comment", comment);
    put(&mut r, "call_outcome__additional_input_text", additional);
    put(&mut r, "call_outcome__report_as__submitted_by", report_by);
    put(&mut r, "call_outcome__report_as__submitted_in_team", team);
    put(
        &mut r,
        "call_outcome__report_as__submitted_when",
        format!("{date} {}", hhmm(report_minute)),
    );
    put(
        &mut r,
        "call_outcome__report_as__submitted_when_timestamp",
        format!(
            "{date}T{}:{seconds:02}.{millis:03}{}",
            hhmm(report_minute),
            oslo_offset(day)
        ),
    );
    put(&mut r, "call_outcome__extra__Innkommende samtale", incoming);

    // --- call_outcome__extra__* added by quirks -----------------------------------------------
    if q.drift {
        let consent = if late && drift.percent(20) {
            Value::from("Ja")
        } else if drift.percent(20) {
            Value::from("")
        } else {
            Value::from(drift.percent(50))
        };
        put(&mut r, "call_outcome__extra__Samtykke", consent);
    }
    if q.new_keys && dom >= 10 {
        put(
            &mut r,
            "call_outcome__extra__Kampanjekode",
            *new_keys.pick(&CAMPAIGN_CODES),
        );
    }
    if q.odd_keys {
        let mut odd = stream(cfg, STREAM_ODD_KEYS, cid, day, row);
        let permanent = match odd.below(3) {
            0 => Value::from(true),
            1 => Value::from(false),
            _ => Value::from(""),
        };
        let amount = (odd.range(50, 5000) * 100 + odd.range(1, 99)) as f64 / 100.0;
        put(
            &mut r,
            "call_outcome__extra__Fast ansatt over 50 %",
            permanent,
        );
        put(
            &mut r,
            "call_outcome__extra__Ønsker du å bli kontaktet?",
            *odd.pick(&CONTACT_WISHES),
        );
        put(&mut r, "call_outcome__extra__Beløp (kr)", amount);
        // "Résumé" in Unicode NFD: 'e' followed by U+0301 COMBINING ACUTE ACCENT.
        put(
            &mut r,
            "call_outcome__extra__Re\u{0301}sume\u{0301}",
            *odd.pick(&RESUMES),
        );
    }
    let mut case = stream(cfg, STREAM_CASE_KEYS, cid, day, row);
    if q.case_keys {
        put(
            &mut r,
            "call_outcome__extra__Kommentar",
            format!(
                "Stor K: {}",
                case.pick(&["ring igjen", "ok", "sendt tilbud"])
            ),
        );
        put(
            &mut r,
            "call_outcome__extra__kommentar",
            format!("liten k: {}", case.pick(&["notat", "oppfølging", "ingen"])),
        );
    }

    // --- campaign and organisation ------------------------------------------------------------
    put(&mut r, "campaign__name", meta.name.as_str());
    put(&mut r, "assignment__name", meta.assignment_name);
    put(&mut r, "client__short_name", meta.client_short_name);
    put(&mut r, "data_owner__name", meta.owner_name);
    put(&mut r, "segment__name", segment);
    if q.case_keys {
        put(&mut r, "Date", ymd(days_before(day, case.below(30))));
        put(&mut r, "campaign_id", 9000 + cid);
    }
    r
}

// ============================================================================================
// HTTP server: state, start/stop, request log
// ============================================================================================

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
    /// The injected failure, if any: "throttle", "error", "drop" (status as answered, the body
    /// cut short) or "failing-day".
    pub fault: Option<&'static str>,
    /// When the request arrived (before any `latency_ms`).
    pub at: Instant,
}

struct Sim {
    cfg: SimConfig,
    addr: SocketAddr,
    log: Mutex<Vec<RequestLog>>,
    /// The most recently generated days: every page of a day would otherwise regenerate the
    /// whole day, which makes large days quadratic.
    cache: Mutex<Vec<(CacheKey, DayRows)>>,
    /// Serialized pages by (host, kind, campaigns, from, to, page), with `cfg.cache_pages`.
    page_cache: Mutex<HashMap<String, bytes::Bytes>>,
    /// The fault settings in force (initially `cfg.faults`).
    faults: RwLock<Arc<Faults>>,
    /// Requests that passed authentication so far.
    served: AtomicU64,
    /// Inserts so far per (is call outcomes, campaign, day), for `inserts_while_paging`.
    versions: Mutex<HashMap<VersionKey, u32>>,
}

/// (is call outcomes, campaign, day)
type VersionKey = (bool, u64, NaiveDate);
/// (is call outcomes, campaign, day, version)
type CacheKey = (bool, u64, NaiveDate, u32);
type DayRows = Arc<Vec<Map<String, Value>>>;
const CACHED_DAYS: usize = 32;

/// A running simulator; dropping it shuts the server down and joins its thread.
pub struct SimHandle {
    sim: Arc<Sim>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
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
    /// Generates and caches every call-outcome page of the active campaigns for `days`, as a
    /// client on `base_url()` will ask for them (needs `cache_pages`).
    pub fn preload(&self, days: &[NaiveDate]) {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&self.sim.addr.to_string()).unwrap(),
        );
        for campaign in campaign_ids(&self.sim.cfg) {
            for day in days {
                let ymd = day.format("%Y%m%d");
                for page in 1.. {
                    let query = if page == 1 {
                        format!("from_date={ymd}&to_date={ymd}")
                    } else {
                        format!("from_date={ymd}&to_date={ymd}&page={page}")
                    };
                    let uri: Uri = format!("/api/v1/campaigns/{campaign}/call_outcomes/?{query}")
                        .parse()
                        .unwrap();
                    let response = self
                        .sim
                        .page(Kind::CallOutcomes, &[campaign], &uri, &headers);
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
        versions: Mutex::new(HashMap::new()),
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

// ============================================================================================
// HTTP server: routing, authentication, logging
// ============================================================================================

fn router(sim: Arc<Sim>) -> Router {
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
            "/api/v1/data_owners/{owner}/{crm_type}/crm_custom_fields",
            get(crm_custom_fields),
        ),
    ];
    let mut router = Router::new();
    for (path, handler) in routes {
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

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Marks a response answered by an injected failure (read back by [`auth_and_log`]).
#[derive(Clone, Copy)]
struct FaultTag(&'static str);

/// Authenticates (before routing, like DRF's default permission), injects the counted faults
/// and logs every request.
async fn auth_and_log(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let at = Instant::now();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let authorization = header_text(req.headers(), header::AUTHORIZATION);
    let accept = header_text(req.headers(), header::ACCEPT);
    let auth = sim.check_auth(authorization.as_deref());
    // Numbered on arrival, before any latency.
    let number = auth
        .is_ok()
        .then(|| sim.served.fetch_add(1, Ordering::SeqCst) + 1);
    let faults = sim.current_faults();
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
        Ok(()) if every(faults.throttle_every) => {
            fault = Some("throttle");
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Request was throttled.");
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, retry_after(&faults));
            response
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
            fault,
            at,
        });
    response
}

/// The `Retry-After` value of a throttled request.
fn retry_after(faults: &Faults) -> HeaderValue {
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
const DROP_PAUSE: Duration = Duration::from_millis(50);

/// The same response with a `Content-Length` for its full body, but a body that ends with an
/// error after the first half, so that hyper closes the connection with the body cut short.
async fn cut_body(response: Response) -> Response {
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
    fn check_auth(&self, header: Option<&str>) -> Result<(), &'static str> {
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
fn base64_decode(text: &str) -> Option<Vec<u8>> {
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

fn error(status: StatusCode, detail: &str) -> Response {
    (status, Json(json!({ "detail": detail }))).into_response()
}

fn not_found(detail: &str) -> Response {
    error(StatusCode::NOT_FOUND, detail)
}

// ============================================================================================
// HTTP server: endpoints
// ============================================================================================

async fn list_campaigns(State(sim): State<Arc<Sim>>) -> Response {
    Json(Value::Array(campaigns(&sim.cfg))).into_response()
}

async fn campaign_call_outcomes(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match sim.known_campaign(&id) {
        Some(id) => sim.page(Kind::CallOutcomes, &[id], &uri, &headers),
        None => not_found("Not found."),
    }
}

async fn campaign_product_registrations(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match sim.known_campaign(&id) {
        Some(id) => sim.page(Kind::ProductRegistrations, &[id], &uri, &headers),
        None => not_found("Not found."),
    }
}

async fn account_call_outcomes(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ids = campaign_ids(&sim.cfg);
    sim.page(Kind::CallOutcomes, &ids, &uri, &headers)
}

async fn crm_call_outcomes(
    State(sim): State<Arc<Sim>>,
    Path((owner, crm_type)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ids = owner
        .parse()
        .ok()
        .and_then(|owner| crm_campaign_ids(&sim.cfg, owner, &crm_type));
    match ids {
        Some(ids) => sim.page(Kind::CallOutcomes, &ids, &uri, &headers),
        None => not_found("Not found."),
    }
}

async fn crm_custom_fields(
    State(sim): State<Arc<Sim>>,
    Path((owner, crm_type)): Path<(String, String)>,
) -> Response {
    let fields = owner
        .parse()
        .ok()
        .and_then(|owner| custom_fields(&sim.cfg, owner, &crm_type));
    match fields {
        Some(fields) => Json(Value::Array(fields)).into_response(),
        None => not_found("Not found."),
    }
}

// ============================================================================================
// HTTP server: DRF page-number pagination
// ============================================================================================

#[derive(Clone, Copy)]
enum Kind {
    CallOutcomes,
    ProductRegistrations,
}

/// Longest accepted date range, in days.
const MAX_RANGE_DAYS: usize = 36_600;

impl Sim {
    fn known_campaign(&self, id: &str) -> Option<u64> {
        let id: u64 = id.parse().ok()?;
        campaign_meta(&self.cfg, id).map(|_| id)
    }

    fn current_faults(&self) -> Arc<Faults> {
        Arc::clone(&self.faults.read().unwrap_or_else(|e| e.into_inner()))
    }

    fn rows(&self, kind: Kind, campaign_id: u64, day: NaiveDate, version: u32) -> DayRows {
        let key = (
            matches!(kind, Kind::CallOutcomes),
            campaign_id,
            day,
            version,
        );
        if let Some((_, rows)) = self.cache.lock().unwrap().iter().find(|(k, _)| *k == key) {
            return rows.clone();
        }
        let rows = Arc::new(match kind {
            Kind::CallOutcomes => records_at(&self.cfg, campaign_id, day, version),
            Kind::ProductRegistrations => {
                product_registrations_at(&self.cfg, campaign_id, day, version)
            }
        });
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= CACHED_DAYS {
            cache.remove(0);
        }
        cache.push((key, rows.clone()));
        rows
    }

    fn len(&self, kind: Kind, campaign_id: u64, day: NaiveDate, version: u32) -> usize {
        match kind {
            Kind::CallOutcomes => match row_count(&self.cfg, campaign_id, day) {
                0 => 0,
                n => n + version as usize,
            },
            Kind::ProductRegistrations => self.rows(kind, campaign_id, day, version).len(),
        }
    }

    /// (campaign, day, version, rows) of every campaign (outer) and day (inner), at the current
    /// versions capped at `max_version`.
    fn segments(
        &self,
        kind: Kind,
        campaign_ids: &[u64],
        days: &[NaiveDate],
        max_version: u32,
    ) -> Vec<(u64, NaiveDate, u32, usize)> {
        let pairs = campaign_ids
            .iter()
            .flat_map(|&c| days.iter().map(move |&d| (c, d)));
        let with_versions: Vec<(u64, NaiveDate, u32)> = if max_version == 0 {
            pairs.map(|(c, d)| (c, d, 0)).collect()
        } else {
            let is_calls = matches!(kind, Kind::CallOutcomes);
            let versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
            pairs
                .map(|(c, d)| {
                    let v = versions.get(&(is_calls, c, d)).copied().unwrap_or(0);
                    (c, d, v.min(max_version))
                })
                .collect()
        };
        with_versions
            .into_iter()
            .map(|(c, d, v)| (c, d, v, self.len(kind, c, d, v)))
            .collect()
    }

    /// One more insert (up to `max_version`) into every non-empty (campaign, day); true if any
    /// day changed.
    fn insert_rows(
        &self,
        kind: Kind,
        campaign_ids: &[u64],
        days: &[NaiveDate],
        max_version: u32,
    ) -> bool {
        let is_calls = matches!(kind, Kind::CallOutcomes);
        let mut versions = self.versions.lock().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for &c in campaign_ids {
            for &d in days {
                if row_count(&self.cfg, c, d) == 0 {
                    continue;
                }
                let v = versions.entry((is_calls, c, d)).or_insert(0);
                if *v < max_version {
                    *v += 1;
                    changed = true;
                }
            }
        }
        changed
    }

    /// One page of the records of `campaign_ids` (outer) and the days of the range (inner).
    fn page(&self, kind: Kind, campaign_ids: &[u64], uri: &Uri, headers: &HeaderMap) -> Response {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let param = |name: &str| {
            params
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };

        // Dates: both given, or "today" for both.
        let (from, to) = match (param("from_date"), param("to_date")) {
            (Some(from), Some(to)) if !from.is_empty() && !to.is_empty() => {
                match (parse_api_date(from), parse_api_date(to)) {
                    (Some(from), Some(to)) => (from, to),
                    (None, _) => return bad_date("from_date", from),
                    (_, None) => return bad_date("to_date", to),
                }
            }
            _ => {
                let today = chrono::Local::now().date_naive();
                (today, today)
            }
        };
        let days: Vec<NaiveDate> = from
            .iter_days()
            .take_while(|d| *d <= to)
            .take(MAX_RANGE_DAYS + 1)
            .collect();
        if days.len() > MAX_RANGE_DAYS {
            return error(StatusCode::BAD_REQUEST, "Date range too long.");
        }
        let faults = self.current_faults();
        if days.iter().any(|d| faults.failing_days.contains(d)) {
            let mut response = error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error.");
            response.extensions_mut().insert(FaultTag("failing-day"));
            return response;
        }

        // Segments (campaign, day, version, rows) and the requested page.
        let max_version = faults.inserts_while_paging;
        let mut segments = self.segments(kind, campaign_ids, &days, max_version);
        let mut count: usize = segments.iter().map(|s| s.3).sum();
        let page_size = self.cfg.page_size.max(1);
        let mut last_page = count.div_ceil(page_size).max(1);
        let mut page = match param("page") {
            None => 1,
            Some("last") => last_page,
            Some(p) => match p.parse::<usize>() {
                Ok(p) if (1..=last_page).contains(&p) => p,
                _ => return not_found("Invalid page."),
            },
        };
        // A live table: rows get inserted while the client pages on.
        if page >= 2 && max_version > 0 && self.insert_rows(kind, campaign_ids, &days, max_version)
        {
            segments = self.segments(kind, campaign_ids, &days, max_version);
            count = segments.iter().map(|s| s.3).sum();
            last_page = count.div_ceil(page_size).max(1);
            if param("page") == Some("last") {
                page = last_page;
            } else if page > last_page {
                return not_found("Invalid page.");
            }
        }
        let cache_key = (self.cfg.cache_pages && max_version == 0).then(|| {
            let host = header_text(headers, header::HOST).unwrap_or_default();
            format!(
                "{host}|{}|{campaign_ids:?}|{from}|{to}|{page}",
                matches!(kind, Kind::CallOutcomes)
            )
        });
        if let Some(body) = cache_key
            .as_ref()
            .and_then(|k| self.page_cache.lock().unwrap().get(k).cloned())
        {
            return ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        }
        let (start, end) = ((page - 1) * page_size, (page * page_size).min(count));

        let mut results = Vec::with_capacity(end - start);
        let mut offset = 0;
        for &(c, d, v, len) in &segments {
            let (lo, hi) = (offset, offset + len);
            offset = hi;
            if hi <= start || lo >= end || len == 0 {
                continue;
            }
            let rows = self.rows(kind, c, d, v);
            let take = rows
                .iter()
                .skip(start.saturating_sub(lo))
                .take(end.min(hi) - start.max(lo));
            results.extend(take.cloned().map(Value::Object));
        }

        let link = |n: usize| Value::String(self.page_link(uri, headers, &params, n));
        let next = if page < last_page {
            link(page + 1)
        } else {
            Value::Null
        };
        let previous = if page > 1 {
            link(page - 1)
        } else {
            Value::Null
        };
        let body = json!({
            "count": count,
            "next": next,
            "previous": previous,
            "results": Value::Array(results),
        });
        match cache_key {
            Some(key) => {
                let bytes = bytes::Bytes::from(serde_json::to_vec(&body).expect("JSON serialises"));
                self.page_cache.lock().unwrap().insert(key, bytes.clone());
                ([(header::CONTENT_TYPE, "application/json")], bytes).into_response()
            }
            None => Json(body).into_response(),
        }
    }

    /// Absolute URL of page `n` of this query, as DRF builds it: the request's own host, the
    /// query re-sorted by key, `page` replaced (and dropped for page 1). Quirks change the host
    /// or drop the `?`.
    fn page_link(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
        params: &[(String, String)],
        n: usize,
    ) -> String {
        let base = if self.cfg.quirks.foreign_next {
            let host = self.cfg.next_host.as_deref().unwrap_or(DEFAULT_NEXT_HOST);
            host.trim_end_matches('/').to_owned()
        } else {
            let host = header_text(headers, header::HOST).unwrap_or_else(|| self.addr.to_string());
            format!("http://{host}")
        };
        let mut pairs: Vec<(&str, String)> = params
            .iter()
            .filter(|(k, _)| k != "page")
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        if n > 1 {
            pairs.push(("page", n.to_string()));
        }
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let path = uri.path();
        if query.is_empty() {
            format!("{base}{path}")
        } else if self.cfg.quirks.malformed_next {
            let slash = if path.ends_with('/') { "" } else { "/" };
            format!("{base}{path}{slash}{query}")
        } else {
            format!("{base}{path}?{query}")
        }
    }
}

/// `YYYYMMDD` exactly.
fn parse_api_date(text: &str) -> Option<NaiveDate> {
    if text.len() != 8 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y%m%d").ok()
}

fn bad_date(name: &str, value: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ name: [format!("Invalid date '{value}': expected YYYYMMDD.")] })),
    )
        .into_response()
}

// ============================================================================================
// Command line
// ============================================================================================

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
    /// Comma list: drift,new-keys,odd-keys,case-keys,foreign-next,malformed-next,empty-days,wide,all
    #[arg(long, default_value = "", value_parser = Quirks::parse)]
    quirks: Quirks,
    /// Fault: each listing request for page >= 2 inserts one more record (up to K) at the front
    /// of every day of its range; dump prints the days after all K inserts.
    #[arg(long, value_name = "K", default_value_t = 0)]
    inserts_while_paging: u32,
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
}

#[derive(Args, Debug)]
struct DumpArgs {
    /// Campaign id; repeatable and/or comma separated.
    #[arg(long, required = true, value_delimiter = ',')]
    campaign: Vec<u64>,
    /// First day, YYYY-MM-DD (or YYYYMMDD).
    #[arg(long, value_parser = parse_cli_date)]
    from: NaiveDate,
    /// Last day (inclusive); defaults to --from.
    #[arg(long, value_parser = parse_cli_date)]
    to: Option<NaiveDate>,
    /// Print the product registrations instead of the call outcomes.
    #[arg(long)]
    product_registrations: bool,
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
            faults: Faults {
                inserts_while_paging: self.inserts_while_paging,
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
        handle.preload(&days);
    }
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "listening on {}", handle.base_url());
    let _ = stdout.flush();
    // Serve until the process is killed (SIGTERM/SIGINT end it with their default action).
    loop {
        std::thread::park();
    }
}

fn dump(args: DumpArgs) -> ExitCode {
    let cfg = args.data.config();
    let known = campaign_ids(&cfg);
    if let Some(id) = args.campaign.iter().find(|id| !known.contains(id)) {
        eprintln!("cube_sim: unknown campaign {id} (known: {known:?})");
        return ExitCode::from(2);
    }
    let to = args.to.unwrap_or(args.from);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut write_all = || -> std::io::Result<()> {
        for &campaign_id in &args.campaign {
            for day in args.from.iter_days().take_while(|d| *d <= to) {
                let date = ymd(day);
                let records = if args.product_registrations {
                    final_product_registrations(&cfg, campaign_id, day)
                } else {
                    final_records(&cfg, campaign_id, day)
                };
                for record in records {
                    let mut line = Map::new();
                    put(&mut line, "__campaign_id", campaign_id);
                    put(&mut line, "__date", date.as_str());
                    line.extend(record);
                    serde_json::to_writer(&mut out, &line)?;
                    out.write_all(b"\n")?;
                }
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
