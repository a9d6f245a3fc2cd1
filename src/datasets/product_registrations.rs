use super::{Dataset, Endpoint, ScopeKind, Shape};

/// Product registrations (call outcomes with `product__*`), one partition per day of a
/// campaign, a CRM or the whole account.
pub(crate) const PRODUCT_REGISTRATIONS: Dataset = Dataset::declare(
    "product_registrations",
    Shape::Days,
    &[
        Endpoint {
            scope: ScopeKind::Campaign,
            path: "campaigns/{campaign_id}/product_registrations/",
        },
        Endpoint {
            scope: ScopeKind::Crm,
            path: "data_owners/{data_owner_id}/crm/{crm_type}/product_registrations/",
        },
        Endpoint {
            scope: ScopeKind::Account,
            path: "product_registrations/",
        },
    ],
    include_str!("../../schemas/product_registrations.json"),
    None,
);
