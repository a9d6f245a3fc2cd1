//! Arbitrary bytes as a page body: parsing (the envelope read from its prefix, or the whole
//! body), key inference, schema merge and Arrow decoding must return errors, never panic; a
//! page that parses is one a whole JSON parse reads the same way; and what the decoder finds
//! in the records (keys, kinds, count, unique-key digests) is what the key scan finds.
#![no_main]

use bytes::Bytes;
use cube_extract::decode::{decode_page, DecodeError, PageDecoder, RecordBatch};
use cube_extract::schema::{DatasetSchema, Found, KnownFields};
use cube_extract::source::Page;
use libfuzzer_sys::fuzz_target;

const UNIQUE_KEY: &[&str] = &["campaign__name", "crm__customer_id"];

fuzz_target!(|data: &[u8]| {
    let Ok(page) = Page::parse(1, Bytes::copy_from_slice(data), UNIQUE_KEY) else {
        return;
    };
    // What a whole parse reads agrees with the envelope read from the prefix. (serde reads a
    // struct from an array too, `[1, null, []]`, and skips over a number out of `Value`'s
    // range, 1e400, in a key it ignores: only an object that `Value` reads is compared.)
    let whole = serde_json::from_slice::<serde_json::Value>(data).ok();
    if let Some(whole) = whole.filter(|w| w.is_object()) {
        assert_eq!(whole["count"].as_u64(), Some(page.count), "count");
        assert_eq!(!whole["next"].is_null(), page.has_next, "next");
        let results = whole["results"].as_array().expect("results is an array");
        assert_eq!(results.len(), page.records, "records");
    }
    let scanned = Found {
        records: page.records,
        keys: page.keys.clone(),
        ids: page.ids.clone(),
    };
    let base = DatasetSchema::new(&KnownFields::call_outcomes());
    let mut schema = base.clone();
    let day = chrono::NaiveDate::from_ymd_opt(2019, 8, 14).unwrap();
    schema.merge(&page.keys, day);

    // The decoder under a schema that holds the page, and under one that lacks its keys: when
    // it reads the records, it finds what the scan found, and parsing with it gives that page.
    for s in [&schema, &base] {
        let json = page.results_json();
        if let Ok((found, decoded)) =
            decode_page(s.decode_arrow(), s.arrow(), page.records, json, UNIQUE_KEY)
        {
            assert_eq!(found, scanned, "the decoder's findings");
            let rows: usize = decoded.batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, page.records, "every record becomes one row");
        }
    }
    let decode = |json: &[u8]| {
        decode_page(schema.decode_arrow(), schema.arrow(), 8, json, UNIQUE_KEY).ok()
    };
    if let Ok((read, decoded)) = Page::parse_with(1, Bytes::copy_from_slice(data), UNIQUE_KEY, decode) {
        if decoded.is_some() {
            assert_eq!((read.count, read.has_next), (page.count, page.has_next));
            assert_eq!(read.results_json(), page.results_json());
            assert_eq!((read.records, &read.keys, &read.ids), (page.records, &page.keys, &page.ids));
        }
    }

    let Ok(mut decoder) = PageDecoder::new(schema.decode_arrow(), schema.arrow(), page.records) else {
        return;
    };
    let mut rows = 0;
    let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
        rows += b.num_rows();
        Ok(())
    };
    if decoder.push(page.results_json(), &mut sink).is_ok() && decoder.finish(&mut sink).is_ok() {
        assert_eq!(rows, page.records, "every record becomes one row");
        // The rows noted as holding "" are rows of the page, ascending, in typed columns.
        for (column, empty) in decoder.take_empty_strings() {
            assert!(empty.windows(2).all(|w| w[0] < w[1]), "{column}: rows ascend");
            assert!(empty.iter().all(|&r| (r as usize) < rows), "{column}: rows exist");
        }
    }
});
