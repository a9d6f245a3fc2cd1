use super::{Dataset, Endpoint};

/// Call outcomes, one partition per campaign and day.
pub(crate) const CALL_OUTCOMES: Dataset = Dataset {
    name: "call_outcomes",
    endpoint: Endpoint::CampaignDays("call_outcomes"),
    known_fields: include_str!("../../schemas/call_outcomes.json"),
    unique_key: None,
};
