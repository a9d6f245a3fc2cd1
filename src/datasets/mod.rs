//! One declaration per table: the endpoint its records come from, the scope of one of its
//! partitions (campaign x day, a snapshot of a CRM or a campaign, the whole account), and its
//! known fields. The engine reads nothing else about a table, so a new table is a new file here
//! (and its `schemas/` file), not a copy of the pipeline.

mod call_outcomes;
mod campaigns;
mod crm_custom_fields;
mod customer_status;
mod customers;
mod product_registrations;

pub(crate) use call_outcomes::CALL_OUTCOMES;
pub(crate) use campaigns::CAMPAIGNS;
pub(crate) use crm_custom_fields::CRM_CUSTOM_FIELDS;
pub(crate) use customer_status::CUSTOMER_STATUS;
pub(crate) use customers::CUSTOMERS;
pub(crate) use product_registrations::PRODUCT_REGISTRATIONS;

/// Every table, in the order `sync` reports them.
pub(crate) const ALL: [Dataset; 6] = [
    CALL_OUTCOMES,
    PRODUCT_REGISTRATIONS,
    CUSTOMERS,
    CUSTOMER_STATUS,
    CAMPAIGNS,
    CRM_CUSTOM_FIELDS,
];

/// The folder key of a kept snapshot's day (`--keep-history`).
pub(crate) const SNAPSHOT_DAY_KEY: &str = "snapshot_date";

/// A table of the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dataset {
    /// Table folder and name in `schema.json`.
    pub(crate) name: &'static str,
    pub(crate) endpoint: Endpoint,
    /// The known-fields file under `schemas/`, compiled in.
    pub(crate) known_fields: &'static str,
    /// A key no two records of one snapshot share: a record seen twice means rows moved between
    /// pages while they were read, and the snapshot is read again.
    pub(crate) unique_key: Option<&'static str>,
}

/// Where a table's records come from, relative to the API root; what one partition is follows
/// from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `campaigns/{id}/{path}/?from_date=D&to_date=D`: pages, one partition per campaign and day.
    CampaignDays(&'static str),
    /// `campaigns/{id}/{path}/`: pages, one snapshot per campaign.
    CampaignSnapshot(&'static str),
    /// `data_owners/{id}/{crm_type}/{path}/`: pages, one snapshot per CRM.
    CrmSnapshot(&'static str),
    /// `data_owners/{id}/{crm_type}/{path}/`: a plain JSON array per CRM.
    CrmArray(&'static str),
    /// `{path}`: a plain JSON array for the whole account.
    AccountArray(&'static str),
}

/// What one partition of a table is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScopeKind {
    Campaign,
    Crm,
    Account,
}

impl Dataset {
    pub(crate) fn scope(&self) -> ScopeKind {
        match self.endpoint {
            Endpoint::CampaignDays(_) | Endpoint::CampaignSnapshot(_) => ScopeKind::Campaign,
            Endpoint::CrmSnapshot(_) | Endpoint::CrmArray(_) => ScopeKind::Crm,
            Endpoint::AccountArray(_) => ScopeKind::Account,
        }
    }

    /// Partitions are days asked of the API one at a time (`--from`/`--to`); otherwise each
    /// run takes a snapshot.
    pub(crate) fn by_day(&self) -> bool {
        matches!(self.endpoint, Endpoint::CampaignDays(_))
    }

    /// A snapshot table that can keep one snapshot per day (`--keep-history`).
    pub(crate) fn keeps_history(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::CampaignSnapshot(_) | Endpoint::CrmSnapshot(_)
        )
    }

    /// The answer is a plain JSON array rather than pages.
    pub(crate) fn is_array(&self) -> bool {
        matches!(
            self.endpoint,
            Endpoint::CrmArray(_) | Endpoint::AccountArray(_)
        )
    }

    /// The Hive folder key of a partition's day: the API's day, or the day of a kept snapshot.
    pub(crate) fn day_key(&self) -> &'static str {
        if self.by_day() {
            "date"
        } else {
            SNAPSHOT_DAY_KEY
        }
    }

    /// The columns that live in the partition path; a JSON key may not shadow them in any case.
    pub(crate) fn partition_columns(&self) -> Vec<&'static str> {
        let mut columns = match self.scope() {
            ScopeKind::Campaign => vec!["campaign_id"],
            ScopeKind::Crm => vec!["data_owner_id", "crm_type"],
            ScopeKind::Account => vec![],
        };
        if self.by_day() || self.keeps_history() {
            columns.push(self.day_key());
        }
        columns
    }
}
