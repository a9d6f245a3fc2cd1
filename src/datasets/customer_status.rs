use super::{Dataset, Endpoint};

/// The current call-flow status of each campaign's customers: a snapshot per run.
pub(crate) const CUSTOMER_STATUS: Dataset = Dataset {
    name: "customer_status",
    endpoint: Endpoint::CampaignSnapshot("callflow_customers"),
    known_fields: include_str!("../../schemas/customer_status.json"),
    unique_key: Some("crm__customer_id"),
};
