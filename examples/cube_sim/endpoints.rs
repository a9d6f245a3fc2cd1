//! The endpoints.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::*;

pub(crate) async fn list_campaigns(State(sim): State<Arc<Sim>>) -> Response {
    Json(Value::Array(campaigns(&sim.cfg))).into_response()
}

pub(crate) async fn campaign_call_outcomes(
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

pub(crate) async fn campaign_product_registrations(
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

/// The account's listing: every listed campaign (archived ones included), ascending, each
/// with its records in its own order.
fn account_listing(sim: &Sim, kind: Kind, uri: &Uri, headers: &HeaderMap) -> Response {
    let ids = campaign_ids(&sim.cfg);
    sim.page(kind, &ids, uri, headers)
}

/// A CRM's listing: its campaigns (archived ones included), ascending, each with its records
/// in its own order; 404 for an unknown owner or CRM type, 403 for a forbidden CRM.
fn crm_listing(
    sim: &Sim,
    kind: Kind,
    (owner, crm_type): (String, String),
    uri: &Uri,
    headers: &HeaderMap,
) -> Response {
    match requested_crm(sim, &owner, &crm_type) {
        Ok((owner_id, crm_type)) => {
            let ids = crm_campaign_ids(&sim.cfg, owner_id, &crm_type).unwrap_or_default();
            sim.page(kind, &ids, uri, headers)
        }
        Err(response) => *response,
    }
}

pub(crate) async fn account_call_outcomes(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    account_listing(&sim, Kind::CallOutcomes, &uri, &headers)
}

pub(crate) async fn account_product_registrations(
    State(sim): State<Arc<Sim>>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    account_listing(&sim, Kind::ProductRegistrations, &uri, &headers)
}

pub(crate) async fn crm_call_outcomes(
    State(sim): State<Arc<Sim>>,
    Path(crm): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    crm_listing(&sim, Kind::CallOutcomes, crm, &uri, &headers)
}

pub(crate) async fn crm_product_registrations(
    State(sim): State<Arc<Sim>>,
    Path(crm): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    crm_listing(&sim, Kind::ProductRegistrations, crm, &uri, &headers)
}

pub(crate) async fn crm_custom_fields(
    State(sim): State<Arc<Sim>>,
    Path((owner, crm_type)): Path<(String, String)>,
) -> Response {
    if !crm_readable(&sim, &owner, &crm_type) {
        return forbidden();
    }
    let fields = owner
        .parse()
        .ok()
        .and_then(|owner| custom_fields(&sim.cfg, owner, &crm_type));
    match fields {
        Some(fields) => Json(Value::Array(fields)).into_response(),
        None => not_found("Not found."),
    }
}
