//! The known fields of each dataset, with fixed types, read from `schemas/` (data, not code).

use serde::Deserialize;

use super::types::ColumnType;

#[derive(Deserialize)]
struct KnownFile {
    dataset: String,
    columns: Vec<KnownColumn>,
}

#[derive(Deserialize)]
struct KnownColumn {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

/// The known columns of a dataset, in the order the file lists them.
#[derive(Clone, Debug)]
pub struct KnownFields {
    pub dataset: String,
    pub columns: Vec<(String, ColumnType)>,
    /// The table's partition columns, which no data column may shadow.
    pub partition_columns: Vec<String>,
}

impl KnownFields {
    pub fn call_outcomes() -> KnownFields {
        Self::of(&crate::datasets::CALL_OUTCOMES)
    }

    /// The known fields of a table, with its partition columns.
    pub(crate) fn of(dataset: &crate::datasets::Dataset) -> KnownFields {
        KnownFields {
            partition_columns: dataset
                .partition_columns()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            ..Self::parse(dataset.known_fields)
        }
    }

    /// Panics on a malformed file: it is compiled in, and a unit test parses it.
    pub(crate) fn parse(text: &str) -> KnownFields {
        let file: KnownFile = serde_json::from_str(text).expect("schemas/*.json is valid JSON");
        let columns = file
            .columns
            .into_iter()
            .map(|c| {
                let ty = ColumnType::from_name(&c.ty)
                    .unwrap_or_else(|| panic!("schemas/: unknown type {} of {}", c.ty, c.name));
                (c.name, ty)
            })
            .collect();
        KnownFields {
            dataset: file.dataset,
            columns,
            partition_columns: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<ColumnType> {
        self.columns.iter().find(|(n, _)| n == key).map(|(_, t)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_outcomes_types_match_the_contract() {
        let k = KnownFields::call_outcomes();
        assert_eq!(k.dataset, "call_outcomes");
        assert_eq!(
            k.get("call_outcome__submitted_when"),
            Some(ColumnType::Timestamp)
        );
        assert_eq!(
            k.get("call_outcome__report_as__submitted_when"),
            Some(ColumnType::Timestamp)
        );
        assert_eq!(
            k.get("call_outcome__report_as__submitted_when_timestamp"),
            Some(ColumnType::TimestampUtc)
        );
        assert_eq!(k.get("crm__change_log__updated"), Some(ColumnType::Date32));
        assert_eq!(k.get("crm__customer_id"), Some(ColumnType::Utf8));
        // Exactly these four are typed beyond JSON.
        let beyond = k
            .columns
            .iter()
            .filter(|(_, t)| !matches!(t, ColumnType::Utf8))
            .count();
        assert_eq!(beyond, 4);
    }

    #[test]
    fn every_table_declaration_matches_its_known_fields() {
        use crate::datasets::{ALL, CALL_OUTCOMES, CAMPAIGNS, CUSTOMERS};
        for dataset in ALL {
            let known = KnownFields::of(&dataset);
            assert_eq!(known.dataset, dataset.name);
            for key in dataset.unique_key.map(|k| k.parts()).unwrap_or_default() {
                assert!(
                    known.columns.iter().any(|(name, _)| name == key),
                    "{}: {key} is a known field",
                    dataset.name
                );
            }
        }
        assert_eq!(
            CUSTOMERS.partition_columns(),
            ["data_owner_id", "crm_type", "snapshot_date"]
        );
        assert_eq!(CALL_OUTCOMES.partition_columns(), ["campaign_id", "date"]);
        assert!(CAMPAIGNS.partition_columns().is_empty());
    }
}
