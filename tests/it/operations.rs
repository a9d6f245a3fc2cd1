//! Operations: JSON logs, reports for every outcome, a clean stop on SIGTERM, several writers
//! into one destination at once followed by `reconcile`, and shell completions.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::cube_sim::Faults;
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
    let out = run_bin_env(&["reconcile", "--dest", &dest], &ws.env());
    out.assert_code(0);

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

on_every_backend!(four_writers_at_once_then_reconcile_give_one_uniform_dataset);

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
