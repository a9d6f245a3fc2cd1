use super::{Dataset, Endpoint, ScopeKind, Shape};

/// Call outcomes, one partition per day of a campaign, a CRM or the whole account.
pub(crate) const CALL_OUTCOMES: Dataset = Dataset::declare(
    "call_outcomes",
    Shape::Days,
    &[
        Endpoint {
            scope: ScopeKind::Campaign,
            path: "campaigns/{campaign_id}/call_outcomes/",
        },
        Endpoint {
            scope: ScopeKind::Crm,
            path: "data_owners/{data_owner_id}/crm/{crm_type}/call_outcomes/",
        },
        Endpoint {
            scope: ScopeKind::Account,
            path: "call_outcomes/",
        },
    ],
    include_str!("../../schemas/call_outcomes.json"),
    None,
);
