//! `--partitioning month` (the default for new tables): one file per (campaign, month) holding
//! its days in order, with the day as a `date` column; the day still the unit of work. Exact
//! tables, a day replaced inside its month, four writers on the same months, a run killed at
//! any moment, schema changes, and bad input.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatchReader;
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

use crate::cube_sim::{self, Faults, Quirks, SimConfig};
use crate::support::*;

/// A month table read back: its rows (with the day each row's `date` column holds), its files
/// and their columns.
struct MonthTable {
    rows: Vec<Row>,
    files: Vec<PathBuf>,
    schemas: Vec<arrow_schema::SchemaRef>,
    schema_json: Value,
}

/// Reads `call_outcomes` as a month table: only `campaign_id=*/month=*/part-00000.parquet`
/// under the table root, each row's `date` inside its folder's month, rows in day order.
fn read_months(dest: &Path) -> MonthTable {
    let root = dest.join("call_outcomes");
    assert_clean_root_with(dest, "call_outcomes", &["campaign_id", "month"]);
    let mut table = MonthTable {
        rows: Vec::new(),
        files: all_files(&root),
        schemas: Vec::new(),
        schema_json: serde_json::from_slice(
            &std::fs::read(dest.join("_cube_extract/call_outcomes/schema.json")).unwrap(),
        )
        .unwrap(),
    };
    for file in &table.files {
        let folder = |level: usize, key: &str| -> String {
            let mut dir = file.parent().unwrap();
            for _ in 0..level {
                dir = dir.parent().unwrap();
            }
            let name = dir.file_name().unwrap().to_str().unwrap();
            name.strip_prefix(&format!("{key}=")).unwrap().to_owned()
        };
        let month = folder(0, "month");
        let campaign_id: u64 = folder(1, "campaign_id").parse().unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap();
        let schema = reader.schema();
        assert_eq!(
            schema.field(0).data_type(),
            &arrow_schema::DataType::Date32,
            "date is the first column, a Date32: {file:?}"
        );
        table.schemas.push(schema);
        let mut last = None;
        for batch in reader {
            let batch = batch.unwrap();
            for i in 0..batch.num_rows() {
                let mut values = row_cells(&batch, i);
                let Some(Val::Days(days)) = values.remove("date") else {
                    panic!("a month file's rows have a date: {file:?}");
                };
                let date = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
                    + chrono::Duration::days(days.into());
                assert_eq!(date.format("%Y-%m").to_string(), month, "{file:?}");
                assert!(last <= Some(date), "rows in day order in {file:?}");
                last = Some(date);
                table.rows.push(Row {
                    campaign_id,
                    date,
                    values,
                });
            }
        }
    }
    table
}

/// Within each (campaign, day), the rows are in the order the API served them.
#[track_caller]
fn assert_api_order(actual: &[Row], expected: &[Row]) {
    let ids = |rows: &[Row]| {
        let mut by_day: BTreeMap<(u64, NaiveDate), Vec<Val>> = BTreeMap::new();
        for r in rows {
            by_day
                .entry((r.campaign_id, r.date))
                .or_default()
                .push(r.values["crm__customer_id"].clone());
        }
        by_day
    };
    assert_eq!(
        ids(actual),
        ids(expected),
        "rows in API order within each day"
    );
}

/// The table holds exactly what `cfg` serves for `campaigns` over `from..=to`, in order.
#[track_caller]
fn assert_exact_months(view: &Path, cfg: &SimConfig, campaigns: &[u64], from: &str, to: &str) {
    let table = read_months(view);
    let expected = expected_rows(cfg, campaigns, &days(from, to), &table.schema_json);
    assert_rows(&table.rows, &expected);
    assert_api_order(&table.rows, &expected);
}

/// The months (`YYYY-MM`) the days `from..=to` fall in.
fn months(from: &str, to: &str) -> Vec<String> {
    let mut months: Vec<String> = days(from, to)
        .iter()
        .map(|d| d.format("%Y-%m").to_string())
        .collect();
    months.dedup();
    months
}

fn month_extract(ws: &Workspace, sim: &cube_sim::SimHandle, args: &[&str]) -> Outcome {
    let mut all = vec!["--partitioning", "month"];
    all.extend_from_slice(args);
    ws.extract(sim, &all)
}

fn a_month_table_holds_every_day_in_its_month_file_in_order(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks {
            drift: true,
            new_keys: true,
            ..Quirks::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let out = month_extract(
        &ws,
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-07-29",
            "--to",
            "2019-08-04",
        ],
    );
    out.assert_code(0);
    let view = ws.view();
    assert_exact_months(&view, &cfg, &[101, 102], "2019-07-29", "2019-08-04");
    let table = read_months(&view);
    assert_eq!(table.files.len(), 2 * 2, "one file per campaign and month");
    for file in &table.files {
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap()).unwrap();
        // Days of a few hundred rows each share a row group: readers pay per row group.
        assert_eq!(builder.metadata().num_row_groups(), 1, "{file:?}");
    }
    assert!(table.schemas.windows(2).all(|w| w[0] == w[1]));
    // The day stays the unit of the report and the ledger, each naming its month file.
    let partitions = out.report()["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2 * 7);
    for p in partitions {
        let date = day(p["date"].as_str().unwrap());
        let file = format!(
            "call_outcomes/campaign_id={}/month={}/part-00000.parquet",
            p["campaign_id"],
            date.format("%Y-%m")
        );
        assert_eq!(p["status"], "committed", "{p}");
        assert_eq!(p["file"], file.as_str());
        let entry = view.join(format!(
            "_cube_extract/call_outcomes/ledger/campaign_id={}/date={date}",
            p["campaign_id"]
        ));
        let entry = all_files(&entry).pop().expect("a ledger entry per day");
        let entry: Value = serde_json::from_slice(&std::fs::read(entry).unwrap()).unwrap();
        assert_eq!(entry["file"], file.as_str());
        assert_eq!(entry["rows"], p["rows"]);
    }
    let schema = &table.schema_json;
    assert_eq!(schema["partitioning"], "month");
}

fn replacing_a_day_rewrites_its_month_with_only_that_day_changed(backend: Backend) {
    let cfg = SimConfig::default();
    let ws = Workspace::on(backend);
    {
        let sim = cube_sim::start(cfg.clone());
        month_extract(
            &ws,
            &sim,
            &[
                "--campaign",
                "101",
                "--from",
                "2019-08-01",
                "--to",
                "2019-08-06",
            ],
        )
        .assert_code(0);
    }
    // The API now serves other records for the 3rd (another seed), and the 3rd is run again.
    let changed = SimConfig {
        seed: cfg.seed + 1,
        ..cfg.clone()
    };
    let sim = cube_sim::start(changed.clone());
    month_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-03"]).assert_code(0);
    let table = read_months(&ws.view());
    assert_eq!(table.files.len(), 1);
    let mut expected = Vec::new();
    for d in days("2019-08-01", "2019-08-06") {
        let served_by = if d == day("2019-08-03") {
            &changed
        } else {
            &cfg
        };
        expected.extend(expected_rows(served_by, &[101], &[d], &table.schema_json));
    }
    assert_rows(&table.rows, &expected);
    assert_api_order(&table.rows, &expected);
}

fn four_writers_on_the_same_months_lose_no_day(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks {
            drift: true,
            new_keys: true,
            ..Quirks::default()
        },
        faults: Faults {
            latency_ms: 5,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    // Each writer's days are spread over both months, between the others' days.
    let ranges = [
        ("2019-07-27", "2019-07-31"),
        ("2019-08-01", "2019-08-05"),
        ("2019-07-22", "2019-07-26"),
        ("2019-08-06", "2019-08-10"),
    ];
    writers_at_once(
        &ws,
        &sim,
        &["--partitioning", "month", "--campaign", "101,102"],
        &ranges,
    );
    // Every day is in its month file before any fan-in.
    let before = read_months(&ws.view());
    let expected = expected_rows(
        &cfg,
        &[101, 102],
        &days("2019-07-22", "2019-08-10"),
        &before.schema_json,
    );
    assert_eq!(before.rows.len(), expected.len(), "no day lost");
    run_bin_env(&["reconcile", "--dest", &ws.dest_arg()], &ws.env()).assert_code(0);
    let view = ws.view();
    assert_exact_months(&view, &cfg, &[101, 102], "2019-07-22", "2019-08-10");
    let after = read_months(&view);
    assert_eq!(
        after.files.len(),
        2 * months("2019-07-22", "2019-08-10").len()
    );
    assert!(
        after.schemas.windows(2).all(|w| w[0] == w[1]),
        "one schema in every month file"
    );
}

on_every_backend!(
    a_month_table_holds_every_day_in_its_month_file_in_order,
    replacing_a_day_rewrites_its_month_with_only_that_day_changed,
    four_writers_on_the_same_months_lose_no_day,
    a_new_column_rewrites_the_month_files_and_keeps_every_row,
    a_killed_month_run_leaves_whole_files_and_resume_ends_exact,
);

/// A run killed with SIGKILL at several moments leaves only whole month files, and
/// `--resume` then ends with the exact table.
fn a_killed_month_run_leaves_whole_files_and_resume_ends_exact(backend: Backend) {
    let cfg = SimConfig {
        faults: Faults {
            latency_ms: 20,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let dest = ws.dest_arg();
    // Killed after 2, 9 and 17 days ended: before any month was placed, between months, and
    // (likely) between a month's placement and its days' ledger entries.
    for kill_after in [2, 9, 17] {
        let args = [
            "call-outcomes",
            "--partitioning",
            "month",
            "--base-url",
            &sim.base_url(),
            "--token",
            TOKEN,
            "--campaign",
            "101,102",
            "--from",
            "2019-07-20",
            "--to",
            "2019-08-12",
            "--concurrency",
            "4",
            "--resume",
            "--log-format",
            "json",
            "--dest",
            &dest,
        ];
        kill_after_partitions(&args, &ws.env(), kill_after);
        let view = ws.view();
        if view.join("call_outcomes").exists() {
            // Whole files only: every month file reads, its rows in day order.
            read_months(&view);
        }
    }
    let out = ws.extract(
        &sim,
        &[
            "--partitioning",
            "month",
            "--campaign",
            "101,102",
            "--from",
            "2019-07-20",
            "--to",
            "2019-08-12",
            "--resume",
        ],
    );
    out.assert_code(0);
    assert_exact_months(&ws.view(), &cfg, &[101, 102], "2019-07-20", "2019-08-12");
    let (status, code) = status_of(
        &ws,
        &["--expect-from", "2019-07-20", "--expect-to", "2019-08-12"],
    );
    assert_eq!(code, 0, "{status}");
}

fn a_new_column_rewrites_the_month_files_and_keeps_every_row(backend: Backend) {
    let cfg = SimConfig {
        new_column_from: NaiveDate::from_ymd_opt(2019, 8, 10),
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    month_extract(
        &ws,
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-07-01",
            "--to",
            "2019-08-09",
        ],
    )
    .assert_code(0);
    let out = month_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-10"]);
    out.assert_code(0);
    let view = ws.view();
    let table = read_months(&view);
    let column = "call_outcome__extra__Oppfølging";
    assert!(
        table
            .schemas
            .iter()
            .all(|s| s.field_with_name(column).is_ok()),
        "every month file has the new column"
    );
    assert_exact_months(&view, &cfg, &[101], "2019-07-01", "2019-08-10");
    // Two month files written anew, not one per day.
    assert!(
        out.report()["files_rewritten"].as_u64().unwrap() <= 2,
        "{}",
        out.report()
    );
}

#[test]
fn new_tables_are_cut_by_month_and_older_tables_keep_their_days() {
    let cfg = SimConfig::default();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let dest = ws.dest_arg();
    let url = sim.base_url();
    let base = [
        "call-outcomes",
        "--base-url",
        &url,
        "--token",
        TOKEN,
        "--campaign",
        "101",
        "--from",
        "2019-08-01",
        "--dest",
        &dest,
    ];
    let out = bin_command_as_is(&base, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exact_months(&ws.dest(), &cfg, &[101], "2019-08-01", "2019-08-01");

    // A day table (made with --partitioning day, or before the option) stays one.
    let older = Workspace::new();
    older
        .extract(
            &sim,
            &[
                "--partitioning",
                "day",
                "--campaign",
                "101",
                "--from",
                "2019-08-01",
            ],
        )
        .assert_code(0);
    let schema = older.dest().join("_cube_extract/call_outcomes/schema.json");
    let mut json: Value = serde_json::from_slice(&std::fs::read(&schema).unwrap()).unwrap();
    assert_eq!(json["partitioning"], "day");
    json.as_object_mut().unwrap().remove("partitioning");
    std::fs::write(&schema, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    let mut args = base.to_vec();
    let older_dest = older.dest_arg();
    *args.last_mut().unwrap() = &older_dest;
    args[8] = "2019-08-02";
    let out = bin_command_as_is(&args, &[]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exact_table(&older.dest(), &cfg, &[101], "2019-08-01", "2019-08-02");
}

#[test]
fn asking_a_table_for_the_other_partitioning_exits_2_and_changes_nothing() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    month_extract(&ws, &sim, &["--campaign", "101", "--from", "2019-08-01"]).assert_code(0);
    let before = snapshot_files(&ws.dest());
    let out = ws.extract(
        &sim,
        &[
            "--partitioning",
            "day",
            "--campaign",
            "101",
            "--from",
            "2019-08-02",
        ],
    );
    let error = out.refused_with_one_error();
    assert!(
        error.contains("--partitioning month") && error.contains("new --dest"),
        "{}",
        error
    );
    let weekly = ws.extract(
        &sim,
        &[
            "--partitioning",
            "week",
            "--campaign",
            "101",
            "--from",
            "2019-08-02",
        ],
    );
    weekly.assert_code(2);
    assert!(weekly.stderr.contains("month, day"), "{}", weekly.stderr);
    let after = snapshot_files(&ws.dest());
    // The report of the refused run is written outside the destination.
    assert_eq!(before, after, "no byte changed");
}

/// `status --json` of the workspace's destination, and its exit code.
fn status_of(ws: &Workspace, args: &[&str]) -> (Value, i32) {
    let dest = ws.dest_arg();
    let mut all = vec!["status", "--dest", dest.as_str(), "--json"];
    all.extend_from_slice(args);
    let out = run_bin_env(&all, &ws.env());
    (
        serde_json::from_str(&out.stdout).unwrap_or(Value::Null),
        out.code,
    )
}
