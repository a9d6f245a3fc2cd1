//! What only an S3 destination has: multipart uploads, and its own ways of being misconfigured.

use crate::support::*;

#[test]
fn a_partition_larger_than_one_chunk_goes_up_as_one_multipart_upload() {
    let cfg = one_multipart_day();
    let sim = cube_sim::start(cfg.clone());
    let ws = Workspace::on(Backend::S3);
    let out = ws.extract(&sim, &["--campaign", "101", "--from", "2019-08-01"]);
    out.assert_code(0);
    let bytes = out.report()["bytes_written"].as_u64().unwrap();
    assert!(
        bytes > 8 << 20,
        "the partition must exceed one 8 MiB chunk to test multipart; it was {bytes} bytes"
    );
    let log = S3Server::shared().log();
    let bucket = ws.bucket();
    assert!(
        log.iter().any(
            |l| l.contains(&format!("POST /{bucket}/lake/call_outcomes/")) && l.contains("uploads")
        ),
        "no multipart upload was started for the data file"
    );
    assert!(
        !log.iter().any(
            |l| l.contains(&format!("PUT /{bucket}/lake/call_outcomes/"))
                && !l.contains("partNumber")
        ),
        "the data file must not also be PUT whole"
    );
    let view = ws.view();
    let data = read_dataset(&view);
    let expected = expected_rows(
        &cfg,
        &[101],
        &days("2019-08-01", "2019-08-01"),
        &data.schema_json,
    );
    assert_rows(&data.rows, &expected);
    assert_eq!(
        S3Server::shared().keys(bucket, "lake/call_outcomes"),
        ["lake/call_outcomes/campaign_id=101/date=2019-08-01/part-00000.parquet"]
    );
}

fn s3_error(env: Vec<(String, String)>, dest: &str, must_mention: &[&str]) {
    let sim = cube_sim::start(SimConfig::default());
    let report = tempfile::NamedTempFile::new().unwrap();
    let report_path = report.path().display().to_string();
    let args = [
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
        dest,
        "--report",
        &report_path,
    ];
    let mut out = run_bin_env(&args, &env);
    out.report = serde_json::from_slice(&std::fs::read(report.path()).unwrap()).ok();
    let error = out.refused_with_one_error();
    for m in must_mention {
        assert!(error.contains(m), "error should mention {m:?}: {}", error);
    }
    let secret = env
        .iter()
        .find(|(k, _)| k == "AWS_SECRET_ACCESS_KEY")
        .map(|(_, v)| v.clone())
        .unwrap();
    assert!(!out.all_output().contains(&secret), "the secret key leaked");
    assert!(
        listing_requests(&sim).is_empty(),
        "nothing may be fetched before the destination is known good"
    );
}

#[test]
fn a_missing_bucket_exits_2_naming_bucket_and_endpoint() {
    let server = S3Server::shared();
    s3_error(
        server.env(),
        "s3://no-such-bucket/lake",
        &["no-such-bucket", &server.endpoint, "does not exist"],
    );
}

#[test]
fn wrong_credentials_exit_2_naming_bucket_and_endpoint() {
    // A second server that checks signatures against the keys it knows (none).
    let strict = S3Server::start(&[("INITIAL_NO_AUTH_ACTION_COUNT", "0")]);
    let mut env = strict.env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_SECRET_ACCESS_KEY" {
            *v = "wr0ng-secret-9d1e".into();
        }
    }
    s3_error(
        env,
        "s3://lake-bucket/x",
        &["lake-bucket", &strict.endpoint, "credentials"],
    );
}

#[test]
fn an_unreachable_endpoint_exits_2_naming_it() {
    let mut env = S3Server::shared().env();
    for (k, v) in env.iter_mut() {
        if k == "AWS_ENDPOINT_URL" {
            *v = "http://127.0.0.1:1".into();
        }
    }
    s3_error(
        env,
        "s3://some-bucket/x",
        &["some-bucket", "http://127.0.0.1:1", "cannot reach"],
    );
}
