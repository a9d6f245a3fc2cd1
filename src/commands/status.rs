//! `cube-extract status`: what a destination holds of a table, read from its ledger and schema
//! only, as text or JSON; with `--expect-from`/`--expect-to`, whether a range of days is complete.

use crate::cli::{LogFormat, StatusArgs};
use crate::error::Outcome;
use crate::inventory::{Expected, Heading, Inventory, Status};
use crate::logging::{self, Progress};
use crate::run;
use crate::settings::StatusSettings;

use super::read::{open_dataset, Held, ReadError};

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

async fn status(settings: &StatusSettings) -> Result<Status, ReadError> {
    let dataset = settings.dataset;
    let store = &settings.store;
    let Held {
        dest,
        paths,
        schema,
    } = open_dataset(store, dataset).await?;
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
