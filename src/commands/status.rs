//! `cube-extract status`: what a destination holds of a table, read from its ledger and schema
//! only, as text or JSON; with `--expect-from`/`--expect-to`, whether a range of days is complete.

use crate::cli::{LogFormat, StatusArgs};
use crate::error::Outcome;
use crate::inventory::{Expected, Heading, Inventory, Status};
use crate::logging::{self, Progress};
use crate::run;
use crate::settings::{StatusSettings, UsageError};
use crate::sink::{DestinationSpec, Paths, SchemaStore, StoreError};

/// Why there is no status to show.
#[derive(Debug, thiserror::Error)]
enum StatusError {
    #[error("{0}")]
    Usage(#[from] UsageError),
    #[error("--dest {0} does not exist; give the --dest a dataset was extracted to")]
    NoDestination(String),
    #[error("{0}; check the destination and its credentials")]
    Store(#[from] StoreError),
    #[error("{dest} holds no {table} dataset ({file} is missing); extract into it first, or check --dest and --table")]
    NoDataset {
        dest: String,
        table: &'static str,
        file: String,
    },
}

pub(super) fn run(args: &StatusArgs) -> Outcome {
    logging::init(LogFormat::Human, 0, false, &Progress::hidden());
    let today = chrono::Local::now().date_naive();
    let runtime = run::runtime();
    let status = runtime.block_on(async {
        let settings = StatusSettings::resolve(args, super::dataset(args.table), today)?;
        status(&settings).await
    });
    runtime.shutdown_background();
    match status {
        Ok(status) => {
            print!("{}", status.text);
            if status.complete {
                Outcome::Done
            } else {
                Outcome::Partial
            }
        }
        Err(e) => {
            tracing::error!("{e}");
            Outcome::Refused
        }
    }
}

async fn status(settings: &StatusSettings) -> Result<Status, StatusError> {
    let dataset = settings.dataset;
    let store = &settings.store;
    if let DestinationSpec::Local(path) = &store.dest {
        // Opening a local destination creates it; a status lookup must not.
        if !path.is_dir() {
            return Err(StatusError::NoDestination(store.dest.display()));
        }
    }
    let dest = store.open(dataset).await?;
    let paths = Paths::new(&dataset);
    let (schema, _) = SchemaStore::new(&dest, &paths)
        .load()
        .await?
        .ok_or_else(|| StatusError::NoDataset {
            dest: store.dest.display(),
            table: dataset.name,
            file: paths.schema_file().to_string(),
        })?;
    let mut inventory = Inventory::load(&dest, &paths).await?;
    if !settings.scopes.is_empty() {
        inventory
            .scopes
            .retain(|scope, _| settings.scopes.contains(scope));
    }
    let heading = Heading {
        table: dataset.name,
        dest: store.dest.display(),
        schema_version: schema.version,
    };
    let expect = settings.expect.map(|(from, to)| Expected {
        from,
        to,
        scopes: &settings.scopes,
    });
    Ok(inventory.status(&heading, expect, settings.json))
}
