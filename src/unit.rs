//! The unit of work and of output: one partition of a table, named by the values of its Hive
//! folders (a campaign and a day; a CRM; a campaign; the whole account), with the day of a
//! kept snapshot when the table keeps one per day.

use std::fmt;

use chrono::NaiveDate;

use crate::datasets::ScopeKind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Unit {
    pub(crate) scope: Scope,
    /// The day of a day partition, or of a kept snapshot; `None` for a snapshot that replaces
    /// the last.
    pub(crate) day: Option<NaiveDate>,
}

/// What a partition holds records of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Scope {
    Campaign(u64),
    Crm(Crm),
    Account,
}

/// One CRM: a data owner's CRM of one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Crm {
    pub(crate) data_owner_id: u64,
    pub(crate) crm_type: CrmType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum CrmType {
    B2C,
    B2B,
}

impl Scope {
    pub(crate) fn kind(self) -> ScopeKind {
        match self {
            Scope::Campaign(_) => ScopeKind::Campaign,
            Scope::Crm(_) => ScopeKind::Crm,
            Scope::Account => ScopeKind::Account,
        }
    }
}

impl CrmType {
    pub(crate) fn parse(text: &str) -> Option<CrmType> {
        match text.trim().to_ascii_uppercase().as_str() {
            "B2C" => Some(CrmType::B2C),
            "B2B" => Some(CrmType::B2B),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CrmType::B2C => "B2C",
            CrmType::B2B => "B2B",
        }
    }
}

impl fmt::Display for Crm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.data_owner_id, self.crm_type.as_str())
    }
}

impl Unit {
    /// A partition of campaign `campaign_id` on `day`.
    #[cfg(test)]
    pub(crate) fn campaign_day(campaign_id: u64, day: NaiveDate) -> Unit {
        Unit {
            scope: Scope::Campaign(campaign_id),
            day: Some(day),
        }
    }

    /// The Hive folders of the partition, outermost first (`day_key` names the day's).
    pub(crate) fn folders(&self, day_key: &'static str) -> Vec<(&'static str, String)> {
        let mut out = match self.scope {
            Scope::Campaign(id) => vec![("campaign_id", id.to_string())],
            Scope::Crm(crm) => vec![
                ("data_owner_id", crm.data_owner_id.to_string()),
                ("crm_type", crm.crm_type.as_str().to_owned()),
            ],
            Scope::Account => Vec::new(),
        };
        if let Some(day) = self.day {
            out.push((day_key, day.to_string()));
        }
        out
    }

    /// The partition values as the report and the ledger write them (ids as numbers).
    pub(crate) fn values(
        &self,
        day_key: &'static str,
    ) -> serde_json::Map<String, serde_json::Value> {
        self.folders(day_key)
            .into_iter()
            .map(|(key, value)| {
                let value = match key {
                    "campaign_id" | "data_owner_id" => {
                        serde_json::Value::from(value.parse::<u64>().expect("an id"))
                    }
                    _ => serde_json::Value::from(value),
                };
                (key.to_owned(), value)
            })
            .collect()
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.scope {
            Scope::Campaign(id) => write!(f, "campaign {id}")?,
            Scope::Crm(crm) => write!(f, "CRM {crm}")?,
            Scope::Account => write!(f, "the account")?,
        }
        match self.day {
            Some(day) => write!(f, " on {day}"),
            None => Ok(()),
        }
    }
}
