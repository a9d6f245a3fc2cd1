//! Delta Lake tables (`--table-format delta`): the table's `_delta_log/`, read and committed
//! through `delta_kernel`. The rows of one partition (a day, a month of a scope, a snapshot)
//! are replaced by one commit that removes the partition's active files and adds the new one;
//! a column the table lacks is added by the same commit (metadata only: no file is
//! rewritten). Data files are written by our own encoder, under names used once.
//!
//! A commit that loses the race for its log version is built again from a fresh snapshot (its
//! removes too: removes from the old snapshot would leave the winner's file beside ours). On
//! stores whose create-if-absent is a check then a put (moto), two writers can both "win" one
//! version: each commit is read back, and [`DeltaLog::lost`] checks them all again at the end.
//!
//! The kernel's calls block. They run on a blocking thread of ours, one at a time (a table's
//! commits are serialised anyway), while the kernel's own I/O runs on a small runtime of its
//! own, so that it never waits for a thread that is waiting for it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::{Array, ArrayRef, Int64Array, StringArray, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use chrono::NaiveDate;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::engine_data::FilteredEngineData;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation, WriteState};
use delta_kernel::{Engine, FileMeta, KernelError, Snapshot, SnapshotRef};
use delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::{build_add_file_metadata, DefaultEngine};
use object_store::path::Path;
use url::Url;

mod held;
mod vacuum;
mod widen;

use super::Destination;

/// What the log names us as (`commitInfo.engineInfo`).
const ENGINE_INFO: &str = concat!("cube-extract/", env!("CARGO_PKG_VERSION"));

/// Commits a partition may lose to other writers before the run gives up on it.
const MAX_ATTEMPTS: usize = 32;

/// A checkpoint is written once this many commits follow the last (Delta's own default): a
/// reader then replays at most this many JSON commits after a Parquet checkpoint.
pub(crate) const CHECKPOINT_EVERY: u64 = 10;

/// The log folder, under the table root.
pub(crate) const LOG_DIR: &str = "_delta_log";

type KernelEngine = DefaultEngine<TokioMultiThreadExecutor>;

/// One kernel call at a time in this process (see the module's comment).
static KERNEL_CALLS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// The kernel's runtime: one worker and a few blocking threads, for the life of the process
/// (a runtime may not be dropped from inside another).
fn executor() -> Result<Arc<TokioMultiThreadExecutor>, KernelError> {
    static EXECUTOR: OnceLock<Arc<TokioMultiThreadExecutor>> = OnceLock::new();
    if let Some(e) = EXECUTOR.get() {
        return Ok(Arc::clone(e));
    }
    let made = Arc::new(TokioMultiThreadExecutor::new_owned_runtime(
        Some(1),
        Some(4),
    )?);
    Ok(Arc::clone(EXECUTOR.get_or_init(|| made)))
}

/// The type of a partition column in the table's schema (the folder names hold its value as
/// text): ids are longs, days are dates, anything else (a CRM type, a month) is a string.
fn key_type(key: &str) -> DataType {
    match key {
        "campaign_id" | "data_owner_id" => DataType::LONG,
        "date" | "snapshot_date" => DataType::DATE,
        _ => DataType::STRING,
    }
}

fn key_value(key: &str, text: &str) -> Scalar {
    match key_type(key) {
        DataType::LONG => text
            .parse::<i64>()
            .map(Scalar::Long)
            .unwrap_or_else(|_| Scalar::String(text.to_owned())),
        DataType::DATE => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(day) => Scalar::Date(
                (day - NaiveDate::from_ymd_opt(1970, 1, 1).expect("the epoch")).num_days() as i32,
            ),
            Err(_) => Scalar::String(text.to_owned()),
        },
        _ => Scalar::String(text.to_owned()),
    }
}

/// The files of one partition: their folder under `--dest`, and the value of each partition
/// column, outermost first.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    pub(crate) dir: Path,
    pub(crate) values: Vec<(&'static str, String)>,
}

/// A data file written for a partition, not yet in the log.
#[derive(Clone, Debug)]
pub(crate) struct NewFile {
    pub(crate) path: Path,
    pub(crate) bytes: u64,
    pub(crate) rows: u64,
}

/// A file the latest version of the table reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ActiveFile {
    /// Under `--dest`.
    pub(crate) path: Path,
    pub(crate) bytes: u64,
}

/// A commit this writer made, to be found again in the log before the run ends.
#[derive(Clone, Debug)]
struct Made {
    version: u64,
    txn: i64,
    partition: Partition,
    file: Option<NewFile>,
}

/// A partition whose commit another writer's took the place of (see [`DeltaLog::lost`]).
#[derive(Debug)]
pub(crate) struct Lost {
    pub(crate) partition: Partition,
    pub(crate) file: Option<NewFile>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DeltaError {
    #[error("{table} is a Delta table this tool cannot {action} ({cause}); extract into a new --dest, or upgrade cube-extract")]
    Unsupported {
        table: String,
        action: &'static str,
        cause: String,
    },
    #[error("the Delta log of {table} cannot be read ({cause}); restore {table}/_delta_log from a backup, or extract into a new --dest")]
    Unreadable { table: String, cause: String },
    #[error("committing to the Delta log of {table} failed ({cause})")]
    Commit { table: String, cause: String },
    #[error("the Delta commit of {dir} lost to other writers {attempts} times; run again with --resume once fewer writers run at once")]
    Contended { dir: String, attempts: usize },
    /// Columns of the files to commit are wider than the table's: the table's files must be
    /// rewritten first (see [`DeltaLog::widen`]).
    #[error("{table}: columns {} are wider than the Delta table's; its files are rewritten to them first", .columns.join(", "))]
    Widens { table: String, columns: Vec<String> },
    /// A file to be replaced by its widened copy is no longer in the table: another writer
    /// replaced it meanwhile.
    #[error("{table}: {path} was replaced by another writer while the table was widened")]
    Moved { table: String, path: String },
}

/// One Delta table under `--dest`.
#[derive(Clone)]
pub(crate) struct DeltaLog {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Arc<KernelEngine>,
    /// The table's root, ending in `/`.
    root: Url,
    /// `--dest`, ending in `/`.
    dest: Url,
    /// The table's folder under `--dest` (its name, in errors).
    table: String,
    /// The partition columns, outermost first: the scope's keys, then the day or month.
    keys: Vec<&'static str>,
    /// This writer's application id in `txn` actions: what tells its commits from others'.
    app_id: String,
    /// Files this writer rewrote to widen the table, in commits that are in the log.
    rewritten: std::sync::atomic::AtomicUsize,
    /// The version of this writer's next `txn` action: one per commit attempted.
    next_txn: std::sync::atomic::AtomicI64,
    made: Mutex<Vec<Made>>,
}

impl DeltaLog {
    pub(crate) fn new(
        dest: &Destination,
        table: &Path,
        keys: Vec<&'static str>,
    ) -> Result<DeltaLog, DeltaError> {
        let (store, dest_url) = dest.for_kernel();
        let unreadable = |cause: String| DeltaError::Unreadable {
            table: table.to_string(),
            cause,
        };
        let root = dest_url
            .join(&format!("{table}/"))
            .map_err(|e| unreadable(e.to_string()))?;
        let executor = executor().map_err(|e| unreadable(e.to_string()))?;
        let engine = DefaultEngine::builder(store)
            .with_task_executor(executor)
            .build();
        let app_id = format!("cube-extract-{:032x}", rand::random::<u128>());
        Ok(DeltaLog {
            inner: Arc::new(Inner {
                engine: Arc::new(engine),
                root,
                dest: dest_url,
                table: table.to_string(),
                keys,
                app_id,
                next_txn: std::sync::atomic::AtomicI64::new(1),
                rewritten: std::sync::atomic::AtomicUsize::new(0),
                made: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The table at `table`, to read (its partition columns are not needed for that).
    pub(crate) fn for_reading(dest: &Destination, table: &Path) -> Result<DeltaLog, DeltaError> {
        DeltaLog::new(dest, table, Vec::new())
    }

    /// Runs a kernel call on a blocking thread, one at a time.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, DeltaError> + Send + 'static,
    ) -> Result<T, DeltaError> {
        let _one = KERNEL_CALLS.acquire().await.expect("never closed");
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .unwrap_or_else(|e| {
                Err(DeltaError::Commit {
                    table: self.inner.table.clone(),
                    cause: e.to_string(),
                })
            })
    }

    /// Checks that what is there is nothing yet (the run's first commit creates the table) or
    /// a table this tool can read and write. A log folder that holds anything is a table's,
    /// readable or not.
    pub(crate) async fn check(&self, dest: &Destination) -> Result<(), DeltaError> {
        let log = Path::from(format!("{}/{LOG_DIR}", self.inner.table));
        let listed = dest
            .list(&log)
            .await
            .map_err(|e| self.inner.unreadable(e))?;
        if listed.is_empty() {
            return Ok(());
        }
        self.call(|inner| inner.check()).await
    }

    /// Replaces the rows of `partition` by those of `file` (none: the partition is emptied)
    /// in one commit, adding any of `columns` the table lacks. Returns the version committed.
    pub(crate) async fn replace(
        &self,
        partition: Partition,
        file: Option<NewFile>,
        columns: &Schema,
    ) -> Result<u64, DeltaError> {
        let columns = columns.clone();
        self.call(move |inner| inner.replace(partition, file, &columns))
            .await
    }

    /// Adds to the table's schema any of `columns` it lacks, in a commit of its own (metadata
    /// only). On a store whose create-if-absent is a check then a put, another writer's first
    /// version can replace this one's, and with it columns this writer's files hold.
    pub(crate) async fn ensure_columns(&self, columns: &Schema) -> Result<(), DeltaError> {
        let columns = columns.clone();
        self.call(move |inner| inner.ensure_columns(&columns)).await
    }

    /// Files this writer rewrote to widen the table (for the report).
    pub(crate) fn rewritten(&self) -> usize {
        self.inner
            .rewritten
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The files the latest version reads, with the version; `None` when there is no table.
    pub(crate) async fn active_files(&self) -> Result<Option<(u64, Vec<ActiveFile>)>, DeltaError> {
        self.call(|inner| inner.active_files()).await
    }

    /// This writer's commits that are not in the log as it made them (another writer's commit
    /// of the same version took their place), latest of each partition only. Each is checked
    /// once: a lost one is committed again by the caller.
    pub(crate) async fn lost(&self) -> Result<Vec<Lost>, DeltaError> {
        let made = std::mem::take(&mut *self.inner.made.lock().unwrap_or_else(|e| e.into_inner()));
        let mut lost: Vec<Lost> = Vec::new();
        let mut latest: HashMap<String, usize> = HashMap::new();
        for (i, m) in made.iter().enumerate() {
            latest.insert(m.partition.dir.to_string(), i);
        }
        for (i, m) in made.into_iter().enumerate() {
            if latest.get(m.partition.dir.as_ref()) != Some(&i) {
                continue;
            }
            let (version, txn) = (m.version, m.txn);
            if !self
                .call(move |inner| inner.reads_back(version, txn))
                .await?
            {
                tracing::warn!(table = self.inner.table, version = m.version, dir = %m.partition.dir, "another writer's commit took the place of this one; committing it again");
                lost.push(Lost {
                    partition: m.partition,
                    file: m.file,
                });
            }
        }
        Ok(lost)
    }
}

impl Inner {
    fn unreadable(&self, e: impl std::fmt::Display) -> DeltaError {
        DeltaError::Unreadable {
            table: self.table.clone(),
            cause: first_line(&e.to_string()),
        }
    }

    fn unsupported(&self, action: &'static str, e: impl std::fmt::Display) -> DeltaError {
        DeltaError::Unsupported {
            table: self.table.clone(),
            action,
            cause: first_line(&e.to_string()),
        }
    }

    fn failed(&self, e: impl std::fmt::Display) -> DeltaError {
        DeltaError::Commit {
            table: self.table.clone(),
            cause: first_line(&e.to_string()),
        }
    }

    fn latest(&self) -> Result<Option<SnapshotRef>, DeltaError> {
        match Snapshot::builder_for(self.root.as_str()).build(self.engine.as_ref()) {
            Ok(snapshot) => Ok(Some(snapshot)),
            // No commit yet (on local disk, no folder yet).
            Err(KernelError::EmptyLog | KernelError::InvalidTableLocation(_)) => Ok(None),
            Err(e @ (KernelError::Unsupported(_) | KernelError::InvalidProtocol(_))) => {
                Err(self.unsupported("read", e))
            }
            Err(e) => Err(self.unreadable(e)),
        }
    }

    /// The latest version must load, take writes and have our partition columns.
    fn check(&self) -> Result<(), DeltaError> {
        let Some(snapshot) = self.latest()? else {
            return Err(self.unreadable("its folder holds no commit"));
        };
        // Building a write transaction checks every writer feature the table declares.
        snapshot
            .clone()
            .update_table(UpdateTableOperation::Write, ENGINE_INFO, true)
            .build(self.engine.as_ref(), Box::new(FileSystemCommitter::new()))
            .and_then(|txn| txn.write_state().map(|_| ()))
            .map_err(|e| self.unsupported("write", e))?;
        let partitioned = snapshot
            .table_configuration()
            .metadata()
            .partition_columns();
        if *partitioned != self.keys {
            return Err(self.unsupported(
                "write",
                format!(
                    "it is partitioned by ({}), this table by ({})",
                    partitioned.join(", "),
                    self.keys.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// The table's schema: the partition columns, then the files' columns, every one nullable
    /// (a non-null column would add the `invariants` writer feature, which readers need not
    /// know of).
    fn table_schema(&self, columns: &Schema) -> Result<StructType, DeltaError> {
        let mut fields: Vec<StructField> = self
            .keys
            .iter()
            .map(|k| StructField::nullable(*k, key_type(k)))
            .collect();
        for f in columns.fields() {
            fields.push(self.kernel_field(f)?);
        }
        StructType::try_new(fields).map_err(|e| self.failed(e))
    }

    fn kernel_field(&self, field: &Field) -> Result<StructField, DeltaError> {
        let plain = Field::new(field.name(), field.data_type().clone(), true);
        StructField::try_from_arrow(&plain).map_err(|e| self.failed(e))
    }

    fn create(&self, columns: &Schema) -> Result<(), DeltaError> {
        let schema = Arc::new(self.table_schema(columns)?);
        let mut builder = create_table(self.root.as_str(), schema, ENGINE_INFO, true);
        if !self.keys.is_empty() {
            builder = builder.with_data_layout(DataLayout::partitioned(self.keys.clone()));
        }
        let txn = match builder.build(self.engine.as_ref(), Box::new(FileSystemCommitter::new())) {
            Ok(txn) => txn,
            // Another writer created it since this one looked.
            Err(KernelError::TableAlreadyExistsAtPath(_)) => return Ok(()),
            Err(e) => return Err(self.failed(e)),
        };
        match txn
            .commit(self.engine.as_ref())
            .map_err(|e| self.failed(e))?
        {
            CommitResult::Committed(_) | CommitResult::Conflicted(_) => Ok(()),
            CommitResult::Retryable(r) => Err(self.failed(r.error)),
        }
    }

    /// The columns of `columns` the table lacks, as fields to add, and those whose type
    /// differs from the table's.
    fn compare(
        &self,
        snapshot: &SnapshotRef,
        columns: &Schema,
    ) -> Result<(Vec<StructField>, Vec<StructField>), DeltaError> {
        let schema = snapshot.schema();
        let (mut missing, mut changed) = (Vec::new(), Vec::new());
        for f in columns.fields() {
            let wanted = self.kernel_field(f)?;
            match schema.field(f.name()) {
                None => missing.push(wanted),
                Some(have) if have.data_type() == wanted.data_type() => {}
                Some(_) => changed.push(wanted),
            }
        }
        Ok((missing, changed))
    }

    /// The columns of `columns` the table lacks; `Widens` when one of them is wider than the
    /// table's.
    fn missing(
        &self,
        snapshot: &SnapshotRef,
        columns: &Schema,
    ) -> Result<Vec<StructField>, DeltaError> {
        let (missing, changed) = self.compare(snapshot, columns)?;
        if !changed.is_empty() {
            return Err(DeltaError::Widens {
                table: self.table.clone(),
                columns: changed.iter().map(|f| f.name().clone()).collect(),
            });
        }
        Ok(missing)
    }

    fn replace(
        &self,
        partition: Partition,
        file: Option<NewFile>,
        columns: &Schema,
    ) -> Result<u64, DeltaError> {
        let engine = self.engine.as_ref();
        for attempt in 1..=MAX_ATTEMPTS {
            let snapshot = match self.latest()? {
                Some(snapshot) => snapshot,
                None => {
                    self.create(columns)?;
                    continue;
                }
            };
            // An attempt that failed to hear back may have committed: its file, named once, is
            // then in the table, and committing it again would add it twice.
            if let (Some(file), true) = (&file, attempt > 1) {
                let ours = self.relative_file(&file.path);
                if !self.files_matching(&snapshot, |p| p == ours)?.is_empty() {
                    return Ok(snapshot.version());
                }
            }
            let txn_version = self
                .next_txn
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut builder = snapshot
                .clone()
                .update_table(UpdateTableOperation::Write, ENGINE_INFO, true)
                .with_transaction_id(self.app_id.clone(), txn_version);
            for field in self.missing(&snapshot, columns)? {
                builder = builder.add_column(field);
            }
            let mut txn = builder
                .build(engine, Box::new(FileSystemCommitter::new()))
                .map_err(|e| self.unsupported("write", e))?;
            if let Some(file) = &file {
                let state = txn.write_state().map_err(|e| self.failed(e))?;
                txn.add_files(self.added(&state, partition.values.clone(), file)?);
            }
            for removed in self.files_under(&snapshot, &partition.dir)? {
                txn.remove_files(removed);
            }
            match txn.commit(engine).map_err(|e| self.failed(e))? {
                CommitResult::Committed(committed) => {
                    let version = committed.commit_version();
                    let since = committed.post_commit_stats().commits_since_checkpoint;
                    self.made
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(Made {
                            version,
                            txn: txn_version,
                            partition: partition.clone(),
                            file: file.clone(),
                        });
                    if !self.reads_back(version, txn_version)? {
                        tracing::debug!(
                            table = self.table,
                            version,
                            "a commit read back as another writer's; committing again"
                        );
                        continue;
                    }
                    if since >= CHECKPOINT_EVERY {
                        if let Some(snapshot) = committed.post_commit_snapshot() {
                            // A checkpoint only speeds reads up: a failed one costs a warning.
                            if let Err(e) = snapshot.checkpoint(engine, None) {
                                tracing::warn!(table = self.table, version, error = %e, "could not write a Delta checkpoint");
                            }
                        }
                    }
                    return Ok(version);
                }
                CommitResult::Conflicted(c) => {
                    tracing::debug!(table = self.table, version = c.conflict_version(), attempt, dir = %partition.dir, "another writer committed this version first; building the commit again");
                }
                CommitResult::Retryable(r) => {
                    tracing::debug!(table = self.table, attempt, error = %r.error, "a Delta commit could not be written; trying again");
                }
            }
        }
        Err(DeltaError::Contended {
            dir: partition.dir.to_string(),
            attempts: MAX_ATTEMPTS,
        })
    }

    fn ensure_columns(&self, columns: &Schema) -> Result<(), DeltaError> {
        for _ in 0..MAX_ATTEMPTS {
            let Some(snapshot) = self.latest()? else {
                return Ok(());
            };
            // A column of another type is a widening's business, met by the next commit.
            let (missing, _) = self.compare(&snapshot, columns)?;
            if missing.is_empty() {
                return Ok(());
            }
            let mut builder =
                snapshot.update_table(UpdateTableOperation::AlterTable, ENGINE_INFO, false);
            for field in missing {
                builder = builder.add_column(field);
            }
            let txn = builder
                .build(self.engine.as_ref(), Box::new(FileSystemCommitter::new()))
                .map_err(|e| self.unsupported("write", e))?;
            if let CommitResult::Committed(_) = txn
                .commit(self.engine.as_ref())
                .map_err(|e| self.failed(e))?
            {
                continue; // checked again: a commit on moto can still be lost
            }
        }
        Err(DeltaError::Contended {
            dir: self.table.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// The partition values of a data file, from its Hive folders.
    fn values_of(&self, path: &Path) -> Vec<(&'static str, String)> {
        let mut values = Vec::new();
        for part in path.parts() {
            if let Some((k, v)) = part.as_ref().split_once('=') {
                if let Some(key) = self.keys.iter().find(|key| **key == k) {
                    values.push((*key, v.to_owned()));
                }
            }
        }
        values
    }

    /// The `add` action metadata of `file`, in the partition `values`.
    fn added(
        &self,
        state: &Arc<WriteState>,
        values: Vec<(&'static str, String)>,
        file: &NewFile,
    ) -> Result<Box<dyn delta_kernel::EngineData>, DeltaError> {
        let values: HashMap<String, Scalar> = values
            .iter()
            .map(|(k, v)| (k.to_string(), key_value(k, v)))
            .collect();
        let context = match self.keys.is_empty() {
            true => state.write_context_builder().build(),
            false => state
                .write_context_builder()
                .with_partition_values(values)
                .build(),
        }
        .map_err(|e| self.failed(e))?;
        let location = self
            .dest
            .join(file.path.as_ref())
            .map_err(|e| self.failed(e))?;
        let meta = FileMeta::new(location, chrono::Utc::now().timestamp_millis(), file.bytes);
        build_add_file_metadata(DataFileMetadata::new(meta, row_count(file.rows)), &context)
            .map_err(|e| self.failed(e))
    }

    /// A data file's path as the log names it: relative to the table root.
    fn relative_file(&self, path: &Path) -> String {
        let path = path.as_ref();
        path.strip_prefix(self.table.as_str())
            .map(|rest| rest.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| path.to_owned())
    }

    /// The scan rows of `snapshot`'s files under `dir`, selected for removal.
    fn files_under(
        &self,
        snapshot: &SnapshotRef,
        dir: &Path,
    ) -> Result<Vec<FilteredEngineData>, DeltaError> {
        let prefix = self.relative_dir(dir);
        self.files_matching(snapshot, |path| {
            prefix.is_empty() || path.starts_with(&prefix)
        })
    }

    /// The scan rows of `snapshot`'s files whose path (relative to the table root) `chosen`
    /// picks, selected for removal.
    fn files_matching(
        &self,
        snapshot: &SnapshotRef,
        chosen: impl Fn(&str) -> bool,
    ) -> Result<Vec<FilteredEngineData>, DeltaError> {
        let scan = snapshot
            .clone()
            .scan_builder()
            .build()
            .map_err(|e| self.unreadable(e))?;
        let mut out = Vec::new();
        for metadata in scan
            .scan_metadata(self.engine.as_ref())
            .map_err(|e| self.unreadable(e))?
        {
            let (data, selected) = metadata
                .map_err(|e| self.unreadable(e))?
                .scan_files
                .into_parts();
            let data =
                ArrowEngineData::try_from_engine_data(data).map_err(|e| self.unreadable(e))?;
            let batch = data.record_batch();
            let paths = batch
                .column_by_name("path")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| self.unreadable("a scan row has no path"))?;
            let chosen: Vec<bool> = (0..batch.num_rows())
                .map(|i| {
                    selected.get(i).copied().unwrap_or(true)
                        && paths.is_valid(i)
                        && chosen(paths.value(i))
                })
                .collect();
            if chosen.iter().any(|c| *c) {
                out.push(
                    FilteredEngineData::try_new(data, chosen).map_err(|e| self.unreadable(e))?,
                );
            }
        }
        Ok(out)
    }

    /// `dir` (under `--dest`) relative to the table root, ending in `/`; empty for the root.
    fn relative_dir(&self, dir: &Path) -> String {
        let dir = dir.as_ref();
        match dir.strip_prefix(self.table.as_str()) {
            Some(rest) => {
                let rest = rest.trim_start_matches('/');
                match rest.is_empty() {
                    true => String::new(),
                    false => format!("{rest}/"),
                }
            }
            None => format!("{dir}/"),
        }
    }

    fn active_files(&self) -> Result<Option<(u64, Vec<ActiveFile>)>, DeltaError> {
        let Some(snapshot) = self.latest()? else {
            return Ok(None);
        };
        let scan = snapshot
            .clone()
            .scan_builder()
            .build()
            .map_err(|e| self.unreadable(e))?;
        let mut files = Vec::new();
        for metadata in scan
            .scan_metadata(self.engine.as_ref())
            .map_err(|e| self.unreadable(e))?
        {
            let metadata = metadata.map_err(|e| self.unreadable(e))?;
            files = metadata
                .visit_scan_files(files, |files: &mut Vec<(String, i64)>, f| {
                    files.push((f.path, f.size));
                })
                .map_err(|e| self.unreadable(e))?;
        }
        let table = Path::from(self.table.as_str());
        let files = files
            .into_iter()
            .map(|(path, size)| ActiveFile {
                path: Path::parse(format!("{table}/{path}")).unwrap_or_else(|_| table.clone()),
                bytes: size.max(0) as u64,
            })
            .collect();
        Ok(Some((snapshot.version(), files)))
    }

    /// Whether log version `version` holds this writer's `txn` action `txn`.
    fn reads_back(&self, version: u64, txn: i64) -> Result<bool, DeltaError> {
        let url = self
            .root
            .join(&format!("{LOG_DIR}/{version:020}.json"))
            .map_err(|e| self.unreadable(e))?;
        let bytes = self
            .engine
            .storage_handler()
            .read_files(vec![(url, None)])
            .map_err(|e| self.unreadable(e))?
            .next()
            .transpose()
            .map_err(|e| self.unreadable(e))?
            .unwrap_or_default();
        Ok(holds_txn(&bytes, &self.app_id, txn))
    }
}

/// Whether the commit file `bytes` holds the `txn` action (`app_id`, `version`).
fn holds_txn(bytes: &[u8], app_id: &str, version: i64) -> bool {
    bytes.split(|b| *b == b'\n').any(|line| {
        serde_json::from_slice::<serde_json::Value>(line).is_ok_and(|action| {
            let txn = &action["txn"];
            txn["appId"] == app_id && txn["version"] == version
        })
    })
}

/// A file's statistics as an `add` action carries them: its row count (what readers use to
/// count without reading, and to plan splits).
fn row_count(rows: u64) -> StructArray {
    let rows: ArrayRef = Arc::new(Int64Array::from(vec![rows as i64]));
    StructArray::from(vec![(
        Arc::new(Field::new("numRecords", ArrowType::Int64, true)),
        rows,
    )])
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_values_are_typed() {
        assert_eq!(key_value("campaign_id", "17"), Scalar::Long(17));
        assert_eq!(key_value("date", "1970-01-02"), Scalar::Date(1));
        assert_eq!(
            key_value("month", "2024-03"),
            Scalar::String("2024-03".into())
        );
        assert_eq!(key_value("crm_type", "B2C"), Scalar::String("B2C".into()));
    }

    #[test]
    fn commits_are_told_apart_by_their_txn() {
        let log = br#"{"commitInfo":{"timestamp":1}}
{"txn":{"appId":"cube-extract-a","version":3,"lastUpdated":1}}
"#;
        assert!(holds_txn(log, "cube-extract-a", 3));
        assert!(!holds_txn(log, "cube-extract-a", 4));
        assert!(!holds_txn(log, "cube-extract-b", 3));
    }
}
