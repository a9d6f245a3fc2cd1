use super::{Dataset, Endpoint};

/// The customers of each CRM (data owner, CRM type): a snapshot per run.
pub(crate) const CUSTOMERS: Dataset = Dataset {
    name: "customers",
    endpoint: Endpoint::CrmSnapshot("customers"),
    known_fields: include_str!("../../schemas/customers.json"),
    unique_key: Some("crm__customer_id"),
};
