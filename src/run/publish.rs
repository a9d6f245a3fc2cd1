//! Publishing a partition: what makes a placed file (or a partition's emptiness) what readers
//! see. The table's format decides it, once, when the run is planned: in a Parquet table the
//! placement itself is the publication (and an empty partition loses its file); in a Delta
//! table one commit to its log removes the partition's files and adds the new one.

use arrow_schema::Schema;

use super::month::{Cause, MonthWriter};
use super::state::Run;
use super::PartitionError;
use crate::sink::delta::{DeltaError, DeltaLog, Lost, NewFile, Partition};
use crate::sink::{Destination, StoreError, DATA_FILE};

/// How a table's partitions are published.
pub(crate) enum Publisher {
    /// Plain Parquet: readers see the files under the table's folder.
    Files,
    /// A Delta table: readers see the files its log names.
    Delta(DeltaLog),
}

impl Publisher {
    /// Makes `file`, already placed under `partition.dir` (none: the partition holds no rows),
    /// what readers see of the partition. `columns` are the file's.
    pub(crate) async fn publish(
        &self,
        dest: &Destination,
        partition: Partition,
        file: Option<NewFile>,
        columns: &Schema,
    ) -> Result<(), PartitionError> {
        match self {
            Publisher::Files => {
                if file.is_none() {
                    // A re-run replaces a partition, so a day that is empty now loses its file.
                    let path = partition.dir.join(DATA_FILE);
                    dest.delete(&path).await?;
                    dest.prune_empty_dirs(&path);
                }
                Ok(())
            }
            Publisher::Delta(log) => {
                log.replace(partition, file, columns).await?;
                Ok(())
            }
        }
    }

    /// The partitions whose commit another writer's took the place of, to publish again
    /// (none for Parquet tables, whose placements cannot be lost).
    pub(crate) async fn lost(&self, dest: &Destination) -> Result<Vec<Lost>, StoreError> {
        match self {
            Publisher::Files => Ok(Vec::new()),
            Publisher::Delta(log) => log.lost(dest).await,
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
    for _ in 0..MAX_ROUNDS {
        let lost = run.publisher.lost(&run.dest).await?;
        if lost.is_empty() {
            return Ok(());
        }
        for Lost { partition, file } in lost {
            let target = run.target().await;
            match run.paths.month_of_partition(&partition) {
                Some(month) => {
                    let writer = MonthWriter {
                        dest: &run.dest,
                        paths: &run.paths,
                        policy: &run.policy,
                        cpu: &run.cpu,
                        publisher: &run.publisher,
                    };
                    writer.publish(month, &target, Cause::DaysWritten).await?;
                }
                None => {
                    run.publisher
                        .publish(&run.dest, partition, file, &target.arrow)
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

impl From<DeltaError> for PartitionError {
    fn from(e: DeltaError) -> Self {
        PartitionError::Delta(e)
    }
}
