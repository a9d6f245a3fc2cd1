use super::{Dataset, Endpoint, ScopeKind, Shape, UniqueKey};

/// The customers of each CRM (data owner, CRM type): a snapshot per run.
pub(crate) const CUSTOMERS: Dataset = Dataset::declare(
    "customers",
    Shape::Snapshot,
    &[Endpoint {
        scope: ScopeKind::Crm,
        path: "data_owners/{data_owner_id}/{crm_type}/customers/",
    }],
    include_str!("../../schemas/customers.json"),
    Some(UniqueKey {
        key: "crm__customer_id",
        per: None,
    }),
);
