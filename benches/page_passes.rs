//! Micro-benchmark of the passes over one API page: `cargo bench --bench page_passes`.
//!
//! A page of 500 simulated call outcomes (the benchmark's quirks: about 45 keys, type drift)
//! goes through each step of what a partition does to it, timed alone: [`Page::parse`] (the
//! envelope, the key scan and the unique key's digests), with a whole serde parse of the
//! envelope beside it for reference, and the Arrow decoding under the dataset schema, alone and
//! finding the keys as it goes (what a partition does: `decode_page` replaces the key scan, and
//! `Page::parse_with` is the envelope with it); and the timestamp parsers, fixed-position
//! against chrono's. Prints nanoseconds per record (or per
//! value) and MB/s of the page's JSON. `PASSES_MS` sets the time per step (default 1500; under
//! `cargo test`, which runs it too, each step runs once).

#[path = "../examples/cube_sim/main.rs"]
mod cube_sim;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::NaiveDate;
use cube_extract::decode::{decode_page, DecodeError, PageDecoder, RecordBatch};
use cube_extract::schema::{DatasetSchema, KnownFields};
use cube_extract::source::Page;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Runs `f` for at least `min` and returns the mean time of one call.
fn time<T>(min: Duration, mut f: impl FnMut() -> T) -> Duration {
    for _ in 0..3 {
        black_box(f());
    }
    let start = Instant::now();
    let mut n = 0u32;
    loop {
        black_box(f());
        n += 1;
        if start.elapsed() >= min {
            return start.elapsed() / n;
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[allow(dead_code)]
    count: u64,
    #[allow(dead_code)]
    next: Option<serde::de::IgnoredAny>,
    #[serde(borrow)]
    results: &'a RawValue,
}

fn main() {
    // `cargo bench` passes `--bench`; under `cargo test` each step runs once, as a smoke test.
    let benching = std::env::args().any(|a| a == "--bench");
    let min = Duration::from_millis(
        std::env::var("PASSES_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(if benching { 1500 } else { 0 }),
    );
    let cfg = cube_sim::SimConfig {
        quirks: cube_sim::Quirks::parse("odd-keys,case-keys,new-keys,drift").unwrap(),
        rows_per_day: 1000,
        ..cube_sim::SimConfig::default()
    };
    let day = NaiveDate::from_ymd_opt(2024, 3, 20).unwrap();
    let mut records = cube_sim::records(&cfg, 101, day);
    records.truncate(500);
    let n = records.len();
    let body = serde_json::json!({
        "count": n, "next": null, "previous": null,
        "results": records.into_iter().map(serde_json::Value::Object).collect::<Vec<_>>(),
    });
    let body = Bytes::from(serde_json::to_vec(&body).unwrap());
    let page = Page::parse(1, body.clone(), &["crm__customer_id"]).unwrap();
    let mut schema = DatasetSchema::new(&KnownFields::call_outcomes());
    schema.merge(&page.keys, day);

    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    let mbps = |d: Duration| body.len() as f64 / d.as_secs_f64() / 1e6;
    let envelope = time(min, || {
        serde_json::from_slice::<Envelope>(&body)
            .unwrap()
            .results
            .get()
            .len()
    });
    let scanned = time(min, || Page::parse(1, body.clone(), &[]).unwrap().records);
    let with_ids = time(min, || {
        Page::parse(1, body.clone(), &["crm__customer_id"])
            .unwrap()
            .records
    });
    let decoded = time(min, || {
        let mut d = PageDecoder::new(schema.decode_arrow(), schema.arrow(), n).unwrap();
        let mut rows = 0;
        let mut sink = |b: RecordBatch| -> Result<(), DecodeError> {
            rows += b.num_rows();
            Ok(())
        };
        d.push(page.results_json(), &mut sink).unwrap();
        d.finish(&mut sink).unwrap();
        rows
    });
    let finding = time(min, || {
        let (found, _) = decode_page(
            schema.decode_arrow(),
            schema.arrow(),
            n,
            page.results_json(),
            &["crm__customer_id"],
        )
        .unwrap();
        found.records
    });
    let parsed_with = time(min, || {
        let decode = |json: &[u8]| {
            decode_page(
                schema.decode_arrow(),
                schema.arrow(),
                n,
                json,
                &["crm__customer_id"],
            )
            .ok()
        };
        let (page, decoded) =
            Page::parse_with(1, body.clone(), &["crm__customer_id"], decode).unwrap();
        assert!(decoded.is_some());
        page.records
    });
    // What a page decoded at parse time holds until its file is written, beside its JSON.
    let (_, held) = decode_page(
        schema.decode_arrow(),
        schema.arrow(),
        n,
        page.results_json(),
        &[],
    )
    .unwrap();
    let held_bytes: usize = held.batches.iter().map(|b| b.get_array_memory_size()).sum();
    println!(
        "page of {n} records, {} bytes of JSON, {} columns; decoded, it holds {held_bytes} bytes of Arrow arrays",
        body.len(),
        schema.arrow().fields().len()
    );
    println!("| step | ns per record | MB/s |");
    println!("|---|---:|---:|");
    for (step, d) in [
        (
            "(reference) a whole serde parse of the envelope, `results` as RawValue",
            envelope,
        ),
        (
            "Page::parse without a unique key (envelope, key scan)",
            scanned,
        ),
        ("Page::parse with the unique key's digests", with_ids),
        ("Arrow decoding (tape + column decoders)", decoded),
        (
            "Arrow decoding finding keys, kinds and digests (decode_page)",
            finding,
        ),
        (
            "Page::parse_with decode_page (what a partition does per page)",
            parsed_with,
        ),
    ] {
        println!("| {step} | {:.0} | {:.0} |", per(d), mbps(d));
    }

    let naive: Vec<String> = (0..1000)
        .map(|i| format!("2019-08-{:02} {:02}:{:02}", 1 + i % 28, i % 24, i % 60))
        .collect();
    let zoned: Vec<String> = (0..1000)
        .map(|i| format!("2020-02-{:02}T10:{:02}:06.477+0100", 1 + i % 28, i % 60))
        .collect();
    // Nanoseconds per value of `parse` over `values`.
    let ns = |parse: fn(&str) -> Option<i64>, values: &[String]| {
        let d = time(min, || values.iter().filter_map(|s| parse(s)).sum::<i64>());
        d.as_nanos() as f64 / values.len() as f64
    };
    use cube_extract::decode::{
        parse_naive_general, parse_naive_timestamp, parse_zoned_general, parse_zoned_timestamp,
    };
    println!(
        "timestamps, ns per value: naive {:.1} (chrono's formats {:.1}), zoned {:.1} (chrono's {:.1})",
        ns(parse_naive_timestamp, &naive),
        ns(parse_naive_general, &naive),
        ns(parse_zoned_timestamp, &zoned),
        ns(parse_zoned_general, &zoned)
    );
}
