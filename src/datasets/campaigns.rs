use super::{Dataset, Endpoint};

/// Every campaign of the account, archived ones included: one file, replaced by each run.
pub(crate) const CAMPAIGNS: Dataset = Dataset {
    name: "campaigns",
    endpoint: Endpoint::AccountArray("campaigns"),
    known_fields: include_str!("../../schemas/campaigns.json"),
    unique_key: Some("campaign__id"),
};
