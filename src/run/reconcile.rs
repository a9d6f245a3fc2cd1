//! Bringing a dataset's files to its current schema: every file whose ledger entry names
//! another layout version (and any file a killed run placed without recording it) is rewritten
//! (see `sink::parquet::rewrite`). Runs at the end of every extraction (and, leaving the units
//! still being extracted, near its end: see `run::tail`) and as `cube-extract reconcile`, the
//! fan-in step after many writers.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures::StreamExt;
use tokio::sync::Semaphore;

use super::budget::CpuSlots;
use super::month::{months_of, Cause, MonthWriter, Published};
use super::place::{self, Streamed};
use super::PartitionError;
use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::logging::DETAIL;
use crate::privacy::{Policy, PolicyError};
use crate::settings::StoreSettings;
use crate::sink::parquet::{file_info, narrowed_columns, rewrite, EncodeError};
use crate::sink::{Committed, Destination, Ledger, Paths, SchemaStore, StoreError, Target};
use crate::unit::Unit;

/// Rewrites running at once on local disk, where the CPU is the limit: 8, 16 and 32 at once
/// took the same time.
const REWRITES_AT_ONCE_ON_DISK: usize = 8;
/// Rewrites running at once on an object store. Each is a chain of requests (the ledger entry
/// and the file read, the new file written, the new entry written, the old one deleted), each a
/// network round trip that more rewrites at once hide: at 50 ms per request, 244 files took
/// 7.8-8.1 s at 8 at once and 3.8-4.3 s at 32 (64 was no faster against moto, then the limit).
const REWRITES_AT_ONCE_ON_OBJECT_STORE: usize = 32;
/// Month files brought up to date at once. Each holds its month file (up to a few hundred MB in a
/// large account) or one day of it while it is built: few at once keep memory bounded; the CPU
/// is busy with fewer.
const MONTHS_AT_ONCE: usize = 4;
/// What the rewrites running at once may hold, in KiB. A rewrite holds its file and, until
/// they are uploaded, about as many bytes of the new file (at most three upload chunks): it
/// counts twice its file's size. A file larger than half of this is rewritten alone.
const REWRITE_MEMORY_KIB: u32 = 128 * 1024;

/// Rewrites running at once on `dest`.
fn rewrites_at_once(dest: &Destination) -> usize {
    if dest.is_local() {
        REWRITES_AT_ONCE_ON_DISK
    } else {
        REWRITES_AT_ONCE_ON_OBJECT_STORE
    }
}

/// The share of [`REWRITE_MEMORY_KIB`] that rewriting a file of `bytes` holds.
fn memory_share(bytes: u64) -> u32 {
    let kib = bytes.saturating_mul(2).div_ceil(1024).max(1);
    kib.min(u64::from(REWRITE_MEMORY_KIB)) as u32
}

/// What bringing the files up to date wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub(crate) files: usize,
    pub(crate) bytes: u64,
    /// Files left as they are because they hold columns the target does not know, or holds
    /// narrower (another writer's change, which had not reached this writer): a rewrite would
    /// lose their values.
    pub(crate) ahead: Vec<Ahead>,
}

/// A file holding columns the target neither has nor drops, or holds narrower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Ahead {
    pub(crate) unit: Unit,
    pub(crate) columns: Vec<String>,
}

/// What bringing one file up to date did.
enum Brought {
    /// Rewritten (or recorded anew): the bytes written, 0 when the file already fitted.
    Done(u64),
    /// Left as it is: it holds these columns the target does not know or would narrow.
    Ahead(Vec<String>),
}

pub(crate) struct Reconciler<'a> {
    pub(crate) dest: &'a Destination,
    pub(crate) paths: &'a Paths,
    /// Hashes columns that the new layout hashes and a file still holds in the clear.
    pub(crate) policy: &'a Policy,
    /// CPU slots shared with whatever else the process encodes.
    pub(crate) cpu: &'a CpuSlots,
    /// Check every file's own columns, not only those the ledger names another version for:
    /// the fan-in after many writers, where a store whose conditional create is not atomic
    /// (moto's is a check, then a put) can let two writers commit different layouts under one
    /// version.
    pub(crate) every_file: bool,
    /// The personal-data settings may differ from those a month table's day segments were
    /// written under: each segment is then read, and rewritten if it holds a value the settings
    /// now drop or hash. Otherwise the segments are left unread: their month is brought to the
    /// schema as it is built (a new column costs the month files, not every day's).
    pub(crate) policy_changed: bool,
}

impl Reconciler<'_> {
    /// Rewrites every file recorded under an older schema version (and any file a killed run
    /// placed without recording it) to `target`.
    pub(crate) async fn reconcile(&self, target: &Target) -> Result<Rewritten, PartitionError> {
        self.reconcile_leaving(target, &HashSet::new()).await
    }

    /// As [`Reconciler::reconcile`], but leaves the files of the units in `leave` as they are:
    /// units a run is still extracting, whose new file may be placed at any moment (a rewrite
    /// of the old one placed after it would bring the old rows back).
    pub(crate) async fn reconcile_leaving(
        &self,
        target: &Target,
        leave: &HashSet<Unit>,
    ) -> Result<Rewritten, PartitionError> {
        if self.paths.is_delta() {
            // A Delta table's log adds a column to every version after it: its files are never
            // rewritten for one.
            return Ok(Rewritten::default());
        }
        let ledger = Ledger::new(self.dest, self.paths);
        // Two walks of a long history on local disk, or two series of LISTs: side by side.
        let unit_files = self.paths.unit_files_root();
        let (committed, files) = futures::join!(ledger.load(), self.dest.list(&unit_files));
        let committed: BTreeMap<Unit, Committed> = committed?;
        let mut stale: Vec<(Unit, Option<Committed>)> = committed
            .iter()
            .filter(|(_, c)| self.every_file || c.schema_version != target.version)
            .map(|(u, c)| (*u, Some(c.clone())))
            .collect();
        let mut sizes = HashMap::new();
        for meta in files? {
            if let Some(unit) = self.paths.unit_of(&meta.location) {
                if !committed.contains_key(&unit) {
                    stale.push((unit, None));
                }
                sizes.insert(unit, meta.size);
            }
        }
        stale.retain(|(unit, _)| !leave.contains(unit));
        let memory = Semaphore::new(REWRITE_MEMORY_KIB as usize);
        let results: Vec<(Unit, Result<Brought, PartitionError>)> = futures::stream::iter(stale)
            .map(|(unit, recorded)| {
                // A file the listing did not see (placed since) counts as small.
                let (memory, share) = (
                    &memory,
                    memory_share(sizes.get(&unit).copied().unwrap_or(0)),
                );
                async move {
                    let _held = memory
                        .acquire_many(share)
                        .await
                        .expect("the rewrite memory is never closed");
                    (unit, self.bring_up_to_date(unit, recorded, target).await)
                }
            })
            .buffer_unordered(rewrites_at_once(self.dest))
            .collect()
            .await;
        let mut done = Rewritten::default();
        let mut brought = Vec::new();
        for (unit, r) in results {
            match r? {
                Brought::Done(written) => {
                    if written > 0 {
                        done.files += 1;
                        done.bytes += written;
                    }
                    brought.push(unit);
                }
                Brought::Ahead(columns) => done.ahead.push(Ahead { unit, columns }),
            }
        }
        self.publish_months(brought, target, &mut done).await?;
        done.ahead.sort_by_key(|a| a.unit);
        Ok(done)
    }

    /// In a month table, builds the months of the days brought up to date anew: from their
    /// segments, to the target.
    async fn publish_months(
        &self,
        brought: Vec<Unit>,
        target: &Target,
        done: &mut Rewritten,
    ) -> Result<(), PartitionError> {
        let months = months_of(self.paths, brought);
        let writer = MonthWriter {
            on: super::publish::Publishing {
                dest: self.dest,
                paths: self.paths,
                policy: self.policy,
                cpu: self.cpu,
            },
            publisher: &super::publish::Publisher::Files,
        };
        let published: Vec<_> = futures::stream::iter(months)
            .map(|month| {
                let writer = &writer;
                async move { (month, writer.publish(month, target, Cause::Reconcile).await) }
            })
            .buffer_unordered(MONTHS_AT_ONCE)
            .collect()
            .await;
        for (month, p) in published {
            match p? {
                Published::Placed { bytes, .. } => {
                    done.files += 1;
                    done.bytes += bytes;
                }
                Published::Removed | Published::Current => {}
                Published::Ahead(columns) => done.ahead.push(Ahead {
                    unit: month.first_day(),
                    columns,
                }),
            }
        }
        Ok(())
    }

    /// Rewrites one file if its layout is not the target's, unless that would lose a column.
    async fn bring_up_to_date(
        &self,
        unit: Unit,
        recorded: Option<Committed>,
        target: &Target,
    ) -> Result<Brought, PartitionError> {
        let path = self.paths.data_file(&unit);
        let ledger = Ledger::new(self.dest, self.paths);
        let file_kept = self.paths.builds_months() && !self.policy_changed;
        // The entry and the file are read together: a rewrite is a chain of short requests.
        let (listed, data) = futures::join!(
            async {
                match &recorded {
                    Some(c) => ledger.read(c).await,
                    None => Ok(None),
                }
            },
            async {
                match file_kept {
                    true => Ok(None),
                    false => self.dest.get(&path).await,
                }
            }
        );
        // The listing may be older than the unit's entry: another writer may have replaced it
        // since (written the new, deleted the old). Read it afresh then; a record that still
        // cannot be read is left to that writer, never made up.
        let listed = listed?;
        let entries_current = listed.is_some();
        let mut record = match (listed, &recorded) {
            (Some(record), _) => Some(record),
            (None, Some(_)) => ledger.read_unit(&unit).await?,
            (None, None) => None,
        };
        let mut written = 0;
        if let Some(old) = data? {
            let to = target.clone();
            let policy = self.policy.clone();
            let built_from = self.paths.builds_months();
            let streamed = place::stream(self.dest, &path, self.paths.staging_dir(), |out| {
                self.cpu.run(move || {
                    let info = file_info(&old)?;
                    let (arrow, mut meta) = (to.arrow.clone(), to.meta.clone());
                    // A rewritten snapshot is still the snapshot it was.
                    meta.snapshot_at = info.snapshot_at.clone();
                    // Dropping `out` unfinished abandons the upload: nothing is written.
                    if info.schema.fields() == arrow.fields() && info.hashed == meta.hashed {
                        return Ok(Err(Brought::Done(0)));
                    }
                    // A rewrite never loses a value: not to a target that lacks a column of
                    // the file, nor to one that holds a column narrower than the file does.
                    let mut ahead = to.unknown_columns(&info.schema);
                    ahead.extend(narrowed_columns(&old, &info, &arrow)?);
                    if !ahead.is_empty() {
                        return Ok(Err(Brought::Ahead(ahead)));
                    }
                    // A month table's day is brought to the target each time its month is
                    // built from it: it is rewritten only so that no value the policy now
                    // drops or hashes stays in the clear.
                    let holds_dropped = info
                        .schema
                        .fields()
                        .iter()
                        .any(|f| to.dropped.contains(f.name()));
                    if built_from && info.hashed == meta.hashed && !holds_dropped {
                        return Ok(Err(Brought::Done(0)));
                    }
                    let (out, rows) = rewrite(old, &info, arrow, meta, &policy, out)?;
                    let bytes = out.complete().map_err(EncodeError::from)?;
                    Ok::<_, PartitionError>(Ok((bytes, rows, info.version)))
                })
            })
            .await?;
            match streamed {
                Streamed::Staged((bytes, rows, from), staged) => {
                    staged.place().await?;
                    written = bytes;
                    tracing::info!(target: DETAIL, partition = %unit, rows, from_version = from, to_version = target.version, "rewrote file for the current dataset schema");
                    if let Some(record) = &mut record {
                        record.rows = rows;
                    }
                }
                Streamed::GaveUp(Brought::Ahead(columns)) => {
                    tracing::info!(target: DETAIL, partition = %unit, columns = ?columns, "left a file that holds columns another writer added; a later run or reconcile brings it up to date");
                    return Ok(Brought::Ahead(columns));
                }
                // The file has the target's layout already.
                Streamed::GaveUp(Brought::Done(_)) => {}
            }
            if let Some(record) = &mut record {
                record.file = Some(self.paths.table_file(&unit).to_string());
            }
        }
        // Files nobody recorded stay unrecorded, so --resume fetches their day again.
        let recorded_version = recorded.as_ref().map(|c| c.schema_version);
        if let Some(record) = &mut record {
            if recorded_version.is_some_and(|v| written > 0 || v != target.version) {
                record.schema_version = target.version;
                match &recorded {
                    // The entries the listing found are the ones to replace.
                    Some(listed) if entries_current => {
                        ledger.replace(&unit, record, listed).await?
                    }
                    _ => ledger.record(&unit, record).await?,
                }
            }
        }
        Ok(Brought::Done(written))
    }
}

/// Why `cube-extract reconcile` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    #[error("{0}")]
    Destination(#[source] StoreError),
    #[error("{dest} holds no {table} dataset; check --dest and --table")]
    NoDataset { dest: String, table: &'static str },
    #[error(
        "{} is not the key the dataset's columns were hashed with; set it to that key",
        crate::cli::env::HASH_KEY
    )]
    WrongKey,
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Mirror(#[source] StoreError),
    #[error("{0}; the files not yet rewritten keep their old columns: run reconcile again")]
    Rewrite(#[source] PartitionError),
    #[error(
        "{files} files hold columns the dataset schema lacks or holds narrower (partition {first} \
         has {columns}), so they were left as they are: extract those partitions again, then run \
         reconcile"
    )]
    Ahead {
        files: usize,
        first: Unit,
        columns: String,
    },
}

impl ReconcileError {
    pub(crate) fn outcome(&self) -> Outcome {
        match self {
            ReconcileError::Destination(_)
            | ReconcileError::NoDataset { .. }
            | ReconcileError::WrongKey
            | ReconcileError::Policy(_) => Outcome::Refused,
            // Some files may be rewritten already; running it again finishes the job.
            ReconcileError::Mirror(_)
            | ReconcileError::Rewrite(_)
            | ReconcileError::Ahead { .. } => Outcome::Partial,
        }
    }
}

/// Brings every file of `dataset` at the destination to the newest committed schema and
/// settles `schema.json`.
pub(crate) async fn reconcile_dataset(
    store: &StoreSettings,
    dataset: Dataset,
) -> Result<(), ReconcileError> {
    let dest = store
        .open_for_writing(dataset)
        .await
        .map_err(ReconcileError::Destination)?;
    let Some((schema, _)) = SchemaStore::new(&dest, &Paths::new(&dataset))
        .load()
        .await
        .map_err(ReconcileError::Destination)?
    else {
        return Err(ReconcileError::NoDataset {
            dest: dest.display().to_owned(),
            table: dataset.name,
        });
    };
    let paths = Paths::of_schema(&dataset, &schema);
    let schemas = SchemaStore::new(&dest, &paths);
    // Hashing a file that still holds a column in the clear (a `--rewrite` run that was
    // stopped) needs the dataset's key.
    let spec = schema.policy();
    let policy = Policy::new(
        &spec.drop_columns,
        &spec.hash_columns,
        store.hash_key.as_deref(),
    )?;
    if policy.spec().key_check != spec.key_check {
        return Err(ReconcileError::WrongKey);
    }
    schemas
        .settle_mirror(&schema)
        .await
        .map_err(ReconcileError::Mirror)?;
    let cpu = CpuSlots::new();
    let done = Reconciler {
        dest: &dest,
        paths: &paths,
        policy: &policy,
        cpu: &cpu,
        every_file: true,
        policy_changed: true,
    }
    .reconcile(&Target::of(&schema))
    .await;
    // A failed rewrite's upload is aborted; wait for that before exiting.
    dest.settle_aborts().await;
    let done = done.map_err(ReconcileError::Rewrite)?;
    if let Some(first) = done.ahead.first() {
        return Err(ReconcileError::Ahead {
            files: done.ahead.len(),
            first: first.unit,
            columns: first.columns.join(", "),
        });
    }
    tracing::info!(
        dest = dest.display(),
        table = dataset.name,
        schema_version = schema.version,
        files_rewritten = done.files,
        bytes_written = done.bytes,
        "every file has the dataset schema"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{PageDecoder, BATCH_ROWS};
    use crate::run::now;
    use crate::schema::test_schema_with as schema_with;
    use crate::sink::parquet::PartitionWriter;
    use crate::sink::DestinationSpec;
    use crate::sink::LedgerRecord;
    use arrow_array::RecordBatch;

    /// Every rewrite can get its share of the memory (none asks for more than there is), a
    /// small file counts twice its size, and a file too large for several at once runs alone.
    #[test]
    fn a_rewrite_holds_a_share_of_memory_by_its_file_size() {
        assert_eq!(memory_share(0), 1);
        assert_eq!(memory_share(66_000), 129);
        let half = u64::from(REWRITE_MEMORY_KIB) * 1024 / 2;
        assert_eq!(memory_share(half), REWRITE_MEMORY_KIB);
        assert_eq!(memory_share(u64::MAX), REWRITE_MEMORY_KIB);
        assert!(memory_share(half - 1024) < REWRITE_MEMORY_KIB);
    }

    /// Writes the records `theirs` (a JSON array) as a file of their own schema, then brings
    /// the destination to a newer schema made from the records `ours`. Returns what that did
    /// and whether the file is byte for byte as it was.
    async fn reconcile_one(theirs: &str, ours: &str) -> (Rewritten, Unit, bool) {
        reconcile_one_leaving(theirs, ours, false).await
    }

    /// As `reconcile_one`; with `leave_it`, the file's unit is one to leave.
    async fn reconcile_one_leaving(
        theirs: &str,
        ours: &str,
        leave_it: bool,
    ) -> (Rewritten, Unit, bool) {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let their_target = Target::of(&schema_with(theirs));
        let mut our_schema = schema_with(ours);
        our_schema.version = their_target.version + 1;
        let our_target = Target::of(&our_schema);

        let unit = Unit::campaign_day(101, chrono::NaiveDate::from_ymd_opt(2019, 8, 20).unwrap());
        let mut w = PartitionWriter::new(
            Vec::new(),
            their_target.arrow.clone(),
            their_target.meta.clone(),
        );
        let mut decoder = PageDecoder::new(
            their_target.decode.clone(),
            their_target.arrow.clone(),
            BATCH_ROWS,
        )
        .unwrap();
        let mut sink = |batch: RecordBatch| -> Result<(), PartitionError> {
            w.write(&batch)?;
            Ok(())
        };
        decoder.push(theirs.as_bytes(), &mut sink).unwrap();
        decoder.finish(&mut sink).unwrap();
        let file = bytes::Bytes::from(w.finish(&Default::default()).unwrap());
        let path = paths.data_file(&unit);
        dest.put_state(&path, file.clone()).await.unwrap();
        let record = LedgerRecord {
            partition: unit.values(paths.day_key()),
            snapshot_at: None,
            rows: 1,
            pages: 1,
            file: Some(path.to_string()),
            schema_version: their_target.version,
            committed_at: now(),
        };
        Ledger::new(&dest, &paths)
            .record(&unit, &record)
            .await
            .unwrap();

        let cpu = CpuSlots::new();
        let leave: HashSet<Unit> = leave_it.then_some(unit).into_iter().collect();
        let done = Reconciler {
            dest: &dest,
            paths: &paths,
            policy: &Policy::default(),
            cpu: &cpu,
            every_file: false,
            policy_changed: false,
        }
        .reconcile_leaving(&our_target, &leave)
        .await
        .unwrap();
        let unchanged = dest.get(&path).await.unwrap() == Some(file);
        (done, unit, unchanged)
    }

    /// A unit a run is still extracting is left as it is (its new file may be placed at any
    /// moment); the same file of a unit not left is rewritten.
    #[tokio::test]
    async fn a_unit_being_extracted_is_left_as_it_is() {
        let (theirs, ours) = (r#"[{"x": 7}]"#, r#"[{"x": 7, "y": "a"}]"#);
        let (done, _, unchanged) = reconcile_one_leaving(theirs, ours, true).await;
        assert_eq!(done.files, 0);
        assert!(unchanged);
        let (done, _, unchanged) = reconcile_one_leaving(theirs, ours, false).await;
        assert_eq!(done.files, 1);
        assert!(!unchanged);
    }

    /// A file holding a column the target does not know (another writer's, whose schema change
    /// this writer never saw) is left as it is and reported, not rewritten without it.
    #[tokio::test]
    async fn a_rewrite_never_loses_a_column_the_target_does_not_know() {
        let (done, unit, unchanged) = reconcile_one(r#"[{"x": 7}]"#, r#"[{"y": "a"}]"#).await;
        assert_eq!(
            done.ahead,
            vec![Ahead {
                unit,
                columns: vec!["x".to_owned()]
            }]
        );
        assert_eq!(done.files, 0);
        assert!(unchanged);
    }

    /// Nor does it narrow a column another writer widened: 41.5 would become 41 and "Ja" null
    /// (the S3 fan-out under load: a writer whose schema lagged rewrote another's files).
    #[tokio::test]
    async fn a_rewrite_never_narrows_a_column_another_writer_widened() {
        let (done, unit, unchanged) = reconcile_one(
            r#"[{"f": 41.5, "s": "Ja", "e": ""}]"#,
            r#"[{"f": 41, "s": true, "e": 3}]"#,
        )
        .await;
        assert_eq!(
            done.ahead,
            vec![Ahead {
                unit,
                columns: vec!["f".to_owned(), "s".to_owned()]
            }]
        );
        assert!(unchanged);
        // A column that held only "" may still become typed.
        let (done, _, unchanged) = reconcile_one(r#"[{"e": ""}]"#, r#"[{"e": 3}]"#).await;
        assert!(done.ahead.is_empty() && done.files == 1 && !unchanged);
    }

    /// A ledger listing older than a unit's entry (another writer replaced v1 by v2 since): the
    /// rewrite reads the entry afresh and keeps its rows, never records a made-up empty one.
    #[tokio::test]
    async fn a_stale_ledger_listing_never_makes_up_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let ledger = Ledger::new(&dest, &paths);
        let target = Target::of(&schema_with(r#"[{"x": 7}]"#));
        let unit = Unit::campaign_day(101, chrono::NaiveDate::from_ymd_opt(2019, 8, 20).unwrap());
        let record = |version| LedgerRecord {
            partition: unit.values(paths.day_key()),
            snapshot_at: None,
            rows: 57,
            pages: 1,
            file: None,
            schema_version: version,
            committed_at: now(),
        };
        ledger.record(&unit, &record(target.version)).await.unwrap();
        let stale = ledger.load().await.unwrap().remove(&unit).unwrap();
        ledger
            .record(&unit, &record(target.version + 1))
            .await
            .unwrap();
        let cpu = CpuSlots::new();
        let mut newer = target.clone();
        newer.version += 2;
        Reconciler {
            dest: &dest,
            paths: &paths,
            policy: &Policy::default(),
            cpu: &cpu,
            every_file: false,
            policy_changed: false,
        }
        .bring_up_to_date(unit, Some(stale), &newer)
        .await
        .unwrap();
        let now = ledger.read_unit(&unit).await.unwrap().unwrap();
        assert_eq!((now.rows, now.pages), (57, 1), "the record keeps its rows");
        assert_eq!(now.schema_version, newer.version);
    }
}
