use super::{Dataset, Endpoint, ScopeKind, Shape, UniqueKey};

/// The current call-flow status of the customers of each campaign (or of each CRM's
/// campaigns): a snapshot per run.
pub(crate) const CUSTOMER_STATUS: Dataset = Dataset::declare(
    "customer_status",
    Shape::Snapshot,
    &[
        Endpoint {
            scope: ScopeKind::Campaign,
            path: "campaigns/{campaign_id}/callflow_customers/",
        },
        Endpoint {
            scope: ScopeKind::Crm,
            path: "data_owners/{data_owner_id}/crm/{crm_type}/callflow_customers/",
        },
    ],
    include_str!("../../schemas/customer_status.json"),
    // A CRM's listing holds a customer once per campaign that calls it.
    Some(UniqueKey {
        key: "crm__customer_id",
        per: Some("campaign__name"),
    }),
);
