//! Column names: Unicode NFC, and unique ignoring case, because DuckDB and Spark match column
//! names case-insensitively and the partition columns live only in the path.

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

use crate::datasets::TableFormat;

/// The partition columns of a dataset written before schema.json named them.
pub(crate) const DAY_PARTITION_COLUMNS: [&str; 2] = ["campaign_id", "date"];

/// The case-insensitive identity of a column name.
pub(crate) fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The characters a Delta table's column name may not hold (without column mapping, which
/// Polars and `deltalake`'s PyArrow reader do not read).
const NOT_IN_DELTA_NAMES: [char; 9] = [' ', ',', ';', '{', '}', '(', ')', '\n', '\t'];

/// The set of folded names already taken in a dataset (partition columns included).
#[derive(Clone, Debug)]
pub struct TakenNames {
    taken: HashSet<String>,
    /// Names are for a Delta table: each character it may not hold (and `=`) becomes `_`.
    plain: bool,
}

impl TakenNames {
    /// The names a dataset's columns and its partition columns (which belong to the Hive path;
    /// a data column may not shadow them in any case) take.
    pub(crate) fn new<'a>(
        partition_columns: &[String],
        existing: impl IntoIterator<Item = &'a str>,
    ) -> TakenNames {
        let mut set: HashSet<String> = partition_columns.iter().map(|s| fold(s)).collect();
        set.extend(existing.into_iter().map(fold));
        TakenNames {
            taken: set,
            plain: false,
        }
    }

    /// The same, for the columns of a table of `format`.
    pub(crate) fn for_format(self, format: Option<TableFormat>) -> TakenNames {
        TakenNames {
            plain: format == Some(TableFormat::Delta),
            ..self
        }
    }

    /// The column name for a new JSON key: its NFC form, or, when that collides ignoring case with
    /// a taken name, the NFC form plus the smallest free suffix `__2`, `__3`, ...
    pub(crate) fn allocate(&mut self, key: &str) -> String {
        let base: String = key
            .nfc()
            .map(
                |c| match self.plain && (c == '=' || NOT_IN_DELTA_NAMES.contains(&c)) {
                    true => '_',
                    false => c,
                },
            )
            .collect();
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&fold(&name)) {
            name = format!("{base}__{n}");
            n += 1;
        }
        self.taken.insert(fold(&name));
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day_partitions() -> Vec<String> {
        DAY_PARTITION_COLUMNS.map(str::to_owned).to_vec()
    }

    #[test]
    fn keys_equal_ignoring_case_get_suffixes_in_arrival_order() {
        let mut t = TakenNames::new(&day_partitions(), ["call_outcome__extra__Kommentar"]);
        assert_eq!(
            t.allocate("call_outcome__extra__kommentar"),
            "call_outcome__extra__kommentar__2"
        );
        assert_eq!(
            t.allocate("CALL_OUTCOME__EXTRA__KOMMENTAR"),
            "CALL_OUTCOME__EXTRA__KOMMENTAR__3"
        );
    }

    #[test]
    fn partition_names_are_reserved_in_any_case() {
        let mut t = TakenNames::new(&day_partitions(), []);
        assert_eq!(t.allocate("Date"), "Date__2");
        assert_eq!(t.allocate("campaign_id"), "campaign_id__2");
        assert_eq!(t.allocate("CAMPAIGN_ID"), "CAMPAIGN_ID__3");
    }

    #[test]
    fn delta_names_lose_what_delta_tables_refuse() {
        let mut t = TakenNames::new(&day_partitions(), []).for_format(Some(TableFormat::Delta));
        assert_eq!(
            t.allocate("call_outcome__extra__Beløp (kr)"),
            "call_outcome__extra__Beløp__kr_"
        );
        assert_eq!(t.allocate("a=b,c;d{e}\tf"), "a_b_c_d_e__f");
        assert_eq!(t.allocate("a b"), "a_b");
        assert_eq!(t.allocate("a_b"), "a_b__2");
    }

    #[test]
    fn names_are_nfc_and_keep_odd_characters() {
        let mut t = TakenNames::new(&day_partitions(), []);
        assert_eq!(
            t.allocate("call_outcome__extra__Re\u{301}sume\u{301}"),
            "call_outcome__extra__Résumé"
        );
        assert_eq!(
            t.allocate("call_outcome__extra__Fast ansatt over 50 %"),
            "call_outcome__extra__Fast ansatt over 50 %"
        );
        // The precomposed spelling of the same key collides with the decomposed one.
        assert_eq!(
            t.allocate("call_outcome__extra__Résumé"),
            "call_outcome__extra__Résumé__2"
        );
    }
}
