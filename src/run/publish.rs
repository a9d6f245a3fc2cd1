//! Publishing a partition: what makes a placed file (or a partition's emptiness) what readers
//! see. The table's format decides it, once, when the run is planned: in a Parquet table the
//! placement itself is the publication (and an empty partition loses its file); in a Delta
//! table one commit to its log removes the partition's files and adds the new one.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::SchemaRef;
use futures::{StreamExt, TryStreamExt};

use super::budget::CpuSlots;
use super::month::{month_schema, Cause, MonthWriter};
use super::place::{self, Streamed};
use super::state::Run;
use super::PartitionError;
use crate::privacy::Policy;
use crate::sink::delta::{DeltaError, DeltaLog, Lost, NewFile, Partition};
use crate::sink::parquet::{file_info, rewrite, EncodeError};
use crate::sink::{Destination, Paths, Target, DATA_FILE};

/// Widenings a publication may meet, and commits a widening may lose to other writers, before
/// it gives up. A widening's first try rewrites the table's files; a retry only those committed
/// since.
const MAX_WIDENINGS: usize = 16;

/// Files rewritten at once by a widening.
const REWRITES_AT_ONCE: usize = 4;

/// What publishing reads and writes with.
pub(crate) struct Publishing<'a> {
    pub(crate) dest: &'a Destination,
    pub(crate) paths: &'a Paths,
    pub(crate) policy: &'a Policy,
    pub(crate) cpu: &'a CpuSlots,
}

impl Publishing<'_> {
    /// The columns of the table's files under `target`: a month file's day, then the
    /// dataset's.
    fn columns(&self, target: &Target) -> SchemaRef {
        match self.paths.builds_months() {
            true => month_schema(&target.arrow),
            false => Arc::clone(&target.arrow),
        }
    }
}

/// How a table's partitions are published.
pub(crate) enum Publisher {
    /// Plain Parquet: readers see the files under the table's folder.
    Files,
    /// A Delta table: readers see the files its log names.
    Delta(DeltaLog),
}

impl Publisher {
    /// Makes `file`, already placed under `partition.dir` (none: the partition holds no rows),
    /// what readers see of the partition. The file was written under `target`.
    pub(crate) async fn publish(
        &self,
        on: &Publishing<'_>,
        partition: Partition,
        file: Option<NewFile>,
        target: &Target,
    ) -> Result<(), PartitionError> {
        let log = match self {
            Publisher::Delta(log) => log,
            Publisher::Files => {
                if file.is_none() {
                    // A re-run replaces a partition, so a day that is empty now loses its file.
                    let path = partition.dir.join(DATA_FILE);
                    on.dest.delete(&path).await?;
                    on.dest.prune_empty_dirs(&path);
                }
                return Ok(());
            }
        };
        let columns = on.columns(target);
        for _ in 0..MAX_WIDENINGS {
            match log.replace(partition.clone(), file.clone(), &columns).await {
                Err(DeltaError::Widens { columns: wider, .. }) => {
                    tracing::info!(table = %on.paths.table_root(), columns = %wider.join(", "), "widening the Delta table: its files are rewritten, then committed with the new types in one version");
                    widen(on, log, target).await?;
                }
                done => return done.map(|_| ()).map_err(PartitionError::from),
            }
        }
        Err(PartitionError::Delta(DeltaError::Contended {
            dir: partition.dir.to_string(),
            attempts: MAX_WIDENINGS,
        }))
    }

    /// Files rewritten to widen the table (a Parquet table's rewrites are reconcile's).
    pub(crate) fn rewritten(&self) -> usize {
        match self {
            Publisher::Files => 0,
            Publisher::Delta(log) => log.rewritten(),
        }
    }
}

/// Rounds of publishing lost commits again before the run says the table is contended.
const MAX_ROUNDS: usize = 8;

/// Publishes again every partition whose commit another writer's took the place of, until
/// every commit of this run is in the log. A month is built again from its days (a file
/// committed again as it was could replace a newer one holding a day added since); a day or
/// a snapshot is its own file, committed again.
pub(crate) async fn republish_lost(run: &Run) -> Result<(), PartitionError> {
    let Publisher::Delta(log) = &run.publisher else {
        return Ok(());
    };
    for _ in 0..MAX_ROUNDS {
        let lost = log.lost().await?;
        if lost.is_empty() {
            let target = run.target().await;
            log.ensure_columns(&run.publishing().columns(&target))
                .await?;
            return Ok(());
        }
        for Lost { partition, file } in lost {
            let target = run.target().await;
            match run.paths.month_of_partition(&partition) {
                Some(month) => {
                    MonthWriter::of(run)
                        .publish(month, &target, Cause::DaysWritten)
                        .await?;
                }
                None => {
                    run.publisher
                        .publish(&run.publishing(), partition, file, &target)
                        .await?
                }
            }
        }
    }
    Err(PartitionError::Delta(DeltaError::Contended {
        dir: run.paths.table_root().to_string(),
        attempts: MAX_ROUNDS,
    }))
}

/// Rewrites every file of the Delta table whose columns are not `target`'s types to a new
/// file, and commits the new types, the old files' removal and the new ones' addition in one
/// version. A file another writer replaced meanwhile makes it start again; a retry rewrites only
/// the files it has not rewritten yet (those committed since), so each is quicker than the last
/// and other writers' commits cannot starve the widening.
async fn widen(on: &Publishing<'_>, log: &DeltaLog, target: &Target) -> Result<(), PartitionError> {
    let columns = on.columns(target);
    // By the path of each file rewritten so far: its new file, or `None` when it had the types.
    let mut done: HashMap<object_store::path::Path, Option<NewFile>> = HashMap::new();
    for _ in 0..MAX_WIDENINGS {
        let files: Vec<object_store::path::Path> = log
            .active_files()
            .await?
            .map(|(_, files)| files.into_iter().map(|f| f.path).collect())
            .unwrap_or_default();
        let fresh: Vec<(object_store::path::Path, Option<NewFile>)> =
            futures::stream::iter(files.iter().filter(|p| !done.contains_key(*p)).cloned())
                .map(|path| {
                    let columns = Arc::clone(&columns);
                    async move {
                        let new = rewrite_file(on, path.clone(), columns, target).await?;
                        Ok::<_, PartitionError>((path, new))
                    }
                })
                .buffer_unordered(REWRITES_AT_ONCE)
                .try_collect()
                .await?;
        done.extend(fresh);
        let rewritten: Vec<(object_store::path::Path, NewFile)> = files
            .into_iter()
            .filter_map(|path| {
                let new = done.get(&path).cloned().flatten()?;
                Some((path, new))
            })
            .collect();
        match log.widen(rewritten, &columns).await {
            Err(DeltaError::Moved { .. }) => continue,
            done => return done.map(|_| ()).map_err(PartitionError::from),
        }
    }
    Err(PartitionError::Delta(DeltaError::Contended {
        dir: on.paths.table_root().to_string(),
        attempts: MAX_WIDENINGS,
    }))
}

/// Writes `path`'s rows under `columns` to a new file beside it; `None` if its columns are
/// already those types (or it is gone: the widening's commit then finds it moved).
async fn rewrite_file(
    on: &Publishing<'_>,
    path: object_store::path::Path,
    columns: SchemaRef,
    target: &Target,
) -> Result<Option<NewFile>, PartitionError> {
    let Some(old) = on.dest.get(&path).await? else {
        return Ok(None);
    };
    let new = on.paths.new_file_beside(&path);
    let (policy, meta) = (on.policy.clone(), target.meta.clone());
    let streamed = place::stream(on.dest, &new, on.paths.staging_dir(), |out| {
        on.cpu.run(move || {
            let info = file_info(&old)?;
            let same = columns.fields().iter().all(|f| {
                info.schema
                    .field_with_name(f.name())
                    .map_or(true, |have| have.data_type() == f.data_type())
            });
            if same {
                return Ok(Err(()));
            }
            let mut meta = meta;
            meta.days = info.days.clone();
            meta.snapshot_at = info.snapshot_at.clone();
            let (out, rows) = rewrite(old, &info, columns, meta, &policy, out)?;
            Ok::<_, PartitionError>(Ok((out.complete().map_err(EncodeError::from)?, rows)))
        })
    })
    .await?;
    match streamed {
        Streamed::Staged((bytes, rows), mut staged) => {
            staged.upload_parts().await?;
            staged.place().await?;
            Ok(Some(NewFile {
                path: new,
                bytes,
                rows: rows as u64,
            }))
        }
        Streamed::GaveUp(()) => Ok(None),
    }
}

impl From<DeltaError> for PartitionError {
    fn from(e: DeltaError) -> Self {
        PartitionError::Delta(e)
    }
}
