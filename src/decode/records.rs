//! The records of a page (the root struct) into their columns; on the way, what the key scan
//! would find (each key's value kinds, the record count, the unique key's digests), so that a
//! page decoded once needs no scan of its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, StructArray};
use arrow_json::reader::{ArrayDecoder, DecoderContext, Tape, TapeElement};
use arrow_schema::{ArrowError, Fields};

use crate::schema::{id_digest, number_kind, Found, Kinds, MAX_ID_PARTS};

/// What the records decoder found, read by the [`super::PageDecoder`] that made it (arrow-json
/// owns the decoder itself).
pub(super) type SharedFound = Arc<Mutex<Found>>;

/// Decodes the records (the root struct) into their columns. Each key is looked up through
/// [`crate::schema::KeyKinds`], which predicts that a record carries its keys in the listing's
/// order (records of a listing do): a string comparison a key, where arrow-json's own struct
/// decoder hashes every key with SipHash once a schema has 16 fields or more. A key given twice
/// counts with its last value, and a key the schema lacks is skipped, as arrow-json does; both
/// are recorded in the keys found, as the scan records them.
pub(super) struct RecordsDecoder {
    fields: Fields,
    columns: Vec<Box<dyn ArrayDecoder>>,
    /// Column of each key, by name.
    index: HashMap<String, usize>,
    found: SharedFound,
    /// The column of each key slot of `found.keys` (`None`: a key the schema lacks).
    slot_columns: Vec<Option<usize>>,
    /// The keys that name a record (see [`id_digest`]).
    id_keys: Vec<String>,
    /// The slot of each id key, once seen.
    watched_slots: [Option<usize>; MAX_ID_PARTS],
    /// Tape position of each column's value in each row (column-major; 0, the tape's null,
    /// where a record lacks the key).
    positions: Vec<u32>,
}

impl RecordsDecoder {
    pub(super) fn new(
        ctx: &DecoderContext,
        fields: &Fields,
        found: SharedFound,
        id_keys: Vec<String>,
    ) -> Result<Self, ArrowError> {
        let columns = fields
            .iter()
            .map(|f| ctx.make_decoder(f, true))
            .collect::<Result<_, _>>()?;
        let mut index = HashMap::with_capacity(fields.len());
        for (i, f) in fields.iter().enumerate() {
            index.entry(f.name().clone()).or_insert(i);
        }
        Ok(RecordsDecoder {
            fields: fields.clone(),
            columns,
            index,
            found,
            slot_columns: Vec::new(),
            id_keys,
            watched_slots: [None; MAX_ID_PARTS],
            positions: Vec::new(),
        })
    }

    /// Walks the records at `pos`: notes where each column's values are, and what the keys
    /// carried.
    fn walk(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<(), ArrowError> {
        let rows = pos.len();
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        // Taken (emptied) since the last batch: the slots start again.
        if found.keys.len() < self.slot_columns.len() {
            self.slot_columns.clear();
            self.watched_slots = [None; MAX_ID_PARTS];
        }
        for (row, &p) in pos.iter().enumerate() {
            let TapeElement::StartObject(end) = tape.get(p) else {
                return Err(tape.error(p, "{"));
            };
            let mut watched_values = [None; MAX_ID_PARTS];
            let mut cur = p + 1;
            while cur < end {
                let TapeElement::String(s) = tape.get(cur) else {
                    return Err(tape.error(cur, "field name"));
                };
                let name = tape.get_string(s);
                let slot = found.keys.slot(name);
                if slot == self.slot_columns.len() {
                    self.slot_columns.push(self.index.get(name).copied());
                    if let Some(part) = self.id_keys.iter().position(|k| k == name) {
                        self.watched_slots[part] = Some(slot);
                    }
                }
                let value = cur + 1;
                found.keys.add(slot, kind_of(tape, value)?);
                if let Some(c) = self.slot_columns[slot] {
                    self.positions[c * rows + row] = value;
                }
                if let Some(part) = self.watched_slots.iter().position(|w| *w == Some(slot)) {
                    watched_values[part] = Some(value);
                }
                cur = tape.next(value, "field value")?;
            }
            if !self.id_keys.is_empty() {
                let texts = watched_values.map(|v| v.and_then(|v| id_text(tape, v)));
                found.ids.extend(id_digest(&texts[..self.id_keys.len()]));
            }
        }
        found.records += rows;
        Ok(())
    }
}

/// The kind of the value at `p`, as the key scan classifies it.
fn kind_of(tape: &Tape<'_>, p: u32) -> Result<Kinds, ArrowError> {
    Ok(match tape.get(p) {
        TapeElement::Null => Kinds::NULL,
        TapeElement::True | TapeElement::False => Kinds::BOOL,
        TapeElement::String(i) if tape.get_string(i).is_empty() => Kinds::EMPTY_STR,
        TapeElement::String(_) => Kinds::STR,
        // The tape takes any run of number characters; the scan takes JSON numbers only.
        TapeElement::Number(i) => {
            number_kind(tape.get_string(i)).ok_or_else(|| tape.error(p, "a JSON number"))?
        }
        TapeElement::StartObject(_) | TapeElement::StartList(_) => Kinds::NESTED,
        // Only produced when serialising Rust values into the tape, never from JSON text.
        _ => return Err(tape.error(p, "a JSON value")),
    })
}

/// The text of an id key's value that the digest is taken of (as the key scan takes it);
/// `None` for null, an object or an array.
fn id_text<'t>(tape: &Tape<'t>, p: u32) -> Option<&'t str> {
    match tape.get(p) {
        TapeElement::String(i) | TapeElement::Number(i) => Some(tape.get_string(i)),
        TapeElement::True => Some("true"),
        TapeElement::False => Some("false"),
        TapeElement::Null => None,
        _ => None,
    }
}

impl ArrayDecoder for RecordsDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let rows = pos.len();
        self.positions.clear();
        self.positions.resize(self.fields.len() * rows, 0);
        self.walk(tape, pos)?;
        let arrays = self
            .columns
            .iter_mut()
            .enumerate()
            .map(|(c, d)| d.decode(tape, &self.positions[c * rows..(c + 1) * rows]))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(StructArray::try_new_with_length(
            self.fields.clone(),
            arrays,
            None,
            rows,
        )?))
    }
}
