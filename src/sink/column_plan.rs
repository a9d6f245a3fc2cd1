//! How each column's chunks are encoded, judged on a sample of its values: with a dictionary or
//! plain, zstd-compressed or not.
//!
//! parquet-rs would dictionary-encode every column until the dictionary outgrows its page
//! limit; for the many columns that are (nearly) unique per row (ids, phones, e-mails,
//! timestamps) a dictionary plus indexes is larger and slower than plain values.
//!
//! parquet-rs also creates a zstd compressor and decompressor for every column chunk it
//! writes, and on this kind of machine (nested virtualisation: `CPUID` and page faults 10-50x
//! dearer than on bare metal) that costs 70-85 us a chunk. Most chunks of a partition file are
//! small dictionary indexes or bit-packed booleans, which zstd does not shrink: measured on the
//! benchmark's 300 files (13,200 chunks), chunks under 1,000 bytes saved 0.5% of the output in
//! all when compressed, and those under 500 bytes grew. Those are written uncompressed.

use std::collections::HashSet;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_schema::DataType;

/// A dictionary at most this large (bytes of its distinct values in the sample) marks a
/// column whose chunks are small: dictionary indexes compress to little.
const SMALL_DICTIONARY_BYTES: usize = 1024;

/// How one column's chunks are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ColumnPlan {
    pub(crate) dictionary: bool,
    pub(crate) compressed: bool,
}

impl ColumnPlan {
    /// The plan for a column of which `sample` is a part; `whole` when it is all of it (a
    /// rewrite), so that a column of nulls is known to stay one.
    pub(crate) fn of(sample: &dyn Array, whole: bool) -> ColumnPlan {
        let values = sample.len() - sample.null_count();
        if values == 0 {
            // Only definition levels: nothing to compress. A sample of nulls says nothing of
            // the rest of the column, which keeps zstd.
            return ColumnPlan {
                dictionary: false,
                compressed: !whole,
            };
        }
        match distinct(sample, values / 2) {
            // Booleans are bit-packed: an eighth of a byte a value, which zstd does not shrink.
            None => ColumnPlan {
                dictionary: true,
                compressed: false,
            },
            // At most one distinct value per two values (the rule of thumb DuckDB's writer also
            // lands near): a dictionary pays.
            Some(d) if d.count <= values / 2 => ColumnPlan {
                dictionary: true,
                compressed: d.bytes > SMALL_DICTIONARY_BYTES,
            },
            Some(_) => ColumnPlan {
                dictionary: false,
                compressed: true,
            },
        }
    }
}

/// Distinct values of a sample, counted up to just past a limit.
struct Distinct {
    count: usize,
    /// Bytes of those values (their plain encoding).
    bytes: usize,
}

/// The distinct values of `column` up to just past `limit`; `None` for a type without a
/// dictionary worth judging (booleans).
fn distinct(column: &dyn Array, limit: usize) -> Option<Distinct> {
    Some(match column.data_type() {
        DataType::Utf8 => {
            let mut seen = HashSet::new();
            let mut bytes = 0;
            for v in column.as_string::<i32>().iter().flatten() {
                if seen.insert(v) {
                    bytes += v.len() + 4;
                    if seen.len() > limit {
                        break;
                    }
                }
            }
            Distinct {
                count: seen.len(),
                bytes,
            }
        }
        DataType::Int64 => fixed(
            column.as_primitive::<Int64Type>().iter().flatten(),
            8,
            limit,
        ),
        DataType::Float64 => fixed(
            column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .map(f64::to_bits),
            8,
            limit,
        ),
        DataType::Timestamp(_, _) => fixed(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .flatten(),
            8,
            limit,
        ),
        DataType::Date32 => fixed(
            column.as_primitive::<Date32Type>().iter().flatten(),
            4,
            limit,
        ),
        _ => return None,
    })
}

/// Distinct values of `width` bytes each, counted up to just past `limit`.
fn fixed<T: std::hash::Hash + Eq>(
    values: impl Iterator<Item = T>,
    width: usize,
    limit: usize,
) -> Distinct {
    let mut seen = HashSet::new();
    for v in values {
        seen.insert(v);
        if seen.len() > limit {
            break;
        }
    }
    Distinct {
        count: seen.len(),
        bytes: seen.len() * width,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{BooleanArray, Int64Array, StringArray};

    #[test]
    fn plans_follow_the_values() {
        let ids = Int64Array::from_iter_values(0..100);
        assert_eq!(
            ColumnPlan::of(&ids, false),
            ColumnPlan {
                dictionary: false,
                compressed: true
            }
        );
        let few = StringArray::from_iter_values((0..100).map(|i| ["Ja", "Nei"][i % 2]));
        assert_eq!(
            ColumnPlan::of(&few, false),
            ColumnPlan {
                dictionary: true,
                compressed: false
            }
        );
        let long: Vec<String> = (0..100).map(|i| format!("{:0>100}", i % 40)).collect();
        let many = StringArray::from_iter_values(long);
        assert_eq!(
            ColumnPlan::of(&many, false),
            ColumnPlan {
                dictionary: true,
                compressed: true
            }
        );
        let flags = BooleanArray::from(vec![true, false, true]);
        assert!(!ColumnPlan::of(&flags, false).compressed);
        let nulls = Int64Array::from(vec![None, None]);
        assert!(
            ColumnPlan::of(&nulls, false).compressed,
            "a sample of nulls"
        );
        assert!(
            !ColumnPlan::of(&nulls, true).compressed,
            "a whole column of nulls"
        );
    }
}
