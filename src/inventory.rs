//! What a destination holds of one table, read from its ledger and its schema only (no API,
//! no data file): per campaign or CRM, the committed days as ranges, the gaps inside them, the
//! empty days, rows, files, the newest commit, and the files not yet in the final layout (those
//! committed under an older schema version, which the next run or `reconcile` brings up to date).

use std::collections::BTreeMap;

use chrono::NaiveDate;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::sink::delta::DeltaLog;
use crate::sink::{Committed, Destination, Ledger, LedgerRecord, Paths, StoreError};
use crate::unit::{Scope, Unit};

/// Ledger records read at once: a destination in an object store answers each with a request.
const READS_AT_ONCE: usize = 16;

/// Which table at which destination an inventory is of, for the heading of its status.
pub(crate) struct Heading {
    pub(crate) table: &'static str,
    pub(crate) dest: String,
    pub(crate) schema_version: u64,
}

/// `--expect-from`/`--expect-to`, and the scopes (campaigns) named, if any.
#[derive(Clone, Copy)]
pub(crate) struct Expected<'a> {
    pub(crate) from: NaiveDate,
    pub(crate) to: NaiveDate,
    pub(crate) scopes: &'a [Scope],
}

/// The text (or JSON) to print, and whether every expected day is there.
pub(crate) struct Status {
    pub(crate) text: String,
    pub(crate) complete: bool,
}

/// One committed partition as its ledger entry tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// `None` when the entry is listed but cannot be read (a run died writing it).
    pub(crate) record: Option<Recorded>,
    /// The schema version the entry's name carries.
    pub(crate) schema_version: u64,
}

/// The readable part of a ledger entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub(crate) rows: usize,
    /// The file that holds its rows (a month table's days share their month's).
    pub(crate) file: Option<String>,
    pub(crate) committed_at: String,
}

/// The committed partitions of one table, by scope (campaign, CRM, account), then day.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Inventory {
    pub(crate) scopes: BTreeMap<Scope, BTreeMap<Option<NaiveDate>, Entry>>,
}

impl Inventory {
    /// Lists the ledger once and reads every entry.
    pub(crate) async fn load(dest: &Destination, paths: &Paths) -> Result<Inventory, StoreError> {
        let ledger = Ledger::new(dest, paths);
        let mut committed = ledger.load().await?;
        if paths.is_delta() {
            committed = DeltaLog::for_reading(dest, &paths.table_root())
                .map_err(|e| StoreError::Delta(Box::new(e)))?
                .confirm(dest, paths, committed)
                .await?;
        }
        let committed: Vec<(Unit, Committed)> = committed.into_iter().collect();
        let read: Vec<(Unit, u64, Option<LedgerRecord>)> =
            futures::stream::iter(committed.iter().map(|(unit, c)| {
                let ledger = &ledger;
                async move { Ok((*unit, c.schema_version, ledger.read(c).await?)) }
            }))
            .buffer_unordered(READS_AT_ONCE)
            .collect::<Vec<Result<_, StoreError>>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut inventory = Inventory::default();
        for (unit, schema_version, record) in read {
            let entry = Entry {
                record: record.map(|r| Recorded {
                    rows: r.rows,
                    file: r.file,
                    committed_at: r.committed_at,
                }),
                schema_version,
            };
            inventory
                .scopes
                .entry(unit.scope)
                .or_default()
                .insert(unit.day, entry);
        }
        Ok(inventory)
    }

    /// Every (scope, day) in `from..=to` with no committed partition, for the scopes held (or
    /// those named in `expected`, held or not).
    pub(crate) fn missing(
        &self,
        expected: &[Scope],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Vec<(Scope, NaiveDate)> {
        let scopes: Vec<Scope> = if expected.is_empty() {
            self.scopes.keys().copied().collect()
        } else {
            expected.to_vec()
        };
        let mut out = Vec::new();
        for scope in scopes {
            let days = self.scopes.get(&scope);
            for day in from.iter_days().take_while(|d| *d <= to) {
                if !days.is_some_and(|d| d.contains_key(&Some(day))) {
                    out.push((scope, day));
                }
            }
        }
        out
    }

    /// What `status` prints: a summary per scope, and the days `expect` misses.
    pub(crate) fn status(&self, heading: &Heading, expect: Option<Expected>, json: bool) -> Status {
        let summaries = self.summaries(heading.schema_version);
        let missing = expect.map(|e| (e, self.missing(e.scopes, e.from, e.to)));
        let complete = missing.as_ref().is_none_or(|(_, m)| m.is_empty());
        let totals = Totals::of(&summaries);
        let text = if json {
            let mut out = json!({
                "table": heading.table,
                "dest": heading.dest,
                "schema_version": heading.schema_version,
                "partitions": totals.partitions,
                "rows": totals.rows,
                "files": totals.files,
                "not_in_final_layout": totals.behind,
                "scopes": summaries.iter().map(Summary::to_json).collect::<Vec<_>>(),
            });
            if let Some((e, missing)) = &missing {
                out["expected"] = expected_json(e, missing);
            }
            format!("{out:#}\n")
        } else {
            let mut text = format!(
                "{} at {}: schema version {}, {} partitions, {} rows, {} files\n",
                heading.table,
                heading.dest,
                heading.schema_version,
                totals.partitions,
                totals.rows,
                totals.files,
            );
            for s in &summaries {
                text.push_str(&s.to_text());
            }
            if let Some((e, missing)) = &missing {
                text.push_str(&expected_text(e, missing));
            }
            text
        };
        Status { text, complete }
    }

    /// A summary per scope, against the dataset's current schema version.
    pub(crate) fn summaries(&self, current_version: u64) -> Vec<Summary> {
        self.scopes
            .iter()
            .map(|(scope, days)| Summary::of(*scope, days, current_version))
            .collect()
    }
}

/// What one campaign (or CRM, or the account) has at the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) scope: Scope,
    /// Runs of consecutive committed days (empty days included), oldest first.
    pub(crate) ranges: Vec<(NaiveDate, NaiveDate)>,
    /// Runs of days missing between the first and the last committed day.
    pub(crate) gaps: Vec<(NaiveDate, NaiveDate)>,
    /// Committed days without records (no data file).
    pub(crate) empty_days: Vec<NaiveDate>,
    /// Whether the scope holds a snapshot that replaces the last (no day).
    pub(crate) snapshot: bool,
    pub(crate) partitions: usize,
    pub(crate) rows: u64,
    pub(crate) files: usize,
    /// The newest commit: its day (if any) and when.
    pub(crate) newest: Option<(Option<NaiveDate>, String)>,
    /// Partitions committed under an older schema version than the dataset's.
    pub(crate) behind: Vec<Option<NaiveDate>>,
    /// Entries listed but not readable.
    pub(crate) unreadable: Vec<Option<NaiveDate>>,
}

impl Summary {
    fn of(scope: Scope, days: &BTreeMap<Option<NaiveDate>, Entry>, current: u64) -> Summary {
        let dated: Vec<NaiveDate> = days.keys().filter_map(|d| *d).collect();
        let mut s = Summary {
            scope,
            ranges: runs(&dated),
            gaps: Vec::new(),
            empty_days: Vec::new(),
            snapshot: days.contains_key(&None),
            partitions: days.len(),
            rows: 0,
            files: 0,
            newest: None,
            behind: Vec::new(),
            unreadable: Vec::new(),
        };
        s.gaps = s
            .ranges
            .windows(2)
            .map(|w| {
                (
                    w[0].1.succ_opt().unwrap_or(w[0].1),
                    w[1].0.pred_opt().unwrap_or(w[1].0),
                )
            })
            .collect();
        let mut files = std::collections::BTreeSet::new();
        for (day, entry) in days {
            if entry.schema_version < current {
                s.behind.push(*day);
            }
            let Some(r) = &entry.record else {
                s.unreadable.push(*day);
                continue;
            };
            s.rows += r.rows as u64;
            match &r.file {
                Some(file) => {
                    files.insert(file.as_str());
                }
                None => s.empty_days.extend(*day),
            }
            // RFC 3339 times in UTC with one precision compare as text.
            if s.newest.as_ref().is_none_or(|(_, at)| r.committed_at > *at) {
                s.newest = Some((*day, r.committed_at.clone()));
            }
        }
        s.files = files.len();
        s
    }
}

/// Consecutive days as `(first, last)` runs; `days` ascending.
fn runs(days: &[NaiveDate]) -> Vec<(NaiveDate, NaiveDate)> {
    let mut out: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for &day in days {
        match out.last_mut() {
            Some((_, last)) if last.succ_opt() == Some(day) => *last = day,
            _ => out.push((day, day)),
        }
    }
    out
}

/// The scope as the report and the ledger name it (`campaign_id`, `data_owner_id`/`crm_type`).
fn scope_values(scope: Scope) -> serde_json::Map<String, Value> {
    Unit { scope, day: None }.values("date")
}

fn day_text(day: &Option<NaiveDate>) -> Value {
    day.map_or(Value::Null, |d| Value::from(d.to_string()))
}

fn run_text(&(first, last): &(NaiveDate, NaiveDate)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}..{last}")
    }
}

impl Summary {
    pub(crate) fn to_json(&self) -> Value {
        let mut out = scope_values(self.scope);
        let pairs = |runs: &[(NaiveDate, NaiveDate)]| -> Value {
            runs.iter()
                .map(|(a, b)| json!([a.to_string(), b.to_string()]))
                .collect()
        };
        out.insert("ranges".into(), pairs(&self.ranges));
        out.insert("gaps".into(), pairs(&self.gaps));
        out.insert(
            "empty_days".into(),
            self.empty_days.iter().map(|d| d.to_string()).collect(),
        );
        out.insert("snapshot".into(), self.snapshot.into());
        out.insert("partitions".into(), self.partitions.into());
        out.insert("rows".into(), self.rows.into());
        out.insert("files".into(), self.files.into());
        out.insert(
            "newest_commit".into(),
            self.newest.as_ref().map_or(
                Value::Null,
                |(day, at)| json!({"date": day_text(day), "committed_at": at}),
            ),
        );
        out.insert(
            "not_in_final_layout".into(),
            self.behind.iter().map(day_text).collect(),
        );
        out.insert(
            "unreadable_entries".into(),
            self.unreadable.iter().map(day_text).collect(),
        );
        Value::Object(out)
    }

    /// One paragraph: a heading line, then indented facts.
    pub(crate) fn to_text(&self) -> String {
        let name = Unit {
            scope: self.scope,
            day: None,
        }
        .to_string();
        let mut lines = vec![format!(
            "{name}: {} partitions, {} rows, {} files",
            self.partitions, self.rows, self.files
        )];
        if !self.ranges.is_empty() {
            let days: Vec<String> = self.ranges.iter().map(run_text).collect();
            lines.push(format!("  days:        {}", days.join(", ")));
        }
        if self.snapshot {
            lines.push("  snapshot:    yes (replaced by each run)".into());
        }
        if !self.gaps.is_empty() {
            let gaps: Vec<String> = self.gaps.iter().map(run_text).collect();
            lines.push(format!("  gaps:        {}", gaps.join(", ")));
        }
        if !self.empty_days.is_empty() {
            let empty: Vec<String> = self.empty_days.iter().map(|d| d.to_string()).collect();
            lines.push(format!("  empty days:  {}", empty.join(", ")));
        }
        if let Some((day, at)) = &self.newest {
            let of = day.map_or(String::new(), |d| format!(" ({d})"));
            lines.push(format!("  newest:      {at}{of}"));
        }
        if !self.behind.is_empty() {
            lines.push(format!(
                "  {} files not yet in the final layout (run `cube-extract reconcile`)",
                self.behind.len()
            ));
        }
        if !self.unreadable.is_empty() {
            lines.push(format!(
                "  {} ledger entries could not be read",
                self.unreadable.len()
            ));
        }
        lines.join("\n") + "\n"
    }
}

/// The sums over every scope.
struct Totals {
    partitions: usize,
    rows: u64,
    files: usize,
    behind: usize,
}

impl Totals {
    fn of(summaries: &[Summary]) -> Totals {
        Totals {
            partitions: summaries.iter().map(|s| s.partitions).sum(),
            rows: summaries.iter().map(|s| s.rows).sum(),
            files: summaries.iter().map(|s| s.files).sum(),
            behind: summaries.iter().map(|s| s.behind.len()).sum(),
        }
    }
}

fn expected_json(e: &Expected, missing: &[(Scope, NaiveDate)]) -> Value {
    let missing: Vec<Value> = missing
        .iter()
        .map(|(scope, day)| {
            let mut m = scope_values(*scope);
            m.insert("date".into(), day.to_string().into());
            Value::Object(m)
        })
        .collect();
    json!({
        "from": e.from.to_string(),
        "to": e.to.to_string(),
        "complete": missing.is_empty(),
        "missing": missing,
    })
}

/// A line saying the range is complete, or the missing days as runs per scope.
fn expected_text(e: &Expected, missing: &[(Scope, NaiveDate)]) -> String {
    let (from, to) = (e.from, e.to);
    if missing.is_empty() {
        return format!("complete: every day {from}..{to} is committed\n");
    }
    let mut text = format!(
        "incomplete: {} partitions of {from}..{to} are missing:\n",
        missing.len()
    );
    let mut by_scope: BTreeMap<Scope, Vec<NaiveDate>> = BTreeMap::new();
    for (scope, day) in missing {
        by_scope.entry(*scope).or_default().push(*day);
    }
    for (scope, days) in by_scope {
        let unit = Unit { scope, day: None };
        let runs: Vec<String> = runs(&days).iter().map(run_text).collect();
        text.push_str(&format!("  {unit}: {}\n", runs.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
    }

    fn entry(rows: usize, version: u64, at: &str) -> Entry {
        Entry {
            record: Some(Recorded {
                rows,
                file: (rows > 0).then(|| format!("f{at}")),
                committed_at: at.into(),
            }),
            schema_version: version,
        }
    }

    fn inventory() -> Inventory {
        let mut days = BTreeMap::new();
        for d in [1, 2, 3, 6, 7, 9] {
            let rows = if d == 2 { 0 } else { 10 };
            let version = if d == 9 { 3 } else { 2 };
            let at = format!("2026-12-04T10:00:0{}.000Z", d);
            days.insert(Some(day(d)), entry(rows, version, &at));
        }
        let mut inventory = Inventory::default();
        inventory.scopes.insert(Scope::Campaign(101), days);
        inventory
    }

    #[test]
    fn a_summary_names_ranges_gaps_empty_days_and_files_behind() {
        let s = &inventory().summaries(3)[0];
        assert_eq!(
            s.ranges,
            [(day(1), day(3)), (day(6), day(7)), (day(9), day(9))]
        );
        assert_eq!(s.gaps, [(day(4), day(5)), (day(8), day(8))]);
        assert_eq!(s.empty_days, [day(2)]);
        assert_eq!((s.partitions, s.rows, s.files), (6, 50, 5));
        assert_eq!(
            s.newest,
            Some((Some(day(9)), "2026-12-04T10:00:09.000Z".into()))
        );
        assert_eq!(s.behind.len(), 5, "every day but the 9th is at version 2");
        let text = s.to_text();
        assert!(text.contains("2024-03-01..2024-03-03, 2024-03-06..2024-03-07, 2024-03-09"));
        assert!(text.contains("gaps:        2024-03-04..2024-03-05, 2024-03-08"));
    }

    #[test]
    fn missing_days_are_those_without_an_entry_in_each_scope() {
        let inv = inventory();
        let missing = inv.missing(&[], day(2), day(5));
        assert_eq!(
            missing,
            [
                (Scope::Campaign(101), day(4)),
                (Scope::Campaign(101), day(5))
            ]
        );
        let named = inv.missing(&[Scope::Campaign(102)], day(1), day(2));
        assert_eq!(named.len(), 2, "a campaign with no entry misses every day");
        assert!(inv.missing(&[], day(6), day(7)).is_empty());
    }
}
