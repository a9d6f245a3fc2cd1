//! Which rows of a file's typed columns held `""`.
//!
//! The contract stores `""` as null in an `Int64`, `Float64` or `Boolean` column, and as `""`
//! in a `Utf8` one. A file written while a column was typed would lose the text when the column
//! later widens to `Utf8` (later in the same run, in a later run, or by another writer), so
//! every file keeps, in its key/value metadata, the rows where a typed column held `""`, and a
//! rewrite that widens the column puts `""` back.
//!
//! In the file: `cube.empty_strings`, a JSON object, column -> its rows (0-based, in file order),
//! whichever is shorter of: a list of ascending rows, a run of consecutive rows written
//! `[first, last]` (`{"call_outcome__extra__Samtykke": [3, [10, 14], 20]}`), or a bitmap, the
//! string `"bitmap:"` and then base64 of one bit a row from row 0, least significant bit first
//! (`"bitmap:CAA="` is row 3). Dense columns (a fifth of the rows, say) take a bitmap.

use std::collections::BTreeMap;

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, StringArray};
use arrow_schema::DataType;
use base64::Engine as _;
use serde_json::Value;

/// Prefix of a column's rows written as a bitmap.
const BITMAP: &str = "bitmap:";

/// File-level metadata key of [`EmptyStrings`].
pub const EMPTY_STRINGS_KEY: &str = "cube.empty_strings";

/// Column name -> the rows of a file (ascending) where that typed column held `""`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EmptyStrings(BTreeMap<String, Vec<u64>>);

impl From<BTreeMap<String, Vec<u64>>> for EmptyStrings {
    fn from(mut map: BTreeMap<String, Vec<u64>>) -> Self {
        map.retain(|_, rows| !rows.is_empty());
        EmptyStrings(map)
    }
}

impl EmptyStrings {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The rows where `column` held `""` (none if it is not listed).
    pub fn rows(&self, column: &str) -> &[u64] {
        self.0.get(column).map_or(&[], Vec::as_slice)
    }

    /// Lists `rows` (ascending) for `column`; an empty list lists nothing.
    pub fn insert(&mut self, column: String, rows: Vec<u64>) {
        if !rows.is_empty() {
            self.0.insert(column, rows);
        }
    }

    /// Adds `rows`, all after those already listed for `column`.
    pub fn extend(&mut self, column: &str, rows: Vec<u64>) {
        match self.0.get_mut(column) {
            Some(listed) => listed.extend(rows),
            None => self.insert(column.to_owned(), rows),
        }
    }

    /// The file's key/value entry; `None` when no column held `""`.
    pub fn key_value(&self) -> Option<parquet::file::metadata::KeyValue> {
        (!self.is_empty()).then(|| {
            parquet::file::metadata::KeyValue::new(EMPTY_STRINGS_KEY.to_owned(), self.to_json())
        })
    }

    /// The metadata value: each column's rows as a list (runs of consecutive rows as
    /// `[first, last]`) or a bitmap, whichever is shorter.
    pub fn to_json(&self) -> String {
        let object: serde_json::Map<String, Value> = self
            .0
            .iter()
            .map(|(column, rows)| {
                let list = Value::Array(runs(rows)).to_string();
                let bitmap = bitmap(rows);
                let value = if bitmap.len() + 2 < list.len() {
                    Value::String(bitmap)
                } else {
                    serde_json::from_str(&list).expect("a list just written")
                };
                (column.clone(), value)
            })
            .collect();
        Value::Object(object).to_string()
    }

    /// Reads a metadata value; `None` when it is not one (a foreign file's metadata is ignored,
    /// not trusted: rows are kept only if ascending).
    pub fn from_json(text: &str) -> Option<EmptyStrings> {
        let Value::Object(object) = serde_json::from_str::<Value>(text).ok()? else {
            return None;
        };
        let mut map = BTreeMap::new();
        for (column, items) in object {
            if let Some(bits) = items.as_str() {
                map.insert(column, rows_of_bitmap(bits)?);
                continue;
            }
            let mut rows: Vec<u64> = Vec::new();
            for item in items.as_array()? {
                let (first, last) = match item {
                    Value::Array(pair) => match pair.as_slice() {
                        [a, b] => (a.as_u64()?, b.as_u64()?),
                        _ => return None,
                    },
                    one => (one.as_u64()?, one.as_u64()?),
                };
                if first > last || rows.last().is_some_and(|&l| l >= first) {
                    return None;
                }
                rows.extend(first..=last);
            }
            map.insert(column, rows);
        }
        Some(EmptyStrings::from(map))
    }

    /// The rows of `column` that fall in the `len` rows from `start`, relative to `start`.
    pub fn rows_in(
        &self,
        column: &str,
        start: u64,
        len: usize,
    ) -> impl Iterator<Item = usize> + '_ {
        let rows = self.rows(column);
        let from = rows.partition_point(|&r| r < start);
        let end = start + len as u64;
        rows[from..]
            .iter()
            .take_while(move |&&r| r < end)
            .map(move |&r| (r - start) as usize)
    }
}

/// Ascending `rows` as list items: a row, or `[first, last]` for a run.
fn runs(rows: &[u64]) -> Vec<Value> {
    let mut items = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let mut j = i;
        while j + 1 < rows.len() && rows[j + 1] == rows[j] + 1 {
            j += 1;
        }
        items.push(if j > i {
            Value::from(vec![rows[i], rows[j]])
        } else {
            Value::from(rows[i])
        });
        i = j + 1;
    }
    items
}

/// Ascending `rows` as `bitmap:` and base64 of one bit a row, least significant bit first.
fn bitmap(rows: &[u64]) -> String {
    let last = rows.last().map_or(0, |&r| r as usize);
    let mut bytes = vec![0u8; last / 8 + 1];
    for &r in rows {
        bytes[r as usize / 8] |= 1 << (r % 8);
    }
    format!(
        "{BITMAP}{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// The rows of a bitmap written by [`bitmap`]; `None` if it is not one.
fn rows_of_bitmap(text: &str) -> Option<Vec<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.strip_prefix(BITMAP)?)
        .ok()?;
    Some(
        bytes
            .iter()
            .enumerate()
            .flat_map(|(i, &b)| {
                (0..8)
                    .filter(move |bit| b & (1 << bit) != 0)
                    .map(move |bit| (i * 8 + bit) as u64)
            })
            .collect(),
    )
}

/// The rows (plus `offset`) where a `Utf8` array holds `""`.
pub fn empty_rows(array: &dyn Array, offset: u64) -> Vec<u64> {
    if array.data_type() != &DataType::Utf8 {
        return Vec::new();
    }
    array
        .as_string::<i32>()
        .iter()
        .enumerate()
        .filter(|(_, v)| *v == Some(""))
        .map(|(i, _)| offset + i as u64)
        .collect()
}

/// `array` (`Utf8`) with `""` at `rows`, where it is null.
pub fn restored(array: &ArrayRef, rows: impl Iterator<Item = usize>) -> ArrayRef {
    let mut empty = vec![false; array.len()];
    let mut any = false;
    for r in rows {
        if r < empty.len() && array.is_null(r) {
            empty[r] = true;
            any = true;
        }
    }
    if !any {
        return array.clone();
    }
    let strings = array.as_string::<i32>();
    let values: StringArray = (0..strings.len())
        .map(|i| {
            if empty[i] {
                Some("")
            } else {
                strings.is_valid(i).then(|| strings.value(i))
            }
        })
        .collect();
    std::sync::Arc::new(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn rows_round_trip_through_the_metadata_with_runs_as_ranges() {
        let mut e = EmptyStrings::default();
        e.insert("a".into(), vec![0, 300, 301, 302, 900, 1100, 1101]);
        e.insert("b".into(), vec![]);
        let text = e.to_json();
        assert_eq!(text, r#"{"a":[0,[300,302],900,[1100,1101]]}"#);
        assert_eq!(EmptyStrings::from_json(&text), Some(e.clone()));
        assert_eq!(
            e.rows_in("a", 301, 800).collect::<Vec<_>>(),
            vec![0, 1, 599, 799]
        );
        assert!(e.rows("b").is_empty());
    }

    #[test]
    fn dense_rows_take_a_bitmap() {
        let mut e = EmptyStrings::default();
        let dense: Vec<u64> = (0..1000).filter(|r| r % 3 == 0).collect();
        e.insert("d".into(), dense.clone());
        e.insert("s".into(), vec![3]);
        let text = e.to_json();
        assert!(text.contains(r#""d":"bitmap:"#), "{text}");
        assert!(text.contains(r#""s":[3]"#), "{text}");
        assert!(text.len() < 250, "{} bytes", text.len());
        let back = EmptyStrings::from_json(&text).unwrap();
        assert_eq!(back.rows("d"), dense.as_slice());
        assert_eq!(back.rows("s"), &[3]);
        assert_eq!(rows_of_bitmap("bitmap:CAA="), Some(vec![3]));
    }

    #[test]
    fn metadata_that_is_not_ascending_rows_is_ignored() {
        for bad in [
            r#"{"a":[3,2]}"#,
            r#"{"a":[[5,4]]}"#,
            r#"{"a":[-1]}"#,
            r#"{"a":"x"}"#,
            r#"{"a":"bitmap:!!"}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(EmptyStrings::from_json(bad), None, "{bad}");
        }
    }

    #[test]
    fn restoring_puts_empty_strings_only_where_values_are_null() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![None, Some("56"), None, None]));
        let out = restored(&a, [0, 1, 3].into_iter());
        let s = out.as_string::<i32>();
        assert_eq!(s.value(0), "");
        assert_eq!(s.value(1), "56");
        assert!(s.is_null(2));
        assert_eq!(s.value(3), "");
        assert_eq!(empty_rows(out.as_ref(), 10), vec![10, 13]);
    }
}
