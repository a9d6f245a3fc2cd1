//! What of the Cube model reaches the lake: campaign discovery, labels of custom fields, the
//! product-registrations table and the personal-data controls.

use std::collections::{BTreeMap, BTreeSet};

use hmac::{Hmac, Mac};
use parquet::file::reader::{FileReader, SerializedFileReader};
use serde_json::Value;
use sha2::Sha256;

use crate::cube_sim::Faults;
use crate::support::*;

const KEY: &str = "a test key, not a secret";
const PERSONAL: [&str; 5] = [
    "crm__standard_info__name",
    "crm__standard_info__phone_1",
    "crm__standard_info__phone_2",
    "crm__standard_info__phone_3",
    "crm__standard_info__email",
];

/// The labels the simulator defines for the CRMs of `campaigns`: JSON key -> label.
fn sim_labels(cfg: &SimConfig, campaigns: &[u64]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    for c in cube_sim::campaigns(cfg) {
        if !campaigns.contains(&c["campaign__id"].as_u64().unwrap()) {
            continue;
        }
        let owner = c["data_owner__id"].as_u64().unwrap();
        let crm = c["campaign__crm_type"].as_str().unwrap();
        for f in cube_sim::custom_fields(cfg, owner, crm).unwrap_or_default() {
            labels
                .entry(f["lookup__id"].as_str().unwrap().to_owned())
                .or_insert_with(|| f["key"].as_str().unwrap().to_owned());
        }
    }
    labels
}

fn kv(path: &std::path::Path, key: &str) -> Option<String> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    reader
        .metadata()
        .file_metadata()
        .key_value_metadata()?
        .iter()
        .find(|k| k.key == key)?
        .value
        .clone()
}

#[test]
fn all_campaigns_and_labels_reach_schema_json_every_file_and_the_schema_command() {
    let cfg = SimConfig {
        quirks: Quirks {
            new_keys: true,
            ..Quirks::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--all-campaigns",
            "--from",
            "2019-08-19",
            "--to",
            "2019-08-21",
        ],
    );
    out.assert_code(0);
    let active: Vec<u64> = cube_sim::campaigns(&cfg)
        .iter()
        .filter(|c| c["campaign__archived_date"] == "")
        .map(|c| c["campaign__id"].as_u64().unwrap())
        .collect();
    let reported: Vec<u64> = out.report()["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(
        reported.iter().collect::<BTreeSet<_>>(),
        active.iter().collect::<BTreeSet<_>>()
    );
    let data = read_dataset(&ws.dest());
    let extracted: BTreeSet<u64> = data.files.iter().map(|f| f.0).collect();
    assert_eq!(
        extracted,
        active.iter().copied().collect(),
        "every active campaign has files"
    );
    let expected = expected_rows(
        &cfg,
        &active,
        &days("2019-08-19", "2019-08-21"),
        &data.schema_json,
    );
    assert_rows(&data.rows, &expected);

    // schema.json: every column of a defined custom field carries its label.
    let labels = sim_labels(&cfg, &active);
    let mut labelled = BTreeMap::new();
    for col in data.schema_json["columns"].as_array().unwrap() {
        let key = col["source_key"].as_str().unwrap();
        let name = col["name"].as_str().unwrap().to_owned();
        match labels.get(key) {
            Some(label) => {
                assert_eq!(
                    col["label"].as_str(),
                    Some(label.as_str()),
                    "label of {key}"
                );
                labelled.insert(name, label.clone());
            }
            None => assert!(col["label"].is_null(), "{key} has no label in the API"),
        }
    }
    assert!(
        labelled.len() >= 5,
        "custom columns were labelled: {labelled:?}"
    );

    // Every file: cube.labels maps its columns to the same labels.
    for (_, _, path) in &data.files {
        let text = kv(path, "cube.labels").expect("cube.labels in every file");
        let in_file: BTreeMap<String, String> = serde_json::from_str(&text).unwrap();
        assert_eq!(in_file, labelled, "{}", path.display());
    }

    // The schema command: a table with the labels, JSON equal to schema.json.
    let dest = ws.dest_arg();
    let table = run_bin(&["schema", "--dest", &dest]);
    table.assert_code(0);
    for (name, label) in &labelled {
        let line = table
            .stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {}", table.stdout));
        assert!(line.contains(label.as_str()), "{line}");
    }
    let json = run_bin(&["schema", "--dest", &dest, "--json"]);
    json.assert_code(0);
    assert_eq!(
        serde_json::from_str::<Value>(&json.stdout).unwrap(),
        data.schema_json
    );
    let view = run_bin(&["schema", "--dest", &dest, "--duckdb-view", "calls"]);
    view.assert_code(0);
    for (name, label) in &labelled {
        assert!(
            view.stdout.contains(&format!("\"{name}\" AS \"{label}\"")),
            "{name} AS {label} in {}",
            view.stdout
        );
    }

    // A destination without the dataset: one sentence, exit 2.
    let missing = run_bin(&[
        "schema",
        "--dest",
        &dest,
        "--table",
        "product-registrations",
    ]);
    missing.assert_code(2);
    assert!(
        missing
            .stderr
            .contains("holds no product_registrations dataset"),
        "{}",
        missing.stderr
    );
}

fn product_registrations_land_in_their_own_table_with_every_guarantee(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks::all(),
        page_size: 7,
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let campaigns = [101, 102, 103];
    let range = days("2019-08-01", "2019-08-04");
    for run in 0..2 {
        let out = ws.extract_with(
            "product-registrations",
            &sim,
            &[
                "--campaign",
                "101,102,103",
                "--from",
                "2019-08-01",
                "--to",
                "2019-08-04",
            ],
            &[],
        );
        out.assert_code(0);
        let view = ws.view();
        assert!(
            !view.join("call_outcomes").exists(),
            "call outcomes untouched"
        );
        let data = read_table(&view, "product_registrations");
        assert_eq!(data.schema_json["dataset"], "product_registrations");
        assert!(
            data.schemas.windows(2).all(|w| w[0] == w[1]),
            "every file has the same columns"
        );
        let expected = expected_rows_with(
            &cfg,
            &campaigns,
            &range,
            &data.schema_json,
            cube_sim::product_registrations,
        );
        assert!(!expected.is_empty());
        assert_rows(&data.rows, &expected);
        assert_clean_root_of(&view, "product_registrations");
        let listed: Vec<_> = listing_requests(&sim);
        assert!(
            listed
                .iter()
                .all(|(path, _)| path.ends_with("/product_registrations/")),
            "only product registrations were read (run {run}): {listed:?}"
        );
    }
}

/// An account without product registrations (404 on page 1 of a campaign it lists): the
/// table's own command exits 2 before anything is written, naming the table and the endpoint;
/// `sync` skips it with a warning, says so in its report and extracts the rest.
fn a_table_the_account_does_not_serve_exits_2_alone_and_is_skipped_by_sync(backend: Backend) {
    let cfg = SimConfig {
        faults: Faults {
            unserved: vec!["product_registrations".into()],
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg);
    let ws = Workspace::on(backend);
    let range = [
        "--campaign",
        "101,102",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-02",
    ];
    let out = ws.extract_with("product-registrations", &sim, &range, &[]);
    out.assert_code(2);
    let said = out.all_output();
    assert!(
        said.contains("does not serve product_registrations")
            && said.contains("/api/v1/campaigns/101/product_registrations/ answered 404"),
        "{said}"
    );
    assert_eq!(out.report()["exit_code"], 2);
    let view = ws.view();
    let written = if view.exists() {
        all_files(&view)
    } else {
        Vec::new()
    };
    assert!(written.is_empty(), "nothing is written: {written:?}");

    let out = ws.extract_with("sync", &sim, &range, &[]);
    out.assert_code(0);
    let tables = &out.report()["tables"];
    assert_eq!(tables["product_registrations"]["status"], "skipped");
    assert!(tables["product_registrations"]["warning"]
        .as_str()
        .is_some_and(|w| w.contains("does not serve product_registrations")));
    assert_eq!(out.report()["status"], "ok");
    assert!(
        out.stderr.contains("skipping product_registrations"),
        "{}",
        out.stderr
    );
    assert_eq!(tables["call_outcomes"]["status"], "ok");
    assert_eq!(
        tables["call_outcomes"]["partitions"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(!view.join("product_registrations").exists());
    assert!(!view.join("_cube_extract/product_registrations").exists());
}

on_every_backend!(
    product_registrations_land_in_their_own_table_with_every_guarantee,
    a_table_the_account_does_not_serve_exits_2_alone_and_is_skipped_by_sync,
);

/// The original personal values the simulator serves for these partitions.
fn personal_values(cfg: &SimConfig, campaigns: &[u64], range: &[chrono::NaiveDate]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for &c in campaigns {
        for &d in range {
            for r in cube_sim::records(cfg, c, d) {
                for k in PERSONAL {
                    if let Some(Value::String(s)) = r.get(k) {
                        if s.len() >= 5 {
                            out.insert(s.clone());
                        }
                    }
                }
            }
        }
    }
    out.into_iter().collect()
}

/// Checks that no original value appears in any byte of any file under `dest`, nor in any
/// decoded value of any Parquet file (their pages are compressed, so bytes alone prove little).
fn assert_no_personal_data(dest: &std::path::Path, originals: &[String]) {
    assert!(!originals.is_empty());
    for path in all_files(dest) {
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for v in originals {
            assert!(
                !text.contains(v.as_str()),
                "{v:?} in the bytes of {}",
                path.display()
            );
        }
    }
    // Every Parquet file: the table's, and a month table's day segments.
    for path in all_files(dest) {
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&path).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                for (col, val) in row_cells(&batch, i) {
                    if let Val::Str(s) = val {
                        assert!(!originals.contains(&s), "{s:?} in column {col} of {path:?}");
                    }
                }
            }
        }
    }
}

fn hmac_hex(value: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
    mac.update(value.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn snapshot(dest: &std::path::Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    all_files(dest)
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

#[test]
fn hashed_columns_leave_no_personal_data_and_hash_the_same_way_on_every_run() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let args = [
        "--campaign",
        "101,102",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-03",
        "--hash-columns",
        "crm__standard_info__*",
    ];
    let key = [("CUBE_EXTRACT_HASH_KEY", KEY)];

    // Without the key nothing happens at all.
    let out = ws.extract_with("call-outcomes", &sim, &args, &[]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("CUBE_EXTRACT_HASH_KEY"),
        "{}",
        out.stderr
    );
    assert!(!ws.dest().join("call_outcomes").exists());

    ws.extract_with("call-outcomes", &sim, &args, &key)
        .assert_code(0);
    let range = days("2019-08-01", "2019-08-03");
    let originals = personal_values(&cfg, &[101, 102], &range);
    assert_no_personal_data(&ws.dest(), &originals);

    // Each hashed value is the HMAC-SHA256 of the original, in hex; the rest is untouched.
    let first = read_dataset(&ws.dest());
    let schema = &first.schema_json;
    assert_eq!(
        schema["personal_data"]["hash_columns"][0],
        "crm__standard_info__*"
    );
    assert!(!schema.to_string().contains(KEY));
    for col in schema["columns"].as_array().unwrap() {
        let hashed = col["name"]
            .as_str()
            .unwrap()
            .starts_with("crm__standard_info__");
        assert_eq!(col["personal_data"] == "hashed", hashed, "{col}");
    }
    let mut expected = expected_rows(&cfg, &[101, 102], &range, schema);
    for row in &mut expected {
        for k in PERSONAL {
            if let Some(Val::Str(s)) = row.values.get_mut(k) {
                if !s.is_empty() {
                    *s = hmac_hex(s);
                }
            }
        }
    }
    assert_rows(&first.rows, &expected);

    // A second run hashes the same way.
    ws.extract_with("call-outcomes", &sim, &args, &key)
        .assert_code(0);
    assert_rows(&read_dataset(&ws.dest()).rows, &expected);

    // Another key, or no hashing, is refused without --rewrite, and nothing changes.
    let before = snapshot(&ws.dest());
    let out = ws.extract_with(
        "call-outcomes",
        &sim,
        &args,
        &[("CUBE_EXTRACT_HASH_KEY", "another key")],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("not the key"), "{}", out.stderr);
    let out = ws.extract_with("call-outcomes", &sim, &args[..6], &[]);
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "--hash-columns is none but the dataset was written with crm__standard_info__*"
        ) && out.stderr.contains("--rewrite"),
        "{}",
        out.stderr
    );
    let after = snapshot(&ws.dest());
    assert_eq!(
        before
            .keys()
            .filter(|p| !p.to_string_lossy().contains("report-"))
            .collect::<Vec<_>>(),
        after
            .keys()
            .filter(|p| !p.to_string_lossy().contains("report-"))
            .collect::<Vec<_>>()
    );
    assert!(
        before.iter().all(|(p, b)| after.get(p) == Some(b)),
        "a refused run changed nothing"
    );
}

#[test]
fn a_new_policy_with_rewrite_brings_every_existing_file_under_it() {
    a_new_policy_with_rewrite_on("day");
}

/// In a month table, the day segments under the tool's state hold no value the new settings
/// drop or hash either (they are written without compression, so a value in the clear would
/// show in their bytes).
#[test]
fn a_new_policy_with_rewrite_leaves_no_personal_value_in_a_month_table_or_its_days() {
    a_new_policy_with_rewrite_on("month");
}

fn a_new_policy_with_rewrite_on(partitioning: &str) {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    ws.extract(
        &sim,
        &[
            "--partitioning",
            partitioning,
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-02",
        ],
    )
    .assert_code(0);
    let policy = [
        "--partitioning",
        partitioning,
        "--campaign",
        "101",
        "--from",
        "2019-08-01",
        "--drop-columns",
        "crm__standard_info__email",
        "--hash-columns",
        "crm__standard_info__phone_*",
        "--hash-columns",
        "crm__standard_info__name",
    ];
    let key = [("CUBE_EXTRACT_HASH_KEY", KEY)];
    let out = ws.extract_with("call-outcomes", &sim, &policy, &key);
    out.assert_code(2);
    assert!(
        out.stderr.contains(
            "--drop-columns is crm__standard_info__email but the dataset was written with none"
        ),
        "{}",
        out.stderr
    );

    let mut with_rewrite = policy.to_vec();
    with_rewrite.push("--rewrite");
    let out = ws.extract_with("call-outcomes", &sim, &with_rewrite, &key);
    out.assert_code(0);
    // Files of days and campaigns outside this run's range were rewritten too.
    assert!(
        out.report()["files_rewritten"].as_u64().unwrap() >= 3,
        "{}",
        out.stdout
    );
    let range = days("2019-08-01", "2019-08-02");
    assert_no_personal_data(&ws.dest(), &personal_values(&cfg, &[101, 102], &range));
    if partitioning == "month" {
        let segments = ws.dest().join("_cube_extract/call_outcomes/days");
        assert_eq!(
            all_files(&segments).len(),
            4,
            "the day segments are still there"
        );
        return;
    }
    let data = read_dataset(&ws.dest());
    assert_eq!(data.files.len(), 4);
    for schema in &data.schemas {
        assert!(schema.field_with_name("crm__standard_info__email").is_err());
    }
    let mut expected = expected_rows(&cfg, &[101, 102], &range, &data.schema_json);
    for row in &mut expected {
        for k in &PERSONAL[..4] {
            if let Some(Val::Str(s)) = row.values.get_mut(*k) {
                if !s.is_empty() {
                    *s = hmac_hex(s);
                }
            }
        }
    }
    assert_rows(&data.rows, &expected);
    // The same policy again needs no --rewrite.
    ws.extract_with("call-outcomes", &sim, &policy, &key)
        .assert_code(0);
}
