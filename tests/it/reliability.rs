//! Retries, complete and consistent days, partial failure, crash safety and secrecy, against the
//! simulator's fault switches.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::cube_sim::Faults;
use crate::support::*;

fn faulty(faults: Faults, page_size: usize) -> (SimConfig, SimHandle) {
    let cfg = SimConfig {
        faults,
        page_size,
        ..SimConfig::default()
    };
    (cfg.clone(), cube_sim::start(cfg))
}

/// The destination holds exactly the rows the simulator serves once every day has settled.
#[track_caller]
fn assert_final_copy(
    dest: &std::path::Path,
    cfg: &SimConfig,
    campaigns: &[u64],
    from: &str,
    to: &str,
) {
    let data = read_dataset(dest);
    let expected = final_rows(cfg, campaigns, &days(from, to), &data.schema_json);
    assert_rows(&data.rows, &expected);
}

/// Rows the simulator serves once every day has settled.
fn final_rows(
    cfg: &SimConfig,
    campaigns: &[u64],
    days: &[chrono::NaiveDate],
    schema: &serde_json::Value,
) -> Vec<Row> {
    expected_rows_with(cfg, campaigns, days, schema, cube_sim::final_records)
}

#[test]
fn throttling_server_errors_and_dropped_connections_are_retried_to_an_exact_copy() {
    let (cfg, sim) = faulty(
        Faults {
            throttle_every: 5,
            error_every: 7,
            drop_every: 11,
            ..Faults::default()
        },
        20,
    );
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102,103",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-10",
        ],
    );
    out.assert_code(0);
    let data = read_dataset(&ws.dest());
    let all_days = days("2019-08-01", "2019-08-10");
    assert_rows(
        &data.rows,
        &final_rows(&cfg, &[101, 102, 103], &all_days, &data.schema_json),
    );
    let faulted = sim.requests().iter().filter(|r| r.fault.is_some()).count() as u64;
    assert!(faulted >= 10, "the run met faults: {faulted}");
    assert_eq!(
        out.report()["retries"].as_u64(),
        Some(faulted),
        "every retry is counted"
    );
    assert_eq!(
        out.report()["requests"].as_u64(),
        Some(sim.requests().len() as u64)
    );
    assert!(
        out.stderr.contains("retrying request"),
        "retries are logged with their cause"
    );
}

#[test]
fn retry_after_as_an_http_date_is_honoured() {
    let (cfg, sim) = faulty(
        Faults {
            throttle_every: 2,
            retry_after_secs: 2,
            retry_after_http_date: true,
            ..Faults::default()
        },
        500,
    );
    let ws = Workspace::new();
    let out = ws.extract(&sim, &["--campaign", "101", "--from", "2019-08-01"]);
    out.assert_code(0);
    // The throttled request (the 2nd) was retried no sooner than the server asked. (Other
    // requests may go out meanwhile: the labels and page 1 are asked for together.)
    let log = sim.requests();
    let throttled = log
        .iter()
        .position(|r| r.fault == Some("throttle"))
        .expect("a request was throttled");
    let (path, query) = (&log[throttled].path, &log[throttled].query);
    let retry = log[throttled + 1..]
        .iter()
        .find(|r| &r.path == path && &r.query == query)
        .expect("the throttled request was retried");
    let gap = retry.at.duration_since(log[throttled].at);
    assert!(
        gap >= std::time::Duration::from_millis(900),
        "retried after {gap:?}"
    );
    assert_final_copy(&ws.dest(), &cfg, &[101], "2019-08-01", "2019-08-01");
}

#[test]
fn rows_inserted_while_paging_are_read_again_until_the_day_is_consistent() {
    let (cfg, sim) = faulty(
        Faults {
            inserts_while_paging: 2,
            ..Faults::default()
        },
        10,
    );
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-02",
        ],
    );
    out.assert_code(0);
    assert_final_copy(&ws.dest(), &cfg, &[101, 102], "2019-08-01", "2019-08-02");
    assert!(
        out.stderr.contains("reading the day again"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_day_that_never_settles_fails_with_exit_3_and_leaves_the_old_partition() {
    let ws = Workspace::new();
    let (_, calm) = faulty(Faults::default(), 10);
    ws.extract(&calm, &["--campaign", "101", "--from", "2019-08-01"])
        .assert_code(0);
    let before = read_dataset(&ws.dest());
    drop(calm);
    let (_, restless) = faulty(
        Faults {
            inserts_while_paging: 50,
            ..Faults::default()
        },
        10,
    );
    let out = ws.extract(&restless, &["--campaign", "101", "--from", "2019-08-01"]);
    out.assert_code(3);
    let part = &out.report()["partitions"][0];
    assert_eq!(part["status"], "failed");
    assert!(
        part["error"]
            .as_str()
            .unwrap()
            .contains("changed while it was read"),
        "{part}"
    );
    let after = read_dataset(&ws.dest());
    assert_eq!(before.rows, after.rows, "the old partition is untouched");
}

#[test]
fn a_failing_day_exits_1_commits_the_rest_and_resume_fetches_only_it_once_healed() {
    let (cfg, sim) = faulty(
        Faults {
            failing_days: vec![day("2019-08-03")],
            ..Faults::default()
        },
        500,
    );
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-04",
            "--max-attempts",
            "3",
        ],
    );
    out.assert_code(1);
    let report = out.report();
    assert_eq!(report["status"], "partial");
    for p in report["partitions"].as_array().unwrap() {
        if p["date"] == "2019-08-03" {
            assert_eq!(p["status"], "failed", "{p}");
            assert!(
                p["error"].as_str().unwrap().contains("500"),
                "the last error is named: {p}"
            );
        } else {
            assert_eq!(p["status"], "committed", "{p}");
        }
    }
    sim.set_failing_days(Vec::new());
    let before = listing_requests(&sim).len();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-04",
            "--resume",
        ],
    );
    out.assert_code(0);
    let days_fetched: std::collections::BTreeSet<String> = listing_requests(&sim)[before..]
        .iter()
        .map(|(_, from)| from.clone())
        .collect();
    assert_eq!(days_fetched.into_iter().collect::<Vec<_>>(), ["20190803"]);
    assert_final_copy(&ws.dest(), &cfg, &[101, 102], "2019-08-01", "2019-08-04");
}

#[test]
fn sigkill_mid_run_leaves_a_readable_table_and_resume_completes_it_without_refetching() {
    let (cfg, sim) = faulty(
        Faults {
            latency_ms: 30,
            ..Faults::default()
        },
        20,
    );
    let ws = Workspace::new();
    let dest = ws.dest();
    let mut child = bin_command::<&str>(&[], &[])
        .args([
            "call-outcomes",
            "--partitioning",
            "day",
            "--base-url",
            &sim.base_url(),
            "--token",
            TOKEN,
            "--campaign",
            "101,102,103",
        ])
        .args([
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-20",
            "--concurrency",
            "4",
            "--log-format",
            "json",
        ])
        .arg("--dest")
        .arg(&dest)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few partitions are committed (the run needs many more).
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut committed = 0;
    while committed < 5 {
        let line = lines
            .next()
            .expect("the run ended before it was killed")
            .unwrap();
        let event: serde_json::Value = serde_json::from_str(&line).unwrap();
        if event["message"] == "partition committed" {
            committed += 1;
        }
    }
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());

    // Readable: only finished files under the table root, every one a valid Parquet file.
    assert_clean_table_root(&dest);
    let partial = read_dataset(&dest);
    assert!(!partial.files.is_empty());
    let ledger_root = dest.join("_cube_extract/call_outcomes/ledger");
    let mut done = std::collections::BTreeSet::new();
    for c in std::fs::read_dir(&ledger_root).unwrap() {
        let c = c.unwrap();
        let campaign = c
            .file_name()
            .into_string()
            .unwrap()
            .trim_start_matches("campaign_id=")
            .to_owned();
        for d in std::fs::read_dir(c.path()).unwrap() {
            let d = d.unwrap();
            // Committed once an entry `v<N>.json` is in place: the kill may have come after
            // the folder was made and before the entry was renamed into it.
            let entered = std::fs::read_dir(d.path()).unwrap().any(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.starts_with('v') && name.ends_with(".json")
            });
            if !entered {
                continue;
            }
            let d = d
                .file_name()
                .into_string()
                .unwrap()
                .trim_start_matches("date=")
                .replace('-', "");
            done.insert((campaign.clone(), d));
        }
    }
    assert!(
        done.len() >= 5 && done.len() < 60,
        "{} committed",
        done.len()
    );

    let before = sim.requests().len();
    let out = ws.extract(
        &sim,
        &[
            "--campaign",
            "101,102,103",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-20",
            "--resume",
        ],
    );
    out.assert_code(0);
    for r in &sim.requests()[before..] {
        if let Some(campaign) = r
            .path
            .strip_prefix("/api/v1/campaigns/")
            .and_then(|p| p.split('/').next())
        {
            let day = r
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("from_date="))
                .unwrap_or_default();
            assert!(
                !done.contains(&(campaign.to_owned(), day.to_owned())),
                "re-read committed {campaign} {day}"
            );
        }
    }
    assert_final_copy(&dest, &cfg, &[101, 102, 103], "2019-08-01", "2019-08-20");
    assert_clean_table_root(&dest);
}

#[test]
fn the_token_appears_in_no_output_and_no_byte_under_dest() {
    let cfg = SimConfig {
        token: "tok-8c1d9e77-secret".into(),
        quirks: Quirks::all(),
        faults: Faults {
            error_every: 4,
            ..Faults::default()
        },
        page_size: 30,
        ..SimConfig::default()
    };
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--token",
            &cfg.token,
            "--campaign",
            "101,102",
            "--from",
            "2019-08-01",
            "--to",
            "2019-08-03",
            "-vv",
        ],
    );
    out.assert_code(0);
    let fail = ws.extract(
        &sim,
        &[
            "--token",
            "tok-wrong-0000-secret",
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
        ],
    );
    fail.assert_code(2);
    for (what, text) in [("run", out.all_output()), ("failed run", fail.all_output())] {
        assert!(
            !text.contains(&cfg.token) && !text.contains("tok-wrong-0000-secret"),
            "secret in the {what}'s output"
        );
    }
    let mut stack = vec![ws.dest()];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files += 1;
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes
                        .windows(cfg.token.len())
                        .any(|w| w == cfg.token.as_bytes()),
                    "secret in {}",
                    path.display()
                );
            }
        }
    }
    assert!(files > 6);
}

/// A tmpfs of `size` mounted at a fresh directory, unmounted when dropped. Mounting needs root
/// (this project's machines and CI run as root): run by another user, the test says it was
/// skipped (`None`); as root, a mount that fails fails the test.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Option<SmallDisk> {
        Self::mount_with(&format!("size={size}"))
    }

    fn mount_with(options: &str) -> Option<SmallDisk> {
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED: this test mounts a small tmpfs, which needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a small tmpfs failed although this is root (a container without CAP_SYS_ADMIN?)"
        );
        Some(SmallDisk { dir })
    }

    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A local destination that fills up: exit 1, each partition that could not be written names
/// the destination as full, nothing partial is under the table root (every file there is a
/// whole Parquet file), every ledger entry is whole, and `--resume` once space is freed
/// completes the table exactly.
#[test]
fn a_full_disk_exits_1_leaves_nothing_partial_and_resume_completes_once_space_is_freed() {
    let (cfg, sim) = faulty(Faults::default(), 500);
    let Some(disk) = SmallDisk::mount("600k") else {
        return;
    };
    let dest = disk.dir.path().join("lake");
    let report_file = tempfile::NamedTempFile::new().unwrap();
    let report = report_file.path().to_owned();
    let args = |resume: bool| {
        let mut a = vec![
            "call-outcomes".to_owned(),
            "--base-url".into(),
            sim.base_url(),
            "--token".into(),
            TOKEN.into(),
            "--campaign".into(),
            "101,102,103".into(),
            "--from".into(),
            "2019-08-01".into(),
            "--to".into(),
            "2019-08-20".into(),
            "--dest".into(),
            dest.display().to_string(),
            "--report".into(),
            report.display().to_string(),
        ];
        if resume {
            a.push("--resume".into());
        }
        a
    };
    let out = run_bin(&args(false));
    out.assert_code(1);
    let full: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let failed: Vec<&serde_json::Value> = full["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "failed")
        .collect();
    assert!(!failed.is_empty(), "600k cannot hold the month");
    for p in &failed {
        let error = p["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("{} is full", dest.display())) && error.contains("--resume"),
            "{error}"
        );
    }
    for file in all_files(&dest.join("call_outcomes")) {
        let f = std::fs::File::open(&file).unwrap();
        parquet::file::reader::SerializedFileReader::new(f)
            .unwrap_or_else(|e| panic!("{} is not a whole Parquet file: {e}", file.display()));
    }
    assert_clean_table_root(&dest);
    for entry in all_files(&dest.join("_cube_extract/call_outcomes/ledger")) {
        let text = std::fs::read(&entry).unwrap();
        serde_json::from_slice::<serde_json::Value>(&text)
            .unwrap_or_else(|e| panic!("{} is not whole: {e}", entry.display()));
    }
    let staging = dest.join("_cube_extract/call_outcomes/staging");
    assert!(
        !staging.exists() || all_files(&staging).is_empty(),
        "staging is left empty"
    );

    disk.grow("64m");
    run_bin(&args(true)).assert_code(0);
    assert_exact_table(&dest, &cfg, &[101, 102, 103], "2019-08-01", "2019-08-20");
}

/// Extracts campaigns 101-103 over 2019-08-01..10 with `--concurrency 16` (and `extra`) into a
/// fresh local workspace; returns the run and the workspace.
fn extract_sixteen_at_most(sim: &SimHandle, extra: &[&str]) -> (Outcome, Workspace) {
    let ws = Workspace::new();
    let mut args = vec![
        "--campaign",
        "101,102,103",
        "--from",
        "2019-08-01",
        "--to",
        "2019-08-10",
        "--concurrency",
        "16",
        "-q",
    ];
    args.extend_from_slice(extra);
    let out = ws.extract(sim, &args);
    (out, ws)
}

/// An API that throttles (429) whatever is beyond 3 requests in flight: the adaptive limit
/// comes down to it and the run is exact with far fewer retries than with the limit fixed at
/// the ceiling (measured in the same test).
#[test]
fn adaptive_concurrency_meets_a_throttling_api_with_far_fewer_retries_than_a_fixed_one() {
    let (cfg, sim) = faulty(
        Faults {
            max_in_flight: 3,
            latency_ms: 20,
            ..Faults::default()
        },
        500,
    );
    let (adaptive, ws) = extract_sixteen_at_most(&sim, &[]);
    adaptive.assert_code(0);
    assert_exact_table(
        &ws.dest(),
        &cfg,
        &[101, 102, 103],
        "2019-08-01",
        "2019-08-10",
    );
    let used = &adaptive.report()["concurrency"];
    assert_eq!(used["ceiling"], 16);
    assert!(used["min"].as_u64().unwrap() <= 3, "{used}");
    assert!(used["mean"].as_f64().unwrap() < 16.0, "{used}");

    let (fixed, _) = extract_sixteen_at_most(&sim, &["--fixed-concurrency"]);
    assert_eq!(fixed.report()["concurrency"]["min"], 16);
    let (a, f) = (
        adaptive.report()["retries"].as_u64().unwrap(),
        fixed.report()["retries"].as_u64().unwrap(),
    );
    assert!(a * 3 < f, "adaptive: {a} retries, fixed: {f}");
}

/// A healthy API: the limit climbs from half the ceiling to the ceiling (by one with each
/// answer to a request sent at the limit, so in about two round trips) and stays there. Small
/// pages keep requests waiting for a slot, as a real backfill does: a limit that is never reached
/// has no reason to grow. Mean 14.2 idle, 13.1-14.0 beside a CPU hog (91 requests).
#[test]
fn adaptive_concurrency_stays_at_the_ceiling_with_a_healthy_api() {
    let (_, sim) = faulty(
        Faults {
            latency_ms: 30,
            ..Faults::default()
        },
        25,
    );
    let (out, _) = extract_sixteen_at_most(&sim, &[]);
    out.assert_code(0);
    let used = &out.report()["concurrency"];
    assert_eq!(used["final"], 16, "{used}");
    assert_eq!(used["min"], 8, "{used}");
    assert!(used["mean"].as_f64().unwrap() >= 12.0, "{used}");
    assert_eq!(out.report()["retries"], 0);
}

/// A local destination that can be listed but not written (a read-only file system; root can
/// write to any directory whatever its mode, so a mode would prove nothing here): exit 2 before
/// any page is fetched, naming the probe.
#[test]
fn a_read_only_destination_exits_2_before_any_page_is_fetched() {
    let (_, sim) = faulty(Faults::default(), 500);
    let Some(disk) = SmallDisk::mount_with("ro,size=1m") else {
        return;
    };
    let dest = disk.dir.path().display().to_string();
    let out = run_bin(&[
        "call-outcomes",
        "--base-url",
        &sim.base_url(),
        "--token",
        TOKEN,
        "--campaign",
        "101",
        "--from",
        "2019-08-01",
        "--dest",
        &dest,
    ]);
    assert_refused_by_the_write_probe(&out);
    assert!(listing_requests(&sim).is_empty(), "no page was fetched");
}
