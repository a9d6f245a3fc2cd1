//! Month files: a month table keeps each day of a scope as a segment under the tool's state
//! (written, checked and recorded as a day file is), and shows readers one file per (scope,
//! month), built from the month's segments in day order with the day as a `date` column, in row
//! groups of up to [`ROW_GROUP_ROWS`](crate::sink::parquet::ROW_GROUP_ROWS) rows.
//!
//! Building a month is optimistic: list the month's segments, merge them into a new month
//! file, place it in one atomic step, then list them again. If the listing changed (another
//! writer placed a day of the same month meanwhile, or a stale build of it may have been placed
//! over a newer one), build again. The last build placed is always followed by a listing that
//! matched what it was built from, so it holds every day placed before it: two writers of one
//! month never lose each other's days, and neither waits on a lock a dead process may hold.
//!
//! The segments are also what makes a kill harmless: the ledger records a day only once a
//! month holding it is placed, so `--resume` fetches any day a killed run left unpublished.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use object_store::ObjectMeta;

use futures::StreamExt;

use super::partition::Ended;
use super::place::{self, Streamed};
use super::publish::{Publisher, Publishing};
use super::signal::Shutdown;
use super::state::Run;
use super::{now, PartitionError};
use crate::logging::DETAIL;
use crate::report::{PartitionReport, PartitionStatus};
use crate::sink::delta::NewFile;
use crate::sink::parquet::{days_text, file_info, rewrite, EncodeError, Merger};
use crate::sink::{Ledger, LedgerRecord, MonthKey, Paths, StoreError, Target, DAY_COLUMN};
use crate::unit::Unit;
use object_store::path::Path;

/// Builds that met a changed listing before one held: a month with many writers at once
/// still settles, and a writer that keeps losing says so.
const MAX_BUILDS: usize = 16;

/// The columns of a month file: the day, then the dataset's.
pub(crate) fn month_schema(columns: &SchemaRef) -> SchemaRef {
    let mut fields = vec![Arc::new(Field::new(DAY_COLUMN, DataType::Date32, false))];
    fields.extend(columns.fields().iter().cloned());
    Arc::new(Schema::new(fields))
}

/// What building a month did.
#[derive(Debug)]
pub(crate) enum Published {
    /// The month file was placed and published: where, and its size.
    Placed { file: Path, bytes: u64 },
    /// The month file was built from the month's days as they are, under the target: nothing
    /// to do.
    Current,
    /// No day of the month holds rows: there is no month file.
    Removed,
    /// A segment holds columns the target does not know (another writer's schema change has
    /// not reached this one): the month was left as it is.
    Ahead(Vec<String>),
}

/// Builds month files from their segments.
pub(crate) struct MonthWriter<'a> {
    /// What it reads and writes with.
    pub(crate) on: Publishing<'a>,
    pub(crate) publisher: &'a Publisher,
}

/// A segment as a listing saw it: what tells that it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    location: object_store::path::Path,
    size: u64,
    /// What changes when the file is written anew: its entity tag on an object store (a hash of
    /// its bytes on S3), its modification time on local disk (whose entity tag also holds the
    /// inode, which a copy of the destination changes though the bytes are the same).
    version: String,
}

/// What a month file records of the days it was built from (`cube.days`).
fn fingerprint(seen: &[Seen]) -> String {
    let days: Vec<(&str, u64, &str)> = seen
        .iter()
        .map(|s| (s.location.as_ref(), s.size, s.version.as_str()))
        .collect();
    days_text(&days)
}

/// Why a month is published, which tells whether its file may still hold its days.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// Days of it were just written: the file cannot hold them yet, so it is built at once
    /// (reading the file first to learn that would cost a whole download).
    DaysWritten,
    /// Its days may be as the file holds them (a schema change, `reconcile`): the file is
    /// brought to the target by itself when they are.
    Reconcile,
}

impl<'a> MonthWriter<'a> {
    /// The month writer of a run's table.
    pub(crate) fn of(run: &'a Run) -> MonthWriter<'a> {
        MonthWriter {
            on: run.publishing(),
            publisher: &run.publisher,
        }
    }
}

impl MonthWriter<'_> {
    /// Builds `month`'s file from every segment of it, until a build is placed that the
    /// segments did not change under.
    pub(crate) async fn publish(
        &self,
        month: MonthKey,
        target: &Target,
        cause: Cause,
    ) -> Result<Published, PartitionError> {
        let mut seen = self.segments(&month).await?;
        for build in 1..=MAX_BUILDS {
            // After a changed listing the file no longer holds the month's days either.
            let in_place = match cause == Cause::Reconcile && build == 1 {
                true => self.rewrite(&month, &seen, target).await?,
                false => None,
            };
            let published = match in_place {
                Some(published) => Some(published),
                None => self.build(&month, &seen, target).await?,
            };
            let published = match published {
                Some(published) => published,
                // A segment went away while it was read: another writer emptied its day.
                None => {
                    seen = self.segments(&month).await?;
                    continue;
                }
            };
            if let Published::Ahead(_) = published {
                return Ok(published);
            }
            let now = self.segments(&month).await?;
            if now == seen {
                if let Published::Placed { bytes, .. } = published {
                    tracing::info!(target: DETAIL, month = %month, days = seen.len(), build, bytes, "month file placed");
                }
                return Ok(published);
            }
            tracing::debug!(month = %month, build, "the month's days changed while it was built; building it again");
            seen = now;
        }
        Err(StoreError::Contended {
            path: self.on.paths.partition_of_month(&month).dir.to_string(),
            attempts: MAX_BUILDS,
        }
        .into())
    }

    fn seen(&self, meta: ObjectMeta) -> Seen {
        let version = match (self.on.dest.is_local(), meta.e_tag) {
            (false, Some(tag)) => tag,
            _ => meta
                .last_modified
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        };
        Seen {
            location: meta.location,
            size: meta.size,
            version,
        }
    }

    /// The month's segments, in day order.
    async fn segments(&self, month: &MonthKey) -> Result<Vec<Seen>, StoreError> {
        let mut listed: Vec<Seen> = self
            .on
            .dest
            .list(&self.on.paths.segments_of(month))
            .await?
            .into_iter()
            .filter(|m| m.location.filename() == Some(crate::sink::DATA_FILE))
            .filter(|m| {
                self.on
                    .paths
                    .unit_of(&m.location)
                    .is_some_and(|u| u.day.is_some())
            })
            .map(|m| self.seen(m))
            .collect();
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(listed)
    }

    /// Brings the month file to the target by itself, if it was built from the segments `seen`
    /// (a new column is then one column's encoding, not the month's days decoded and encoded
    /// again); `None` if it was not, or is not there.
    async fn rewrite(
        &self,
        month: &MonthKey,
        seen: &[Seen],
        target: &Target,
    ) -> Result<Option<Published>, PartitionError> {
        if seen.is_empty() {
            return Ok(None);
        }
        let file = self.on.paths.month_file(month);
        let Some(old) = self.on.dest.get(&file).await? else {
            return Ok(None);
        };
        let schema = month_schema(&target.arrow);
        let mut meta = target.meta.clone();
        meta.days = Some(fingerprint(seen));
        let (to, policy) = (target.clone(), self.on.policy.clone());
        let streamed = place::stream(self.on.dest, &file, self.on.paths.staging_dir(), |out| {
            self.on.cpu.run(move || {
                let info = file_info(&old)?;
                if info.days != meta.days {
                    return Ok(Err(None));
                }
                if info.schema.fields() == schema.fields()
                    && info.hashed == meta.hashed
                    && info.version == Some(meta.schema_version)
                {
                    return Ok(Err(Some(Published::Current)));
                }
                // The day column is the month file's own; any other the target lacks is a
                // column another writer added, which a rewrite would lose.
                let mut ahead = to.unknown_columns(&info.schema);
                ahead.retain(|c| c != DAY_COLUMN);
                if !ahead.is_empty() {
                    return Ok(Err(Some(Published::Ahead(ahead))));
                }
                let rows = info.rows();
                let (out, _) = rewrite(old, &info, schema, meta, &policy, out)?;
                Ok::<_, PartitionError>(Ok((out.complete().map_err(EncodeError::from)?, rows)))
            })
        })
        .await?;
        Ok(match streamed {
            Streamed::Staged((bytes, rows), mut staged) => {
                staged.upload_parts().await?;
                staged.place().await?;
                let new = NewFile {
                    path: file.clone(),
                    bytes,
                    rows,
                };
                let partition = self.on.paths.partition_of_month(month);
                self.publisher
                    .publish(&self.on, partition, Some(new), target)
                    .await?;
                tracing::debug!(month = %month, bytes, "month file brought to the dataset schema");
                Some(Published::Placed { file, bytes })
            }
            Streamed::GaveUp(unchanged) => unchanged,
        })
    }

    /// One build of the month from the segments `seen`: `None` if one of them vanished.
    async fn build(
        &self,
        month: &MonthKey,
        seen: &[Seen],
        target: &Target,
    ) -> Result<Option<Published>, PartitionError> {
        let file = self.on.paths.month_file(month);
        let partition = self.on.paths.partition_of_month(month);
        let schema = month_schema(&target.arrow);
        if seen.is_empty() {
            self.publisher
                .publish(&self.on, partition, None, target)
                .await?;
            return Ok(Some(Published::Removed));
        }
        let streamed = place::stream(
            self.on.dest,
            &file,
            self.on.paths.staging_dir(),
            |out| async {
                let mut meta = target.meta.clone();
                meta.days = Some(fingerprint(seen));
                let mut merger = Merger::new(schema, meta, out);
                for segment in seen {
                    let Some(bytes) = self.on.dest.get(&segment.location).await? else {
                        return Ok(Err(None));
                    };
                    let day = self
                        .on
                        .paths
                        .unit_of(&segment.location)
                        .and_then(|u| u.day)
                        .expect("a listed segment has a day");
                    let (to, policy) = (target.clone(), self.on.policy.clone());
                    let appended = self
                        .on
                        .cpu
                        .run(move || {
                            let info = file_info(&bytes)?;
                            let ahead = to.unknown_columns(&info.schema);
                            if !ahead.is_empty() {
                                return Ok::<_, EncodeError>(Err(ahead));
                            }
                            merger.append(bytes, &info, &policy, Some((DAY_COLUMN, day)))?;
                            Ok(Ok(merger))
                        })
                        .await?;
                    merger = match appended {
                        Ok(merger) => merger,
                        Err(ahead) => return Ok(Err(Some(ahead))),
                    };
                }
                let (bytes, rows) = self
                    .on
                    .cpu
                    .run(move || {
                        let (out, rows) = merger.finish()?;
                        Ok::<_, EncodeError>((out.complete()?, rows))
                    })
                    .await?;
                Ok::<_, PartitionError>(Ok((bytes, rows)))
            },
        )
        .await?;
        match streamed {
            Streamed::Staged((bytes, rows), mut staged) => {
                staged.upload_parts().await?;
                staged.place().await?;
                let new = NewFile {
                    path: file.clone(),
                    bytes,
                    rows: rows as u64,
                };
                self.publisher
                    .publish(&self.on, partition, Some(new), target)
                    .await?;
                tracing::debug!(month = %month, rows, bytes, "month file placed");
                Ok(Some(Published::Placed { file, bytes }))
            }
            Streamed::GaveUp(None) => Ok(None),
            Streamed::GaveUp(Some(ahead)) => Ok(Some(Published::Ahead(ahead))),
        }
    }
}

/// The days of a run's months that are still being extracted, and those done, waiting for
/// their month: the last day of a month to end builds it, then records its days.
#[derive(Default)]
pub(crate) struct Months {
    open: std::sync::Mutex<HashMap<MonthKey, Open>>,
}

#[derive(Default)]
struct Open {
    remaining: usize,
    done: Vec<Done>,
}

/// A day whose segment is placed (or removed), waiting for its month to be built.
pub(crate) struct Done {
    pub(crate) unit: Unit,
    pub(crate) record: LedgerRecord,
    pub(crate) report: PartitionReport,
}

impl Months {
    /// The months of a run's `units`, each waiting for all of its days.
    pub(crate) fn new(paths: &Paths, units: &[Unit]) -> Months {
        let mut open: HashMap<MonthKey, Open> = HashMap::new();
        for unit in units {
            if let Some(month) = paths.month_of(unit) {
                open.entry(month).or_default().remaining += 1;
            }
        }
        Months {
            open: std::sync::Mutex::new(open),
        }
    }

    /// A day of the run ended (`done`: its segment was placed). Returns the month's days that
    /// wait for it once it was the last.
    pub(crate) fn ended(&self, month: MonthKey, done: Option<Done>) -> Option<Vec<Done>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let entry = open.get_mut(&month)?;
        entry.done.extend(done);
        entry.remaining = entry.remaining.saturating_sub(1);
        if entry.remaining > 0 {
            return None;
        }
        open.remove(&month).map(|o| o.done)
    }
}

/// The months of `units`, each once, in order.
pub(crate) fn months_of(
    paths: &Paths,
    units: impl IntoIterator<Item = Unit>,
) -> BTreeSet<MonthKey> {
    units
        .into_iter()
        .filter_map(|u| paths.month_of(&u))
        .collect()
}

/// What a day's end gave the run's report: its partitions (a month table's days come all at
/// once, when their month is built) and the bytes of the month file written.
#[derive(Default)]
pub(crate) struct Settled {
    pub(crate) partitions: Vec<PartitionReport>,
    pub(crate) month_bytes: u64,
}

/// Ends a day of the run: a day table's day is recorded already; a month table's day waits
/// for the other days of its month in this run, and the last of them builds the month and
/// records them all. A month not built (a signal came, or the build failed) leaves its days
/// unrecorded, so `--resume` fetches them again; their segments are whole and do no harm.
pub(crate) async fn settle(
    run: &Run,
    unit: Unit,
    ended: Option<Ended>,
    shutdown: &Shutdown,
) -> Settled {
    let Some(month) = run.paths.month_of(&unit) else {
        return Settled {
            partitions: ended.into_iter().map(|e| e.report).collect(),
            month_bytes: 0,
        };
    };
    let mut settled = Settled::default();
    let done = match ended {
        Some(Ended {
            report,
            unrecorded: Some(record),
        }) => Some(Done {
            unit,
            record,
            report,
        }),
        // Failed: reported now; its month is built without it.
        Some(Ended { report, .. }) => {
            settled.partitions.push(report);
            None
        }
        None => None,
    };
    let Some(days) = run.months.ended(month, done) else {
        return settled;
    };
    if days.is_empty() || shutdown.received().is_some() {
        return settled;
    }
    let writer = MonthWriter::of(run);
    let failed = |mut days: Vec<Done>, error: String| {
        days.iter_mut().for_each(|d| {
            d.report.status = PartitionStatus::Failed;
            d.report.file = None;
            d.report.error = Some(error.clone());
        });
        days.into_iter().map(|d| d.report).collect::<Vec<_>>()
    };
    let mut published = writer
        .publish(month, &run.target().await, Cause::DaysWritten)
        .await;
    if let Ok(Published::Ahead(_)) = published {
        // Another writer changed the dataset schema and wrote a day of this month under it:
        // take the change up, then build again.
        published = match run.settle_schema().await {
            Ok(target) => writer.publish(month, &target, Cause::DaysWritten).await,
            Err(e) => Err(e.into()),
        };
    }
    let mut days = days;
    match published {
        Ok(Published::Placed { file, bytes }) => {
            settled.month_bytes = bytes;
            // A day with rows names the file that holds them now.
            for day in days.iter_mut().filter(|d| d.record.file.is_some()) {
                day.record.file = Some(file.to_string());
                day.report.file = Some(file.to_string());
            }
        }
        Ok(Published::Removed | Published::Current) => {}
        Ok(Published::Ahead(columns)) => {
            let error = format!("the month file of {month} was not built: a day of it holds columns this run does not know yet ({}), added by another writer; run reconcile", columns.join(", "));
            tracing::error!(table = run.dataset.name, %month, "{error}");
            settled.partitions.extend(failed(days, error));
            return settled;
        }
        Err(e) => {
            tracing::error!(table = run.dataset.name, %month, error = %e, "building the month file failed");
            settled.partitions.extend(failed(days, e.to_string()));
            return settled;
        }
    }
    let ledger = Ledger::new(&run.dest, &run.paths);
    let recorded: Vec<(Done, Result<(), StoreError>)> = futures::stream::iter(days)
        .map(|mut day| {
            let ledger = &ledger;
            async move {
                day.record.committed_at = now();
                let r = ledger.record(&day.unit, &day.record).await;
                (day, r)
            }
        })
        .buffer_unordered(run.fan_out)
        .collect()
        .await;
    for (day, r) in recorded {
        match r {
            Ok(()) => settled.partitions.push(day.report),
            Err(e) => settled.partitions.extend(failed(vec![day], e.to_string())),
        }
    }
    settled
}
