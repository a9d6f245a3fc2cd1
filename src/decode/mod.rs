//! Raw page bytes -> Arrow `RecordBatch`es of the dataset schema.
//!
//! arrow-json's tape decoder parses the raw `results` array; our own column decoders (plugged in
//! through its `DecoderFactory`) apply the contract's value rules, which differ from arrow-json's:
//! `""` is null in numeric, boolean, date and timestamp columns; a `Utf8` column holds the JSON
//! text of numbers and booleans; timestamps come in the API's own formats. The rows where an
//! `Int64`, `Float64` or `Boolean` column held `""` are noted, so that the text can come back
//! should the column widen to `Utf8` later. The records decoder also finds what the key scan
//! finds (keys, value kinds, record count, unique-key digests), so that a page is read once:
//! see [`decode_page`].

mod records;
mod surrogates;
mod timestamps;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use arrow_array::builder::{BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::ArrayRef;
pub use arrow_array::RecordBatch;
use arrow_json::reader::{ArrayDecoder, DecoderContext, DecoderFactory, Tape, TapeElement};
use arrow_json::ReaderBuilder;
use arrow_schema::{ArrowError, DataType, FieldRef, SchemaRef, TimeUnit};

use crate::schema::Found;
use records::{RecordsDecoder, SharedFound};
use surrogates::unescape_surrogate_pairs;
use timestamps::parse_date;
pub use timestamps::{
    parse_naive_general, parse_naive_timestamp, parse_zoned_general, parse_zoned_timestamp,
};

/// Rows per decoded batch: large enough to amortise per-batch work, small enough to stay cache-
/// and memory-friendly with 300-column records.
pub const BATCH_ROWS: usize = 8192;

/// A value broke the contract for its column (e.g. a known timestamp field that is not one), or
/// the records are not JSON the decoder can read.
#[derive(Debug, thiserror::Error)]
#[error("{}", message(.0))]
pub struct DecodeError(#[source] ArrowError);

/// arrow-json's own words, without the "Json error: " it puts before them.
fn message(e: &ArrowError) -> String {
    match e {
        ArrowError::JsonError(m) => m.clone(),
        other => other.to_string(),
    }
}

/// JSON key -> the rows (ascending) where its typed column held `""`: filled by the column
/// decoders, which arrow-json owns, read by the [`PageDecoder`] that made them.
type EmptyRows = Arc<Mutex<BTreeMap<String, Vec<u64>>>>;

/// One page's records, decoded whole under one schema.
pub struct Decoded {
    /// The schema they were decoded with, fields named by JSON key.
    pub decode_schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// Column name -> the rows of the page (ascending) where that typed column held `""`.
    pub empty_strings: BTreeMap<String, Vec<u64>>,
}

/// Decodes one page's `results` array under `decode_schema` (named as `target`), finding on the
/// way what the key scan finds; `batch_rows` sizes the decoder's buffers (the page's records, as
/// far as known). An error when the records do not fit the schema (a value of another type)
/// or are not records.
pub fn decode_page(
    decode_schema: SchemaRef,
    target: SchemaRef,
    batch_rows: usize,
    results_json: &[u8],
    id_keys: &[&str],
) -> Result<(Found, Decoded), DecodeError> {
    let mut decoder = PageDecoder::build(decode_schema.clone(), target, batch_rows, id_keys)?;
    let mut batches = Vec::new();
    let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
        batches.push(b);
        Ok(())
    };
    decoder.push(results_json, &mut sink)?;
    decoder.finish(&mut sink)?;
    let found = decoder.take_found();
    let empty_strings = decoder.take_empty_strings();
    Ok((
        found,
        Decoded {
            decode_schema,
            batches,
            empty_strings,
        },
    ))
}

/// Streams the `results` arrays of a partition's pages into batches of `target` schema.
pub struct PageDecoder {
    inner: arrow_json::reader::Decoder,
    /// The fields by JSON key, in the order of `target`'s.
    decode: SchemaRef,
    target: SchemaRef,
    batch_rows: usize,
    empty: EmptyRows,
    found: SharedFound,
    /// Rows handed out so far, and at the last [`PageDecoder::take_empty_strings`].
    rows: u64,
    taken_at: u64,
}

impl PageDecoder {
    /// `decode_schema` names the fields by JSON key; `target` is the same layout named by column.
    /// `batch_rows` (at most [`BATCH_ROWS`]) sizes the decoder's buffers, which it allocates up
    /// front: a page's record count keeps them no larger than a page needs.
    pub fn new(
        decode_schema: SchemaRef,
        target: SchemaRef,
        batch_rows: usize,
    ) -> Result<PageDecoder, DecodeError> {
        Self::build(decode_schema, target, batch_rows, &[])
    }

    fn build(
        decode_schema: SchemaRef,
        target: SchemaRef,
        batch_rows: usize,
        id_keys: &[&str],
    ) -> Result<PageDecoder, DecodeError> {
        let empty = EmptyRows::default();
        let found = SharedFound::default();
        let inner = ReaderBuilder::new(decode_schema.clone())
            .with_batch_size(batch_rows.clamp(1, BATCH_ROWS))
            .with_flatten(true)
            .with_decoder_factory(Arc::new(ContractDecoders {
                empty: empty.clone(),
                found: found.clone(),
                id_keys: id_keys.iter().map(|k| (*k).to_owned()).collect(),
            }))
            .build_decoder()
            .map_err(DecodeError)?;
        Ok(PageDecoder {
            inner,
            decode: decode_schema,
            target,
            batch_rows: batch_rows.clamp(1, BATCH_ROWS),
            empty,
            found,
            rows: 0,
            taken_at: 0,
        })
    }

    /// Column name -> the rows (ascending, counted from the first row after the last take)
    /// where that `Int64`, `Float64` or `Boolean` column held `""`, which it holds as null.
    /// Take them after [`PageDecoder::finish`], so that every row pushed is counted.
    pub fn take_empty_strings(&mut self) -> BTreeMap<String, Vec<u64>> {
        let by_key = std::mem::take(&mut *self.empty.lock().unwrap_or_else(|e| e.into_inner()));
        let from = self.taken_at;
        self.taken_at = self.rows;
        by_key
            .into_iter()
            .filter_map(|(key, rows)| {
                let i = self.decode.index_of(&key).ok()?;
                let rows = rows.into_iter().map(|r| r - from).collect();
                Some((self.target.field(i).name().clone(), rows))
            })
            .collect()
    }

    /// What the records decoded so far held (keys, kinds, count, unique-key digests); the next
    /// take starts afresh.
    pub fn take_found(&mut self) -> Found {
        std::mem::take(&mut *self.found.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Feeds one page's `results` array; hands every full batch to `sink`.
    pub fn push<E: From<DecodeError>>(
        &mut self,
        results_json: &[u8],
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        let json = unescape_surrogate_pairs(results_json);
        let mut rest: &[u8] = &json;
        while !rest.is_empty() {
            let used = self.inner.decode(rest).map_err(DecodeError)?;
            rest = &rest[used..];
            // `decode` stops early when a batch is full, possibly before the closing `]`.
            if used == 0 || self.inner.len() >= self.batch_rows {
                self.flush(sink)?;
            }
        }
        Ok(())
    }

    /// Hands the rows still buffered to `sink`.
    pub fn finish<E: From<DecodeError>>(
        &mut self,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        self.flush(sink)
    }

    fn flush<E: From<DecodeError>>(
        &mut self,
        sink: &mut impl FnMut(RecordBatch) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Some(batch) = self.inner.flush().map_err(DecodeError)? {
            // Same arrays, renamed from JSON keys to column names.
            let batch = RecordBatch::try_new(self.target.clone(), batch.columns().to_vec())
                .map_err(DecodeError)?;
            self.rows += batch.num_rows() as u64;
            sink(batch)?;
        }
        Ok(())
    }
}

/// Chooses our column decoders for every type the dataset uses.
#[derive(Debug)]
struct ContractDecoders {
    empty: EmptyRows,
    found: SharedFound,
    id_keys: Vec<String>,
}

impl DecoderFactory for ContractDecoders {
    fn make_default_decoder(
        &self,
        ctx: &DecoderContext,
        field: &FieldRef,
        _is_nullable: bool,
    ) -> Result<Option<Box<dyn ArrayDecoder>>, ArrowError> {
        // The records themselves: the dataset has no struct columns (a nested value is a
        // Utf8 column's JSON text), so the one struct is the root.
        if let DataType::Struct(fields) = field.data_type() {
            return Ok(Some(Box::new(RecordsDecoder::new(
                ctx,
                fields,
                self.found.clone(),
                self.id_keys.clone(),
            )?)));
        }
        let column = field.name().clone();
        let data_type = field.data_type().clone();
        let kind = match field.data_type() {
            DataType::Utf8 => Value::JsonText,
            DataType::Int64 => Value::Int64,
            DataType::Float64 => Value::Float64,
            DataType::Boolean => Value::Boolean,
            DataType::Date32 => Value::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None) => Value::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Value::TimestampUtc,
            _ => return Ok(None),
        };
        Ok(Some(Box::new(ColumnDecoder {
            column,
            data_type,
            kind,
            rows: 0,
            empty: self.empty.clone(),
        })))
    }
}

#[derive(Clone, Copy)]
enum Value {
    JsonText,
    Int64,
    Float64,
    Boolean,
    Date32,
    Timestamp,
    TimestampUtc,
}

/// A value where a string (or null) is expected.
enum Text<'t> {
    Null,
    Empty,
    Value(&'t str),
}

struct ColumnDecoder {
    column: String,
    /// The column's Arrow type (a timestamp's carries its zone).
    data_type: DataType,
    kind: Value,
    /// Rows decoded so far: every batch passes every row.
    rows: u64,
    empty: EmptyRows,
}

impl ColumnDecoder {
    /// Notes the rows (of the batch that begins at `self.rows`) where the column held `""`.
    fn note_empty(&self, in_batch: Vec<u64>) {
        if in_batch.is_empty() {
            return;
        }
        let mut empty = self.empty.lock().unwrap_or_else(|e| e.into_inner());
        empty
            .entry(self.column.clone())
            .or_default()
            .extend(in_batch.into_iter().map(|r| self.rows + r));
    }

    fn bad(&self, what: &str, tape: &Tape<'_>, p: u32) -> ArrowError {
        let mut text = String::new();
        write_json(tape, p, &mut text);
        if text.len() > 60 {
            let cut = (0..=60)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            text.truncate(cut);
            text.push('…');
        }
        ArrowError::JsonError(format!(
            "column {:?} holds {text}, which is not {what}",
            self.column
        ))
    }

    /// The value at `p` if it is null or a string (both `""` and null are null outside Utf8
    /// columns); an error for anything else.
    fn text<'t>(&self, tape: &Tape<'t>, p: u32, what: &str) -> Result<Text<'t>, ArrowError> {
        match tape.get(p) {
            TapeElement::Null => Ok(Text::Null),
            TapeElement::String(i) => Ok(match tape.get_string(i) {
                "" => Text::Empty,
                s => Text::Value(s),
            }),
            _ => Err(self.bad(what, tape, p)),
        }
    }

    /// One batch's values under the column's value rule.
    fn decode_values(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        match self.kind {
            Value::JsonText => Ok(self.json_text(tape, pos)),
            Value::Int64 => self.numbers::<Int64Type>(tape, pos, "an integer", |s| s.parse().ok()),
            Value::Float64 => {
                self.numbers::<Float64Type>(tape, pos, "a number", |s| s.parse().ok())
            }
            Value::Boolean => self.booleans(tape, pos),
            Value::Date32 => self.parsed::<Date32Type>(tape, pos, "a date", parse_date),
            Value::Timestamp => self.parsed::<TimestampMicrosecondType>(
                tape,
                pos,
                "a local timestamp",
                parse_naive_timestamp,
            ),
            Value::TimestampUtc => self.parsed::<TimestampMicrosecondType>(
                tape,
                pos,
                "a timestamp with offset",
                parse_zoned_timestamp,
            ),
        }
    }

    /// Utf8: strings as they are, numbers and booleans as their JSON text (objects and arrays
    /// too, should a key hold one).
    fn json_text(&self, tape: &Tape<'_>, pos: &[u32]) -> ArrayRef {
        let mut b = StringBuilder::with_capacity(pos.len(), pos.len() * 16);
        let mut scratch = String::new();
        for &p in pos {
            match tape.get(p) {
                TapeElement::Null => b.append_null(),
                TapeElement::String(i) | TapeElement::Number(i) => {
                    b.append_value(tape.get_string(i))
                }
                TapeElement::True => b.append_value("true"),
                TapeElement::False => b.append_value("false"),
                _ => {
                    scratch.clear();
                    write_json(tape, p, &mut scratch);
                    b.append_value(&scratch);
                }
            }
        }
        Arc::new(b.finish())
    }

    /// Int64 and Float64: JSON numbers, parsed exactly (2.7 is not an integer); null and `""`
    /// are null.
    fn numbers<T: ArrowPrimitiveType>(
        &self,
        tape: &Tape<'_>,
        pos: &[u32],
        what: &str,
        parse: impl Fn(&str) -> Option<T::Native>,
    ) -> Result<ArrayRef, ArrowError> {
        let mut b = PrimitiveBuilder::<T>::with_capacity(pos.len());
        let mut empty = Vec::new();
        for (row, &p) in pos.iter().enumerate() {
            let v = match tape.get(p) {
                TapeElement::Number(i) => {
                    Some(parse(tape.get_string(i)).ok_or_else(|| self.bad(what, tape, p))?)
                }
                // Anything else must be null or "".
                _ => match self.text(tape, p, what)? {
                    Text::Null => None,
                    Text::Empty => {
                        empty.push(row as u64);
                        None
                    }
                    Text::Value(_) => return Err(self.bad(what, tape, p)),
                },
            };
            b.append_option(v);
        }
        self.note_empty(empty);
        Ok(Arc::new(b.finish()))
    }

    /// Boolean: JSON `true`/`false`; null and `""` are null.
    fn booleans(&self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let mut b = BooleanBuilder::with_capacity(pos.len());
        let mut empty = Vec::new();
        for (row, &p) in pos.iter().enumerate() {
            match tape.get(p) {
                TapeElement::True => b.append_value(true),
                TapeElement::False => b.append_value(false),
                _ => match self.text(tape, p, "a boolean")? {
                    Text::Null => b.append_null(),
                    Text::Empty => {
                        empty.push(row as u64);
                        b.append_null()
                    }
                    Text::Value(_) => return Err(self.bad("a boolean", tape, p)),
                },
            }
        }
        self.note_empty(empty);
        Ok(Arc::new(b.finish()))
    }

    /// Date32 and timestamps: strings in the API's formats; null and `""` are null.
    fn parsed<T: ArrowPrimitiveType>(
        &self,
        tape: &Tape<'_>,
        pos: &[u32],
        what: &str,
        parse: impl Fn(&str) -> Option<T::Native>,
    ) -> Result<ArrayRef, ArrowError> {
        let mut b = PrimitiveBuilder::<T>::with_capacity(pos.len());
        for &p in pos {
            let v = match self.text(tape, p, what)? {
                Text::Null | Text::Empty => None,
                Text::Value(s) => Some(parse(s).ok_or_else(|| self.bad(what, tape, p))?),
            };
            b.append_option(v);
        }
        Ok(Arc::new(b.finish().with_data_type(self.data_type.clone())))
    }
}

impl ArrayDecoder for ColumnDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let array = self.decode_values(tape, pos);
        self.rows += pos.len() as u64;
        array
    }
}

/// Writes the JSON text of the value at `p` (objects and arrays included).
fn write_json(tape: &Tape<'_>, p: u32, out: &mut String) -> u32 {
    match tape.get(p) {
        // An object's elements alternate key and value; a list's are values.
        element @ (TapeElement::StartObject(end) | TapeElement::StartList(end)) => {
            let object = matches!(element, TapeElement::StartObject(_));
            out.push(if object { '{' } else { '[' });
            let mut cur = p + 1;
            let mut first = true;
            while cur < end {
                if !first {
                    out.push(',');
                }
                first = false;
                if object {
                    cur = write_json(tape, cur, out);
                    out.push(':');
                }
                cur = write_json(tape, cur, out);
            }
            out.push(if object { '}' } else { ']' });
            end + 1
        }
        TapeElement::String(i) => {
            let _ = write!(out, "{}", serde_json::Value::from(tape.get_string(i)));
            p + 1
        }
        TapeElement::Number(i) => {
            out.push_str(tape.get_string(i));
            p + 1
        }
        TapeElement::True => {
            out.push_str("true");
            p + 1
        }
        TapeElement::False => {
            out.push_str("false");
            p + 1
        }
        TapeElement::Null => {
            out.push_str("null");
            p + 1
        }
        // Only produced when serialising Rust values into the tape, never from JSON text.
        _ => p + 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
    use arrow_array::Array;
    use arrow_schema::{Field, Schema};

    fn decode(fields: Vec<Field>, json: &str) -> Result<RecordBatch, DecodeError> {
        let schema = Arc::new(Schema::new(fields));
        let mut d = PageDecoder::new(schema.clone(), schema, BATCH_ROWS)?;
        let mut out = Vec::new();
        let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
            out.push(b);
            Ok(())
        };
        d.push(json.as_bytes(), &mut sink)?;
        d.finish(&mut sink)?;
        assert_eq!(out.len(), 1);
        Ok(out.pop().unwrap())
    }

    #[test]
    fn utf8_holds_strings_and_the_json_text_of_numbers_and_booleans() {
        let b = decode(
            vec![Field::new("a", DataType::Utf8, true)],
            r#"[{"a": "0235"}, {"a": 56}, {"a": true}, {"a": ""}, {"a": null}, {}, {"a": 2.50}, {"a": {"x": [1, "y"]}}]"#,
        )
        .unwrap();
        let a = b.column(0).as_string::<i32>();
        assert_eq!(a.value(0), "0235");
        assert_eq!(a.value(1), "56");
        assert_eq!(a.value(2), "true");
        assert_eq!(a.value(3), "");
        assert!(a.is_null(4) && a.is_null(5));
        assert_eq!(a.value(6), "2.50");
        assert_eq!(a.value(7), r#"{"x":[1,"y"]}"#);
    }

    /// arrow-json alone reads `\ud840\udc00` as U+10000 (see `surrogates`).
    #[test]
    fn escaped_surrogate_pairs_read_as_their_characters_in_keys_and_values() {
        let (found, decoded) = decode_page(
            Arc::new(Schema::new(vec![Field::new(
                "k\u{20000}",
                DataType::Utf8,
                true,
            )])),
            Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)])),
            4,
            br#"[{"k\ud840\udc00": "\ud840\udc00 \uDAED\uDDAD"}]"#,
            &[],
        )
        .unwrap();
        let value = decoded.batches[0]
            .column(0)
            .as_string::<i32>()
            .value(0)
            .to_owned();
        assert_eq!(value, "\u{20000} \u{CB5AD}");
        assert_eq!(found.keys.iter().next().map(|(k, _)| k), Some("k\u{20000}"));
    }

    #[test]
    fn empty_string_is_null_in_int_float_boolean() {
        let b = decode(
            vec![
                Field::new("i", DataType::Int64, true),
                Field::new("f", DataType::Float64, true),
                Field::new("b", DataType::Boolean, true),
            ],
            r#"[{"i": 9007199254740993, "f": 2.7, "b": true}, {"i": "", "f": "", "b": ""}, {"f": 3}]"#,
        )
        .unwrap();
        let i = b.column(0).as_primitive::<Int64Type>();
        let f = b.column(1).as_primitive::<Float64Type>();
        let bo = b.column(2).as_boolean();
        assert_eq!(i.value(0), 9007199254740993);
        assert_eq!(f.value(0), 2.7);
        assert!(bo.value(0));
        assert!(i.is_null(1) && f.is_null(1) && bo.is_null(1));
        assert_eq!(f.value(2), 3.0);
    }

    #[test]
    fn a_fraction_in_an_int64_column_is_an_error_not_a_truncation() {
        let e = decode(
            vec![Field::new("i", DataType::Int64, true)],
            r#"[{"i": 2.7}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("\"i\""), "{e}");
    }

    #[test]
    fn timestamps_and_dates_parse_the_api_formats() {
        let b = decode(
            vec![
                Field::new("t", DataType::Timestamp(TimeUnit::Microsecond, None), true),
                Field::new(
                    "z",
                    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                    true,
                ),
                Field::new("d", DataType::Date32, true),
            ],
            r#"[{"t": "2019-08-14 09:34", "z": "2020-02-12T10:27:06.477+0100", "d": "2019-08-14"},
                {"t": "", "z": "", "d": ""}]"#,
        )
        .unwrap();
        let t = b.column(0).as_primitive::<TimestampMicrosecondType>();
        let z = b.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(t.value(0), 1565775240 * 1_000_000);
        assert_eq!(z.value(0), 1581499626477000);
        assert_eq!(
            b.column(1).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(
            b.column(2)
                .as_primitive::<arrow_array::types::Date32Type>()
                .value(0),
            18122
        );
        assert!(t.is_null(1) && z.is_null(1) && b.column(2).is_null(1));
    }

    #[test]
    fn a_bad_known_timestamp_is_an_error() {
        let e = decode(
            vec![Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            )],
            r#"[{"t": "yesterday"}]"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("yesterday"), "{e}");
    }

    #[test]
    fn the_rows_where_typed_columns_held_empty_strings_are_noted_by_column() {
        let by_key = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int64, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let by_column = Arc::new(Schema::new(vec![
            Field::new("I", DataType::Int64, true),
            Field::new("B", DataType::Boolean, true),
            Field::new("S", DataType::Utf8, true),
        ]));
        // Batches of two rows: the rows are counted across batches and pages.
        let mut d = PageDecoder::new(by_key, by_column, 2).unwrap();
        let mut rows = 0;
        let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
            rows += b.num_rows();
            Ok(())
        };
        d.push(
            br#"[{"i": "", "b": true, "s": ""}, {"i": 1, "b": ""}, {"i": null, "b": null}]"#,
            &mut sink,
        )
        .unwrap();
        d.push(br#"[{"s": "x"}, {"i": "", "b": false}]"#, &mut sink)
            .unwrap();
        d.finish(&mut sink).unwrap();
        assert_eq!(rows, 5);
        let empty = d.take_empty_strings();
        assert_eq!(empty.get("I"), Some(&vec![0, 4]));
        assert_eq!(empty.get("B"), Some(&vec![1]));
        assert_eq!(empty.get("S"), None, "a Utf8 column holds its \"\" itself");
    }

    /// Keys in changing orders, missing, unknown or given twice land in their columns.
    #[test]
    fn records_with_keys_in_any_order_decode_to_their_columns() {
        let b = decode(
            vec![
                Field::new("a", DataType::Int64, true),
                Field::new("b", DataType::Utf8, true),
                Field::new("c", DataType::Boolean, true),
            ],
            r#"[{"a": 1, "b": "x", "c": true}, {"c": false, "a": 2, "b": "y"},
                {"b": "z"}, {"x": 9, "a": 4, "a": 5}, {}, {"c": null, "b": {"n": [1]}, "a": 6}]"#,
        )
        .unwrap();
        let a = b.column(0).as_primitive::<Int64Type>();
        let s = b.column(1).as_string::<i32>();
        let c = b.column(2).as_boolean();
        assert_eq!(b.num_rows(), 6);
        assert_eq!(
            (0..6)
                .map(|i| a.is_valid(i).then(|| a.value(i)))
                .collect::<Vec<_>>(),
            [Some(1), Some(2), None, Some(5), None, Some(6)]
        );
        assert_eq!(
            (0..6)
                .map(|i| s.is_valid(i).then(|| s.value(i)))
                .collect::<Vec<_>>(),
            [
                Some("x"),
                Some("y"),
                Some("z"),
                None,
                None,
                Some(r#"{"n":[1]}"#)
            ]
        );
        assert_eq!(
            (0..6)
                .map(|i| c.is_valid(i).then(|| c.value(i)))
                .collect::<Vec<_>>(),
            [Some(true), Some(false), None, None, None, None]
        );
        assert!(decode(vec![Field::new("a", DataType::Int64, true)], "[1]").is_err());
    }

    #[test]
    fn many_pages_and_batches_keep_api_order() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let mut d = PageDecoder::new(schema.clone(), schema, 1000).unwrap();
        let mut got = Vec::new();
        let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
            got.extend(
                b.column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .copied(),
            );
            Ok(())
        };
        let mut next = 0i64;
        for _ in 0..3 {
            let page: Vec<String> = (0..5000)
                .map(|_| {
                    next += 1;
                    format!("{{\"n\": {next}}}")
                })
                .collect();
            d.push(format!("[{}]", page.join(",")).as_bytes(), &mut sink)
                .unwrap();
        }
        d.finish(&mut sink).unwrap();
        assert_eq!(got, (1..=15000).collect::<Vec<_>>());
    }
}
