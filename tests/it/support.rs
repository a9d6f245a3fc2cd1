//! Test harness: run the binary, start simulators, read a dataset back and build the rows the
//! simulator served, converted by the contract's rules from the schema the run recorded.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch, RecordBatchReader};
use arrow_schema::{DataType, SchemaRef};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;

pub use crate::cube_sim::{self, Quirks, SimConfig, SimHandle};
pub use crate::s3::S3Server;

pub const TOKEN: &str = "sim-token";

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

pub fn days(from: &str, to: &str) -> Vec<NaiveDate> {
    day(from)
        .iter_days()
        .take_while(|d| *d <= day(to))
        .collect()
}

/// Where a test's destination lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Local,
    S3,
}

/// A temp dir holding the reports of one test and its destination: a local folder, or a fresh
/// bucket on the shared S3 server.
pub struct Workspace {
    dir: tempfile::TempDir,
    runs: std::cell::Cell<usize>,
    backend: Backend,
    bucket: String,
}

/// The prefix of S3 destinations inside their bucket.
const S3_PREFIX: &str = "lake";

impl Workspace {
    pub fn new() -> Workspace {
        Workspace::on(Backend::Local)
    }

    pub fn on(backend: Backend) -> Workspace {
        let bucket = format!("t{:016x}", rand::random::<u64>());
        if backend == Backend::S3 {
            S3Server::shared().create_bucket(&bucket);
        }
        Workspace {
            dir: tempfile::tempdir().unwrap(),
            runs: std::cell::Cell::new(0),
            backend,
            bucket,
        }
    }

    /// The local destination folder (local backend only).
    pub fn dest(&self) -> PathBuf {
        assert_eq!(
            self.backend,
            Backend::Local,
            "use view() for S3 destinations"
        );
        self.dir.path().join("dest")
    }

    pub fn dest_arg(&self) -> String {
        match self.backend {
            Backend::Local => self.dir.path().join("dest").display().to_string(),
            Backend::S3 => format!("s3://{}/{S3_PREFIX}", self.bucket),
        }
    }

    /// A local folder with what the destination holds now (for S3, a fresh download).
    pub fn view(&self) -> PathBuf {
        match self.backend {
            Backend::Local => self.dest(),
            Backend::S3 => {
                let dir = self
                    .dir
                    .path()
                    .join(format!("view-{}", rand::random::<u64>()));
                std::fs::create_dir_all(&dir).unwrap();
                S3Server::shared().download(&self.bucket, S3_PREFIX, &dir);
                dir
            }
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn env(&self) -> Vec<(String, String)> {
        match self.backend {
            Backend::Local => Vec::new(),
            Backend::S3 => S3Server::shared().env(),
        }
    }

    /// Runs `cube-extract call-outcomes` against `sim` into the destination with `--report`.
    pub fn extract(&self, sim: &SimHandle, args: &[&str]) -> Outcome {
        self.extract_with("call-outcomes", sim, args, &[])
    }

    /// Runs `cube-extract COMMAND` against `sim` into the destination with `--report`, with
    /// extra environment variables.
    pub fn extract_with(
        &self,
        command: &str,
        sim: &SimHandle,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Outcome {
        let n = self.runs.get() + 1;
        self.runs.set(n);
        let report = self.dir.path().join(format!("report-{n}.json"));
        let mut all = vec![
            command.to_string(),
            "--base-url".into(),
            sim.base_url(),
            "--dest".into(),
            self.dest_arg(),
            "--report".into(),
            report.display().to_string(),
        ];
        if !args.iter().any(|a| *a == "--username" || *a == "--token") {
            all.push("--token".into());
            all.push(TOKEN.into());
        }
        all.extend(args.iter().map(|s| s.to_string()));
        let mut vars = self.env();
        vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut out = run_bin_env(&all, &vars);
        out.report = std::fs::read(&report)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("report is JSON"));
        out
    }
}

pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub report: Option<Value>,
}

impl Outcome {
    pub fn report(&self) -> &Value {
        self.report.as_ref().expect("a report was written")
    }

    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, code, "exit status\nstderr:\n{}", self.stderr);
        self
    }

    /// A run refused with exit 2 and one sentence: that `error: ...` line (the only one).
    #[track_caller]
    pub fn refused_with_one_error(&self) -> &str {
        self.assert_code(2);
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 1, "one error line: {}", self.stderr);
        errors[0]
    }

    /// Every output a user or orchestrator sees.
    pub fn all_output(&self) -> String {
        format!(
            "{}\n{}\n{}",
            self.stdout,
            self.stderr,
            self.report
                .as_ref()
                .map(|r| r.to_string())
                .unwrap_or_default()
        )
    }
}

pub fn run_bin<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Outcome {
    run_bin_env(args, &[])
}

pub fn run_bin_env<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(String, String)]) -> Outcome {
    let out = bin_command(args, env).output().expect("binary runs");
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        report: None,
    }
}

/// The commands that write date-partitioned tables.
const DATE_PARTITIONED: [&str; 3] = ["call-outcomes", "product-registrations", "sync"];

/// The `cube-extract` command with `args` and `env`, and no CUBE_*/AWS_*/RUST_LOG settings of
/// the test's own environment. The tests written for one file per day run on `--partitioning
/// day` unless they choose: the contract keeps that layout's rules, and those tests hold it
/// to them (month tables have tests of their own, `months.rs`).
pub fn bin_command<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(String, String)]) -> Command {
    let mut args: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
    let writes_days = args
        .first()
        .is_some_and(|c| DATE_PARTITIONED.iter().any(|d| c == *d));
    if writes_days && !args.iter().any(|a| a == "--partitioning") {
        args.splice(1..1, ["--partitioning".into(), "day".into()]);
    }
    bin_command_as_is(&args, env)
}

/// As [`bin_command`], with `args` exactly as given.
pub fn bin_command_as_is<S: AsRef<std::ffi::OsStr>>(
    args: &[S],
    env: &[(String, String)],
) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cube-extract"));
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT",
        "AWS_ALLOW_HTTP",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "CUBE_BASE_URL",
        "CUBE_TOKEN",
        "CUBE_USERNAME",
        "CUBE_PASSWORD",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).args(args);
    cmd
}

/// A value as compared in tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    Null,
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// Microseconds since the epoch (naive or UTC).
    Micros(i64),
    /// Days since the epoch.
    Days(i32),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub campaign_id: u64,
    pub date: NaiveDate,
    pub values: BTreeMap<String, Val>,
}

impl Row {
    fn key(&self) -> (u64, NaiveDate, String) {
        let id = match self.values.get("crm__customer_id") {
            Some(Val::Str(s)) => s.clone(),
            other => format!("{other:?}"),
        };
        (self.campaign_id, self.date, id)
    }
}

/// What a destination holds.
pub struct Dataset {
    pub files: Vec<(u64, NaiveDate, PathBuf)>,
    pub schemas: Vec<SchemaRef>,
    pub rows: Vec<Row>,
    pub schema_json: Value,
}

pub fn read_dataset(dest: &Path) -> Dataset {
    read_table(dest, "call_outcomes")
}

/// What a destination holds for one table.
pub fn read_table(dest: &Path, name: &str) -> Dataset {
    let table = dest.join(name);
    let mut files = Vec::new();
    if table.exists() {
        for c in std::fs::read_dir(&table).unwrap() {
            let c = c.unwrap().path();
            let campaign: u64 = c
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .strip_prefix("campaign_id=")
                .unwrap()
                .parse()
                .unwrap();
            for d in std::fs::read_dir(&c).unwrap() {
                let d = d.unwrap().path();
                let date = day(d
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .strip_prefix("date=")
                    .unwrap());
                for f in std::fs::read_dir(&d).unwrap() {
                    files.push((campaign, date, f.unwrap().path()));
                }
            }
        }
    }
    files.sort();
    let mut rows = Vec::new();
    let mut schemas = Vec::new();
    for (campaign_id, date, path) in &files {
        let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        schemas.push(reader.schema());
        for batch in reader {
            rows.extend(batch_rows(&batch.unwrap(), *campaign_id, *date));
        }
    }
    let schema_json = std::fs::read(dest.join(format!("_cube_extract/{name}/schema.json")))
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap_or(Value::Null);
    Dataset {
        files,
        schemas,
        rows,
        schema_json,
    }
}

fn batch_rows(batch: &RecordBatch, campaign_id: u64, date: NaiveDate) -> Vec<Row> {
    (0..batch.num_rows())
        .map(|i| Row {
            campaign_id,
            date,
            values: row_cells(batch, i),
        })
        .collect()
}

/// The columns of `schema.json` that files hold: dropped columns are recorded there but are in
/// no file.
pub fn file_columns(schema_json: &Value) -> Vec<&Value> {
    schema_json["columns"]
        .as_array()
        .expect("schema.json has columns")
        .iter()
        .filter(|c| c["personal_data"] != "dropped")
        .collect()
}

/// Row `i` of a batch, by column name.
pub fn row_cells(batch: &RecordBatch, i: usize) -> BTreeMap<String, Val> {
    batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), cell(c.as_ref(), i)))
        .collect()
}

pub fn cell(c: &dyn Array, i: usize) -> Val {
    if c.is_null(i) {
        return Val::Null;
    }
    match c.data_type() {
        DataType::Utf8 => Val::Str(c.as_string::<i32>().value(i).to_owned()),
        DataType::Int64 => Val::Int(c.as_primitive::<Int64Type>().value(i)),
        DataType::Float64 => Val::Float(c.as_primitive::<Float64Type>().value(i)),
        DataType::Boolean => Val::Bool(c.as_boolean().value(i)),
        DataType::Date32 => Val::Days(c.as_primitive::<Date32Type>().value(i)),
        DataType::Timestamp(_, _) => {
            Val::Micros(c.as_primitive::<TimestampMicrosecondType>().value(i))
        }
        other => panic!("unexpected column type {other}"),
    }
}

/// The rows the simulator serves for these campaigns and days, as the contract says they must
/// read back given the column types in `schema.json`.
pub fn expected_rows(
    cfg: &SimConfig,
    campaigns: &[u64],
    days: &[NaiveDate],
    schema_json: &Value,
) -> Vec<Row> {
    expected_rows_with(cfg, campaigns, days, schema_json, cube_sim::records)
}

/// As [`expected_rows`], with the records of a day given by `records`.
pub fn expected_rows_with(
    cfg: &SimConfig,
    campaigns: &[u64],
    days: &[NaiveDate],
    schema_json: &Value,
    records: fn(&SimConfig, u64, NaiveDate) -> Vec<serde_json::Map<String, Value>>,
) -> Vec<Row> {
    let columns = file_columns(schema_json);
    let mut rows = Vec::new();
    for &c in campaigns {
        for &d in days {
            for record in records(cfg, c, d) {
                let values = columns
                    .iter()
                    .map(|col| {
                        let name = col["name"].as_str().unwrap().to_owned();
                        let key = col["source_key"].as_str().unwrap();
                        let ty = col["type"].as_str().unwrap();
                        (name, expected_value(record.get(key), ty))
                    })
                    .collect();
                rows.push(Row {
                    campaign_id: c,
                    date: d,
                    values,
                });
            }
        }
    }
    rows
}

pub fn expected_value(v: Option<&Value>, ty: &str) -> Val {
    let v = match v {
        None | Some(Value::Null) => return Val::Null,
        Some(v) => v,
    };
    let empty = v.as_str() == Some("");
    match ty {
        "Utf8" => Val::Str(match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }),
        _ if empty => Val::Null,
        "Int64" => Val::Int(v.as_i64().expect("int")),
        "Float64" => Val::Float(v.as_f64().expect("number")),
        "Boolean" => Val::Bool(v.as_bool().expect("bool")),
        "Date32" => Val::Days(
            (NaiveDate::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d").unwrap()
                - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32,
        ),
        "Timestamp(Microsecond, None)" => Val::Micros(
            chrono::NaiveDateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%d %H:%M")
                .unwrap()
                .and_utc()
                .timestamp_micros(),
        ),
        "Timestamp(Microsecond, \"UTC\")" => Val::Micros(
            chrono::DateTime::parse_from_str(v.as_str().unwrap(), "%Y-%m-%dT%H:%M:%S%.f%z")
                .unwrap()
                .timestamp_micros(),
        ),
        other => panic!("unknown type {other} in schema.json"),
    }
}

/// Columns some run widened to Utf8.
pub fn widened_to_utf8(reports: &[&Value]) -> HashSet<String> {
    reports
        .iter()
        .flat_map(|r| r["schema_changes"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["change"] == "widened" && c["to"] == "Utf8")
        .map(|c| c["column"].as_str().unwrap().to_owned())
        .collect()
}

/// How many `""` the expected rows of days before `before` hold in `columns`: values that were
/// written while their column was typed (where `""` is null) and must read `""` after it widened.
pub fn empty_strings_before(
    expected: &[Row],
    columns: &HashSet<String>,
    before: NaiveDate,
) -> usize {
    expected
        .iter()
        .filter(|r| r.date < before)
        .flat_map(|r| r.values.iter())
        .filter(|(col, v)| columns.contains(*col) && **v == Val::Str(String::new()))
        .count()
}

/// Every expected row is there exactly once, with equal values.
#[track_caller]
pub fn assert_rows(actual: &[Row], expected: &[Row]) {
    let mut by_key: BTreeMap<_, Vec<&Row>> = BTreeMap::new();
    for r in actual {
        by_key.entry(r.key()).or_default().push(r);
    }
    let dups: Vec<_> = by_key
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .take(3)
        .collect();
    assert!(dups.is_empty(), "duplicated rows: {dups:?}");
    assert_eq!(actual.len(), expected.len(), "row count");
    let mut problems = Vec::new();
    for e in expected {
        let Some(a) = by_key.get(&e.key()).map(|v| v[0]) else {
            problems.push(format!("missing row {:?}", e.key()));
            continue;
        };
        for (col, ev) in &e.values {
            let av = a
                .values
                .get(col)
                .unwrap_or_else(|| panic!("column {col} missing from file of {:?}", e.key()));
            if av != ev {
                problems.push(format!("{:?} {col}: got {av:?}, want {ev:?}", e.key()));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} differences, first: {:#?}",
        problems.len(),
        &problems[..problems.len().min(8)]
    );
}

/// Nothing but `campaign_id=*/date=*/` folders and `.parquet` files under the table root.
#[track_caller]
pub fn assert_clean_table_root(dest: &Path) {
    assert_clean_root_of(dest, "call_outcomes")
}

/// As [`assert_clean_table_root`], for the table `name` (a day table).
pub fn assert_clean_root_of(dest: &Path, name: &str) {
    assert_clean_root_with(dest, name, &["campaign_id", "date"])
}

/// Nothing under the table root but the partition folders `folders` (outermost first) and,
/// in the innermost, `part-00000.parquet`.
#[track_caller]
pub fn assert_clean_root_with(dest: &Path, name: &str, folders: &[&str]) {
    let root = dest.join(name);
    let mut stack = vec![(root.clone(), 0)];
    while let Some((dir, depth)) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().into_string().unwrap();
            let is_dir = e.file_type().unwrap().is_dir();
            match folders.get(depth) {
                Some(key) => assert!(
                    is_dir && name.starts_with(&format!("{key}=")),
                    "stray {name} in {}",
                    dir.display()
                ),
                None => assert!(
                    !is_dir && name == "part-00000.parquet",
                    "stray {name} in {}",
                    dir.display()
                ),
            }
            if is_dir {
                stack.push((e.path(), depth + 1));
            }
        }
    }
}

/// Requests the simulator served for call-outcome listings, as (campaign, from_date) pairs.
pub fn listing_requests(sim: &SimHandle) -> Vec<(String, String)> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path.contains("/call_outcomes"))
        .map(|r| {
            let from = r
                .query
                .split('&')
                .find_map(|kv| kv.strip_prefix("from_date="))
                .unwrap_or("")
                .to_owned();
            (r.path.clone(), from)
        })
        .collect()
}

/// Every file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

/// A simulator whose 2019-08-01 of campaign 101 makes a file above one 8 MiB upload chunk, so
/// that it goes up as a multipart upload (300 custom fields, 14,000 records).
pub fn one_multipart_day() -> SimConfig {
    SimConfig {
        quirks: Quirks {
            wide: true,
            ..Quirks::default()
        },
        rows_per_day: 14000,
        page_size: 1000,
        ..SimConfig::default()
    }
}

/// A run refused by the write probe: one error line, naming the probe object and the fix.
pub fn assert_refused_by_the_write_probe(out: &Outcome) {
    let error = out.refused_with_one_error();
    assert!(
        error.contains("_cube_extract/write-probe-") && error.contains("write access"),
        "{}",
        error
    );
}

/// The table under `view` holds exactly what the simulator serves for `campaigns` over
/// `from..=to` (typed as its schema.json says).
pub fn assert_exact_table(view: &Path, cfg: &SimConfig, campaigns: &[u64], from: &str, to: &str) {
    let data = read_dataset(view);
    let expected = expected_rows(cfg, campaigns, &days(from, to), &data.schema_json);
    assert_rows(&data.rows, &expected);
}

/// Every file under `dir` with its bytes.
pub fn snapshot_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    all_files(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            (f, bytes)
        })
        .collect()
}

/// Runs `cube-extract` with `args` (which must include `--log-format json`) and kills it with
/// SIGKILL once `partitions` partitions have ended (or when it ends first).
pub fn kill_after_partitions(args: &[&str], env: &[(String, String)], partitions: usize) {
    let mut child = bin_command(args, env)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let mut ended = 0;
    for line in lines {
        let event: Value = serde_json::from_str(&line.unwrap()).unwrap();
        if event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("partition "))
        {
            ended += 1;
            if ended == partitions {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Runs one `call-outcomes` writer per range of `ranges` at once, each with `args` (and its
/// `--from`/`--to`, the simulator's URL and token, `-q`), and asserts that each exits 0.
pub fn writers_at_once(ws: &Workspace, sim: &SimHandle, args: &[&str], ranges: &[(&str, &str)]) {
    let (dest, url) = (ws.dest_arg(), sim.base_url());
    let children: Vec<_> = ranges
        .iter()
        .map(|(from, to)| {
            let mut all = vec!["call-outcomes"];
            all.extend_from_slice(args);
            all.extend_from_slice(&[
                "--base-url",
                &url,
                "--token",
                TOKEN,
                "--from",
                from,
                "--to",
                to,
                "--dest",
                &dest,
                "-q",
            ]);
            bin_command(&all, &ws.env())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
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
}
