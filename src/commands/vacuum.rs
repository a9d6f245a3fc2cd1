//! `cube-extract vacuum`: deletes the files of Delta tables that no version within the
//! retention reads. A Delta table keeps the files a commit removed (a replaced day or month,
//! the files of a widening), so that earlier versions stay readable; a killed run may also
//! leave a file it never committed. Both go once they are older than the retention.

use crate::cli::VacuumArgs;
use crate::datasets::{self, Dataset};
use crate::error::Outcome;
use crate::logging;
use crate::run;
use crate::settings::StoreSettings;
use crate::sink::delta::{DeltaError, DeltaLog};
use crate::sink::StoreError;

use super::read::{open_dataset, Held, ReadError};

/// Delta's own default retention: shorter ones may delete files a reader still reads.
const MIN_RETAIN_HOURS: u64 = 168;

#[derive(Debug, thiserror::Error)]
enum VacuumError {
    #[error("{0}")]
    Read(#[from] ReadError),
    #[error("{0}")]
    Delta(#[from] DeltaError),
    #[error("{0}; check the destination and its credentials")]
    Store(#[from] StoreError),
    #[error("--retain-hours {0} is under {MIN_RETAIN_HOURS}: a reader may still be reading an earlier version (time travel, a query in flight); give --force to vacuum anyway")]
    ShortRetention(u64),
    #[error("{table} at {dest} is not a Delta table (it was extracted with --table-format parquet); vacuum only Delta tables")]
    NotDelta { table: &'static str, dest: String },
}

pub(super) fn run(args: &VacuumArgs) -> Outcome {
    logging::init_for_a_result();
    let runtime = run::runtime();
    let done = runtime.block_on(vacuum(args));
    runtime.shutdown_background();
    match done {
        Ok(text) => {
            print!("{text}");
            Outcome::Done
        }
        Err(e) => {
            tracing::error!("{e}");
            Outcome::Refused
        }
    }
}

async fn vacuum(args: &VacuumArgs) -> Result<String, VacuumError> {
    if args.retain_hours < MIN_RETAIN_HOURS && !args.force {
        return Err(VacuumError::ShortRetention(args.retain_hours));
    }
    let store = StoreSettings::resolve(&args.dest).map_err(ReadError::from)?;
    let cutoff = chrono::Utc::now().timestamp_millis()
        - i64::try_from(args.retain_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
    let tables: Vec<Dataset> = match args.table {
        Some(table) => vec![super::dataset(table)],
        None => datasets::ALL.to_vec(),
    };
    let mut text = String::new();
    for dataset in tables {
        let held = match open_dataset(&store, dataset).await {
            Ok(held) => held,
            // Every table: those never extracted here are not there to vacuum.
            Err(ReadError::NoDataset { .. }) if args.table.is_none() => continue,
            Err(e) => return Err(e.into()),
        };
        if !held.paths.is_delta() {
            if args.table.is_some() {
                return Err(VacuumError::NotDelta {
                    table: dataset.name,
                    dest: store.dest.display(),
                });
            }
            continue;
        }
        text += &vacuum_table(&held, dataset, cutoff, args.dry_run).await?;
    }
    if text.is_empty() {
        text = format!("no Delta table at {}\n", store.dest.display());
    }
    Ok(text)
}

async fn vacuum_table(
    held: &Held,
    dataset: Dataset,
    cutoff: i64,
    dry_run: bool,
) -> Result<String, VacuumError> {
    let Held {
        dest,
        paths,
        schema,
    } = held;
    let dated = dataset.by_day() || schema.keep_history;
    let keys = paths.partition_keys(dataset.scope().keys(), dated);
    let log = DeltaLog::new(dest, &paths.table_root(), keys)?;
    log.check(dest).await?;
    let (files, referenced) = log.unreferenced(dest, cutoff).await?;
    let bytes: u64 = files.iter().map(|f| f.size).sum();
    for file in &files {
        match dry_run {
            true => tracing::info!(path = %file.location, "would delete"),
            false => {
                dest.delete(&file.location).await?;
                dest.prune_empty_dirs(&file.location);
                tracing::info!(path = %file.location, "deleted");
            }
        }
    }
    let verb = match dry_run {
        true => "would delete",
        false => "deleted",
    };
    Ok(format!(
        "{}: {verb} {} files ({}); {referenced} files kept for the versions readers may ask for\n",
        dataset.name,
        files.len(),
        crate::report::human_bytes(bytes),
    ))
}
