//! The unit of work and of output: one campaign on one day.

use std::fmt;

use chrono::NaiveDate;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Unit {
    pub(crate) day: NaiveDate,
    pub(crate) campaign_id: u64,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "campaign {} on {}", self.campaign_id, self.day)
    }
}

/// A table (stream) of the API: where its records come from and which fields it knows.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Dataset {
    /// Table folder and name in `schema.json`.
    pub(crate) name: &'static str,
    /// Path segment under `/api/v1/campaigns/{id}/`.
    pub(crate) endpoint: &'static str,
    /// The known-fields file under `schemas/`, compiled in.
    pub(crate) known_fields: &'static str,
}

pub(crate) const CALL_OUTCOMES: Dataset = Dataset {
    name: "call_outcomes",
    endpoint: "call_outcomes",
    known_fields: include_str!("../schemas/call_outcomes.json"),
};

pub(crate) const PRODUCT_REGISTRATIONS: Dataset = Dataset {
    name: "product_registrations",
    endpoint: "product_registrations",
    known_fields: include_str!("../schemas/product_registrations.json"),
};
