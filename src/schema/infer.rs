//! One pass over a page's raw `results` array that records, per key, which kinds of JSON value it
//! carried, counts the records and takes the digests of the listing's unique key (the listing
//! checks use them). Keys are looked up without allocating; values are classified without
//! being materialised, so this costs far less than building `serde_json::Value`s. The Arrow
//! decoder records the same facts from its tape (`decode::records`); this scan is the way for
//! a page the decoder cannot read.

use std::borrow::Cow;
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

    /// The slot of `key`, a new one (the next) for a key not seen before.
    pub(crate) fn slot(&mut self, key: &str) -> usize {
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

    /// Notes that the key in `slot` carried `kinds`.
    pub(crate) fn add(&mut self, slot: usize, kinds: Kinds) {
        self.keys[slot].1.insert(kinds);
    }

    /// Keys seen so far (and so the slot the next new key gets).
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
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

/// What reading a page's records found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub records: usize,
    /// Keys of those records and the kinds of their values.
    pub keys: KeyKinds,
    /// Digests of the values of the listing's unique key, one per record holding it (see
    /// [`id_digest`]).
    pub ids: Vec<u64>,
}

/// The keys of the records of `json`, for tests.
#[cfg(test)]
pub(crate) fn keys_of(json: &str) -> KeyKinds {
    scan_records(json.as_bytes(), &[]).expect("records").keys
}

/// The most keys that name a record: a key, and the key it is unique per.
pub(crate) const MAX_ID_PARTS: usize = 2;

/// A record's id as a digest, from the texts of the values of the keys that name it (`per`'s,
/// then the key's; see `datasets::UniqueKey`): enough to tell whether a record was seen twice
/// (two different ids share a digest with odds of about n² / 2⁶⁵, which would only make a
/// consistent snapshot be read again). The scan and the decoder take it of the same texts, so
/// pages read either way agree. `None` when the key itself has no value, or an empty one: an
/// anonymized customer (`"crm__customer_id": ""`) names no record, and many share that value.
pub(crate) fn id_digest(texts: &[Option<&str>]) -> Option<u64> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let (key, per) = texts.split_last()?;
    let key = key.filter(|k| !k.is_empty())?;
    // A `per` key a record lacks counts as empty.
    let per: Vec<&str> = per.iter().map(|p| p.unwrap_or("")).collect();
    // "123" and 123 name the same record: the column holds the same text.
    Some(BuildHasherDefault::<DefaultHasher>::default().hash_one((per, key)))
}

/// The text of a unique key's raw JSON value that [`id_digest`] takes; `None` for null, an
/// object or an array, which name no record (as a missing key does not).
fn id_text(raw: &str) -> Option<Cow<'_, str>> {
    match raw.as_bytes().first() {
        Some(b'{' | b'[') => None,
        Some(b'n') => None,
        Some(b'"') => {
            let inner = &raw[1..raw.len() - 1];
            if inner.contains('\\') {
                serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
            } else {
                Some(Cow::Borrowed(inner))
            }
        }
        _ => Some(Cow::Borrowed(raw)),
    }
}

/// Scans a JSON array of flat records; with `id_keys` (the keys that name a record, see
/// [`id_digest`]), also takes the digests of their values.
pub(crate) fn scan_records(
    results_json: &[u8],
    id_keys: &[&str],
) -> Result<Found, serde_json::Error> {
    assert!(
        id_keys.len() <= MAX_ID_PARTS,
        "a record is named by at most two keys"
    );
    let mut found = Found::default();
    let scan = Scan {
        found: &mut found,
        id_keys,
        watched_slots: [None; MAX_ID_PARTS],
    };
    // One check of the whole array is cheaper than serde_json's check of each string; bytes
    // that are not UTF-8 are read as they are, for an error that says where.
    match std::str::from_utf8(results_json) {
        Ok(text) => scan.run(serde_json::Deserializer::from_str(text))?,
        Err(_) => scan.run(serde_json::Deserializer::from_slice(results_json))?,
    }
    Ok(found)
}

/// What a scan fills, and the keys it takes digests of.
struct Scan<'a, 'k> {
    found: &'a mut Found,
    id_keys: &'k [&'k str],
    /// The slot of each id key, once seen.
    watched_slots: [Option<usize>; MAX_ID_PARTS],
}

impl Scan<'_, '_> {
    fn run<'de, R: serde_json::de::Read<'de>>(
        mut self,
        mut de: serde_json::Deserializer<R>,
    ) -> Result<(), serde_json::Error> {
        self.found.records = RecordsSeed(&mut self).deserialize(&mut de)?;
        de.end()
    }

    /// Which id key the key in `slot` is, if any.
    fn watched(&mut self, slot: usize) -> Option<usize> {
        for (part, key) in self.id_keys.iter().enumerate() {
            match self.watched_slots[part] {
                Some(watched) if watched == slot => return Some(part),
                Some(_) => {}
                None if self.found.keys.keys[slot].0 == *key => {
                    self.watched_slots[part] = Some(slot);
                    return Some(part);
                }
                None => {}
            }
        }
        None
    }
}

struct RecordsSeed<'a, 'b, 'k>(&'a mut Scan<'b, 'k>);

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

struct RecordSeed<'a, 'b, 'k>(&'a mut Scan<'b, 'k>);

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
        let mut watched: [Option<&'de RawValue>; MAX_ID_PARTS] = [None; MAX_ID_PARTS];
        while let Some(slot) = map.next_key_seed(KeySeed(&mut scan.found.keys))? {
            let kinds = match scan.watched(slot) {
                Some(part) => {
                    let raw: &'de RawValue = map.next_value()?;
                    watched[part] = Some(raw);
                    // One small value read again: cheaper than a second pass over the page.
                    KindSeed
                        .deserialize(&mut serde_json::Deserializer::from_str(raw.get()))
                        .map_err(de::Error::custom)?
                }
                None => map.next_value_seed(KindSeed)?,
            };
            scan.found.keys.add(slot, kinds);
        }
        if !scan.id_keys.is_empty() {
            let texts: Vec<Option<Cow<'_, str>>> = watched[..scan.id_keys.len()]
                .iter()
                .map(|raw| raw.and_then(|raw| id_text(raw.get())))
                .collect();
            let texts: Vec<Option<&str>> = texts.iter().map(|t| t.as_deref()).collect();
            scan.found.ids.extend(id_digest(&texts));
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

/// The kind of a JSON number given as its text, as [`KindSeed`] (serde_json) classifies it;
/// `None` for text that is not a JSON number, or one out of `f64`'s range, which serde_json
/// rejects.
pub(crate) fn number_kind(text: &str) -> Option<Kinds> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let int_len = digits.bytes().take_while(u8::is_ascii_digit).count();
    let (int, rest) = digits.split_at(int_len);
    if int.is_empty() || (int.len() > 1 && int.starts_with('0')) {
        return None;
    }
    let mut rest = rest.as_bytes();
    let mut fraction_or_exponent = false;
    if let Some(after) = rest.strip_prefix(b".") {
        let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &after[n..];
        fraction_or_exponent = true;
    }
    if let Some(after) = rest.strip_prefix(b"e").or_else(|| rest.strip_prefix(b"E")) {
        let after = after
            .strip_prefix(b"+")
            .or_else(|| after.strip_prefix(b"-"))
            .unwrap_or(after);
        let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        rest = &after[n..];
        fraction_or_exponent = true;
    }
    if !rest.is_empty() {
        return None;
    }
    let float = || {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|_| Kinds::FLOAT)
    };
    if fraction_or_exponent {
        return float();
    }
    match int.parse::<u64>() {
        // Beyond u64, serde_json reads an integer as a float.
        Err(_) => float(),
        Ok(v) if !negative && v > i64::MAX as u64 => Some(Kinds::HUGE_INT),
        Ok(v) if !negative => Some(int_kind(v)),
        // `-0`, and a negative beyond i64, serde_json reads as a float.
        Ok(v) if v == 0 || v > i64::MIN.unsigned_abs() => Some(Kinds::FLOAT),
        Ok(v) => Some(int_kind(v)),
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
        let found = scan_records(json.as_bytes(), &[]).unwrap();
        (found.records, found.keys)
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
    fn the_unique_key_is_classified_and_digested_as_text() {
        let found = scan_records(
            br#"[{"a": 1, "id": "7"}, {"id": 8.5}, {"b": true}, {"id": ""}, {"id": 7},
                 {"id": "\u0037"}, {"id": {"x": 1}}, {"id": null}, {"id": "null"}]"#,
            &["id"],
        )
        .unwrap();
        assert_eq!(found.records, 9);
        let texts = ["7", "8.5", "7", "7", "null"];
        let want: Vec<u64> = texts.iter().filter_map(|t| id_digest(&[Some(t)])).collect();
        assert_eq!(
            found.ids, want,
            "an object, null and an empty id name no record"
        );
        let mut kinds = Kinds::STR;
        for k in [
            Kinds::FLOAT,
            Kinds::EMPTY_STR,
            Kinds::INT,
            Kinds::NESTED,
            Kinds::NULL,
        ] {
            kinds.insert(k);
        }
        assert_eq!(found.keys.get("id"), Some(kinds));
    }

    #[test]
    fn a_key_unique_per_another_is_digested_with_it() {
        let found = scan_records(
            br#"[{"c": "A", "id": "1"}, {"id": "1", "c": "B"}, {"c": "A", "id": ""}, {"id": "1"}]"#,
            &["c", "id"],
        )
        .unwrap();
        let want: Vec<u64> = [("A", "1"), ("B", "1"), ("", "1")]
            .iter()
            .filter_map(|(c, id)| id_digest(&[Some(c), Some(id)]))
            .collect();
        assert_eq!(found.ids, want);
        assert_ne!(found.ids[0], found.ids[1], "one customer in two campaigns");
        assert_eq!(found.ids[2], id_digest(&[None, Some("1")]).unwrap());
    }

    /// `number_kind` classifies number text as serde_json reads the same number.
    #[test]
    fn number_text_is_classified_as_serde_json_reads_it() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "2.5",
            "1e3",
            "1E+3",
            "-1e-3",
            "9007199254740992",
            "9007199254740993",
            "-9007199254740993",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775808",
            "-9223372036854775809",
            "1e400",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "1e",
            "1.5.2",
            "--1",
            "1x",
            "",
        ] {
            let mut de = serde_json::Deserializer::from_str(text);
            let serde = KindSeed
                .deserialize(&mut de)
                .and_then(|k| de.end().map(|()| k));
            assert_eq!(number_kind(text), serde.ok(), "{text:?}");
        }
    }

    #[test]
    fn rejects_non_records() {
        for json in ["[1]", "{}", "[{\"a\": 1}"] {
            assert!(scan_records(json.as_bytes(), &[]).is_err(), "{json}");
        }
    }
}
