//! Arbitrary bytes as a page body: parsing (the envelope read from its prefix, or the whole
//! body), key inference, schema merge and Arrow decoding must return errors, never panic; a
//! page that parses is one a whole JSON parse reads the same way.
#![no_main]

use bytes::Bytes;
use cube_extract::decode::{DecodeError, PageDecoder, RecordBatch};
use cube_extract::schema::{DatasetSchema, KnownFields};
use cube_extract::source::Page;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(page) = Page::parse(1, Bytes::copy_from_slice(data), Some("crm__customer_id")) else {
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
    let mut schema = DatasetSchema::new(&KnownFields::call_outcomes());
    let day = chrono::NaiveDate::from_ymd_opt(2019, 8, 14).unwrap();
    schema.merge(&page.keys, day);
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
        for (column, empty) in decoder.empty_strings() {
            assert!(empty.windows(2).all(|w| w[0] < w[1]), "{column}: rows ascend");
            assert!(empty.iter().all(|&r| (r as usize) < rows), "{column}: rows exist");
        }
    }
});
