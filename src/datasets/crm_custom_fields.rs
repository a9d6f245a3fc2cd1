use super::{Dataset, Endpoint, ScopeKind, Shape, UniqueKey};

/// The custom-field definitions of each CRM: one file per CRM, replaced by each run.
pub(crate) const CRM_CUSTOM_FIELDS: Dataset = Dataset::declare(
    "crm_custom_fields",
    Shape::Array,
    &[Endpoint {
        scope: ScopeKind::Crm,
        path: "data_owners/{data_owner_id}/{crm_type}/crm_custom_fields/",
    }],
    include_str!("../../schemas/crm_custom_fields.json"),
    Some(UniqueKey {
        key: "id",
        per: None,
    }),
);
