//! The records of a page (the root struct) into their columns.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{ArrayRef, StructArray};
use arrow_json::reader::{ArrayDecoder, DecoderContext, Tape, TapeElement};
use arrow_schema::{ArrowError, Fields};

/// Decodes the records (the root struct) into their columns. Each record's keys are matched
/// to columns by predicting that a record carries its keys in the previous record's order
/// (records of a listing do), which costs a string comparison a key; arrow-json's own struct
/// decoder hashes every key with SipHash once a schema has 16 fields or more. A key given
/// twice counts with its last value, and a key the schema lacks is skipped, as arrow-json does.
pub(super) struct RecordsDecoder {
    fields: Fields,
    columns: Vec<Box<dyn ArrayDecoder>>,
    /// Column of each key, for keys out of the predicted order.
    index: HashMap<String, usize>,
    /// The columns of the previous record's keys, in its order: the prediction.
    previous: Vec<usize>,
    current: Vec<usize>,
    /// Tape position of each column's value in each row (column-major; 0, the tape's null,
    /// where a record lacks the key).
    positions: Vec<u32>,
}

impl RecordsDecoder {
    pub(super) fn new(ctx: &DecoderContext, fields: &Fields) -> Result<Self, ArrowError> {
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
            previous: Vec::new(),
            current: Vec::new(),
            positions: Vec::new(),
        })
    }

    /// The column of the `k`-th key of a record, `name`.
    fn column_of(&self, k: usize, name: &str) -> Option<usize> {
        match self.previous.get(k) {
            Some(&c) if self.fields[c].name() == name => Some(c),
            _ => self.index.get(name).copied(),
        }
    }
}

impl ArrayDecoder for RecordsDecoder {
    fn decode(&mut self, tape: &Tape<'_>, pos: &[u32]) -> Result<ArrayRef, ArrowError> {
        let rows = pos.len();
        self.positions.clear();
        self.positions.resize(self.fields.len() * rows, 0);
        for (row, &p) in pos.iter().enumerate() {
            let TapeElement::StartObject(end) = tape.get(p) else {
                return Err(tape.error(p, "{"));
            };
            self.current.clear();
            let mut cur = p + 1;
            while cur < end {
                let TapeElement::String(s) = tape.get(cur) else {
                    return Err(tape.error(cur, "field name"));
                };
                if let Some(c) = self.column_of(self.current.len(), tape.get_string(s)) {
                    self.positions[c * rows + row] = cur + 1;
                    self.current.push(c);
                }
                cur = tape.next(cur + 1, "field value")?;
            }
            std::mem::swap(&mut self.previous, &mut self.current);
        }
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
