//! End-to-end extraction against the simulator, one test per API quirk and per guarantee.

use crate::support::*;

const ALL3: &[u64] = &[101, 102, 103];

fn sim_with(quirks: Quirks, page_size: usize) -> (SimConfig, SimHandle) {
    let cfg = SimConfig {
        quirks,
        page_size,
        ..SimConfig::default()
    };
    (cfg.clone(), cube_sim::start(cfg))
}

/// Extracts `campaigns` over `from..=to`, checks exit 0, and that the dataset equals the
/// simulator's records with a clean table root. Returns the report.
fn extract_and_check(
    ws: &Workspace,
    cfg: &SimConfig,
    sim: &SimHandle,
    campaigns: &[u64],
    from: &str,
    to: &str,
) -> serde_json::Value {
    let ids = campaigns
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = ws.extract(sim, &["--campaign", &ids, "--from", from, "--to", to]);
    out.assert_code(0);
    let view = ws.view();
    let data = read_dataset(&view);
    let expected = expected_rows(cfg, campaigns, &days(from, to), &data.schema_json);
    assert_rows(&data.rows, &expected);
    assert_clean_table_root(&view);
    out.report().clone()
}

fn every_quirk_at_once_gives_every_record_once(backend: Backend) {
    let (cfg, sim) = sim_with(Quirks::all(), 37);
    let ws = Workspace::on(backend);
    let report = extract_and_check(&ws, &cfg, &sim, ALL3, "2019-08-05", "2019-08-16");
    assert_eq!(report["status"], "ok");
    let served: usize = ALL3
        .iter()
        .flat_map(|c| {
            days("2019-08-05", "2019-08-16")
                .into_iter()
                .map(move |d| (*c, d))
        })
        .map(|(c, d)| cube_sim::records(&cfg, c, d).len())
        .sum();
    assert_eq!(report["rows"], served);
    // Days 7 and 14 are empty: recorded as such, with no file.
    let parts = report["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 36);
    for p in parts {
        let d = day(p["date"].as_str().unwrap());
        let want = if d == day("2019-08-07") || d == day("2019-08-14") {
            "empty"
        } else {
            "committed"
        };
        assert_eq!(p["status"], want, "{p}");
        assert_eq!(p["file"].is_null(), want == "empty");
    }
    assert!(!ws
        .view()
        .join("call_outcomes/campaign_id=101/date=2019-08-07")
        .exists());
}

#[test]
fn awkward_keys_become_nfc_columns_unique_ignoring_case() {
    let (cfg, sim) = sim_with(
        Quirks {
            odd_keys: true,
            case_keys: true,
            ..Quirks::default()
        },
        500,
    );
    let ws = Workspace::new();
    extract_and_check(&ws, &cfg, &sim, &[101], "2019-08-01", "2019-08-02");
    let schema = read_dataset(&ws.dest()).schema_json;
    let cols = schema["columns"].as_array().unwrap();
    let name_of = |key: &str| {
        cols.iter()
            .find(|c| c["source_key"] == key)
            .map(|c| c["name"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        name_of("call_outcome__extra__Fast ansatt over 50 %").as_deref(),
        Some("call_outcome__extra__Fast ansatt over 50 %")
    );
    assert_eq!(
        name_of("call_outcome__extra__Re\u{301}sume\u{301}").as_deref(),
        Some("call_outcome__extra__Résumé")
    );
    assert_eq!(name_of("Date").as_deref(), Some("Date__2"));
    assert_eq!(name_of("campaign_id").as_deref(), Some("campaign_id__2"));
    let upper = name_of("call_outcome__extra__Kommentar").unwrap();
    let lower = name_of("call_outcome__extra__kommentar").unwrap();
    assert_ne!(upper.to_lowercase(), lower.to_lowercase());
    let folded: std::collections::HashSet<String> = cols
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(folded.len(), cols.len(), "names are unique ignoring case");
}

#[test]
fn next_links_to_another_host_are_never_followed() {
    let other = cube_sim::start(SimConfig::default());
    let cfg = SimConfig {
        quirks: Quirks {
            foreign_next: true,
            ..Quirks::default()
        },
        page_size: 7,
        next_host: Some(other.base_url()),
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    extract_and_check(&ws, &cfg, &sim, &[101, 102], "2019-08-01", "2019-08-02");
    assert!(
        other.requests().is_empty(),
        "the host named by `next` was contacted: {:?}",
        other.requests()
    );
    assert!(
        listing_requests(&sim).len() > 4,
        "several pages per day were read"
    );
}

#[test]
fn malformed_next_links_without_question_mark_are_survived() {
    let (cfg, sim) = sim_with(
        Quirks {
            malformed_next: true,
            ..Quirks::default()
        },
        11,
    );
    let ws = Workspace::new();
    extract_and_check(&ws, &cfg, &sim, &[103], "2019-08-03", "2019-08-04");
}

#[test]
fn page_size_one_and_default_page_size() {
    for size in [1, 500] {
        let cfg = SimConfig {
            page_size: size,
            rows_per_day: 6,
            ..SimConfig::default()
        };
        let sim = cube_sim::start(cfg.clone());
        let ws = Workspace::new();
        let report = extract_and_check(&ws, &cfg, &sim, &[101], "2019-08-01", "2019-08-02");
        let rows = report["rows"].as_u64().unwrap();
        let pages = report["pages"].as_u64().unwrap();
        assert_eq!(pages, if size == 1 { rows } else { 2 }, "{report}");
    }
}

fn wide_records_of_300_custom_fields(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks {
            wide: true,
            ..Quirks::default()
        },
        rows_per_day: 40,
        page_size: 25,
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    extract_and_check(&ws, &cfg, &sim, &[101, 102], "2019-08-01", "2019-08-02");
    assert!(read_dataset(&ws.view()).schemas[0].fields().len() > 300);
}

fn rerunning_a_range_replaces_partitions_and_never_appends(backend: Backend) {
    let (cfg, sim) = sim_with(Quirks::all(), 50);
    let ws = Workspace::on(backend);
    extract_and_check(&ws, &cfg, &sim, ALL3, "2019-08-01", "2019-08-03");
    let first = read_dataset(&ws.view());
    let report = extract_and_check(&ws, &cfg, &sim, ALL3, "2019-08-01", "2019-08-03");
    assert_eq!(report["files_rewritten"], 0);
    let second = read_dataset(&ws.view());
    assert_eq!(first.rows, second.rows);
    assert_eq!(first.files.len(), second.files.len());
}

fn a_second_run_with_new_keys_and_widened_types_brings_earlier_files_up_to_date(backend: Backend) {
    let (cfg, sim) = sim_with(
        Quirks {
            drift: true,
            new_keys: true,
            ..Quirks::default()
        },
        500,
    );
    let ws = Workspace::on(backend);
    let r1 = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-04",
        ],
    );
    r1.assert_code(0);
    let r2 = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-20",
            "--to",
            "2019-08-23",
        ],
    );
    r2.assert_code(0);
    let changes = r2.report()["schema_changes"].as_array().unwrap();
    assert!(
        changes.iter().any(|c| c["change"] == "widened"),
        "{changes:?}"
    );
    assert!(
        changes.iter().any(|c| c["change"] == "added"),
        "{changes:?}"
    );
    assert_eq!(
        r2.report()["files_rewritten"],
        8,
        "the 8 files of the first run are rewritten"
    );

    let data = read_dataset(&ws.view());
    assert_eq!(data.files.len(), 16);
    for s in &data.schemas {
        assert_eq!(
            s.fields(),
            data.schemas[0].fields(),
            "every file has the same columns and types"
        );
    }
    let mut all_days = days("2019-08-01", "2019-08-04");
    all_days.extend(days("2019-08-20", "2019-08-23"));
    let expected = expected_rows(&cfg, &[101, 102], &all_days, &data.schema_json);
    assert_rows(&data.rows, &expected);
    // The first run wrote `""` as null in columns the second widened to Utf8: they read `""`.
    let widened = widened_to_utf8(&[r1.report(), r2.report()]);
    assert!(
        empty_strings_before(&expected, &widened, day("2019-08-05")) > 0,
        "the first run's files hold \"\" in a column the second widened: {widened:?}"
    );
    assert_eq!(
        data.schema_json["version"].as_u64(),
        Some(3),
        "one bump per run that changed the layout"
    );
}

fn resume_skips_committed_partitions(backend: Backend) {
    let (cfg, sim) = sim_with(Quirks::default(), 500);
    let ws = Workspace::on(backend);
    extract_and_check(&ws, &cfg, &sim, &[101], "2019-08-01", "2019-08-02");
    let before = listing_requests(&sim).len();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-04",
            "--resume",
        ],
    );
    out.assert_code(0);
    let mut fetched: Vec<_> = listing_requests(&sim)[before..]
        .iter()
        .map(|(_, from)| from.clone())
        .collect();
    fetched.sort(); // partitions run concurrently
    assert_eq!(
        fetched,
        ["20190803", "20190804"],
        "only the days not yet committed are fetched"
    );
    let statuses: Vec<_> = out.report()["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["skipped", "skipped", "committed", "committed"]);
    let data = read_dataset(&ws.view());
    assert_rows(
        &data.rows,
        &expected_rows(
            &cfg,
            &[101],
            &days("2019-08-01", "2019-08-04"),
            &data.schema_json,
        ),
    );
}

fn a_day_that_became_empty_loses_its_old_file(backend: Backend) {
    let ws = Workspace::on(backend);
    let (_, sim) = sim_with(Quirks::default(), 500);
    ws.extract(&sim, &["--campaign", "101", "--from", "2019-08-07"])
        .assert_code(0);
    assert!(ws
        .view()
        .join("call_outcomes/campaign_id=101/date=2019-08-07/part-00000.parquet")
        .exists());
    drop(sim);
    let (_, sim) = sim_with(
        Quirks {
            empty_days: true,
            ..Quirks::default()
        },
        500,
    );
    let out = ws.extract(&sim, &["--campaign", "101", "--from", "2019-08-07"]);
    out.assert_code(0);
    assert_eq!(out.report()["partitions"][0]["status"], "empty");
    assert!(!ws
        .view()
        .join("call_outcomes/campaign_id=101/date=2019-08-07")
        .exists());
    assert!(
        ws.view()
            .join("_cube_extract/call_outcomes/ledger/campaign_id=101/date=2019-08-07")
            .exists(),
        "empty days are recorded as done"
    );
}

// Each scenario above runs on local disk and on the S3 server.
on_every_backend!(
    every_quirk_at_once_gives_every_record_once,
    wide_records_of_300_custom_fields,
    rerunning_a_range_replaces_partitions_and_never_appends,
    a_second_run_with_new_keys_and_widened_types_brings_earlier_files_up_to_date,
    resume_skips_committed_partitions,
    a_day_that_became_empty_loses_its_old_file,
);

/// One run over a range whose later days widen a column to Utf8: the days committed before
/// the widening wrote its `""` as null, and read `""` once their files are rewritten.
#[test]
fn a_single_run_over_a_drifting_range_keeps_the_empty_strings_of_days_before_the_widening() {
    // Pages of 7 records: a day's `""` lie on several pages, each decoded on its own, so
    // their rows must be counted from the start of the file.
    let (cfg, sim) = sim_with(
        Quirks {
            drift: true,
            ..Quirks::default()
        },
        7,
    );
    let ws = Workspace::on(Backend::Local);
    // One request at a time: partitions start in day order and few are in flight, so the early
    // days are committed before the drift (from the 15th) is met.
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-05",
            "--to",
            "2019-08-16",
            "--concurrency",
            "1",
        ],
    );
    out.assert_code(0);
    assert!(
        out.report()["files_rewritten"].as_u64().unwrap() > 0,
        "the widening was met after some days were committed"
    );
    assert_exact_with_the_empty_strings_before_the_drift(
        &ws,
        &cfg,
        &out,
        "2019-08-05",
        "2019-08-16",
    );
}

/// The table holds exactly what the simulator serves for campaign 101 over `from..=to`, and
/// the days before the drift (from the 15th) hold `""` in the columns `out` widened to Utf8.
fn assert_exact_with_the_empty_strings_before_the_drift(
    ws: &Workspace,
    cfg: &SimConfig,
    out: &Outcome,
    from: &str,
    to: &str,
) {
    let widened = widened_to_utf8(&[out.report()]);
    let data = read_dataset(&ws.view());
    let expected = expected_rows(cfg, &[101], &days(from, to), &data.schema_json);
    assert!(
        empty_strings_before(&expected, &widened, day("2019-08-15")) > 0,
        "days before the drift hold \"\" in a widened column: {widened:?}"
    );
    assert_rows(&data.rows, &expected);
}

/// A run long enough that the files its schema change left behind are rewritten while its last
/// partitions still run (from `2 x (concurrency + cores)` partitions before the end): the days
/// before the widening end with the final schema and their `""`, the table is exact, and the
/// report counts every rewrite.
#[test]
fn the_files_a_run_left_behind_are_rewritten_while_its_last_partitions_run() {
    let cfg = SimConfig {
        quirks: Quirks {
            drift: true,
            ..Quirks::default()
        },
        faults: cube_sim::Faults {
            // The last partitions take a while, as with a real API.
            latency_ms: 10,
            ..cube_sim::Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    // The drift begins on the 15th; the early rewrite, once 2 x (1 + cores) days are left.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let from = day("2019-08-05");
    let to = day("2019-08-15") + chrono::Duration::days(2 * (1 + cores as i64) + 10);
    let (from, to) = (from.to_string(), to.to_string());
    let ws = Workspace::on(Backend::Local);
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            &from,
            "--to",
            &to,
            "--concurrency",
            "1",
            "-v",
        ],
    );
    out.assert_code(0);
    let log = out.all_output();
    let early: u64 = log
        .lines()
        .find(|l| l.contains("rewrote files while the last partitions ran"))
        .and_then(|l| l.split("files=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no early rewrite in the log:\n{log}"));
    assert!(
        early > 0,
        "the early rewrite found the days before the widening"
    );
    let rewrites = log
        .matches("rewrote file for the current dataset schema")
        .count() as u64;
    assert_eq!(out.report()["files_rewritten"].as_u64(), Some(rewrites));
    assert!(rewrites >= early);
    assert_exact_with_the_empty_strings_before_the_drift(&ws, &cfg, &out, &from, &to);
}

/// Page 1 of the first partitions goes out with the label requests, in one round trip: with
/// half a second per answer, each arrives before any label could have come back, and each is
/// fetched once (kept for its partition). The first window of a run asks for half of
/// `--concurrency` (see `source::adaptive`): 16 leaves room for the 3 labels and 3 pages.
#[test]
fn the_first_partitions_fetch_their_page_1_while_the_labels_come() {
    let latency = std::time::Duration::from_millis(500);
    let sim = cube_sim::start(SimConfig {
        faults: cube_sim::Faults {
            latency_ms: latency.as_millis() as u64,
            ..cube_sim::Faults::default()
        },
        ..SimConfig::default()
    });
    let ws = Workspace::on(Backend::Local);
    let one_day = [
        "--campaign",
        "101,102,103",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-01",
        "--concurrency",
        "16",
    ];
    ws.extract(&sim, &one_day).assert_code(0);
    let requests = sim.requests();
    let labels_asked = requests
        .iter()
        .filter(|r| r.path.contains("crm_custom_fields"))
        .map(|r| r.at)
        .min()
        .expect("the labels were fetched");
    let first_pages: Vec<_> = requests
        .iter()
        .filter(|r| r.path.contains("/call_outcomes") && !r.query.contains("page="))
        .collect();
    assert_eq!(first_pages.len(), 3, "{first_pages:?}");
    for page in first_pages {
        assert!(
            page.at < labels_asked + latency,
            "page 1 of {} was asked for only after the labels came",
            page.path
        );
    }
}

#[test]
fn a_type_widening_to_utf8_within_one_day_keeps_every_json_text_exactly() {
    // A late day whose first record holds a number or boolean in a drifting column while a
    // later record holds text: the file started with the narrower type cannot take that page,
    // so the day is read again with the column as Utf8, and no "" turns into null.
    let cfg = SimConfig {
        quirks: Quirks {
            drift: true,
            ..Quirks::default()
        },
        page_size: 1,
        ..SimConfig::default()
    };
    let drifting = ["crm__custom_info__1407", "call_outcome__extra__Samtykke"];
    let is_text =
        |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).is_some_and(|s| !s.is_empty());
    let (campaign, date) = days("2019-08-15", "2019-08-31")
        .into_iter()
        .flat_map(|d| [101u64, 102, 103].map(|c| (c, d)))
        .find(|&(c, d)| {
            let records = cube_sim::records(&cfg, c, d);
            records
                .first()
                .is_some_and(|r| drifting.iter().all(|k| !is_text(r.get(*k))))
                && records
                    .iter()
                    .any(|r| drifting.iter().any(|k| is_text(r.get(*k))))
        })
        .expect("the simulator has such a day");
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let day_arg = date.to_string();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            &campaign.to_string(),
            "--from",
            &day_arg,
            "--concurrency",
            "1",
        ],
    );
    out.assert_code(0);
    let data = read_dataset(&ws.dest());
    let expected = expected_rows(&cfg, &[campaign], &[date], &data.schema_json);
    assert_rows(&data.rows, &expected);
    assert!(
        out.stderr.contains("to Utf8 while the day was read"),
        "the day was read again: {}",
        out.stderr
    );
}
