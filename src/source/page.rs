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
    /// Parses and scans a page body. The error says what is wrong, without the body.
    pub fn parse(number: u32, body: Bytes) -> Result<Page, BodyError> {
        let envelope: Envelope = serde_json::from_slice(&body).map_err(BodyError::NotAPage)?;
        let results = envelope.results.get();
        let start = results.as_ptr() as usize - body.as_ptr() as usize;
        let mut keys = KeyKinds::default();
        let records = scan_records(results, &mut keys).map_err(BodyError::NotRecords)?;
        Ok(Page {
            number,
            count: envelope.count,
            has_next: envelope.next.is_some(),
            records,
            keys,
            results: start..start + results.len(),
            body: body.clone(),
        })
    }

    /// The raw `results` array.
    pub fn results_json(&self) -> &[u8] {
        &self.body[self.results.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_envelope_and_keeps_results_raw() {
        let body = br#"{"count": 3, "next": "http://other.host/api/v1/x/from_date=1&page=2", "previous": null,
                        "results": [{"a": 1}, {"a": "x"}]}"#;
        let p = Page::parse(1, Bytes::from_static(body)).unwrap();
        assert_eq!((p.count, p.has_next, p.records), (3, true, 2));
        assert_eq!(p.results_json(), br#"[{"a": 1}, {"a": "x"}]"#);
    }

    #[test]
    fn last_page_and_empty_listing() {
        let p = Page::parse(
            1,
            Bytes::from_static(br#"{"count":0,"next":null,"previous":null,"results":[]}"#),
        )
        .unwrap();
        assert_eq!((p.count, p.has_next, p.records), (0, false, 0));
    }

    #[test]
    fn rejects_what_is_not_a_page() {
        for body in [
            &b"<html>"[..],
            br#"{"results": []}"#,
            br#"{"count": 1, "results": [1]}"#,
            br#"{"count": 1, "results": [{"a": 1}"#,
        ] {
            assert!(Page::parse(1, Bytes::from_static(body)).is_err());
        }
    }
}
