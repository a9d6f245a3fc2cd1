//! `cube-extract schema`: a dataset's schema as stored at its destination, shown as a table, as
//! JSON, or as a DuckDB view that names each custom column by its label.

use crate::cli::SchemaArgs;
use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::logging;
use crate::run;
use crate::schema::view;
use crate::settings::StoreSettings;
use crate::sink::DestinationSpec;

use super::read::{open_dataset, ReadError};

pub(super) fn run(args: &SchemaArgs) -> Outcome {
    logging::init_for_a_result();
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
async fn text(args: &SchemaArgs, dataset: Dataset) -> Result<String, ReadError> {
    let store = StoreSettings::resolve(&args.dest)?;
    let held = open_dataset(&store, dataset).await?;
    let schema = held.schema;
    Ok(if args.json {
        schema.to_json()
    } else if let Some(name) = &args.duckdb_view {
        // A Delta table's folder also holds files of earlier versions: only its log says
        // which to read.
        let (glob, table) = (
            table_glob(&store.dest, dataset),
            format!("{}/{}", store.dest.display(), dataset.name),
        );
        let source = match held.paths.is_delta() {
            true => view::ViewSource::Delta(&table),
            false => view::ViewSource::Files(&glob),
        };
        view::duckdb_view(&schema, name, source)
    } else {
        view::table(&schema)
    })
}

/// Where DuckDB finds the table's files, at any depth of partition folders.
fn table_glob(spec: &DestinationSpec, dataset: Dataset) -> String {
    format!("{}/{}/**/*.parquet", spec.display(), dataset.name)
}
