//! One declaration per table: the shape of its listing (pages of a day, pages of a snapshot, a
//! plain array), the scopes the API serves it at with the endpoint of each, and its known
//! fields. The engine reads nothing else about a table, so a new table is a new file here (and
//! its `schemas/` file), not a copy of the pipeline.
//!
//! A table's scope is chosen when it is created (`--scope`, kept in `schema.json`): a
//! [`Dataset`] value carries the scope its run reads and writes it at.

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

/// A table of the API, at the scope a run reads it at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dataset {
    /// Table folder and name in `schema.json`.
    pub(crate) name: &'static str,
    pub(crate) shape: Shape,
    /// The scopes the API serves the table at, each with its endpoint; the first is the default.
    pub(crate) endpoints: &'static [Endpoint],
    /// The scope of this table (one of `endpoints`').
    scope: ScopeKind,
    /// The known-fields file under `schemas/`, compiled in.
    pub(crate) known_fields: &'static str,
    /// What no two records of one snapshot share: a record seen twice means rows moved between
    /// pages while they were read, and the snapshot is read again.
    pub(crate) unique_key: Option<UniqueKey>,
}

/// What a table's listing is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Pages asked one day at a time (`?from_date=D&to_date=D`): one partition per scope and day.
    Days,
    /// Pages with no date: one snapshot per scope, replaced by each run (or kept per day).
    Snapshot,
    /// A plain JSON array: one snapshot per scope.
    Array,
}

/// Where a table's records of one scope come from: a path under the API root, in which
/// `{campaign_id}`, `{data_owner_id}` and `{crm_type}` stand for the partition's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) scope: ScopeKind,
    pub(crate) path: &'static str,
}

/// What one partition of a table is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ScopeKind {
    Campaign,
    Crm,
    Account,
}

impl ScopeKind {
    /// The word of `--scope` and of `schema.json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScopeKind::Campaign => "campaign",
            ScopeKind::Crm => "crm",
            ScopeKind::Account => "account",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ScopeKind> {
        [ScopeKind::Campaign, ScopeKind::Crm, ScopeKind::Account]
            .into_iter()
            .find(|s| s.as_str() == text)
    }

    /// The partition keys of the scope, outermost first.
    pub(crate) fn keys(self) -> &'static [&'static str] {
        match self {
            ScopeKind::Campaign => &["campaign_id"],
            ScopeKind::Crm => &["data_owner_id", "crm_type"],
            ScopeKind::Account => &[],
        }
    }
}

/// How a date-partitioned table's files are cut: one per (scope keys, day), or one per (scope
/// keys, month) holding its days in order. Chosen when the table is created (`--partitioning`,
/// kept in `schema.json`); the day stays the unit of work either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Partitioning {
    Day,
    Month,
}

impl Partitioning {
    /// A new table's, unless asked otherwise: files of tens of MB, not one per day.
    pub(crate) const NEW_TABLES: Partitioning = Partitioning::Month;
    /// A table made before `--partitioning` (no entry in `schema.json`).
    pub(crate) const OLDER_TABLES: Partitioning = Partitioning::Day;

    /// The word of `--partitioning` and of `schema.json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Partitioning::Day => "day",
            Partitioning::Month => "month",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Partitioning> {
        [Partitioning::Day, Partitioning::Month]
            .into_iter()
            .find(|p| p.as_str() == text)
    }
}

/// What readers find under a table's folder: plain Hive-partitioned Parquet, or a Delta Lake
/// table (the same folders, and a `_delta_log/` that says which files hold the rows). Chosen
/// when the table is created (`--table-format`, kept in `schema.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TableFormat {
    Parquet,
    Delta,
}

impl TableFormat {
    /// A new table's, and a table's made before `--table-format`.
    pub(crate) const DEFAULT: TableFormat = TableFormat::Parquet;

    /// The word of `--table-format` and of `schema.json`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TableFormat::Parquet => "parquet",
            TableFormat::Delta => "delta",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<TableFormat> {
        [TableFormat::Parquet, TableFormat::Delta]
            .into_iter()
            .find(|f| f.as_str() == text)
    }
}

/// The key that names a record of a snapshot: no two records share the value of `key` (among
/// those with the same value of `per`, when given). A record whose `key` is empty or null
/// (an anonymized customer) names nothing and is not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct UniqueKey {
    pub(crate) key: &'static str,
    pub(crate) per: Option<&'static str>,
}

impl UniqueKey {
    /// The keys whose values name a record, `per`'s first.
    pub(crate) fn parts(&self) -> Vec<&'static str> {
        self.per.into_iter().chain([self.key]).collect()
    }
}

impl Dataset {
    /// The declaration of a table; its scope is the first endpoint's.
    pub(crate) const fn declare(
        name: &'static str,
        shape: Shape,
        endpoints: &'static [Endpoint],
        known_fields: &'static str,
        unique_key: Option<UniqueKey>,
    ) -> Dataset {
        Dataset {
            name,
            shape,
            endpoints,
            scope: endpoints[0].scope,
            known_fields,
            unique_key,
        }
    }

    pub(crate) fn scope(&self) -> ScopeKind {
        self.scope
    }

    /// The scope the table is created with when none is asked for.
    pub(crate) fn default_scope(&self) -> ScopeKind {
        self.endpoints[0].scope
    }

    /// Whether the API serves the table at `scope`.
    pub(crate) fn serves(&self, scope: ScopeKind) -> bool {
        self.endpoints.iter().any(|e| e.scope == scope)
    }

    /// The same table at `scope`, if the API serves it there.
    pub(crate) fn at(self, scope: ScopeKind) -> Option<Dataset> {
        self.serves(scope).then_some(Dataset { scope, ..self })
    }

    /// The endpoint of the table's scope.
    pub(crate) fn endpoint(&self) -> &'static str {
        self.endpoints
            .iter()
            .find(|e| e.scope == self.scope)
            .expect("a dataset's scope is one of its endpoints'")
            .path
    }

    /// Partitions are days asked of the API one at a time (`--from`/`--to`); otherwise each
    /// run takes a snapshot.
    pub(crate) fn by_day(&self) -> bool {
        self.shape == Shape::Days
    }

    /// A snapshot table that can keep one snapshot per day (`--keep-history`).
    pub(crate) fn keeps_history(&self) -> bool {
        self.shape == Shape::Snapshot
    }

    /// The answer is a plain JSON array rather than pages.
    pub(crate) fn is_array(&self) -> bool {
        self.shape == Shape::Array
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
        let mut columns = self.scope.keys().to_vec();
        if self.by_day() || self.keeps_history() {
            columns.push(self.day_key());
        }
        columns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_decide_partition_keys_and_endpoints() {
        assert_eq!(CALL_OUTCOMES.scope(), ScopeKind::Campaign);
        let crm = CALL_OUTCOMES.at(ScopeKind::Crm).unwrap();
        assert_eq!(
            crm.partition_columns(),
            ["data_owner_id", "crm_type", "date"]
        );
        assert_eq!(
            crm.endpoint(),
            "data_owners/{data_owner_id}/crm/{crm_type}/call_outcomes/"
        );
        let account = PRODUCT_REGISTRATIONS.at(ScopeKind::Account).unwrap();
        assert_eq!(account.partition_columns(), ["date"]);
        assert_eq!(account.endpoint(), "product_registrations/");
        assert!(CUSTOMER_STATUS.at(ScopeKind::Account).is_none());
        assert!(CUSTOMER_STATUS.at(ScopeKind::Crm).is_some());
        assert!(CUSTOMERS.at(ScopeKind::Campaign).is_none());
        for scope in [ScopeKind::Campaign, ScopeKind::Crm, ScopeKind::Account] {
            assert_eq!(ScopeKind::parse(scope.as_str()), Some(scope));
        }
    }
}
