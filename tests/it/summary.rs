//! `--summary json`: one line of JSON on stdout, what an orchestrator's task returns; its
//! figures are the report's.

use serde_json::Value;

use crate::cube_sim::{self, SimConfig};
use crate::support::*;

fn summary_of(out: &Outcome) -> Value {
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {:?}", out.stdout);
    serde_json::from_str(lines[0]).expect("the line is JSON")
}

#[test]
fn the_summary_is_one_json_line_with_the_reports_figures() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-03",
            "--summary",
            "json",
        ],
    );
    out.assert_code(0);
    let summary = summary_of(&out);
    let report = out.report();
    assert_eq!(summary["exit_code"], 0);
    assert_eq!(summary["rows"], report["rows"]);
    assert_eq!(summary["bytes"], report["bytes_written"]);
    assert_eq!(summary["partitions"]["committed"], 6);
    assert_eq!(summary["partitions"]["failed"], 0);
    // --partitioning day (the tests' default): a file per committed day.
    assert_eq!(summary["files"], 6);
    assert_eq!(summary["tables"]["call_outcomes"]["rows"], report["rows"]);
    assert_eq!(
        summary["tables"]["call_outcomes"]["status"],
        report["status"]
    );
    // A refused run says so too, with its exit code.
    let refused = ws.extract(
        &sim,
        &[
            "--campaign",
            "999",
            "--from",
            "2019-08-01",
            "--summary",
            "json",
        ],
    );
    refused.assert_code(2);
    assert_eq!(summary_of(&refused)["exit_code"], 2);
}

#[test]
fn sync_sums_its_tables_and_names_each() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract_with(
        "sync",
        &sim,
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
            "--summary",
            "json",
        ],
        &[],
    );
    out.assert_code(0);
    let summary = summary_of(&out);
    let tables = summary["tables"].as_object().unwrap();
    assert_eq!(tables.len(), 6);
    let rows: u64 = tables.values().map(|t| t["rows"].as_u64().unwrap()).sum();
    assert_eq!(summary["rows"], rows);
    assert!(rows > 0);
}
