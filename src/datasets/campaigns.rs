use super::{Dataset, Endpoint, ScopeKind, Shape, UniqueKey};

/// Every campaign of the account, archived ones included: one file, replaced by each run.
pub(crate) const CAMPAIGNS: Dataset = Dataset::declare(
    "campaigns",
    Shape::Array,
    &[Endpoint {
        scope: ScopeKind::Account,
        path: "campaigns",
    }],
    include_str!("../../schemas/campaigns.json"),
    Some(UniqueKey {
        key: "campaign__id",
        per: None,
    }),
);
