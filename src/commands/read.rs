//! What the read-only commands (`schema`, `status`) share: opening a destination that must
//! already hold a table, without creating anything, and why that can fail.

use crate::datasets::Dataset;
use crate::schema::DatasetSchema;
use crate::settings::{StoreSettings, UsageError};
use crate::sink::{Destination, DestinationSpec, Paths, SchemaStore, StoreError};

/// Why there is nothing to read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReadError {
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

/// A table at its destination, with its newest committed schema.
pub(super) struct Held {
    pub(super) dest: Destination,
    pub(super) paths: Paths,
    pub(super) schema: DatasetSchema,
}

/// Opens `dataset` at `store` for reading: the destination must exist (a local one is not
/// created) and hold the table.
pub(super) async fn open_dataset(
    store: &StoreSettings,
    dataset: Dataset,
) -> Result<Held, ReadError> {
    if let DestinationSpec::Local(path) = &store.dest {
        // Opening a local destination creates it; a lookup must not.
        if !path.is_dir() {
            return Err(ReadError::NoDestination(store.dest.display()));
        }
    }
    let dest = store.open(dataset).await?;
    let paths = Paths::new(&dataset);
    // The newest committed generation: `schema.json` may lag it while several writers run.
    let (schema, _) = SchemaStore::new(&dest, &paths)
        .load()
        .await?
        .ok_or_else(|| ReadError::NoDataset {
            dest: store.dest.display(),
            table: dataset.name,
            file: paths.schema_file().to_string(),
        })?;
    let paths = Paths::of_schema(&dataset, &schema);
    Ok(Held {
        dest,
        paths,
        schema,
    })
}
