//! What a run did: per-partition outcomes, totals, the run's [`Outcome`], the `--report` JSON of
//! the contract, and the summary a person reads at the end.

use serde::Serialize;

use crate::error::{Outcome, Signal};
use crate::schema::{FileColumn, SchemaChange};
use crate::source::adaptive::ConcurrencyUsed;
use crate::unit::Unit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionStatus {
    Committed,
    Empty,
    Skipped,
    Failed,
}

#[derive(Clone, Debug, Serialize)]
pub struct PartitionReport {
    /// The partition, for ordering the report.
    #[serde(skip)]
    pub(crate) unit: Unit,
    /// Its values as the report shows them (`campaign_id` and `date`, `data_owner_id` and
    /// `crm_type`, ...).
    #[serde(flatten)]
    pub partition: serde_json::Map<String, serde_json::Value>,
    /// When the snapshot began (UTC); only for snapshot tables.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_at: Option<String>,
    pub status: PartitionStatus,
    pub rows: usize,
    pub pages: usize,
    pub file: Option<String>,
    pub error: Option<String>,
    /// Failed because the data broke the contract (exit 3) rather than the transport (exit 1).
    #[serde(skip)]
    pub contract_violation: bool,
    #[serde(skip)]
    pub bytes_written: u64,
}

impl PartitionReport {
    pub(crate) fn new(
        unit: &Unit,
        day_key: &'static str,
        status: PartitionStatus,
    ) -> PartitionReport {
        PartitionReport {
            unit: *unit,
            partition: unit.values(day_key),
            snapshot_at: None,
            status,
            rows: 0,
            pages: 0,
            file: None,
            error: None,
            contract_violation: false,
            bytes_written: 0,
        }
    }
}

/// A table's schema as a run left it, for lineage and orchestrators.
#[derive(Clone, Debug)]
pub struct TableSchema {
    /// `schema.json`'s version: bumped by each change of the files' columns.
    pub version: u64,
    pub columns: Vec<FileColumn>,
    /// `parquet` or `delta`.
    pub format: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: &'static str,
    /// `outcome`'s exit status, as the report file states it.
    pub exit_code: u8,
    #[serde(skip)]
    pub outcome: Outcome,
    pub started: String,
    pub finished: String,
    pub dest: String,
    pub campaigns: Vec<u64>,
    pub rows: usize,
    pub pages: usize,
    pub requests: u64,
    pub retries: u64,
    /// Requests to the object store that failed and were retried.
    pub storage_retries: u64,
    /// The request concurrency used (adaptive up to `--concurrency`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyUsed>,
    pub bytes_written: u64,
    pub partitions: Vec<PartitionReport>,
    pub schema_changes: Vec<SchemaChange>,
    /// The schema the run left; `None` when the table was never planned.
    #[serde(skip)]
    pub schema: Option<TableSchema>,
    pub files_rewritten: usize,
    /// Set when the run stopped before extracting (exit 2) or could not finish its bookkeeping.
    pub error: Option<String>,
    /// Why `sync` skipped the table (status `skipped`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Report {
    pub fn new(started: String, dest: String) -> Report {
        Report {
            status: "failed",
            exit_code: Outcome::Refused.exit_code(),
            outcome: Outcome::Refused,
            started,
            finished: String::new(),
            dest,
            campaigns: Vec::new(),
            rows: 0,
            pages: 0,
            requests: 0,
            retries: 0,
            storage_retries: 0,
            concurrency: None,
            bytes_written: 0,
            partitions: Vec::new(),
            schema_changes: Vec::new(),
            schema: None,
            files_rewritten: 0,
            error: None,
            warning: None,
        }
    }

    /// Totals, status and exit code from the partition outcomes.
    pub fn conclude(&mut self, finished: String) {
        self.finished = finished;
        self.partitions.sort_by_key(|p| (p.unit.day, p.unit.scope));
        self.rows = self
            .partitions
            .iter()
            .filter(|p| p.status != PartitionStatus::Skipped)
            .map(|p| p.rows)
            .sum();
        self.pages = self.partitions.iter().map(|p| p.pages).sum();
        self.bytes_written += self.partitions.iter().map(|p| p.bytes_written).sum::<u64>();
        let failed = self
            .partitions
            .iter()
            .filter(|p| p.status == PartitionStatus::Failed);
        let (mut any_failed, mut contract) = (false, false);
        for p in failed {
            any_failed = true;
            contract |= p.contract_violation;
        }
        let any_done = self
            .partitions
            .iter()
            .any(|p| p.status != PartitionStatus::Failed);
        let outcome = if contract {
            Outcome::ContractBroken
        } else if any_failed || self.error.is_some() {
            Outcome::Partial
        } else {
            Outcome::Done
        };
        self.set_outcome(outcome);
        self.status = match (outcome, any_done) {
            (Outcome::Done, _) => "ok",
            (_, true) => "partial",
            (_, false) => "failed",
        };
    }

    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
        self.exit_code = outcome.exit_code();
    }

    /// A run that stopped before extracting anything.
    pub fn stopped(&mut self, outcome: Outcome, error: String, finished: String) {
        self.set_outcome(outcome);
        self.status = "failed";
        self.error = Some(error);
        self.finished = finished;
    }

    /// A table `sync` left out (`why`): nothing to extract, nothing wrong.
    pub fn skipped(&mut self, why: String, finished: String) {
        self.set_outcome(Outcome::Done);
        self.status = "skipped";
        self.warning = Some(why);
        self.finished = finished;
    }

    /// The run was stopped by `signal`: the report covers the partitions that ended before it.
    pub fn interrupted(&mut self, signal: Signal, finished: String) {
        self.conclude(finished);
        let kept = self.count(PartitionStatus::Committed) + self.count(PartitionStatus::Empty);
        self.set_outcome(Outcome::Interrupted(signal));
        self.status = if kept > 0 { "partial" } else { "failed" };
        self.error = Some(format!(
            "stopped by {}; the {kept} partitions committed before it are kept and those in flight were abandoned: run again with --resume",
            signal.name()
        ));
    }

    /// Partitions that ended with `status`.
    /// The data files the run wrote: each file a committed partition names (a month file
    /// counts once, whatever its days), and each it rewrote.
    pub fn files_written(&self) -> usize {
        let named: std::collections::HashSet<&str> = self
            .partitions
            .iter()
            .filter(|p| p.status == PartitionStatus::Committed)
            .filter_map(|p| p.file.as_deref())
            .collect();
        named.len() + self.files_rewritten
    }

    pub fn count(&self, status: PartitionStatus) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.status == status)
            .count()
    }

    /// What a person at a terminal reads at the end of a run: a few lines, no JSON, no count
    /// that is zero (but the partitions committed, the headline).
    pub fn summary(&self, table: &str, wall: std::time::Duration) -> String {
        use PartitionStatus::*;
        let mut partitions = format!("{} partitions committed", self.count(Committed));
        for (status, word) in [(Empty, "empty"), (Skipped, "skipped"), (Failed, "failed")] {
            if self.count(status) > 0 {
                partitions += &format!(", {} {word}", self.count(status));
            }
        }
        let mut written = format!("{} rows", self.rows);
        if self.files_rewritten > 0 {
            written += &format!(", {} files rewritten", self.files_rewritten);
        }
        format!(
            "{table}: {partitions}; {written}, {} written in {:.1} s\ntable: {}/{table}\n",
            human_bytes(self.bytes_written),
            wall.as_secs_f64(),
            self.dest.trim_end_matches('/'),
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises") + "\n"
    }
}

/// The `--report` of `sync`: the run as a whole, and each table's report as its section.
#[derive(Debug, Serialize)]
pub struct SyncReport<'r> {
    pub status: &'static str,
    pub exit_code: u8,
    pub started: String,
    pub finished: String,
    pub rows: usize,
    /// Requests and retries of the one client every table shares (each section repeats them).
    pub requests: u64,
    pub retries: u64,
    pub storage_retries: u64,
    /// The one client's request concurrency.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<ConcurrencyUsed>,
    pub bytes_written: u64,
    pub tables: std::collections::BTreeMap<&'static str, &'r Report>,
}

impl<'r> SyncReport<'r> {
    pub fn new(reports: impl Iterator<Item = (&'static str, &'r Report)>) -> SyncReport<'r> {
        let tables: std::collections::BTreeMap<_, _> = reports.collect();
        let all = || tables.values();
        let outcome = all().fold(Outcome::Done, |o, r| o.worst(r.outcome));
        let any_done = all().any(|r| r.status != "failed");
        SyncReport {
            status: match (outcome, any_done) {
                (Outcome::Done, _) => "ok",
                (_, true) => "partial",
                (_, false) => "failed",
            },
            exit_code: outcome.exit_code(),
            started: all().map(|r| r.started.clone()).min().unwrap_or_default(),
            finished: all().map(|r| r.finished.clone()).max().unwrap_or_default(),
            rows: all().map(|r| r.rows).sum(),
            requests: all().map(|r| r.requests).max().unwrap_or(0),
            retries: all().map(|r| r.retries).max().unwrap_or(0),
            storage_retries: all().map(|r| r.storage_retries).sum(),
            concurrency: all().find_map(|r| r.concurrency),
            bytes_written: all().map(|r| r.bytes_written).sum(),
            tables,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises") + "\n"
    }
}

/// Bytes as a person reads them: `987 B`, `12.3 MiB`.
/// The one-line summary of a run (`--summary json`; what an orchestrator's task returns): the
/// exit code, then totals over every table, then each table's.
pub fn summary_json(tables: &[(&str, &Report)], exit_code: u8) -> String {
    let counts = |reports: &[&Report]| {
        let count = |status| reports.iter().map(|r| r.count(status)).sum::<usize>();
        serde_json::json!({
            "committed": count(PartitionStatus::Committed),
            "empty": count(PartitionStatus::Empty),
            "skipped": count(PartitionStatus::Skipped),
            "failed": count(PartitionStatus::Failed),
        })
    };
    let section = |reports: &[&Report]| {
        serde_json::json!({
            "rows": reports.iter().map(|r| r.rows).sum::<usize>(),
            "partitions": counts(reports),
            "files": reports.iter().map(|r| r.files_written()).sum::<usize>(),
            "bytes": reports.iter().map(|r| r.bytes_written).sum::<u64>(),
        })
    };
    let all: Vec<&Report> = tables.iter().map(|(_, r)| *r).collect();
    let mut summary = serde_json::json!({ "exit_code": exit_code });
    if let (Some(map), serde_json::Value::Object(totals)) = (summary.as_object_mut(), section(&all))
    {
        map.extend(totals);
        map.insert(
            "tables".to_owned(),
            tables
                .iter()
                .map(|(name, r)| {
                    let mut s = section(&[r]);
                    s["status"] = r.status.into();
                    ((*name).to_owned(), s)
                })
                .collect::<serde_json::Map<_, _>>()
                .into(),
        );
    }
    summary.to_string()
}

pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(status: PartitionStatus, contract: bool) -> PartitionReport {
        let unit = Unit::campaign_day(1, chrono::NaiveDate::from_ymd_opt(2019, 8, 1).unwrap());
        PartitionReport {
            rows: 2,
            pages: 1,
            contract_violation: contract,
            ..PartitionReport::new(&unit, "date", status)
        }
    }

    fn conclude(parts: Vec<PartitionReport>) -> (u8, &'static str) {
        let mut r = Report::new(String::new(), String::new());
        r.partitions = parts;
        r.conclude(String::new());
        (r.exit_code, r.status)
    }

    #[test]
    fn exit_codes() {
        use PartitionStatus::*;
        assert_eq!(
            conclude(vec![
                part(Committed, false),
                part(Empty, false),
                part(Skipped, false)
            ]),
            (0, "ok")
        );
        assert_eq!(
            conclude(vec![part(Committed, false), part(Failed, false)]),
            (1, "partial")
        );
        assert_eq!(conclude(vec![part(Failed, false)]), (1, "failed"));
        assert_eq!(
            conclude(vec![
                part(Committed, false),
                part(Failed, false),
                part(Failed, true)
            ]),
            (3, "partial")
        );
        assert_eq!(conclude(vec![]), (0, "ok"));
    }

    #[test]
    fn summary_names_every_count_and_the_table() {
        use PartitionStatus::*;
        let mut r = Report::new(String::new(), "/data/lake".into());
        r.partitions = vec![
            part(Committed, false),
            part(Empty, false),
            part(Failed, false),
        ];
        r.bytes_written = 3 << 20;
        r.conclude(String::new());
        let text = r.summary("call_outcomes", std::time::Duration::from_millis(1500));
        assert!(
            text.contains("1 partitions committed, 1 empty, 1 failed; 6 rows, 3.0 MiB"),
            "{text}"
        );
        r.partitions.retain(|p| p.status == Committed);
        r.files_rewritten = 2;
        let text = r.summary("call_outcomes", std::time::Duration::from_millis(1500));
        assert!(
            text.contains("1 partitions committed; 6 rows, 2 files rewritten, 3.0 MiB"),
            "{text}"
        );
        assert!(text.contains("3.0 MiB written in 1.5 s"), "{text}");
        assert!(text.contains("table: /data/lake/call_outcomes"), "{text}");
    }
}
