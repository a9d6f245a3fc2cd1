//! One page of a DRF page-number listing, kept as raw bytes: the envelope is parsed, `results`
//! is scanned for its keys and value kinds but left as JSON text for the Arrow decoder.

use std::ops::Range;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::BodyError;
use crate::schema::{scan_records, KeyKinds};

#[derive(Debug)]
pub struct Page {
    pub number: u32,
    /// The listing's total as this page reported it.
    pub count: u64,
    /// `next` was not null. Only its presence is used: real `next` links may name another host,
    /// plain http, or lack the `?`, so the client builds page URLs itself.
    pub has_next: bool,
    /// Records in `results`.
    pub records: usize,
    /// Keys of those records and the kinds of their values.
    pub keys: KeyKinds,
    /// Digests of the values of the listing's unique key, one per record holding it (see
    /// [`Page::parse`]).
    pub ids: Vec<u64>,
    body: Bytes,
    results: Range<usize>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    count: u64,
    next: Option<IgnoredAny>,
    #[serde(borrow)]
    results: &'a RawValue,
}

impl Page {
    /// Parses and scans a page body; with `unique_key`, also takes the digests of that key's
    /// values. The error says what is wrong, without the body.
    pub fn parse(number: u32, body: Bytes, unique_key: Option<&str>) -> Result<Page, BodyError> {
        let envelope: Envelope = serde_json::from_slice(&body).map_err(BodyError::NotAPage)?;
        let (count, has_next) = (envelope.count, envelope.next.is_some());
        let results = envelope.results.get();
        let start = results.as_ptr() as usize - body.as_ptr() as usize;
        Self::scanned(
            number,
            count,
            has_next,
            &body,
            results,
            start..start + results.len(),
            unique_key,
        )
    }

    /// A plain JSON array of records (the answer of an endpoint that does not page), as the
    /// one and last page of its listing.
    pub fn from_array(body: Bytes, unique_key: Option<&str>) -> Result<Page, BodyError> {
        // Whitespace around the array is allowed; the scan rejects anything else.
        let text = std::str::from_utf8(&body).map_err(|_| BodyError::NotAnArray)?;
        let trimmed = text.trim();
        let start = trimmed.as_ptr() as usize - body.as_ptr() as usize;
        let range = start..start + trimmed.len();
        let mut page = Self::scanned(1, 0, false, &body, trimmed, range, unique_key)?;
        page.count = page.records as u64;
        Ok(page)
    }

    /// A page whose records are `json`, which is `body[results]`, already checked to be UTF-8
    /// (a second check would be another pass over every page).
    fn scanned(
        number: u32,
        count: u64,
        has_next: bool,
        body: &Bytes,
        json: &str,
        results: Range<usize>,
        unique_key: Option<&str>,
    ) -> Result<Page, BodyError> {
        let mut keys = KeyKinds::default();
        let records = scan_records(json, &mut keys).map_err(BodyError::NotRecords)?;
        let ids = match unique_key {
            Some(key) => ids::digests(json, key).map_err(BodyError::NotRecords)?,
            None => Vec::new(),
        };
        Ok(Page {
            number,
            count,
            has_next,
            records,
            keys,
            ids,
            results,
            body: body.clone(),
        })
    }

    /// The raw `results` array.
    pub fn results_json(&self) -> &[u8] {
        &self.body[self.results.clone()]
    }
}

/// The values of one key of every record, as digests: enough to tell whether a record was seen
/// twice (two different values share a digest with odds of about n² / 2⁶⁵, which would only
/// make a consistent snapshot be read again).
mod ids {
    use std::fmt;
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde_json::value::RawValue;

    pub(super) fn digests(results_json: &str, key: &str) -> Result<Vec<u64>, serde_json::Error> {
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_str(results_json);
        de.deserialize_seq(Records { key, out: &mut out })?;
        Ok(out)
    }

    struct Records<'k, 'o> {
        key: &'k str,
        out: &'o mut Vec<u64>,
    }

    impl<'de> Visitor<'de> for Records<'_, '_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of records")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(id) = seq.next_element_seed(Record(self.key))? {
                self.out.extend(id);
            }
            Ok(())
        }
    }

    struct Record<'k>(&'k str);

    impl<'de> DeserializeSeed<'de> for Record<'_> {
        type Value = Option<u64>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u64>, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Record<'_> {
        type Value = Option<u64>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a record (a JSON object)")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<u64>, A::Error> {
            let mut id = None;
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == self.0 {
                    let raw: &'de RawValue = map.next_value()?;
                    // "123" and 123 name the same record: the column holds the same text.
                    let text = raw.get();
                    let text = text
                        .strip_prefix('"')
                        .and_then(|t| t.strip_suffix('"'))
                        .unwrap_or(text);
                    id = Some(BuildHasherDefault::<DefaultHasher>::default().hash_one(text));
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_and_keeps_results_raw() {
        let body = br#"{"count": 3, "next": "http://other.host/api/v1/x/from_date=1&page=2", "previous": null,
                        "results": [{"a": 1}, {"a": "x"}]}"#;
        let p = Page::parse(1, Bytes::from_static(body), None).unwrap();
        assert_eq!((p.count, p.has_next, p.records), (3, true, 2));
        assert_eq!(p.results_json(), br#"[{"a": 1}, {"a": "x"}]"#);
    }

    #[test]
    fn last_page_and_empty_listing() {
        let p = Page::parse(
            1,
            Bytes::from_static(br#"{"count":0,"next":null,"previous":null,"results":[]}"#),
            None,
        )
        .unwrap();
        assert_eq!((p.count, p.has_next, p.records), (0, false, 0));
    }

    #[test]
    fn digests_of_the_unique_key_match_across_strings_and_numbers() {
        let body =
            br#"{"count": 3, "next": null, "results": [{"id": "7", "a": 1}, {"a": 2}, {"id": 7}]}"#;
        let p = Page::parse(1, Bytes::from_static(body), Some("id")).unwrap();
        assert_eq!(p.ids.len(), 2);
        assert_eq!(p.ids[0], p.ids[1]);
        let a = Page::from_array(
            Bytes::from_static(b" [{\"id\": 1}, {\"id\": 2}]\n"),
            Some("id"),
        )
        .unwrap();
        assert_eq!((a.count, a.records, a.has_next), (2, 2, false));
        assert_ne!(a.ids[0], a.ids[1]);
        assert!(Page::from_array(Bytes::from_static(br#"{"count": 0}"#), None).is_err());
    }

    #[test]
    fn rejects_what_is_not_a_page() {
        for body in [
            &b"<html>"[..],
            br#"{"results": []}"#,
            br#"{"count": 1, "results": [1]}"#,
            br#"{"count": 1, "results": [{"a": 1}"#,
        ] {
            assert!(Page::parse(1, Bytes::from_static(body), None).is_err());
        }
    }
}
