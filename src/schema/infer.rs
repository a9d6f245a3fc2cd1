//! One pass over a page's raw `results` array that records, per key, which kinds of JSON value it
//! carried (and counts the records), and hands the raw text of one watched key's values to the
//! caller (the listing checks digest the unique key's). Keys are looked up without allocating;
//! values are classified without being materialised, so this costs far less than building
//! `serde_json::Value`s.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::types::{Kinds, F64_EXACT_INT};

/// The keys seen in some records, in order of first appearance, with the kinds of their values.
#[derive(Clone, Debug, Default)]
pub struct KeyKinds {
    keys: Vec<(String, Kinds)>,
    index: HashMap<String, usize>,
    /// The slot of the key looked up last. Records of one listing almost always carry their
    /// keys in the same order, so the next key is usually the next slot: a string comparison
    /// instead of hashing every key of every record.
    last: usize,
}

/// Equal when the same keys carried the same kinds, in the same order.
impl PartialEq for KeyKinds {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
    }
}

impl Eq for KeyKinds {}

impl KeyKinds {
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, Kinds)> {
        self.keys.iter().map(|(k, v)| (k.as_str(), *v))
    }

    #[cfg(test)]
    pub(crate) fn get(&self, key: &str) -> Option<Kinds> {
        self.index.get(key).map(|&i| self.keys[i].1)
    }

    fn slot(&mut self, key: &str) -> usize {
        let guess = self.last + 1;
        let i = match self.keys.get(guess) {
            Some((k, _)) if k == key => guess,
            _ => match self.keys.first() {
                // A record's first key is usually the listing's first key.
                Some((k, _)) if k == key => 0,
                _ => self.lookup(key),
            },
        };
        self.last = i;
        i
    }

    fn lookup(&mut self, key: &str) -> usize {
        if let Some(&i) = self.index.get(key) {
            return i;
        }
        let i = self.keys.len();
        self.keys.push((key.to_owned(), Kinds::empty()));
        self.index.insert(key.to_owned(), i);
        i
    }

    /// Adds another scan's keys after this one's (keeps first-appearance order).
    pub(crate) fn merge(&mut self, other: &KeyKinds) {
        for (key, kinds) in other.iter() {
            let i = self.slot(key);
            self.keys[i].1.insert(kinds);
        }
    }
}

/// Scans a JSON array of flat records. Returns the number of records.
#[cfg(test)]
pub(crate) fn scan_records(
    results_json: &str,
    into: &mut KeyKinds,
) -> Result<usize, serde_json::Error> {
    scan_records_watching(results_json.as_bytes(), into, None)
}

/// One key whose values the scan hands over as their raw JSON text (`"7"` with its quotes).
pub(crate) struct Watch<'w> {
    pub(crate) key: &'w str,
    pub(crate) each: &'w mut dyn FnMut(&str),
}

/// Scans a JSON array of flat records, handing every value of `watch`'s key to it, in record
/// order. Returns the number of records.
pub(crate) fn scan_records_watching(
    results_json: &[u8],
    into: &mut KeyKinds,
    watch: Option<Watch<'_>>,
) -> Result<usize, serde_json::Error> {
    let scan = Scan {
        keys: into,
        watch,
        watched_slot: None,
    };
    // One check of the whole array is cheaper than serde_json's check of each string; bytes
    // that are not UTF-8 are read as they are, for an error that says where.
    match std::str::from_utf8(results_json) {
        Ok(text) => scan.run(serde_json::Deserializer::from_str(text)),
        Err(_) => scan.run(serde_json::Deserializer::from_slice(results_json)),
    }
}

/// What a scan fills and watches.
struct Scan<'a, 'w> {
    keys: &'a mut KeyKinds,
    watch: Option<Watch<'w>>,
    /// The watched key's slot, once seen.
    watched_slot: Option<usize>,
}

impl Scan<'_, '_> {
    fn run<'de, R: serde_json::de::Read<'de>>(
        mut self,
        mut de: serde_json::Deserializer<R>,
    ) -> Result<usize, serde_json::Error> {
        let n = RecordsSeed(&mut self).deserialize(&mut de)?;
        de.end()?;
        Ok(n)
    }

    fn is_watched(&mut self, slot: usize) -> bool {
        match (&self.watch, self.watched_slot) {
            (None, _) => false,
            (Some(_), Some(watched)) => slot == watched,
            (Some(w), None) => {
                let hit = self.keys.keys[slot].0 == w.key;
                if hit {
                    self.watched_slot = Some(slot);
                }
                hit
            }
        }
    }
}

struct RecordsSeed<'a, 'b, 'w>(&'a mut Scan<'b, 'w>);

impl<'de> DeserializeSeed<'de> for RecordsSeed<'_, '_, '_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for RecordsSeed<'_, '_, '_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of records")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
        let mut n = 0;
        while seq.next_element_seed(RecordSeed(&mut *self.0))?.is_some() {
            n += 1;
        }
        Ok(n)
    }
}

struct RecordSeed<'a, 'b, 'w>(&'a mut Scan<'b, 'w>);

impl<'de> DeserializeSeed<'de> for RecordSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record (a JSON object)")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let scan = self.0;
        // A key given twice in one record counts once, with its last value (as a decoder reads it).
        let mut watched: Option<&'de RawValue> = None;
        while let Some(slot) = map.next_key_seed(KeySeed(&mut *scan.keys))? {
            let kinds = if scan.is_watched(slot) {
                let raw: &'de RawValue = map.next_value()?;
                watched = Some(raw);
                // One small value read again: cheaper than a second pass over the page.
                KindSeed
                    .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                    .map_err(de::Error::custom)?
            } else {
                map.next_value_seed(KindSeed)?
            };
            scan.keys.keys[slot].1.insert(kinds);
        }
        if let (Some(raw), Some(w)) = (watched, &mut scan.watch) {
            (w.each)(raw.get());
        }
        Ok(())
    }
}

/// Resolves a key to its slot, borrowing the key from the input whenever it has no escapes.
struct KeySeed<'a>(&'a mut KeyKinds);

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = usize;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        Ok(self.0.slot(v))
    }
}

/// Classifies one value.
struct KindSeed;

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = Kinds;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Kinds, D::Error> {
        d.deserialize_any(self)
    }
}

fn int_kind(magnitude: u64) -> Kinds {
    if magnitude <= F64_EXACT_INT {
        Kinds::INT
    } else {
        Kinds::BIG_INT
    }
}

impl<'de> Visitor<'de> for KindSeed {
    type Value = Kinds;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Kinds, E> {
        Ok(Kinds::BOOL)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Kinds, E> {
        Ok(int_kind(v.unsigned_abs()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Kinds, E> {
        Ok(if v > i64::MAX as u64 {
            Kinds::HUGE_INT
        } else {
            int_kind(v)
        })
    }
    fn visit_f64<E>(self, _: f64) -> Result<Kinds, E> {
        // serde_json reports integer literals beyond u64 as f64 as well; those are rare enough
        // that treating them as fractions (-> Float64 or Utf8) is acceptable.
        Ok(Kinds::FLOAT)
    }
    fn visit_str<E>(self, v: &str) -> Result<Kinds, E> {
        Ok(if v.is_empty() {
            Kinds::EMPTY_STR
        } else {
            Kinds::STR
        })
    }
    fn visit_unit<E>(self) -> Result<Kinds, E> {
        Ok(Kinds::NULL)
    }
    fn visit_none<E>(self) -> Result<Kinds, E> {
        Ok(Kinds::NULL)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Kinds, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Kinds::NESTED)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Kinds, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Kinds::NESTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(json: &str) -> (usize, KeyKinds) {
        let mut k = KeyKinds::default();
        let n = scan_records(json, &mut k).unwrap();
        (n, k)
    }

    #[test]
    fn classifies_every_kind_and_keeps_first_seen_order() {
        let (n, k) = scan(
            r#"[{"b": "x", "a": 1, "c": 2.5, "d": true, "e": null, "f": ""},
                {"g": 9007199254740993, "h": 18446744073709551615, "i": {"x": [1]}, "j": [], "a": -4}]"#,
        );
        assert_eq!(n, 2);
        let keys: Vec<_> = k.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["b", "a", "c", "d", "e", "f", "g", "h", "i", "j"]);
        assert_eq!(k.get("b"), Some(Kinds::STR));
        assert_eq!(k.get("a"), Some(Kinds::INT));
        assert_eq!(k.get("c"), Some(Kinds::FLOAT));
        assert_eq!(k.get("d"), Some(Kinds::BOOL));
        assert_eq!(k.get("e"), Some(Kinds::NULL));
        assert_eq!(k.get("f"), Some(Kinds::EMPTY_STR));
        assert_eq!(k.get("g"), Some(Kinds::BIG_INT));
        assert_eq!(k.get("h"), Some(Kinds::HUGE_INT));
        assert_eq!(k.get("i"), Some(Kinds::NESTED));
        assert_eq!(k.get("j"), Some(Kinds::NESTED));
    }

    #[test]
    fn escaped_keys_are_unescaped() {
        let (_, k) = scan(r#"[{"Fast ansatt over 50 %": 1, "sp\u00f8rsm\u00e5l?": "x"}]"#);
        assert!(k.get("Fast ansatt over 50 %").is_some());
        assert!(k.get("spørsmål?").is_some());
    }

    #[test]
    fn the_watched_key_is_classified_and_handed_over_raw() {
        let mut k = KeyKinds::default();
        let mut seen = Vec::new();
        let mut each = |raw: &str| seen.push(raw.to_owned());
        let n = scan_records_watching(
            br#"[{"a": 1, "id": "7"}, {"id": 8.5}, {"b": true}, {"id": ""}]"#,
            &mut k,
            Some(Watch {
                key: "id",
                each: &mut each,
            }),
        )
        .unwrap();
        assert_eq!(n, 4);
        assert_eq!(seen, ["\"7\"", "8.5", "\"\""]);
        let mut want = Kinds::STR;
        want.insert(Kinds::FLOAT);
        want.insert(Kinds::EMPTY_STR);
        assert_eq!(k.get("id"), Some(want));
    }

    #[test]
    fn rejects_non_records() {
        let mut k = KeyKinds::default();
        assert!(scan_records("[1]", &mut k).is_err());
        assert!(scan_records("{}", &mut k).is_err());
        assert!(scan_records("[{\"a\": 1}", &mut k).is_err());
    }
}
