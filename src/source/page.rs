//! One page of a DRF page-number listing, kept as raw bytes: the envelope is parsed, and
//! `results` is read for its keys and value kinds (by the caller's decoder, or else by the key
//! scan) but kept as JSON text, for an Arrow decoder under another schema.

use std::ops::Range;

use bytes::Bytes;
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::BodyError;
use crate::schema::{scan_records, Found, KeyKinds};

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
    /// Digests of the values of the listing's unique key, one per record holding it.
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

/// The envelope without its records: what [`sliced`] parses.
#[derive(Deserialize)]
struct Head {
    count: u64,
    next: Option<IgnoredAny>,
}

/// Where a page body's `results` array lies, found without reading the records: DRF writes
/// `count`, `next` and `previous`, then `results` last. So the body up to the first
/// `"results"`, closed with `"results":[]}`, must be a whole envelope, and the array must run
/// from the `[` after that key to the `]` before the body's closing `}`. Returns `count`,
/// whether `next` is set, and the array's range; `None` when the body is not laid out so (the
/// caller then parses it whole). The array itself is read once, by the key scan, which
/// rejects anything that is not one array of records (and the caller then parses the body
/// whole, to tell what it is).
fn sliced(body: &[u8]) -> Option<(u64, bool, Range<usize>)> {
    let at = results_key(body)?;
    let after_key = body[at + RESULTS.len()..].trim_ascii_start();
    let after_colon = after_key.strip_prefix(b":")?.trim_ascii_start();
    let start = body.len() - after_colon.len();
    let end = body
        .trim_ascii_end()
        .strip_suffix(b"}")?
        .trim_ascii_end()
        .len();
    if body.get(start) != Some(&b'[') || end <= start || body[end - 1] != b']' {
        return None;
    }
    let mut head = Vec::with_capacity(at + 14);
    head.extend_from_slice(&body[..at]);
    head.extend_from_slice(b"\"results\":[]}");
    let head: Head = serde_json::from_slice(&head).ok()?;
    Some((head.count, head.next.is_some(), start..end))
}

const RESULTS: &[u8] = b"\"results\"";

/// Where the first string `"results"` starts, found by walking the body's strings: the same
/// bytes inside another string (a key `"previous\"results"`, say) are not it.
fn results_key(body: &[u8]) -> Option<usize> {
    let (mut in_string, mut escaped) = (false, false);
    for (at, &byte) in body.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if in_string {
            match byte {
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            if body[at..].starts_with(RESULTS) {
                return Some(at);
            }
            in_string = true;
        }
    }
    None
}

impl Page {
    /// Parses a page body and scans its records; with `id_keys`, also takes the digests of
    /// that key's values. The error says what is wrong, without the body.
    pub fn parse(number: u32, body: Bytes, id_keys: &[&str]) -> Result<Page, BodyError> {
        let (page, _) = Self::parse_with(number, body, id_keys, |_| None::<(Found, ())>)?;
        Ok(page)
    }

    /// As [`Page::parse`], but `read` is tried on the records first. What it found stands for
    /// the scan, and what else it made (decoded batches) is handed back beside the page; when
    /// it returns `None`, the scan reads the records (and says what is wrong with them).
    pub fn parse_with<R>(
        number: u32,
        body: Bytes,
        id_keys: &[&str],
        mut read: impl FnMut(&[u8]) -> Option<(Found, R)>,
    ) -> Result<(Page, Option<R>), BodyError> {
        if let Some((count, has_next, results)) = sliced(&body) {
            let page = Self::read(number, count, has_next, &body, results, id_keys, &mut read);
            if let Ok(page) = page {
                return Ok(page);
            }
        }
        let envelope: Envelope = serde_json::from_slice(&body).map_err(BodyError::NotAPage)?;
        let (count, has_next) = (envelope.count, envelope.next.is_some());
        let results = envelope.results.get();
        let start = results.as_ptr() as usize - body.as_ptr() as usize;
        let range = start..start + results.len();
        Self::read(number, count, has_next, &body, range, id_keys, &mut read)
    }

    /// A plain JSON array of records (the answer of an endpoint that does not page), as the
    /// one and last page of its listing; `read` as for [`Page::parse_with`].
    pub fn from_array_with<R>(
        body: Bytes,
        id_keys: &[&str],
        mut read: impl FnMut(&[u8]) -> Option<(Found, R)>,
    ) -> Result<(Page, Option<R>), BodyError> {
        // Whitespace around the array is allowed; the scan rejects anything else.
        let trimmed = body.trim_ascii();
        let start = trimmed.as_ptr() as usize - body.as_ptr() as usize;
        let range = start..start + trimmed.len();
        let (mut page, made) = Self::read(1, 0, false, &body, range, id_keys, &mut read)?;
        page.count = page.records as u64;
        Ok((page, made))
    }

    /// A page whose records are `body[results]`, read by `read` or else by the scan. Strings
    /// are checked to be UTF-8 as they are read, not in a pass of their own.
    fn read<R>(
        number: u32,
        count: u64,
        has_next: bool,
        body: &Bytes,
        results: Range<usize>,
        id_keys: &[&str],
        read: &mut impl FnMut(&[u8]) -> Option<(Found, R)>,
    ) -> Result<(Page, Option<R>), BodyError> {
        let json = &body[results.clone()];
        let (found, made) = match read(json) {
            Some((found, made)) => (found, Some(made)),
            None => (
                scan_records(json, id_keys).map_err(BodyError::NotRecords)?,
                None,
            ),
        };
        let page = Page {
            number,
            count,
            has_next,
            records: found.records,
            keys: found.keys,
            ids: found.ids,
            results,
            body: body.clone(),
        };
        Ok((page, made))
    }

    /// The raw `results` array.
    pub fn results_json(&self) -> &[u8] {
        &self.body[self.results.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_reader(_: &[u8]) -> Option<(Found, ())> {
        None
    }

    #[test]
    fn parses_envelope_and_keeps_results_raw() {
        let body = br#"{"count": 3, "next": "http://other.host/api/v1/x/from_date=1&page=2", "previous": null,
                        "results": [{"a": 1}, {"a": "x"}]}"#;
        let p = Page::parse(1, Bytes::from_static(body), &[]).unwrap();
        assert_eq!((p.count, p.has_next, p.records), (3, true, 2));
        assert_eq!(p.results_json(), br#"[{"a": 1}, {"a": "x"}]"#);
    }

    #[test]
    fn last_page_and_empty_listing() {
        let p = Page::parse(
            1,
            Bytes::from_static(br#"{"count":0,"next":null,"previous":null,"results":[]}"#),
            &[],
        )
        .unwrap();
        assert_eq!((p.count, p.has_next, p.records), (0, false, 0));
    }

    #[test]
    fn digests_of_the_unique_key_match_across_strings_and_numbers() {
        let body =
            br#"{"count": 3, "next": null, "results": [{"id": "7", "a": 1}, {"a": 2}, {"id": 7}]}"#;
        let p = Page::parse(1, Bytes::from_static(body), &["id"]).unwrap();
        assert_eq!(p.ids.len(), 2);
        assert_eq!(p.ids[0], p.ids[1]);
        let (a, _) = Page::from_array_with(
            Bytes::from_static(b" [{\"id\": 1}, {\"id\": 2}]\n"),
            &["id"],
            no_reader,
        )
        .unwrap();
        assert_eq!((a.count, a.records, a.has_next), (2, 2, false));
        assert_ne!(a.ids[0], a.ids[1]);
        assert!(
            Page::from_array_with(Bytes::from_static(br#"{"count": 0}"#), &[], no_reader).is_err()
        );
    }

    #[test]
    fn rejects_what_is_not_a_page() {
        for body in [
            &b"<html>"[..],
            br#"{"results": []}"#,
            br#"{"count": 1, "results": [1]}"#,
            br#"{"count": 1, "results": [{"a": 1}"#,
            br#"{"count": 1, "results": [{"a": 1}]"#,
            br#"{"count": 1, "results": [{"a": 1}], "results": 5}"#,
            br#"{"count": 1, "results": [{"a": 1}] ]}"#,
            // Found by the fuzz target: the first `"results"` is inside a key, and the body
            // has no `results` at all.
            br#"{"count":1,"next":null,"previous\"results":[{"a":1}]}"#,
        ] {
            assert!(Page::parse(1, Bytes::from_static(body), &[]).is_err());
        }
    }

    /// The envelope read from the prefix gives the same page as a whole parse, and a body laid
    /// out otherwise is parsed whole.
    #[test]
    fn the_sliced_envelope_agrees_with_a_whole_parse() {
        let bodies: [&[u8]; 7] = [
            br#"{"count":2,"next":"http://h/x?page=2","previous":null,"results":[{"a":1},{"a":"x"}]}"#,
            b"{ \"count\" : 2 ,\n \"next\": null, \"results\" :\n [ {\"a\": 1}, {\"a\": \"x\"} ] \n}\n",
            br#"{"results":[{"a":1},{"a":"x"}],"count":2,"next":null}"#,
            br#"{"count":2,"next":null,"results":[{"a":1},{"a":"x"}],"extra":[1]}"#,
            br#"{"count":2,"next":"a\"results\":[]}","results":[{"a":1},{"a":"x\"results\":[]}"}]}"#,
            br#"{"count":2,"next":null,"results":[{"a":1}, {"a":"x"}]}"#,
            br#"{"count":2,"next":null,"previous\"results":[],"results":[{"a":1},{"a":"x"}]}"#,
        ];
        for body in bodies {
            let page = Page::parse(1, Bytes::from_static(body), &["a"]).unwrap();
            let envelope: Envelope = serde_json::from_slice(body).unwrap();
            assert_eq!(
                page.count,
                envelope.count,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(page.has_next, envelope.next.is_some());
            assert_eq!(page.results_json(), envelope.results.get().as_bytes());
            assert_eq!((page.records, page.ids.len()), (2, 2));
        }
        assert!(sliced(bodies[0]).is_some());
        assert!(sliced(bodies[1]).is_some());
        assert!(sliced(bodies[2]).is_none(), "results first");
        assert!(
            sliced(bodies[3]).is_some(),
            "found, then rejected by the scan"
        );
        assert!(
            sliced(bodies[6]).is_some(),
            "the key inside a key is passed over"
        );
    }
}
