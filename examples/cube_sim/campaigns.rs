//! Campaigns, data owners and custom field definitions.

use serde_json::{json, Value};

use super::*;

/// (data_owner__id, data_owner__name, client__short_name)
pub(crate) const OWNERS: [(u64, &str, &str); 2] = [
    (11, "NorgesForsikring AS", "NorgesForsikring"),
    (12, "Nordlys Energi AS", "Nordlys Energi"),
];

pub(crate) const CAMPAIGN_NAMES: [&str; 8] = [
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
pub(crate) struct CampaignMeta {
    pub(crate) id: u64,
    pub(crate) name: String,
    pub(crate) archived_date: &'static str,
    pub(crate) crm_type: &'static str,
    pub(crate) owner_id: u64,
    pub(crate) owner_name: &'static str,
    pub(crate) client_short_name: &'static str,
    pub(crate) service_id: u64,
    pub(crate) service_name: &'static str,
    pub(crate) assignment_name: &'static str,
}

/// Ids of the active campaigns: 101, 102, .. (skipping the archived id).
pub(crate) fn active_campaign_ids(cfg: &SimConfig) -> Vec<u64> {
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

pub(crate) fn campaign_meta(cfg: &SimConfig, id: u64) -> Option<CampaignMeta> {
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
pub(crate) fn crm_campaign_ids(cfg: &SimConfig, owner_id: u64, crm_type: &str) -> Option<Vec<u64>> {
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
pub(crate) const BASE_CUSTOM_FIELDS: [(u64, &str, &str, u64, &str); 7] = [
    (3900, "Address street", "text", 200, ""),
    (3901, "Postnummer", "text", 4, "Fire siffer"),
    (3902, "Poststed", "text", 100, ""),
    (1405, "Målepunkt-ID", "text", 18, ""),
    (1406, "Avtalens startdato", "text", 10, "ÅÅÅÅ-MM-DD"),
    (220, "Alder", "number", 3, ""),
    (1407, "Household size", "number", 3, ""),
];
pub(crate) const NEW_KEYS_CUSTOM_FIELD: (u64, &str, &str, u64, &str) = (
    4100,
    "Bonuspoeng",
    "number",
    10,
    "Poeng fra lojalitetsprogrammet",
);

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum WideKind {
    Text,
    Int,
    Bool,
}

pub(crate) fn wide_kind(k: u64) -> WideKind {
    match k % 3 {
        0 => WideKind::Text,
        1 => WideKind::Int,
        _ => WideKind::Bool,
    }
}

pub(crate) fn custom_field(id: u64, label: &str, kind: &str, max_length: u64, hint: &str) -> Value {
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
