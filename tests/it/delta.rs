//! `--table-format delta`: tables read back through their Delta log (replayed here, apart from
//! the tool's own code), exact against the simulator; column adds without rewrites and a
//! widening in one commit; four writers at once; a run killed at any moment; `vacuum`; bad
//! input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatchReader;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::cube_sim::{self, Faults, Quirks, SimConfig};
use crate::support::*;

/// A Delta table as its log says: the latest version, its active files with their partition
/// values, its schema, and every version's actions.
struct Log {
    version: u64,
    files: BTreeMap<String, BTreeMap<String, Option<String>>>,
    schema: Value,
    commits: Vec<Vec<Value>>,
}

/// Replays `table/_delta_log/*.json` from version 0 (the tool never deletes a commit file, so
/// no checkpoint is needed to know the table).
fn read_log(table: &Path) -> Log {
    let mut commits: Vec<(u64, PathBuf)> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_owned();
            let version = name.strip_suffix(".json")?.parse().ok()?;
            Some((version, p))
        })
        .collect();
    commits.sort();
    let mut log = Log {
        version: 0,
        files: BTreeMap::new(),
        schema: Value::Null,
        commits: Vec::new(),
    };
    for (i, (version, path)) in commits.iter().enumerate() {
        assert_eq!(*version, i as u64, "versions follow each other: {path:?}");
        let actions: Vec<Value> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for a in &actions {
            if let Some(add) = a.get("add") {
                let values = serde_json::from_value(add["partitionValues"].clone()).unwrap();
                let path = add["path"].as_str().unwrap().to_owned();
                assert!(
                    log.files.insert(path.clone(), values).is_none(),
                    "a path is added once: {path}"
                );
            }
            if let Some(remove) = a.get("remove") {
                let path = remove["path"].as_str().unwrap();
                assert!(log.files.remove(path).is_some(), "{path} was active");
            }
            if let Some(meta) = a.get("metaData") {
                log.schema = serde_json::from_str(meta["schemaString"].as_str().unwrap()).unwrap();
            }
        }
        log.version = *version;
        log.commits.push(actions);
    }
    log
}

/// The Arrow type of a Delta primitive type name.
fn arrow_type(delta: &str) -> arrow_schema::DataType {
    use arrow_schema::{DataType, TimeUnit};
    match delta {
        "long" => DataType::Int64,
        "double" => DataType::Float64,
        "string" => DataType::Utf8,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        other => panic!("a type the tool does not write: {other}"),
    }
}

/// `call_outcomes` read through its Delta log: every active file, each column as the log's
/// schema types it (a column a file lacks is null), the campaign from the partition values
/// and the day from the row's `date` (month tables) or the partition's.
fn read_delta(view: &Path) -> (Log, Vec<Row>) {
    let table = view.join("call_outcomes");
    let log = read_log(&table);
    let fields: BTreeMap<String, String> = log.schema["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_owned(),
                f["type"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let partition_columns = ["campaign_id", "month", "date"];
    let mut rows = Vec::new();
    for (path, values) in &log.files {
        let file = table.join(path);
        assert!(
            path.rsplit('/').next().unwrap().starts_with("part-00000-"),
            "a name used once: {path}"
        );
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for field in reader.schema().fields() {
            let declared = fields
                .get(field.name())
                .unwrap_or_else(|| panic!("{path} holds {} the schema lacks", field.name()));
            assert_eq!(
                field.data_type(),
                &arrow_type(declared),
                "{path}: {} is typed as the log says",
                field.name()
            );
        }
        let campaign_id: u64 = values["campaign_id"].as_deref().unwrap().parse().unwrap();
        let partition_day = values.get("date").and_then(|d| d.as_deref()).map(day);
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                let mut cells = row_cells(&batch, i);
                let date = match cells.remove("date") {
                    Some(Val::Days(days)) => {
                        NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                            + chrono::Duration::days(days.into())
                    }
                    _ => partition_day.expect("a day table's partition has its day"),
                };
                if let Some(Some(month)) = values.get("month") {
                    assert_eq!(&date.format("%Y-%m").to_string(), month, "{path}");
                }
                for name in fields.keys() {
                    if !partition_columns.contains(&name.as_str()) {
                        cells.entry(name.clone()).or_insert(Val::Null);
                    }
                }
                rows.push(Row {
                    campaign_id,
                    date,
                    values: cells,
                });
            }
        }
    }
    (log, rows)
}

fn schema_json(view: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(view.join("_cube_extract/call_outcomes/schema.json")).unwrap(),
    )
    .unwrap()
}

/// The Delta table holds exactly what `cfg` serves for `campaigns` over `from..=to`, one file
/// per partition.
#[track_caller]
fn assert_exact_delta(
    view: &Path,
    cfg: &SimConfig,
    campaigns: &[u64],
    from: &str,
    to: &str,
) -> Log {
    let (log, rows) = read_delta(view);
    let expected = expected_rows(cfg, campaigns, &days(from, to), &schema_json(view));
    assert_rows(&rows, &expected);
    let partitions: BTreeSet<_> = log.files.values().collect();
    assert_eq!(partitions.len(), log.files.len(), "one file per partition");
    log
}

fn delta_extract(ws: &Workspace, sim: &cube_sim::SimHandle, args: &[&str]) -> Outcome {
    let mut all = vec!["--table-format", "delta", "--partitioning", "month"];
    all.extend_from_slice(args);
    ws.extract(sim, &all)
}

fn drifting() -> SimConfig {
    SimConfig {
        quirks: Quirks {
            drift: true,
            new_keys: true,
            ..Quirks::default()
        },
        ..SimConfig::default()
    }
}

fn a_delta_table_holds_exactly_what_the_api_serves(backend: Backend) {
    let cfg = drifting();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let range = ["--from", "2019-07-29", "--to", "2019-08-04"];
    let out = delta_extract(
        &ws,
        &sim,
        &[&["--campaign", "101,102"][..], &range].concat(),
    );
    out.assert_code(0);
    let view = ws.view();
    let log = assert_exact_delta(&view, &cfg, &[101, 102], "2019-07-29", "2019-08-04");
    assert_eq!(log.files.len(), 2 * 2, "one file per campaign and month");
    assert_eq!(schema_json(&view)["format"], "delta");
    // Each month's days are published by one commit: no reader sees a month half written.
    for commit in &log.commits[1..] {
        let adds = commit.iter().filter(|a| a.get("add").is_some()).count();
        assert_eq!(adds, 1, "{commit:?}");
    }
    // Re-running a day replaces its month's file in one commit (remove + add).
    let again = delta_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-02"]);
    again.assert_code(0);
    let view = ws.view();
    let after = assert_exact_delta(&view, &cfg, &[101, 102], "2019-07-29", "2019-08-04");
    let last = after.commits.last().unwrap();
    assert_eq!(last.iter().filter(|a| a.get("remove").is_some()).count(), 1);
    assert_eq!(last.iter().filter(|a| a.get("add").is_some()).count(), 1);
    // The report names the month's file of this version.
    let p = &again.report()["partitions"][0];
    let named = p["file"]
        .as_str()
        .unwrap()
        .strip_prefix("call_outcomes/")
        .unwrap();
    assert!(after.files.contains_key(named), "{p}");
}

fn four_writers_commit_through_the_log_and_lose_no_day(backend: Backend) {
    let cfg = SimConfig {
        faults: Faults {
            latency_ms: 5,
            ..Faults::default()
        },
        ..drifting()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    // Each writer's days are spread over both months, between the others' days; the first
    // two overlap on the 31st.
    let ranges = [
        ("2019-07-27", "2019-07-31"),
        ("2019-07-31", "2019-08-05"),
        ("2019-07-22", "2019-07-26"),
        ("2019-08-06", "2019-08-10"),
    ];
    writers_at_once(
        &ws,
        &sim,
        &[
            "--table-format",
            "delta",
            "--partitioning",
            "month",
            "--campaign",
            "101,102",
        ],
        &ranges,
    );
    // No fan-in: the log is the record.
    assert_exact_delta(&ws.view(), &cfg, &[101, 102], "2019-07-22", "2019-08-10");
}

on_every_backend!(
    a_delta_table_holds_exactly_what_the_api_serves,
    a_drifting_range_adds_columns_without_rewrites_and_widens_in_one_commit,
    four_writers_commit_through_the_log_and_lose_no_day,
    a_killed_delta_run_leaves_a_readable_version_and_resume_ends_exact,
);

/// Columns the API adds are added by the commit that first holds them, no file rewritten; a
/// column widened later replaces every file that holds it, with the new schema, in one commit.
fn a_drifting_range_adds_columns_without_rewrites_and_widens_in_one_commit(backend: Backend) {
    let cfg = SimConfig {
        new_column_from: Some(day("2019-08-03")),
        ..drifting()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    // Before the drift (from the 15th) and the new column.
    delta_extract(
        &ws,
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-02",
        ],
    )
    .assert_code(0);
    let before = read_log(&ws.view().join("call_outcomes"));
    // The new column, in the same months.
    let added = delta_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-03"]);
    added.assert_code(0);
    let log = read_log(&ws.view().join("call_outcomes"));
    let commit = &log.commits[before.commits.len()..];
    assert_eq!(commit.len(), 1, "one commit for the day and its column");
    let actions = &commit[0];
    assert!(actions.iter().any(|a| a.get("metaData").is_some()));
    assert_eq!(actions.iter().filter(|a| a.get("add").is_some()).count(), 1);
    assert_eq!(added.report()["files_rewritten"], 0);
    // The files of campaign 102 were not touched, and read the new column as null.
    let view = ws.view();
    let (_, rows) = read_delta(&view);
    let schema = schema_json(&view);
    let mut expected = expected_rows(&cfg, &[101], &days("2019-08-01", "2019-08-03"), &schema);
    expected.extend(expected_rows(
        &cfg,
        &[102],
        &days("2019-08-01", "2019-08-02"),
        &schema,
    ));
    assert_rows(&rows, &expected);
    let widened_before = log.commits.len();
    // The drift widens columns the table holds already.
    let wide = delta_extract(
        &ws,
        &sim,
        &["--campaign", "101,102", "--from", "2019-08-16"],
    );
    wide.assert_code(0);
    let log = read_log(&ws.view().join("call_outcomes"));
    let widening: Vec<&Vec<Value>> = log.commits[widened_before..]
        .iter()
        .filter(|c| c.iter().any(|a| a.get("metaData").is_some()))
        .collect();
    assert_eq!(widening.len(), 1, "one commit widens");
    let actions = widening[0];
    let removed = actions.iter().filter(|a| a.get("remove").is_some()).count();
    let added = actions.iter().filter(|a| a.get("add").is_some()).count();
    assert!(
        removed >= 2 && removed == added,
        "{removed} removed, {added} added"
    );
    let view = ws.view();
    let (_, rows) = read_delta(&view);
    let schema = schema_json(&view);
    let mut expected = expected_rows(&cfg, &[101], &days("2019-08-01", "2019-08-03"), &schema);
    expected.extend(expected_rows(
        &cfg,
        &[102],
        &days("2019-08-01", "2019-08-02"),
        &schema,
    ));
    expected.extend(expected_rows(
        &cfg,
        &[101, 102],
        &[day("2019-08-16")],
        &schema,
    ));
    // A column widened to text holds `""` where the API sent it before the widening: the
    // rewrite brings them back.
    assert_rows(&rows, &expected);
    assert!(
        !widened_to_utf8(&[wide.report()]).is_empty()
            || wide.report()["schema_changes"]
                .as_array()
                .is_some_and(|c| !c.is_empty())
    );
}

/// A run killed with SIGKILL at several moments leaves a table whose latest version reads
/// whole, and `--resume` then ends with the exact table.
fn a_killed_delta_run_leaves_a_readable_version_and_resume_ends_exact(backend: Backend) {
    let cfg = SimConfig {
        faults: Faults {
            latency_ms: 20,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let (dest, url) = (ws.dest_arg(), sim.base_url());
    let range = ["--from", "2019-07-20", "--to", "2019-08-12"];
    for kill_after in [2, 9, 17] {
        let args = [
            &[
                "call-outcomes",
                "--table-format",
                "delta",
                "--partitioning",
                "month",
                "--base-url",
                &url,
                "--token",
                TOKEN,
                "--campaign",
                "101,102",
                "--concurrency",
                "4",
                "--resume",
                "--log-format",
                "json",
                "--dest",
                &dest,
            ][..],
            &range,
        ]
        .concat();
        kill_after_partitions(&args, &ws.env(), kill_after);
        let view = ws.view();
        if view.join("call_outcomes/_delta_log").exists() {
            // The latest version reads whole: every file it names is there and decodes.
            read_delta(&view);
        }
    }
    let out = delta_extract(
        &ws,
        &sim,
        &[&["--campaign", "101,102", "--resume"][..], &range].concat(),
    );
    out.assert_code(0);
    assert_exact_delta(&ws.view(), &cfg, &[101, 102], "2019-07-20", "2019-08-12");
}

/// `vacuum` deletes exactly the files no version within the retention reads: the replaced
/// month files and a file a killed run never committed, once past the retention.
#[test]
fn vacuum_deletes_exactly_the_unreferenced_files_past_retention() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let dest = ws.dest_arg();
    delta_extract(
        &ws,
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-03",
        ],
    )
    .assert_code(0);
    delta_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-02"]).assert_code(0);
    let table = ws.dest().join("call_outcomes");
    let orphan = table.join("campaign_id=101/month=2019-08/part-00000-orphan.parquet");
    std::fs::write(&orphan, b"a killed run's upload").unwrap();
    let log = read_log(&table);
    let active: BTreeSet<PathBuf> = log.files.keys().map(|p| table.join(p)).collect();
    let before: BTreeSet<PathBuf> = all_files(&table)
        .into_iter()
        .filter(|p| !p.starts_with(table.join("_delta_log")))
        .collect();
    assert_eq!(
        before.len(),
        3,
        "the first month file, its replacement and the orphan"
    );
    // Within the default retention nothing goes; a shorter one needs --force.
    let kept = run_bin(&["vacuum", "--dest", &dest]);
    kept.assert_code(0);
    assert!(kept.stdout.contains("deleted 0 files"), "{}", kept.stdout);
    run_bin(&["vacuum", "--dest", &dest, "--retain-hours", "0"]).assert_code(2);
    let dry = run_bin(&[
        "vacuum",
        "--dest",
        &dest,
        "--retain-hours",
        "0",
        "--force",
        "--dry-run",
    ]);
    dry.assert_code(0);
    assert!(
        dry.stdout.contains("would delete 2 files"),
        "{}",
        dry.stdout
    );
    let after_dry: BTreeSet<PathBuf> = all_files(&table)
        .into_iter()
        .filter(|p| !p.starts_with(table.join("_delta_log")))
        .collect();
    assert_eq!(after_dry, before, "a dry run deletes nothing");
    run_bin(&["vacuum", "--dest", &dest, "--retain-hours", "0", "--force"]).assert_code(0);
    let after: BTreeSet<PathBuf> = all_files(&table)
        .into_iter()
        .filter(|p| !p.starts_with(table.join("_delta_log")))
        .collect();
    assert_eq!(
        after, active,
        "only the files of the latest version are left"
    );
    assert_exact_delta(&ws.dest(), &cfg, &[101], "2019-08-01", "2019-08-03");
}

/// `sync` into Delta tables gives every table the rows `sync` into Parquet gives it, with and
/// without `--keep-history` (whose snapshots keep their day as a partition column).
#[test]
fn every_table_in_delta_holds_the_rows_of_its_parquet_twin() {
    let sim = cube_sim::start(SimConfig::default());
    for keep_history in [false, true] {
        let (delta, parquet) = (Workspace::new(), Workspace::new());
        let mut args = vec![
            "--all-campaigns",
            "--from",
            "2019-07-30",
            "--to",
            "2019-08-02",
        ];
        if keep_history {
            args.push("--keep-history");
        }
        let d = delta.extract_with(
            "sync",
            &sim,
            &[
                &["--table-format", "delta", "--partitioning", "month"][..],
                &args,
            ]
            .concat(),
            &[],
        );
        d.assert_code(0);
        let p = parquet.extract_with(
            "sync",
            &sim,
            &[&["--partitioning", "month"][..], &args].concat(),
            &[],
        );
        p.assert_code(0);
        for table in [
            "call_outcomes",
            "product_registrations",
            "customers",
            "customer_status",
            "campaigns",
            "crm_custom_fields",
        ] {
            let log = assert_twins(
                &delta.dest().join(table),
                &parquet.dest().join(table),
                table,
            );
            let kept = log
                .files
                .values()
                .all(|values| values.contains_key("snapshot_date"));
            if ["customers", "customer_status"].contains(&table) {
                assert_eq!(
                    kept, keep_history,
                    "{table}: snapshot_date is a partition column"
                );
            }
        }
    }
}

/// The Delta table at `delta` (read through its log) holds the rows of the Parquet table at
/// `parquet`, and some; returns its log.
#[track_caller]
fn assert_twins(delta: &Path, parquet: &Path, what: &str) -> Log {
    let log = read_log(delta);
    let delta_rows = rows_of(log.files.keys().map(|f| delta.join(f)));
    let parquet_rows = rows_of(all_files(parquet));
    assert!(!delta_rows.is_empty(), "{what} has rows");
    assert_eq!(delta_rows.len(), parquet_rows.len(), "{what}");
    let differ = delta_rows.iter().zip(&parquet_rows).find(|(d, p)| d != p);
    assert!(differ.is_none(), "{what}: {differ:#?}");
    log
}

/// Every row of `files`, each as its cells' text, sorted.
fn rows_of(files: impl IntoIterator<Item = PathBuf>) -> Vec<String> {
    let mut rows = Vec::new();
    for file in files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                // Named as a Delta table names them (no space, comma, semicolon, bracket, tab,
                // newline or `=`).
                // A column a file lacks reads as null through the log (a Delta file keeps the
                // columns it was written with; a Parquet twin is rewritten to the last schema).
                let cells: BTreeMap<String, Val> = row_cells(&batch, i)
                    .into_iter()
                    .filter(|(_, v)| *v != Val::Null)
                    .map(|(k, v)| {
                        (
                            k.replace([' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='], "_"),
                            v,
                        )
                    })
                    .collect();
                rows.push(format!("{cells:?}"));
            }
        }
    }
    rows.sort();
    rows
}

/// `--table-format` unlike the table's, an unknown one, a Delta table with a feature this tool
/// does not know, and a log that does not parse: exit 2, one sentence, no byte changed.
#[test]
fn bad_delta_input_exits_2_and_changes_nothing() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    delta_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-01"]).assert_code(0);
    let refused = |ws: &Workspace, args: &[&str], words: &[&str]| {
        let before = snapshot_files(&ws.dest());
        let out = ws.extract(&sim, args);
        let error = out.refused_with_one_error();
        for w in words {
            assert!(error.contains(w), "{w}: {}", error);
        }
        assert_eq!(before, snapshot_files(&ws.dest()), "no byte changed");
    };
    let day = [
        "--partitioning",
        "month",
        "--campaign",
        "101",
        "--from",
        "2019-08-02",
    ];
    refused(
        &ws,
        &[&["--table-format", "parquet"][..], &day].concat(),
        &["--table-format delta", "new --dest"],
    );
    let unknown = ws.extract(&sim, &[&["--table-format", "iceberg"][..], &day].concat());
    unknown.assert_code(2);
    assert!(
        unknown.stderr.contains("parquet, delta"),
        "{}",
        unknown.stderr
    );
    // A reader feature the kernel does not know, declared by another tool's commit.
    let log = ws.dest().join("call_outcomes/_delta_log");
    let first = std::fs::read_to_string(log.join("00000000000000000000.json")).unwrap();
    let foreign = first
        .lines()
        .map(|l| match l.contains("\"protocol\"") {
            true => r#"{"protocol":{"minReaderVersion":3,"minWriterVersion":7,"readerFeatures":["timestampNtz","futureFeature"],"writerFeatures":["timestampNtz","futureFeature"]}}"#.to_owned(),
            false => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let next = log.join(format!(
        "{:020}.json",
        read_log(log.parent().unwrap()).version + 1
    ));
    std::fs::write(&next, foreign + "\n").unwrap();
    refused(
        &ws,
        &[&["--table-format", "delta"][..], &day].concat(),
        &["futureFeature", "new --dest"],
    );
    // A commit that is not JSON.
    std::fs::write(&next, b"{not json\n").unwrap();
    refused(
        &ws,
        &[&["--table-format", "delta"][..], &day].concat(),
        &["cannot be read", "_delta_log"],
    );
}

/// The log, not the ledger, says which days are held: when the version that added a month is
/// gone (a commit lost on a store whose create-if-absent is a check then a put), `status` counts
/// its days missing and `--resume` fetches them again.
#[test]
fn status_and_resume_believe_the_log_over_the_ledger() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let dest = ws.dest_arg();
    delta_extract(
        &ws,
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-07-30",
            "--to",
            "2019-08-02",
        ],
    )
    .assert_code(0);
    let expect = ["--expect-from", "2019-07-30", "--expect-to", "2019-08-02"];
    let status = || {
        let out = run_bin(&[&["status", "--dest", &dest, "--json"][..], &expect].concat());
        (
            out.code,
            serde_json::from_str::<Value>(&out.stdout).unwrap_or(Value::Null),
        )
    };
    assert_eq!(status().0, 0);
    // The latest version (the second month's commit) is lost.
    let table = ws.dest().join("call_outcomes");
    let log = read_log(&table);
    let last = table.join(format!("_delta_log/{:020}.json", log.version));
    let lost: Vec<String> = log
        .commits
        .last()
        .unwrap()
        .iter()
        .filter_map(|a| a.get("add"))
        .map(|a| a["partitionValues"]["month"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lost.len(), 1);
    std::fs::remove_file(last).unwrap();
    let (code, json) = status();
    assert_eq!(code, 1, "days the log lacks are not complete: {json}");
    let resumed = delta_extract(
        &ws,
        &sim,
        &[
            &["--campaign", "101", "--resume"][..],
            &["--from", "2019-07-30", "--to", "2019-08-02"],
        ]
        .concat(),
    );
    resumed.assert_code(0);
    let fetched: BTreeSet<String> = resumed.report()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "committed")
        .map(|p| p["date"].as_str().unwrap()[..7].to_owned())
        .collect();
    assert_eq!(
        fetched,
        lost.into_iter().collect(),
        "only the lost month's days are fetched again"
    );
    assert_eq!(status().0, 0);
    assert_exact_delta(&ws.dest(), &cfg, &[101], "2019-07-30", "2019-08-02");
}

/// Call outcomes and product registrations at the CRM and account scopes, cut by month and by
/// day, with empty days: each Delta table holds the rows of its Parquet twin, partitioned by its
/// scope's keys.
#[test]
fn every_scope_and_partitioning_in_delta_holds_the_rows_of_its_parquet_twin() {
    let sim = cube_sim::start(SimConfig {
        quirks: Quirks {
            empty_days: true,
            new_keys: true,
            ..Quirks::default()
        },
        page_size: 40,
        ..SimConfig::default()
    });
    for (scope, keys) in [
        ("crm", &["data_owner_id", "crm_type"][..]),
        ("account", &[][..]),
    ] {
        for partitioning in ["month", "day"] {
            let (delta, parquet) = (Workspace::new(), Workspace::new());
            for (command, table) in [
                ("call-outcomes", "call_outcomes"),
                ("product-registrations", "product_registrations"),
            ] {
                let mut args = vec![
                    "--scope",
                    scope,
                    "--partitioning",
                    partitioning,
                    "--from",
                    "2019-07-30",
                    "--to",
                    "2019-08-02",
                    "-q",
                ];
                if scope == "crm" {
                    args.push("--all-campaigns");
                }
                let with_delta = [&["--table-format", "delta"][..], &args].concat();
                delta
                    .extract_with(command, &sim, &with_delta, &[])
                    .assert_code(0);
                parquet
                    .extract_with(command, &sim, &args, &[])
                    .assert_code(0);
                let what = format!("{table} --scope {scope} --partitioning {partitioning}");
                let log = assert_twins(
                    &delta.dest().join(table),
                    &parquet.dest().join(table),
                    &what,
                );
                let day_key = if partitioning == "month" {
                    "month"
                } else {
                    "date"
                };
                let want: Vec<&str> = keys.iter().copied().chain([day_key]).collect();
                for values in log.files.values() {
                    assert_eq!(
                        values.keys().map(String::as_str).collect::<BTreeSet<_>>(),
                        want.iter().copied().collect(),
                        "{what}"
                    );
                }
            }
        }
    }
}

/// A year of one campaign is a commit per month: a checkpoint is written at version 10, and
/// the tool's own reads of the table (`status`) go through it.
#[test]
fn a_checkpoint_is_written_every_ten_versions() {
    let cfg = SimConfig {
        rows_per_day: 4,
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let range = ["--from", "2019-01-01", "--to", "2019-12-31"];
    delta_extract(&ws, &sim, &[&["--campaign", "101"][..], &range].concat()).assert_code(0);
    let log_dir = ws.dest().join("call_outcomes/_delta_log");
    assert!(log_dir
        .join("00000000000000000010.checkpoint.parquet")
        .exists());
    let last: Value =
        serde_json::from_slice(&std::fs::read(log_dir.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 10);
    assert_exact_delta(&ws.dest(), &cfg, &[101], "2019-01-01", "2019-12-31");
    let dest = ws.dest_arg();
    let status = run_bin(&[
        "status",
        "--dest",
        &dest,
        "--expect-from",
        "2019-01-01",
        "--expect-to",
        "2019-12-31",
    ]);
    status.assert_code(0);
}
