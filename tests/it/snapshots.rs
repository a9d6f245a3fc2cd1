//! The tables beside call outcomes: customers, call-flow status, campaigns and custom-field
//! definitions, read back row for row against what the simulator serves; snapshot races,
//! `--keep-history`, `--resume`, hashing across tables, and the ways to ask for them wrongly.

use std::collections::BTreeMap;
use std::path::Path;

use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::{Map, Value};

use crate::cube_sim::{Faults, Snapshot};
use crate::support::*;

/// The record batches of one Parquet file.
fn batches(file: &Path) -> impl Iterator<Item = arrow_array::RecordBatch> {
    ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap()
        .map(|batch| batch.unwrap())
}

/// (partition folders, column -> value) of every row of a table, as text, sorted.
fn table_rows(dest: &Path, table: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for file in all_files(&dest.join(table)) {
        let partition: Vec<String> = file
            .strip_prefix(dest.join(table))
            .unwrap()
            .parent()
            .unwrap()
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        for batch in batches(&file) {
            for i in 0..batch.num_rows() {
                let values: BTreeMap<String, Val> = batch
                    .schema()
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
                    .collect();
                rows.push(format!("{}|{values:?}", partition.join("/")));
            }
        }
    }
    rows.sort();
    rows
}

/// The rows `records` must read back as, per partition folder, under the table's schema.json.
fn expected_table(
    dest: &Path,
    table: &str,
    partitions: Vec<(String, Vec<Map<String, Value>>)>,
) -> Vec<String> {
    let schema: Value = serde_json::from_slice(
        &std::fs::read(dest.join(format!("_cube_extract/{table}/schema.json"))).unwrap(),
    )
    .unwrap();
    let columns: Vec<&Value> = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["personal_data"] != "dropped")
        .collect();
    let mut rows = Vec::new();
    for (partition, records) in partitions {
        for record in records {
            let values: BTreeMap<String, Val> = columns
                .iter()
                .map(|c| {
                    let key = c["source_key"].as_str().unwrap();
                    let ty = c["type"].as_str().unwrap();
                    (
                        c["name"].as_str().unwrap().to_owned(),
                        expected_value(record.get(key), ty),
                    )
                })
                .collect();
            rows.push(format!("{partition}|{values:?}"));
        }
    }
    rows.sort();
    rows
}

#[track_caller]
fn assert_same(actual: &[String], expected: &[String]) {
    assert_eq!(actual.len(), expected.len(), "row count");
    if let Some((a, e)) = actual.iter().zip(expected).find(|(a, e)| a != e) {
        panic!("first difference:\n got {a}\nwant {e}");
    }
}

fn objects(values: Vec<Value>) -> Vec<Map<String, Value>> {
    values
        .into_iter()
        .map(|v| match v {
            Value::Object(m) => m,
            other => panic!("not an object: {other}"),
        })
        .collect()
}

/// The CRMs of campaigns 101..103 in the default simulator.
const CRMS: [(u64, &str); 3] = [(11, "B2C"), (12, "B2C"), (11, "B2B")];

fn customers_of(cfg: &SimConfig, crms: &[(u64, &str)]) -> Vec<(String, Vec<Map<String, Value>>)> {
    crms.iter()
        .map(|&(owner_id, crm_type)| {
            let snapshot = Snapshot::Customers {
                owner_id,
                crm_type: crm_type.to_owned(),
            };
            (
                format!("data_owner_id={owner_id}/crm_type={crm_type}"),
                cube_sim::final_snapshot(cfg, &snapshot),
            )
        })
        .collect()
}

fn snapshot_at(file: &Path) -> Option<String> {
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let kv = reader
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .clone();
    kv.into_iter()
        .find(|k| k.key == "cube.snapshot_at")
        .and_then(|k| k.value)
}

fn every_table_equals_what_the_simulator_serves(backend: Backend) {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let out = ws.extract_with(
        "sync",
        &sim,
        &["--campaign", "101,102,103", "--from", "2019-08-01"],
        &[],
    );
    out.assert_code(0);
    let dest = ws.view();
    assert_same(
        &table_rows(&dest, "customers"),
        &expected_table(&dest, "customers", customers_of(&cfg, &CRMS)),
    );
    let status = [101, 102, 103]
        .map(|campaign_id| {
            (
                format!("campaign_id={campaign_id}"),
                cube_sim::final_snapshot(&cfg, &Snapshot::Status { campaign_id }),
            )
        })
        .to_vec();
    assert_same(
        &table_rows(&dest, "customer_status"),
        &expected_table(&dest, "customer_status", status),
    );
    assert_same(
        &table_rows(&dest, "campaigns"),
        &expected_table(
            &dest,
            "campaigns",
            vec![(String::new(), objects(cube_sim::campaigns(&cfg)))],
        ),
    );
    let fields = CRMS
        .iter()
        .map(|&(o, t)| {
            (
                format!("data_owner_id={o}/crm_type={t}"),
                objects(cube_sim::custom_fields(&cfg, o, t).unwrap()),
            )
        })
        .collect();
    assert_same(
        &table_rows(&dest, "crm_custom_fields"),
        &expected_table(&dest, "crm_custom_fields", fields),
    );
    // The day tables are there too, and the report has a section per table.
    let report = out.report();
    assert_eq!(report["exit_code"], 0);
    let day_folders = &["campaign_id", "date"][..];
    let crm_folders = &["data_owner_id", "crm_type"][..];
    for (table, folders) in [
        ("call_outcomes", day_folders),
        ("product_registrations", day_folders),
        ("customers", crm_folders),
        ("customer_status", &["campaign_id"][..]),
        ("campaigns", &[][..]),
        ("crm_custom_fields", crm_folders),
    ] {
        assert_eq!(report["tables"][table]["status"], "ok", "{table}");
        assert_clean_root_with(&dest, table, folders);
    }
    assert_eq!(
        read_dataset(&dest).rows.len(),
        [101, 102, 103]
            .iter()
            .map(|&c| cube_sim::records(&cfg, c, day("2019-08-01")).len())
            .sum::<usize>()
    );
    // Each snapshot file says when it began, as its report entry and ledger do.
    let file = dest.join("customers/data_owner_id=11/crm_type=B2C/part-00000.parquet");
    let at = snapshot_at(&file).expect("cube.snapshot_at");
    let entry = report["tables"]["customers"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["data_owner_id"] == 11 && p["crm_type"] == "B2C")
        .unwrap();
    assert_eq!(entry["snapshot_at"], at.as_str());
    assert!(chrono::DateTime::parse_from_rfc3339(&at).is_ok(), "{at}");
    // The campaign listing and each CRM's field definitions were asked for once.
    let listings = sim
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/campaigns" || r.path.ends_with("/crm_custom_fields/"))
        .count();
    assert_eq!(listings, 1 + CRMS.len());
}

on_every_backend!(
    every_table_equals_what_the_simulator_serves,
    a_snapshot_that_changes_while_paged_is_read_again_and_ends_exact,
    a_snapshot_that_never_settles_exits_3_and_leaves_the_old_file,
);

#[test]
fn customers_of_the_crms_given_and_labels_of_their_fields() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    ws.extract_with("customers", &sim, &["--crm", "12:b2c"], &[])
        .assert_code(0);
    let dest = ws.dest();
    assert_same(
        &table_rows(&dest, "customers"),
        &expected_table(&dest, "customers", customers_of(&cfg, &[(12, "B2C")])),
    );
    let schema: Value = serde_json::from_slice(
        &std::fs::read(dest.join("_cube_extract/customers/schema.json")).unwrap(),
    )
    .unwrap();
    let street = schema["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "crm__custom_info__3900")
        .unwrap();
    assert_eq!(street["label"], "Address street");
}

fn a_snapshot_that_changes_while_paged_is_read_again_and_ends_exact(backend: Backend) {
    let cfg = SimConfig {
        faults: Faults {
            // An insert (count changes), then a move (a customer seen twice): two reads lost.
            snapshot_changes: 2,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let out = ws.extract_with("customers", &sim, &["--crm", "11:B2C"], &[]);
    out.assert_code(0);
    assert!(
        out.stderr.contains("reading the snapshot again"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("count went from"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("same crm__customer_id as an earlier one"),
        "{}",
        out.stderr
    );
    let dest = ws.view();
    assert_same(
        &table_rows(&dest, "customers"),
        &expected_table(&dest, "customers", customers_of(&cfg, &[(11, "B2C")])),
    );
}

fn a_snapshot_that_never_settles_exits_3_and_leaves_the_old_file(backend: Backend) {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::on(backend);
    ws.extract_with("customer-status", &sim, &["--campaign", "101"], &[])
        .assert_code(0);
    let file = "customer_status/campaign_id=101/part-00000.parquet";
    let before = std::fs::read(ws.view().join(file)).unwrap();
    sim.set_faults(Faults {
        snapshot_changes: 10,
        ..Faults::default()
    });
    let out = ws.extract_with("customer-status", &sim, &["--campaign", "101"], &[]);
    out.assert_code(3);
    assert!(
        out.stderr.contains("changed while it was read"),
        "{}",
        out.stderr
    );
    let view = ws.view();
    assert_eq!(
        std::fs::read(view.join(file)).unwrap(),
        before,
        "the old snapshot is untouched"
    );
    assert_clean_root_with(&view, "customer_status", &["campaign_id"]);
}

#[test]
fn keep_history_keeps_yesterdays_snapshot_beside_todays() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let args = ["--crm", "11:B2C", "--keep-history"];
    ws.extract_with("customers", &sim, &args, &[])
        .assert_code(0);
    let today = chrono::Local::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    // Yesterday's run, as it would have left the table: its folder and its ledger entry.
    let dest = ws.dest();
    for root in ["customers", "_cube_extract/customers/ledger"] {
        let crm = dest.join(root).join("data_owner_id=11/crm_type=B2C");
        std::fs::rename(
            crm.join(format!("snapshot_date={today}")),
            crm.join(format!("snapshot_date={yesterday}")),
        )
        .unwrap();
    }
    // --resume takes today's snapshot: yesterday's does not count for today.
    let out = ws.extract_with("customers", &sim, &[&args[..], &["--resume"]].concat(), &[]);
    out.assert_code(0);
    let crm = dest.join("customers/data_owner_id=11/crm_type=B2C");
    for d in [today, yesterday] {
        assert!(
            crm.join(format!("snapshot_date={d}/part-00000.parquet"))
                .is_file(),
            "snapshot of {d}"
        );
    }
    assert_eq!(
        table_rows(&dest, "customers").len(),
        2 * cube_sim::crm_customer_count(&SimConfig::default())
    );
    // Again today, with --resume: nothing left to do.
    let again = ws.extract_with("customers", &sim, &[&args[..], &["--resume"]].concat(), &[]);
    again.assert_code(0);
    assert_eq!(again.report()["partitions"][0]["status"], "skipped");
    // The table keeps history: a run without --keep-history is refused, and writes nothing.
    let files_before = all_files(&dest);
    let refused = ws.extract_with("customers", &sim, &["--crm", "11:B2C"], &[]);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("with --keep-history"),
        "{}",
        refused.stderr
    );
    assert_eq!(all_files(&dest), files_before);
}

#[test]
fn resume_skips_a_snapshot_taken_today() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    ws.extract_with("campaigns", &sim, &[], &[]).assert_code(0);
    let out = ws.extract_with("campaigns", &sim, &["--resume"], &[]);
    out.assert_code(0);
    assert_eq!(out.report()["partitions"][0]["status"], "skipped");
}

#[test]
fn a_table_without_history_refuses_keep_history() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    ws.extract_with("customers", &sim, &["--crm", "11:B2C"], &[])
        .assert_code(0);
    let before = all_files(&ws.dest());
    let out = ws.extract_with(
        "customers",
        &sim,
        &["--crm", "11:B2C", "--keep-history"],
        &[],
    );
    out.assert_code(2);
    assert!(
        out.stderr.contains("without --keep-history"),
        "{}",
        out.stderr
    );
    assert_eq!(all_files(&ws.dest()), before);
}

#[test]
fn bad_crms_exit_2_with_one_sentence_and_write_nothing() {
    let cfg = SimConfig {
        faults: Faults {
            forbidden_crms: vec![(12, "B2C".to_owned())],
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg);
    for (args, says) in [
        (vec!["--crm", "99:B2C"], "is not a CRM of any campaign"),
        (vec!["--crm", "12:B2C"], "cannot read CRM 12:B2C"),
        (vec!["--crm", "12-B2C"], "DATA_OWNER_ID:CRM_TYPE"),
        (
            vec!["--crm", "11:B2C", "--from", "2019-08-01"],
            "drop --from",
        ),
    ] {
        let ws = Workspace::new();
        let out = ws.extract_with("customers", &sim, &args, &[]);
        out.assert_code(2);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert!(!ws.dest().join("customers").exists(), "{args:?} wrote data");
    }
}

#[test]
fn hashed_columns_join_across_tables_and_no_original_value_lands_in_customers() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let key = [("CUBE_EXTRACT_HASH_KEY", "a-key-for-tests")];
    let hash = [
        "--hash-columns",
        "crm__customer_id",
        "--hash-columns",
        "crm__standard_info__phone_*",
    ];
    let args = [&["--campaign", "101", "--from", "2019-08-01"][..], &hash].concat();
    ws.extract_with("call-outcomes", &sim, &args, &key)
        .assert_code(0);
    ws.extract_with(
        "customers",
        &sim,
        &[&["--campaign", "101"][..], &hash].concat(),
        &key,
    )
    .assert_code(0);
    let dest = ws.dest();
    let customers = cube_sim::final_snapshot(
        &cfg,
        &Snapshot::Customers {
            owner_id: 11,
            crm_type: "B2C".into(),
        },
    );
    let originals: std::collections::HashSet<String> = customers
        .iter()
        .flat_map(|c| {
            [
                "crm__customer_id",
                "crm__standard_info__phone_1",
                "crm__standard_info__phone_2",
            ]
            .into_iter()
            .filter_map(|k| c[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
        })
        .collect();
    let rows = table_rows(&dest, "customers");
    assert_eq!(rows.len(), customers.len());
    for row in &rows {
        for original in &originals {
            assert!(
                !row.contains(&format!("\"{original}\"")),
                "{original} in {row}"
            );
        }
    }
    // Every hashed customer id of a call outcome is a hashed id of the customers table.
    let digest = |table: &str| -> std::collections::HashSet<String> {
        read_table_values(&dest, table, "crm__customer_id")
    };
    let called = digest("call_outcomes");
    let known = digest("customers");
    assert!(!called.is_empty());
    assert!(called.is_subset(&known), "hashed ids do not join");
    assert!(
        called.iter().all(|d| d.len() == 64),
        "digests are hex SHA-256"
    );
}

/// Every non-null value of `column` in a table, as text.
fn read_table_values(dest: &Path, table: &str, column: &str) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    for file in all_files(&dest.join(table)) {
        for batch in batches(&file) {
            let c = batch.column_by_name(column).unwrap();
            for i in 0..batch.num_rows() {
                if let Val::Str(s) = cell(c.as_ref(), i) {
                    out.insert(s);
                }
            }
        }
    }
    out
}

#[test]
fn sync_with_rejected_credentials_exits_2_and_says_so_once() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract_with(
        "sync",
        &sim,
        &[
            "--token",
            "wrong",
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
        ],
        &[],
    );
    let error = out.refused_with_one_error();
    assert!(error.contains("rejected the credentials"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("wrong"),
        "the token leaked: {}",
        out.stderr
    );
    assert_eq!(out.report()["exit_code"], 2);
    assert!(!ws.dest().join("customers").exists());
}
