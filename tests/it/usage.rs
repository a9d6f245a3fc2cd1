//! Usage, configuration and authentication errors: exit 2, one clear sentence, nothing written,
//! no secret in any output.

use crate::support::*;

fn usage_error(args: &[&str], must_mention: &str) {
    let ws = Workspace::new();
    let dest = ws.dest();
    let mut all = vec![
        "call-outcomes",
        "--base-url",
        "http://127.0.0.1:9",
        "--token",
        "t0ken-abc",
    ];
    let dest_s = dest.display().to_string();
    all.extend_from_slice(&["--dest", &dest_s]);
    all.extend_from_slice(args);
    let out = run_bin(&all);
    assert_eq!(out.code, 2, "{args:?}: stderr {}", out.stderr);
    assert!(
        out.stderr.contains(must_mention),
        "{args:?}: stderr should mention {must_mention:?}: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("panicked") && !out.stderr.contains("backtrace"),
        "{}",
        out.stderr
    );
    assert!(!dest.exists(), "{args:?}: the destination was created");
}

#[test]
fn to_before_from_is_a_usage_error() {
    usage_error(
        &[
            "--campaign",
            "101",
            "--from",
            "2019-08-02",
            "--to",
            "2019-08-01",
        ],
        "before --from",
    );
}

#[test]
fn no_campaign_is_a_usage_error() {
    usage_error(&["--from", "2019-08-01"], "--campaign");
}

#[test]
fn zero_concurrency_is_a_usage_error() {
    usage_error(&["--campaign", "101", "--concurrency", "0"], "at least 1");
}

#[test]
fn bad_dates_are_usage_errors() {
    usage_error(&["--campaign", "101", "--from", "2019-02-30"], "YYYY-MM-DD");
    usage_error(
        &["--campaign", "101", "--from", "yesterday-ish"],
        "YYYY-MM-DD",
    );
}

#[test]
fn a_non_numeric_campaign_is_a_usage_error() {
    usage_error(&["--campaign", "101,abc"], "abc");
}

#[test]
fn a_wrong_token_exits_2_writes_nothing_and_never_shows_the_token() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let secret = "wrong-token-5f3a9c";
    let out = ws.extract(
        &sim,
        &[
            "--token",
            secret,
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
        ],
    );
    out.assert_code(2);
    assert!(out.stderr.contains("credentials"), "{}", out.stderr);
    assert!(
        !out.all_output().contains(secret),
        "the token leaked: {}",
        out.all_output()
    );
    assert!(!ws.dest().exists(), "nothing may be written");
    assert_eq!(out.report()["exit_code"], 2);
    // It was sent, as a token, to the simulator: the failure is the server's verdict.
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.authorization.as_deref() == Some(&format!("Token {secret}"))));
}

#[test]
fn a_wrong_password_exits_2_and_never_shows_it() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--username",
            "sim",
            "--password",
            "hunter2-zz",
            "--campaign",
            "101",
            "--from",
            "2019-08-01",
        ],
    );
    out.assert_code(2);
    assert!(!out.all_output().contains("hunter2-zz"));
    assert!(!ws.dest().exists());
}

#[test]
fn an_unknown_campaign_exits_2_before_writing() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract(&sim, &["--campaign", "101,4242", "--from", "2019-08-01"]);
    out.assert_code(2);
    assert!(out.stderr.contains("4242"), "{}", out.stderr);
    assert!(!ws.dest().exists());
    assert!(
        listing_requests(&sim).is_empty(),
        "no partition may be fetched"
    );
}

#[test]
fn credentials_from_the_environment_work_and_basic_auth_is_sent_as_basic() {
    let sim = cube_sim::start(SimConfig::default());
    let ws = Workspace::new();
    let out = ws.extract(
        &sim,
        &[
            "--username",
            "sim",
            "--password",
            "sim-pass",
            "--campaign",
            "102",
            "--from",
            "2019-08-02",
        ],
    );
    out.assert_code(0);
    assert!(sim.requests().iter().all(|r| r
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic "))));
    assert!(sim
        .requests()
        .iter()
        .all(|r| r.accept.as_deref() == Some("application/json")));
}
