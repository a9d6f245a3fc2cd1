//! Column types of the dataset and the JSON-kind lattice they are inferred from.
//!
//! Inference records which *kinds* of JSON value a key carried (see [`Kinds`]); the column type is a
//! pure function of the union of those kinds. Widening is therefore just "union the kinds the
//! column already stands for with the new ones", which makes the type rules of the contract easy to
//! read in one place ([`ColumnType::from_kinds`]) and guarantees a type never narrows.

use arrow_schema::{DataType, TimeUnit};

/// Largest integer magnitude a `Float64` represents exactly (2^53).
pub(crate) const F64_EXACT_INT: u64 = 1 << 53;

/// The kinds of JSON value seen for one key, as bit flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds(u16);

impl Kinds {
    pub(crate) const NULL: Kinds = Kinds(1);
    /// The empty string `""`: null in numeric and boolean columns.
    pub(crate) const EMPTY_STR: Kinds = Kinds(1 << 1);
    pub(crate) const STR: Kinds = Kinds(1 << 2);
    pub(crate) const BOOL: Kinds = Kinds(1 << 3);
    /// An integer literal whose magnitude is at most 2^53.
    pub(crate) const INT: Kinds = Kinds(1 << 4);
    /// An integer literal that fits `i64` but not exactly in `f64`.
    pub(crate) const BIG_INT: Kinds = Kinds(1 << 5);
    /// An integer literal outside the `i64` range.
    pub(crate) const HUGE_INT: Kinds = Kinds(1 << 6);
    /// A number with a fraction or exponent.
    pub(crate) const FLOAT: Kinds = Kinds(1 << 7);
    /// An object or array (not part of the API's documented data, kept as JSON text).
    pub(crate) const NESTED: Kinds = Kinds(1 << 8);

    pub(crate) const fn empty() -> Kinds {
        Kinds(0)
    }
    pub(crate) const fn union(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }
    pub(crate) const fn contains_any(self, other: Kinds) -> bool {
        self.0 & other.0 != 0
    }
    pub(crate) fn insert(&mut self, other: Kinds) {
        self.0 |= other.0;
    }
}

/// The type of one dataset column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnType {
    /// Only `""` or `null` seen so far. Stored as `Utf8` (never a `Null`-typed column, which Spark
    /// reads as `int`), but free to become any type: every value it holds is null in the others.
    Empty,
    Boolean,
    /// `big_ints`: some value exceeds 2^53, so meeting a fraction must widen to `Utf8`, not `Float64`.
    Int64 {
        big_ints: bool,
    },
    Float64,
    Utf8,
    /// Known fields only: typed beyond JSON by `schemas/`.
    Date32,
    Timestamp,
    TimestampUtc,
}

impl ColumnType {
    /// The contract's JSON type rules, applied to every kind a column has carried.
    pub(crate) fn from_kinds(k: Kinds) -> ColumnType {
        let numeric = Kinds::INT.union(Kinds::BIG_INT).union(Kinds::FLOAT);
        if k.contains_any(Kinds::STR.union(Kinds::NESTED).union(Kinds::HUGE_INT)) {
            return ColumnType::Utf8;
        }
        let has_bool = k.contains_any(Kinds::BOOL);
        if has_bool && k.contains_any(numeric) {
            return ColumnType::Utf8;
        }
        if has_bool {
            return ColumnType::Boolean;
        }
        if k.contains_any(Kinds::FLOAT) {
            // Float64 holds integers exactly only up to 2^53; beyond that the text is the truth.
            return if k.contains_any(Kinds::BIG_INT) {
                ColumnType::Utf8
            } else {
                ColumnType::Float64
            };
        }
        if k.contains_any(Kinds::INT.union(Kinds::BIG_INT)) {
            return ColumnType::Int64 {
                big_ints: k.contains_any(Kinds::BIG_INT),
            };
        }
        ColumnType::Empty
    }

    /// The kinds a column of this type stands for, so that widening is a union of kinds.
    pub(crate) fn as_kinds(self) -> Kinds {
        match self {
            ColumnType::Empty => Kinds::EMPTY_STR,
            ColumnType::Boolean => Kinds::BOOL,
            ColumnType::Int64 { big_ints: false } => Kinds::INT,
            ColumnType::Int64 { big_ints: true } => Kinds::INT.union(Kinds::BIG_INT),
            ColumnType::Float64 => Kinds::FLOAT,
            ColumnType::Utf8
            | ColumnType::Date32
            | ColumnType::Timestamp
            | ColumnType::TimestampUtc => Kinds::STR,
        }
    }

    /// The type after also meeting `kinds`.
    pub(crate) fn widen(self, kinds: Kinds) -> ColumnType {
        ColumnType::from_kinds(self.as_kinds().union(kinds))
    }

    pub(crate) fn arrow(self) -> DataType {
        match self {
            ColumnType::Empty | ColumnType::Utf8 => DataType::Utf8,
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Int64 { .. } => DataType::Int64,
            ColumnType::Float64 => DataType::Float64,
            ColumnType::Date32 => DataType::Date32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            ColumnType::TimestampUtc => {
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
            }
        }
    }

    /// Arrow's name of the type, as written in `schema.json` and `schemas/`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ColumnType::Empty | ColumnType::Utf8 => "Utf8",
            ColumnType::Boolean => "Boolean",
            ColumnType::Int64 { .. } => "Int64",
            ColumnType::Float64 => "Float64",
            ColumnType::Date32 => "Date32",
            ColumnType::Timestamp => "Timestamp(Microsecond, None)",
            ColumnType::TimestampUtc => "Timestamp(Microsecond, \"UTC\")",
        }
    }

    /// Parses a name written by [`ColumnType::name`]; `Utf8` means a real string column here.
    pub(crate) fn from_name(name: &str) -> Option<ColumnType> {
        Some(match name {
            "Utf8" => ColumnType::Utf8,
            "Boolean" => ColumnType::Boolean,
            "Int64" => ColumnType::Int64 { big_ints: false },
            "Float64" => ColumnType::Float64,
            "Date32" => ColumnType::Date32,
            "Timestamp(Microsecond, None)" => ColumnType::Timestamp,
            "Timestamp(Microsecond, \"UTC\")" => ColumnType::TimestampUtc,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(kinds: &[Kinds]) -> ColumnType {
        ColumnType::from_kinds(kinds.iter().fold(Kinds::empty(), |a, k| a.union(*k)))
    }

    #[test]
    fn strings_stay_utf8() {
        assert_eq!(ty(&[Kinds::STR]), ColumnType::Utf8);
        assert_eq!(
            ty(&[Kinds::STR, Kinds::EMPTY_STR, Kinds::NULL]),
            ColumnType::Utf8
        );
    }

    #[test]
    fn integers_are_int64() {
        assert_eq!(ty(&[Kinds::INT]), ColumnType::Int64 { big_ints: false });
        assert_eq!(
            ty(&[Kinds::INT, Kinds::BIG_INT]),
            ColumnType::Int64 { big_ints: true }
        );
    }

    #[test]
    fn integers_with_fractions_are_float64_while_exact() {
        assert_eq!(ty(&[Kinds::INT, Kinds::FLOAT]), ColumnType::Float64);
        assert_eq!(ty(&[Kinds::FLOAT]), ColumnType::Float64);
    }

    #[test]
    fn integers_beyond_2_pow_53_with_fractions_are_utf8() {
        assert_eq!(ty(&[Kinds::BIG_INT, Kinds::FLOAT]), ColumnType::Utf8);
        // Order of arrival does not matter: the flag survives in Int64 { big_ints }.
        let int = ty(&[Kinds::BIG_INT]);
        assert_eq!(int.widen(Kinds::FLOAT), ColumnType::Utf8);
        let float = ty(&[Kinds::FLOAT]);
        assert_eq!(float.widen(Kinds::BIG_INT), ColumnType::Utf8);
    }

    #[test]
    fn integers_outside_i64_are_utf8() {
        assert_eq!(ty(&[Kinds::HUGE_INT]), ColumnType::Utf8);
    }

    #[test]
    fn booleans_are_boolean() {
        assert_eq!(ty(&[Kinds::BOOL]), ColumnType::Boolean);
    }

    #[test]
    fn empty_string_is_null_in_boolean_int_float() {
        assert_eq!(ty(&[Kinds::BOOL, Kinds::EMPTY_STR]), ColumnType::Boolean);
        assert_eq!(
            ty(&[Kinds::INT, Kinds::EMPTY_STR]),
            ColumnType::Int64 { big_ints: false }
        );
        assert_eq!(ty(&[Kinds::FLOAT, Kinds::EMPTY_STR]), ColumnType::Float64);
    }

    #[test]
    fn null_and_empty_only_is_never_null_typed() {
        let t = ty(&[Kinds::NULL]);
        assert_eq!(t, ColumnType::Empty);
        assert_eq!(t.arrow(), DataType::Utf8);
        assert_eq!(ty(&[Kinds::EMPTY_STR]).arrow(), DataType::Utf8);
    }

    #[test]
    fn empty_column_takes_the_first_real_type() {
        assert_eq!(
            ColumnType::Empty.widen(Kinds::INT),
            ColumnType::Int64 { big_ints: false }
        );
        assert_eq!(ColumnType::Empty.widen(Kinds::BOOL), ColumnType::Boolean);
        assert_eq!(ColumnType::Empty.widen(Kinds::STR), ColumnType::Utf8);
    }

    #[test]
    fn strings_mixed_with_numbers_or_booleans_are_utf8() {
        assert_eq!(ty(&[Kinds::STR, Kinds::INT]), ColumnType::Utf8);
        assert_eq!(ty(&[Kinds::STR, Kinds::BOOL]), ColumnType::Utf8);
        assert_eq!(ty(&[Kinds::STR, Kinds::FLOAT]), ColumnType::Utf8);
    }

    #[test]
    fn booleans_mixed_with_numbers_are_utf8() {
        assert_eq!(ty(&[Kinds::BOOL, Kinds::INT]), ColumnType::Utf8);
    }

    #[test]
    fn nested_values_are_utf8_json_text() {
        assert_eq!(ty(&[Kinds::NESTED]), ColumnType::Utf8);
    }

    #[test]
    fn widening_never_narrows() {
        let all = [
            ColumnType::Empty,
            ColumnType::Boolean,
            ColumnType::Int64 { big_ints: false },
            ColumnType::Int64 { big_ints: true },
            ColumnType::Float64,
            ColumnType::Utf8,
        ];
        for t in all {
            for k in [
                Kinds::NULL,
                Kinds::EMPTY_STR,
                Kinds::INT,
                Kinds::FLOAT,
                Kinds::BOOL,
                Kinds::STR,
            ] {
                let w = t.widen(k);
                assert_eq!(w.widen(t.as_kinds()), w, "{t:?} + {k:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for t in [
            ColumnType::Utf8,
            ColumnType::Boolean,
            ColumnType::Int64 { big_ints: false },
            ColumnType::Float64,
            ColumnType::Date32,
            ColumnType::Timestamp,
            ColumnType::TimestampUtc,
        ] {
            assert_eq!(ColumnType::from_name(t.name()), Some(t));
        }
    }
}
