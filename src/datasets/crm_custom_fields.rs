use super::{Dataset, Endpoint};

/// The custom-field definitions of each CRM: one file per CRM, replaced by each run.
pub(crate) const CRM_CUSTOM_FIELDS: Dataset = Dataset {
    name: "crm_custom_fields",
    endpoint: Endpoint::CrmArray("crm_custom_fields"),
    known_fields: include_str!("../../schemas/crm_custom_fields.json"),
    unique_key: Some("id"),
};
