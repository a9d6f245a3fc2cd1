//! `cube-extract schema`: a dataset's schema as stored at its destination, shown as a table, as
//! JSON, or as a DuckDB view that names each custom column by its label.

use crate::cli::{LogFormat, SchemaArgs};
use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::logging::{self, Progress};
use crate::run;
use crate::schema::view;
use crate::settings::{StoreSettings, UsageError};
use crate::sink::{DestinationSpec, Paths, SchemaStore, StoreError};

/// Why there is no schema to show.
#[derive(Debug, thiserror::Error)]
enum SchemaError {
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

pub(super) fn run(args: &SchemaArgs) -> Outcome {
    logging::init(LogFormat::Human, 0, false, &Progress::hidden());
    let runtime = run::runtime();
    let text = runtime.block_on(text(args, super::dataset(args.table)));
    runtime.shutdown_background();
    match text {
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

/// The text to print.
async fn text(args: &SchemaArgs, dataset: Dataset) -> Result<String, SchemaError> {
    let store = StoreSettings::resolve(&args.dest)?;
    if let DestinationSpec::Local(path) = &store.dest {
        // Opening a local destination creates it; a schema lookup must not.
        if !path.is_dir() {
            return Err(SchemaError::NoDestination(store.dest.display()));
        }
    }
    let dest = store.open(dataset).await?;
    let paths = Paths::new(&dataset);
    // The newest committed generation: `schema.json` may lag it while several writers run.
    let (schema, _) = SchemaStore::new(&dest, &paths)
        .load()
        .await?
        .ok_or_else(|| SchemaError::NoDataset {
            dest: store.dest.display(),
            table: dataset.name,
            file: paths.schema_file().to_string(),
        })?;
    Ok(if args.json {
        schema.to_json()
    } else if let Some(name) = &args.duckdb_view {
        view::duckdb_view(&schema, name, &table_glob(&store.dest, dataset))
    } else {
        view::table(&schema)
    })
}

/// Where DuckDB finds the table's files, at any depth of partition folders.
fn table_glob(spec: &DestinationSpec, dataset: Dataset) -> String {
    format!("{}/{}/**/*.parquet", spec.display(), dataset.name)
}
