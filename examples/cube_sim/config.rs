//! Configuration of a simulator: data, faults and quirks.

use chrono::NaiveDate;

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
    /// Customers of every CRM (at least a few more than one campaign calls in a day: see
    /// [`crm_customer_count`]).
    pub customers_per_crm: usize,
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
    /// From this day on, every record also carries `call_outcome__extra__Oppfølging` (an
    /// integer): one new column after a long history (the benchmark's nightly schema change).
    pub new_column_from: Option<NaiveDate>,
    /// Every Nth customer of each CRM (population index k with k % N == N - 1) is anonymized
    /// wherever it appears (customers, call-flow status, call outcomes, product registrations):
    /// `crm__customer_id` "", name "Anonymized", no phone or email. 0 = none.
    pub anonymize_every: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 7,
            campaigns: 3,
            rows_per_day: 60,
            page_size: 500,
            customers_per_crm: 1000,
            quirks: Quirks::default(),
            token: "sim-token".to_owned(),
            username: "sim".to_owned(),
            password: "sim-pass".to_owned(),
            next_host: None,
            faults: Faults::default(),
            cache_pages: false,
            new_column_from: None,
            anonymize_every: 0,
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
    /// Changes to each snapshot listing (customers, call-flow status) while a client pages:
    /// see [`snapshot_members`]. Each request for page >= 2 of a snapshot makes one more (up to
    /// this many) before the page is computed.
    pub snapshot_changes: u32,
    /// CRMs (data owner id, CRM type) the credentials may not read: their customers and
    /// custom-field definitions answer 403.
    pub forbidden_crms: Vec<(u64, String)>,
    /// Endpoints the account does not serve, by their last path segment (e.g.
    /// `product_registrations`): not routed, so every request answers 404 `{"detail":"Not
    /// found."}`, as a Cube without that module does. Read when the server starts.
    pub unserved: Vec<String>,
    /// More than this many requests in flight at once (authenticated ones, counted while they
    /// wait out `latency_ms`) and the extra ones answer 429 `{"detail":"Request was
    /// throttled."}`, as a rate limiter in front of the API would; 0 = no limit.
    pub max_in_flight: u32,
}

/// Misbehaviours of the real API that can be switched on. Data quirks: `drift`, `new_keys`,
/// `odd_keys`, `case_keys`, `empty_days`, `wide`, `sparse`; paging quirks: `foreign_next`, `malformed_next`.
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
    /// Records per (campaign, day) drawn from 0..=2 x rows_per_day instead of
    /// [rows/2, rows*3/2]: an account of many sparse campaigns, some of whose days are empty.
    pub sparse: bool,
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
            sparse: false,
        }
    }

    /// Parses a comma list of: drift, new-keys, odd-keys, case-keys, foreign-next,
    /// malformed-next, empty-days, wide, sparse, all (also accepts `_` for `-`, and `none`/empty).
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
                "sparse" => q.sparse = true,
                "all" => {
                    q = Quirks {
                        wide: q.wide,
                        sparse: q.sparse,
                        ..Quirks::all()
                    }
                }
                "none" => {}
                other => {
                    return Err(format!(
                        "unknown quirk '{other}' (expected a comma list of: drift, new-keys, \
                         odd-keys, case-keys, foreign-next, malformed-next, empty-days, wide, sparse, all)"
                    ))
                }
            }
        }
        Ok(q)
    }
}
