//! Operations: JSON logs, reports for every outcome, a clean stop on SIGTERM, several writers
//! into one destination at once followed by `reconcile`, and shell completions.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::cube_sim::{Faults, Quirks};
use crate::support::*;

/// Every stderr line is one JSON object with a timestamp, a level and a message.
fn assert_json_lines(stderr: &str) -> Vec<Value> {
    let events: Vec<Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(!events.is_empty());
    for e in &events {
        for field in ["timestamp", "level", "message"] {
            assert!(e[field].is_string(), "{field} missing in {e}");
        }
    }
    events
}

#[test]
fn json_logs_are_one_object_per_line_and_reports_follow_every_outcome() {
    let cfg = SimConfig {
        faults: Faults {
            failing_days: vec![day("2019-08-02")],
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let args = [
        "--campaign",
        "101,102",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-03",
        "--log-format",
        "json",
        "-v",
        "--max-attempts",
        "2",
    ];
    let out = ws.extract(&sim, &args);
    out.assert_code(1);
    let events = assert_json_lines(&out.stderr);
    assert!(!out.stderr.contains(TOKEN));
    // Retries (of the failing day) carry their fields.
    let retry = events
        .iter()
        .find(|e| e["attempt"].is_number())
        .expect("a retry was logged");
    assert!(retry["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1"));
    // The report of exit 1: failed and committed partitions, counts that match the data.
    let report = out.report();
    assert_eq!(report["exit_code"], 1);
    assert_eq!(report["status"], "partial");
    let parts = report["partitions"].as_array().unwrap();
    let failed = parts.iter().filter(|p| p["status"] == "failed").count();
    assert_eq!(failed, 2, "both campaigns of the failing day");
    let data = read_dataset(&ws.dest());
    assert_eq!(report["rows"].as_u64().unwrap() as usize, data.rows.len());
    let committed: Vec<_> = parts
        .iter()
        .filter(|p| p["status"] == "committed")
        .collect();
    assert_eq!(committed.len(), data.files.len());

    // Exit 0 after the day heals, with --resume: only the failed day is fetched.
    sim.set_failing_days(vec![]);
    let out = ws.extract(&sim, &[&args[..], &["--resume"]].concat());
    out.assert_code(0);
    assert_json_lines(&out.stderr);
    assert_eq!(out.report()["status"], "ok");
    let expected = expected_rows(
        &cfg,
        &[101, 102],
        &days("2019-08-01", "2019-08-03"),
        &read_dataset(&ws.dest()).schema_json,
    );
    assert_rows(&read_dataset(&ws.dest()).rows, &expected);
}

#[test]
fn a_day_that_never_settles_reports_exit_3_in_json() {
    let cfg = SimConfig {
        page_size: 5,
        faults: Faults {
            inserts_while_paging: 1000,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg);
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--log-format",
            "json",
        ],
    );
    out.assert_code(3);
    assert_json_lines(&out.stderr);
    let report = out.report();
    assert_eq!(report["exit_code"], 3);
    assert_eq!(report["partitions"][0]["status"], "failed");
    assert_eq!(report["rows"], 0);
}

#[test]
fn sigterm_stops_cleanly_with_a_report_and_exit_143() {
    let cfg = SimConfig {
        page_size: 20,
        faults: Faults {
            latency_ms: 40,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let report_path = ws.dest().with_file_name("sigterm-report.json");
    let args: Vec<String> = [
        "call-outcomes",
        "--base-url",
        &sim.base_url(),
        "--token",
        TOKEN,
        "--campaign",
        "101,102,103",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-25",
        "--concurrency",
        "4",
        "--log-format",
        "json",
        "--dest",
        &ws.dest_arg(),
        "--report",
        report_path.to_str().unwrap(),
    ]
    .map(String::from)
    .to_vec();
    let mut child = bin_command(&args, &[])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut committed = 0;
    while committed < 5 {
        let line = lines.next().expect("the run ended before SIGTERM").unwrap();
        let event: Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "partition committed" {
            committed += 1;
        }
    }
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // The rest of stderr is JSON too, ending with the error line.
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_json_lines(&rest.join("\n"));
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));

    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["exit_code"], 143);
    assert_eq!(report["status"], "partial");
    assert!(report["error"].as_str().unwrap().contains("SIGTERM"));
    let dest = ws.dest();
    assert_clean_table_root(&dest);
    let data = read_dataset(&dest);
    let reported: Vec<&Value> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "committed")
        .collect();
    assert!(
        reported.len() >= 5 && reported.len() < 75,
        "{}",
        reported.len()
    );
    assert_eq!(
        reported.len(),
        data.files.len(),
        "every reported partition has its file, and no other"
    );
    assert_eq!(report["rows"].as_u64().unwrap() as usize, data.rows.len());

    // --resume completes the dataset exactly.
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102,103",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-25",
            "--resume",
        ],
    );
    out.assert_code(0);
    let data = read_dataset(&dest);
    let expected = expected_rows(
        &cfg,
        &[101, 102, 103],
        &days("2019-08-01", "2019-08-25"),
        &data.schema_json,
    );
    assert_rows(&data.rows, &expected);
}

fn four_writers_at_once_then_reconcile_give_one_uniform_dataset(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks {
            drift: true,
            new_keys: true,
            case_keys: true,
            ..Quirks::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let dest = ws.dest_arg();
    let url = sim.base_url();
    let ranges = [
        ("2019-08-01", "2019-08-07"),
        ("2019-08-08", "2019-08-14"),
        ("2019-08-15", "2019-08-21"),
        ("2019-08-22", "2019-08-28"),
    ];
    let report_dir = tempfile::tempdir().unwrap();
    let reports: Vec<std::path::PathBuf> = (0..ranges.len())
        .map(|i| report_dir.path().join(format!("writer-{i}.json")))
        .collect();
    let children: Vec<_> = ranges
        .iter()
        .zip(&reports)
        .map(|((from, to), report)| {
            let args = [
                "call-outcomes",
                "--base-url",
                &url,
                "--token",
                TOKEN,
                "--campaign",
                "101,102,103",
                "--from",
                from,
                "--to",
                to,
                "--dest",
                &dest,
                "-q",
                "--report",
                report.to_str().unwrap(),
            ];
            bin_command(&args, &ws.env())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (child, range) in children.into_iter().zip(ranges) {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "writer {range:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Before the fan-in: every day of every campaign is there, with the simulator's rows;
    // files some writer committed under an older schema are not yet in the final layout.
    let all_days = days("2019-08-01", "2019-08-28");
    let (before, code) = status(
        &ws,
        &["--expect-from", "2019-08-01", "--expect-to", "2019-08-28"],
    );
    assert_eq!(code, 0, "{before}");
    for (scope, campaign) in before["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .zip([101, 102, 103])
    {
        assert_eq!(scope["campaign_id"], campaign);
        assert_eq!(
            scope["ranges"],
            serde_json::json!([["2019-08-01", "2019-08-28"]])
        );
        let (rows, files, empty) = truth(&cfg, campaign, &all_days);
        assert_eq!(scope["rows"], rows, "{scope}");
        assert_eq!(scope["files"], files);
        assert_eq!(scope["empty_days"], serde_json::json!(empty));
    }
    let out = run_bin_env(&["reconcile", "--dest", &dest], &ws.env());
    out.assert_code(0);
    let (after, _) = status(&ws, &[]);
    assert_eq!(after["not_in_final_layout"], 0, "{after}");
    assert_eq!(after["rows"], before["rows"]);

    let view = ws.view();
    let data = read_dataset(&view);
    assert_eq!(data.files.len(), 3 * 28);
    assert!(
        data.schemas.windows(2).all(|w| w[0] == w[1]),
        "every file has the same columns and types"
    );
    let columns = data.schema_json["columns"].as_array().unwrap();
    assert_eq!(
        data.schemas[0].fields().len(),
        columns.len(),
        "the files have exactly the columns of schema.json"
    );
    let expected = expected_rows(
        &cfg,
        &[101, 102, 103],
        &days("2019-08-01", "2019-08-28"),
        &data.schema_json,
    );
    // Consent is boolean or "" before the 15th and partly "Ja" after: it ends as Utf8. Where an
    // early writer wrote it as Boolean (`""` as null; whether it did depends on which writer
    // met the drift first), reconcile's rewrite gives the `""` back: every value reads as served.
    let consent = "call_outcome__extra__Samtykke";
    let ended_as = columns
        .iter()
        .find(|c| c["name"] == consent)
        .map(|c| c["type"].clone());
    assert_eq!(ended_as, Some(Value::from("Utf8")));
    let drifting = std::collections::HashSet::from([consent.to_owned()]);
    assert!(empty_strings_before(&expected, &drifting, day("2019-08-15")) > 0);
    assert_rows(&data.rows, &expected);
    // schema.json is the newest committed generation.
    let generations = view.join("_cube_extract/call_outcomes/schema");
    let newest = all_files(&generations).into_iter().max().unwrap();
    let newest: Value = serde_json::from_slice(&std::fs::read(newest).unwrap()).unwrap();
    assert_eq!(newest, data.schema_json);
    // A second reconcile has nothing left to do.
    let again = run_bin_env(
        &["reconcile", "--dest", &dest, "--log-format", "json"],
        &ws.env(),
    );
    again.assert_code(0);
    assert!(
        again.stderr.contains("\"files_rewritten\":0"),
        "{}",
        again.stderr
    );
}

on_every_backend!(
    four_writers_at_once_then_reconcile_give_one_uniform_dataset,
    status_tells_what_a_run_with_a_failed_and_an_empty_day_committed,
);

#[test]
fn reconcile_of_a_destination_without_the_dataset_exits_2() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.dest()).unwrap();
    let out = run_bin(&["reconcile", "--dest", &ws.dest_arg()]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("holds no call_outcomes dataset"),
        "{}",
        out.stderr
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run_bin(&["completions", shell]);
        out.assert_code(0);
        assert!(
            out.stdout.contains("call-outcomes") && out.stdout.contains("reconcile"),
            "{shell}"
        );
    }
    run_bin(&["completions", "tcsh"]).assert_code(2);
}

/// `status --json` of a call-outcomes destination, as parsed JSON, and its exit code.
fn status(ws: &Workspace, extra: &[&str]) -> (Value, i32) {
    let dest = ws.dest_arg();
    let mut args = vec!["status", "--dest", &dest, "--json"];
    args.extend_from_slice(extra);
    let out = run_bin_env(&args, &ws.env());
    let json = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("status printed no JSON ({e}): {}", out.all_output()));
    (json, out.code)
}

/// The simulator's truth for one campaign over `days`, minus `failed` days: (rows, files,
/// empty days).
fn truth(cfg: &SimConfig, campaign: u64, days: &[chrono::NaiveDate]) -> (u64, u64, Vec<String>) {
    let counts: Vec<(chrono::NaiveDate, usize)> = days
        .iter()
        .map(|&d| (d, cube_sim::row_count(cfg, campaign, d)))
        .collect();
    let rows = counts.iter().map(|(_, n)| *n as u64).sum();
    let files = counts.iter().filter(|(_, n)| *n > 0).count() as u64;
    let empty = counts
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(d, _)| d.to_string())
        .collect();
    (rows, files, empty)
}

/// A run with one failed day (every campaign) and one empty day: `status` tells the committed
/// ranges, the gap, the empty day, rows and files as the simulator has them; `--expect-from`
/// exits 1 naming the failed day until a `--resume` run fills it.
fn status_tells_what_a_run_with_a_failed_and_an_empty_day_committed(backend: Backend) {
    let cfg = SimConfig {
        quirks: Quirks {
            empty_days: true,
            ..Quirks::default()
        },
        faults: Faults {
            failing_days: vec![day("2019-08-05")],
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(backend);
    let range = [
        "--campaign",
        "101,102",
        "--from",
        "2019-08-03",
        "--to",
        "2019-08-09",
    ];
    ws.extract(&sim, &range).assert_code(1);

    let (status_json, code) = status(&ws, &[]);
    assert_eq!(
        code, 0,
        "without --expect-from, status only tells: {status_json}"
    );
    let scopes = status_json["scopes"].as_array().unwrap();
    assert_eq!(scopes.len(), 2);
    let committed = [
        days("2019-08-03", "2019-08-04"),
        days("2019-08-06", "2019-08-09"),
    ]
    .concat();
    for (scope, campaign) in scopes.iter().zip([101, 102]) {
        assert_eq!(scope["campaign_id"], campaign);
        assert_eq!(
            scope["ranges"],
            serde_json::json!([["2019-08-03", "2019-08-04"], ["2019-08-06", "2019-08-09"]])
        );
        assert_eq!(
            scope["gaps"],
            serde_json::json!([["2019-08-05", "2019-08-05"]])
        );
        let (rows, files, empty) = truth(&cfg, campaign, &committed);
        assert_eq!(
            empty,
            ["2019-08-07"],
            "the simulator's empty day is the 7th"
        );
        assert_eq!(scope["empty_days"], serde_json::json!(empty));
        assert_eq!(scope["rows"], rows);
        assert_eq!(scope["files"], files);
        assert_eq!(scope["partitions"], committed.len());
        assert_eq!(
            scope["newest_commit"]["committed_at"]
                .as_str()
                .map(str::len),
            Some(29)
        );
    }
    assert_eq!(status_json["not_in_final_layout"], 0);

    let (asked, code) = status(
        &ws,
        &["--expect-from", "2019-08-03", "--expect-to", "2019-08-09"],
    );
    assert_eq!(code, 1, "a failed day makes the range incomplete");
    assert_eq!(
        asked["expected"]["missing"],
        serde_json::json!([
            {"campaign_id": 101, "date": "2019-08-05"},
            {"campaign_id": 102, "date": "2019-08-05"}
        ])
    );
    // A campaign the destination never got misses every day; one range it has is complete.
    let (named, code) = status(
        &ws,
        &[
            "--campaign",
            "103",
            "--expect-from",
            "2019-08-06",
            "--expect-to",
            "2019-08-07",
        ],
    );
    assert_eq!(
        (code, named["expected"]["missing"].as_array().unwrap().len()),
        (1, 2)
    );
    let (_, code) = status(
        &ws,
        &["--expect-from", "2019-08-06", "--expect-to", "2019-08-09"],
    );
    assert_eq!(code, 0);

    sim.set_failing_days(vec![]);
    let mut resume = range.to_vec();
    resume.push("--resume");
    ws.extract(&sim, &resume).assert_code(0);
    let (healed, code) = status(
        &ws,
        &["--expect-from", "2019-08-03", "--expect-to", "2019-08-09"],
    );
    assert_eq!(code, 0, "{healed}");
    let all = days("2019-08-03", "2019-08-09");
    for (scope, campaign) in healed["scopes"].as_array().unwrap().iter().zip([101, 102]) {
        assert_eq!(
            scope["ranges"],
            serde_json::json!([["2019-08-03", "2019-08-09"]])
        );
        assert_eq!(scope["gaps"], serde_json::json!([]));
        assert_eq!(scope["rows"], truth(&cfg, campaign, &all).0);
    }
}

/// A destination that does not exist, or holds no such table, exits 2 with one sentence.
#[test]
fn status_of_a_missing_destination_or_table_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let out = run_bin(&["status", "--dest", missing.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("does not exist"), "{}", out.stderr);
    assert!(!missing.exists(), "status creates nothing");
    let out = run_bin(&[
        "status",
        "--dest",
        dir.path().to_str().unwrap(),
        "--table",
        "customers",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("holds no customers dataset"),
        "{}",
        out.stderr
    );
    let out = run_bin(&[
        "status",
        "--dest",
        dir.path().to_str().unwrap(),
        "--expect-from",
        "2019-08-09",
        "--expect-to",
        "2019-08-01",
    ]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("before --expect-from"),
        "{}",
        out.stderr
    );
}
