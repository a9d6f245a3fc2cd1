//! What a run did: per-partition outcomes, totals, the exit status (decided here and only here),
//! and the `--report` JSON of the contract.

use serde::Serialize;

use crate::schema::SchemaChange;

/// Exit statuses of the contract.
pub mod exit {
    pub const OK: u8 = 0;
    /// Some partitions failed after retries; the others committed. Retry with --resume.
    pub const PARTIAL: u8 = 1;
    /// Usage, configuration, authentication or unknown campaign; nothing was written.
    pub const USAGE: u8 = 2;
    /// The data broke the contract; nothing wrong was committed.
    pub const CONTRACT: u8 = 3;
    /// Stopped by SIGINT (128 + 2); committed partitions are kept. Retry with --resume.
    pub const SIGINT: u8 = 130;
    /// Stopped by SIGTERM (128 + 15); committed partitions are kept. Retry with --resume.
    pub const SIGTERM: u8 = 143;
}

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
    pub campaign_id: u64,
    pub date: chrono::NaiveDate,
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
    pub fn new(unit: &crate::unit::Unit, status: PartitionStatus) -> PartitionReport {
        PartitionReport {
            campaign_id: unit.campaign_id,
            date: unit.day,
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

#[derive(Debug, Serialize)]
pub struct Report {
    pub status: &'static str,
    pub exit_code: u8,
    pub started: String,
    pub finished: String,
    pub dest: String,
    pub campaigns: Vec<u64>,
    pub rows: usize,
    pub pages: usize,
    pub requests: u64,
    pub retries: u64,
    pub bytes_written: u64,
    pub partitions: Vec<PartitionReport>,
    pub schema_changes: Vec<SchemaChange>,
    pub files_rewritten: usize,
    /// Set when the run stopped before extracting (exit 2) or could not finish its bookkeeping.
    pub error: Option<String>,
}

impl Report {
    pub fn new(started: String, dest: String) -> Report {
        Report {
            status: "failed",
            exit_code: exit::USAGE,
            started,
            finished: String::new(),
            dest,
            campaigns: Vec::new(),
            rows: 0,
            pages: 0,
            requests: 0,
            retries: 0,
            bytes_written: 0,
            partitions: Vec::new(),
            schema_changes: Vec::new(),
            files_rewritten: 0,
            error: None,
        }
    }

    /// Totals, status and exit code from the partition outcomes.
    pub fn conclude(&mut self, finished: String) {
        self.finished = finished;
        self.partitions.sort_by_key(|p| (p.date, p.campaign_id));
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
        self.exit_code = if contract {
            exit::CONTRACT
        } else if any_failed || self.error.is_some() {
            exit::PARTIAL
        } else {
            exit::OK
        };
        self.status = match (self.exit_code, any_done) {
            (exit::OK, _) => "ok",
            (_, true) => "partial",
            (_, false) => "failed",
        };
    }

    /// A run that stopped before extracting anything.
    pub fn stopped(&mut self, exit_code: u8, error: String, finished: String) {
        self.exit_code = exit_code;
        self.status = "failed";
        self.error = Some(error);
        self.finished = finished;
    }

    /// The run was stopped by `signal`: the report covers the partitions that ended before it.
    pub fn interrupted(&mut self, signal: &str, exit_code: u8, finished: String) {
        self.conclude(finished);
        let kept = self.partitions.iter().any(|p| {
            matches!(
                p.status,
                PartitionStatus::Committed | PartitionStatus::Empty
            )
        });
        self.exit_code = exit_code;
        self.status = if kept { "partial" } else { "failed" };
        self.error = Some(format!(
            "stopped by {signal}; the {} partitions committed before it are kept and those in flight were abandoned: run again with --resume",
            self.partitions
                .iter()
                .filter(|p| matches!(p.status, PartitionStatus::Committed | PartitionStatus::Empty))
                .count()
        ));
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(status: PartitionStatus, contract: bool) -> PartitionReport {
        PartitionReport {
            campaign_id: 1,
            date: chrono::NaiveDate::from_ymd_opt(2019, 8, 1).unwrap(),
            status,
            rows: 2,
            pages: 1,
            file: None,
            error: None,
            contract_violation: contract,
            bytes_written: 0,
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
}
