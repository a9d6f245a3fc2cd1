//! The customers of each CRM and the call-flow status of each campaign's customers: snapshot
//! listings with no date filter, consistent with the call outcomes (every `crm__customer_id` a
//! campaign's call outcomes carry is one of its CRM's customers).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{Map, Value};

use super::*;

pub(crate) const STREAM_CUSTOMER: u64 = 10;
pub(crate) const STREAM_STATUS: u64 = 11;
pub(crate) const STREAM_PICK: u64 = 12;

/// The customers of every CRM: at least [`SimConfig::customers_per_crm`], and always more than
/// a day of one campaign can call (so a day never calls one customer twice).
pub fn crm_customer_count(cfg: &SimConfig) -> usize {
    let most_in_a_day = cfg.rows_per_day as usize * 3 / 2 + 1;
    cfg.customers_per_crm
        .max(most_in_a_day + cfg.faults.inserts_while_paging as usize + 1)
}

fn crm_code(crm_type: &str) -> u64 {
    if crm_type.eq_ignore_ascii_case("B2B") {
        2
    } else {
        1
    }
}

/// Customer `k` of a CRM: its id, standard info, change log and custom fields. A pure function
/// of (seed, owner, CRM type, k); ids are unique within the CRM (their last six digits are k).
pub fn crm_customer(
    cfg: &SimConfig,
    owner_id: u64,
    crm_type: &str,
    k: usize,
) -> Map<String, Value> {
    let mut rng = Rng::new(&[
        cfg.seed,
        STREAM_CUSTOMER,
        owner_id,
        crm_code(crm_type),
        k as u64,
    ]);
    let first = *rng.pick(&FIRST_NAMES);
    let last = *rng.pick(&LAST_NAMES);
    let mut r = Map::new();
    put(
        &mut r,
        "crm__customer_id",
        format!("{:06}{:06}", rng.range(100_000, 999_999), k % 1_000_000),
    );
    let anonymized = is_anonymized(cfg, k);
    let name = if crm_type.eq_ignore_ascii_case("B2B") {
        format!(
            "{last} {} AS",
            rng.pick(&["Produksjon", "Handel", "Eiendom", "Transport"])
        )
    } else {
        format!("{first} {last}")
    };
    put(&mut r, "crm__standard_info__name", name);
    put(
        &mut r,
        "crm__standard_info__phone_1",
        mobile_phone(&mut rng),
    );
    let phone_2 = if rng.percent(40) {
        String::new()
    } else {
        landline_phone(&mut rng)
    };
    put(&mut r, "crm__standard_info__phone_2", phone_2);
    put(&mut r, "crm__standard_info__phone_3", "");
    let email = if rng.percent(85) {
        let domain = *rng.pick(&EMAIL_DOMAINS);
        format!("{}.{}@{domain}", ascii_fold(first), ascii_fold(last))
    } else {
        String::new()
    };
    put(&mut r, "crm__standard_info__email", email);
    let (updated, by, method) = if rng.percent(70) {
        let day = NaiveDate::from_ymd_opt(2019, 1, 1).expect("a date");
        let when = day + chrono::Days::new(rng.below(700));
        (ymd(when), *rng.pick(&UPDATERS), *rng.pick(&UPDATE_METHODS))
    } else {
        (String::new(), "", "")
    };
    put(&mut r, "crm__change_log__updated", updated);
    put(&mut r, "crm__change_log__updated_by", by);
    put(&mut r, "crm__change_log__update_method", method);
    let (postal_code, city) = *rng.pick(&POSTAL_PLACES);
    put(
        &mut r,
        "crm__custom_info__3900",
        format!("{} {}", rng.pick(&STREETS), rng.range(1, 120)),
    );
    put(&mut r, "crm__custom_info__3901", postal_code);
    put(&mut r, "crm__custom_info__3902", city);
    let age = if rng.percent(10) {
        Value::from("")
    } else {
        Value::from(rng.range(18, 90))
    };
    put(&mut r, "crm__custom_info__220", age);
    // A number that arrives as a string stays a string ("1281847542.0" in the notes).
    put(
        &mut r,
        "crm__custom_info__1405",
        format!("{}.0", rng.range(1_000_000_000, 1_999_999_999)),
    );
    if anonymized {
        // As Headshed's notes show an anonymized customer: no id, no name, nothing to reach.
        put(&mut r, "crm__customer_id", "");
        put(&mut r, "crm__standard_info__name", "Anonymized");
        for key in [
            "crm__standard_info__phone_1",
            "crm__standard_info__phone_2",
            "crm__standard_info__phone_3",
            "crm__standard_info__email",
        ] {
            put(&mut r, key, "");
        }
    }
    r
}

/// Whether customer `k` of every CRM is anonymized ([`SimConfig::anonymize_every`]).
pub fn is_anonymized(cfg: &SimConfig, k: usize) -> bool {
    cfg.anonymize_every > 0 && k % cfg.anonymize_every == cfg.anonymize_every - 1
}

/// Which customer of its CRM row `idx` of a campaign's day calls: consecutive customers from a
/// point drawn per (campaign, day), so no customer is called twice in a day.
pub fn called_customer(cfg: &SimConfig, campaign_id: u64, day: NaiveDate, idx: usize) -> usize {
    let n = crm_customer_count(cfg);
    let start = stream(cfg, STREAM_PICK, campaign_id, day, 0).below(n as u64) as usize;
    (start + idx) % n
}

/// The population indexes of a campaign's customers in call flow: about four in five of its
/// CRM's customers, in order.
fn status_members(cfg: &SimConfig, campaign_id: u64) -> Vec<usize> {
    (0..crm_customer_count(cfg))
        .filter(|&k| mix64(cfg.seed ^ mix64(campaign_id.wrapping_mul(31) ^ k as u64)) % 5 != 0)
        .collect()
}

/// The call-flow status record of customer `k` in campaign `meta`.
fn status_record(cfg: &SimConfig, meta: &CampaignMeta, k: usize) -> Map<String, Value> {
    let mut r = crm_customer(cfg, meta.owner_id, meta.crm_type, k);
    let mut rng = Rng::new(&[cfg.seed, STREAM_STATUS, meta.id, k as u64]);
    let attempts = rng.below(6);
    let state = *rng.pick(&["Ready", "Callback", "Finished", "Blocked"]);
    put(&mut r, "callflow__attempts_status__attempts", attempts);
    put(&mut r, "callflow__callstate__name", state);
    put(&mut r, "callflow__last_change__user", rng.pick(&SELLERS).0);
    let day =
        NaiveDate::from_ymd_opt(2020, 2, 1).expect("a date") + chrono::Days::new(rng.below(60));
    put(
        &mut r,
        "callflow__last_change__when",
        format!("{} {:02}:{:02}", day, rng.range(8, 19), rng.below(60)),
    );
    put(
        &mut r,
        "callflow__last_change__cause",
        *rng.pick(&["Manually add", "Import", "Call outcome"]),
    );
    put(&mut r, "callflow__last_change__alternative", "");
    put(
        &mut r,
        "callflow__last_change__comment",
        *rng.pick(&COMMENTS),
    );
    put(&mut r, "campaign__name", meta.name.clone());
    put(&mut r, "campaign__crm_type", meta.crm_type);
    put(&mut r, "data_owner__name", meta.owner_name);
    let segments = if meta.crm_type == "B2C" {
        &SEGMENTS_B2C
    } else {
        &SEGMENTS_B2B
    };
    put(&mut r, "segment__name", *rng.pick(segments));
    put(&mut r, "product__STROM", rng.percent(30));
    put(&mut r, "product__FIBER", rng.below(3));
    r
}

/// What a snapshot lists, before changes.
#[derive(Clone)]
pub enum Snapshot {
    Customers {
        owner_id: u64,
        crm_type: String,
    },
    Status {
        campaign_id: u64,
    },
    /// The call-flow status of a CRM's campaigns (archived ones included): each campaign's
    /// listing in turn, campaigns ascending, so a customer is there once per campaign.
    CrmStatus {
        owner_id: u64,
        crm_type: String,
    },
}

/// One record of a snapshot: the campaign it is of (0 for a customer) and the customer's
/// population index.
pub type Member = (u64, usize);

impl Snapshot {
    fn key(&self) -> String {
        match self {
            Snapshot::Customers { owner_id, crm_type } => {
                format!("customers/{owner_id}/{crm_type}")
            }
            Snapshot::Status { campaign_id } => format!("status/{campaign_id}"),
            Snapshot::CrmStatus { owner_id, crm_type } => {
                format!("crm-status/{owner_id}/{crm_type}")
            }
        }
    }

    /// The listing before changes.
    fn members(&self, cfg: &SimConfig) -> Vec<Member> {
        match self {
            Snapshot::Customers { .. } => (0..crm_customer_count(cfg)).map(|k| (0, k)).collect(),
            Snapshot::Status { campaign_id } => status_members(cfg, *campaign_id)
                .into_iter()
                .map(|k| (*campaign_id, k))
                .collect(),
            Snapshot::CrmStatus { owner_id, crm_type } => {
                crm_campaign_ids(cfg, *owner_id, crm_type)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|c| status_members(cfg, c).into_iter().map(move |k| (c, k)))
                    .collect()
            }
        }
    }

    /// Where a change inserts a new customer: its campaign.
    fn inserted_campaign(&self, cfg: &SimConfig) -> u64 {
        match self {
            Snapshot::Customers { .. } => 0,
            Snapshot::Status { campaign_id } => *campaign_id,
            Snapshot::CrmStatus { owner_id, crm_type } => {
                crm_campaign_ids(cfg, *owner_id, crm_type)
                    .and_then(|ids| ids.first().copied())
                    .unwrap_or(0)
            }
        }
    }

    fn record(&self, cfg: &SimConfig, (campaign_id, k): Member) -> Map<String, Value> {
        match self {
            Snapshot::Customers { owner_id, crm_type } => crm_customer(cfg, *owner_id, crm_type, k),
            Snapshot::Status { .. } | Snapshot::CrmStatus { .. } => {
                let meta = campaign_meta(cfg, campaign_id).expect("a known campaign");
                status_record(cfg, &meta, k)
            }
        }
    }
}

/// The records a snapshot lists after `version` changes (fault `snapshot_changes`): change i
/// (0-based) inserts a new customer (index population + i) at the front when i is even, and
/// moves the last record to the front when i is odd. Either, between two pages, makes a client
/// that reads on see a record twice or a different count.
pub fn snapshot_members(cfg: &SimConfig, snapshot: &Snapshot, version: u32) -> Vec<Member> {
    let mut members = snapshot.members(cfg);
    let population = crm_customer_count(cfg);
    let campaign = snapshot.inserted_campaign(cfg);
    for i in 0..version as usize {
        if i % 2 == 0 {
            members.insert(0, (campaign, population + i));
        } else if let Some(last) = members.pop() {
            members.insert(0, last);
        }
    }
    members
}

/// Every record of a snapshot once all of fault `snapshot_changes` happened (what a client
/// that reads it consistently ends with).
pub fn final_snapshot(cfg: &SimConfig, snapshot: &Snapshot) -> Vec<Map<String, Value>> {
    snapshot_members(cfg, snapshot, cfg.faults.snapshot_changes)
        .into_iter()
        .map(|m| snapshot.record(cfg, m))
        .collect()
}

impl Sim {
    pub(crate) fn forbidden(&self, owner_id: u64, crm_type: &str) -> bool {
        self.current_faults()
            .forbidden_crms
            .iter()
            .any(|(o, t)| *o == owner_id && t.eq_ignore_ascii_case(crm_type))
    }

    /// One page of a snapshot listing.
    fn snapshot_page(&self, snapshot: &Snapshot, uri: &Uri, headers: &HeaderMap) -> Response {
        let params: Vec<(String, String)> =
            url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let requested = params
            .iter()
            .rev()
            .find(|(k, _)| k == "page")
            .map(|(_, v)| v.as_str());
        let page = match requested {
            None => 1,
            Some(p) => match p.parse::<usize>() {
                Ok(p) if p >= 1 => p,
                _ => return not_found("Invalid page."),
            },
        };
        let max_version = self.current_faults().snapshot_changes;
        let version = {
            let mut versions = self
                .snapshot_versions
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let v = versions.entry(snapshot.key()).or_insert(0);
            // A live table: it changes while the client pages on.
            if page >= 2 && *v < max_version {
                *v += 1;
            }
            *v
        };
        let members = snapshot_members(&self.cfg, snapshot, version);
        let count = members.len();
        let page_size = self.cfg.page_size.max(1);
        let last_page = count.div_ceil(page_size).max(1);
        if page > last_page {
            return not_found("Invalid page.");
        }
        let results: Vec<Value> = members
            .iter()
            .skip((page - 1) * page_size)
            .take(page_size)
            .map(|&m| Value::Object(snapshot.record(&self.cfg, m)))
            .collect();
        Json(self.envelope(uri, headers, &params, (page, last_page), count, results))
            .into_response()
    }
}

pub(crate) fn forbidden() -> Response {
    error(
        StatusCode::FORBIDDEN,
        "You do not have permission to perform this action.",
    )
}

/// The CRM of a request's path, as (owner id, CRM type in upper case); 404 for an unknown owner
/// or CRM type, 403 for a CRM the credentials may not read (boxed: a refusal is the rare path).
pub(crate) fn requested_crm(
    sim: &Sim,
    owner: &str,
    crm_type: &str,
) -> Result<(u64, String), Box<Response>> {
    let Some(owner_id) = owner
        .parse()
        .ok()
        .filter(|&o| crm_campaign_ids(&sim.cfg, o, crm_type).is_some())
    else {
        return Err(Box::new(not_found("Not found.")));
    };
    if sim.forbidden(owner_id, crm_type) {
        return Err(Box::new(forbidden()));
    }
    Ok((owner_id, crm_type.to_ascii_uppercase()))
}

pub(crate) async fn crm_customers(
    State(sim): State<Arc<Sim>>,
    Path((owner, crm_type)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match requested_crm(&sim, &owner, &crm_type) {
        Ok((owner_id, crm_type)) => {
            sim.snapshot_page(&Snapshot::Customers { owner_id, crm_type }, &uri, &headers)
        }
        Err(response) => *response,
    }
}

pub(crate) async fn campaign_callflow_customers(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match sim.known_campaign(&id) {
        Some(campaign_id) => sim.snapshot_page(&Snapshot::Status { campaign_id }, &uri, &headers),
        None => not_found("Not found."),
    }
}

pub(crate) async fn crm_callflow_customers(
    State(sim): State<Arc<Sim>>,
    Path((owner, crm_type)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    match requested_crm(&sim, &owner, &crm_type) {
        Ok((owner_id, crm_type)) => {
            sim.snapshot_page(&Snapshot::CrmStatus { owner_id, crm_type }, &uri, &headers)
        }
        Err(response) => *response,
    }
}

/// Whether the CRM's data may be read (fault `forbidden_crms`); custom-field definitions
/// answer 403 for a forbidden CRM too.
pub(crate) fn crm_readable(sim: &Sim, owner: &str, crm_type: &str) -> bool {
    owner
        .parse()
        .map_or(true, |owner_id| !sim.forbidden(owner_id, crm_type))
}
