use super::{Dataset, Endpoint};

/// Product registrations (call outcomes with `product__*`), one partition per campaign and day.
pub(crate) const PRODUCT_REGISTRATIONS: Dataset = Dataset {
    name: "product_registrations",
    endpoint: Endpoint::CampaignDays("product_registrations"),
    known_fields: include_str!("../../schemas/product_registrations.json"),
    unique_key: None,
};
