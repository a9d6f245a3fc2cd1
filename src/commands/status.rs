//! `cube-extract status`: what a destination holds of a table, read from its ledger and schema
//! only, as text or JSON; with `--expect-from`/`--expect-to`, whether a range of days is complete.

use crate::cli::StatusArgs;
use crate::datasets::ScopeKind;
use crate::error::Outcome;
use crate::inventory::{Expected, Heading, Inventory, Status};
use crate::logging;
use crate::run;
use crate::settings::{StatusSettings, UsageError};
use crate::unit::Scope;
use crate::zone::Zone;

use super::read::{open_dataset, Held, ReadError};

pub(super) fn run(args: &StatusArgs) -> Outcome {
    logging::init_for_a_result();
    let runtime = run::runtime();
    let status = runtime.block_on(async {
        let today = Zone::parse(args.timezone.as_deref())
            .map_err(UsageError::from)?
            .today();
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
    let scope = schema.scope.unwrap_or(dataset.default_scope());
    if let Some(other) = settings.scopes.iter().find(|s| s.kind() != scope) {
        return Err(ReadError::Usage(UsageError::NotApplicable {
            option: match other.kind() {
                ScopeKind::Crm => "crm",
                _ => "campaign",
            },
            tables: format!("{} (--scope {})", dataset.name, scope.as_str()),
            fix: match scope {
                ScopeKind::Campaign => "its partitions are campaigns; name them with --campaign",
                ScopeKind::Crm => "its partitions are CRMs; name them with --crm",
                ScopeKind::Account => "its partitions are the whole account's days; drop it",
            },
        }));
    }
    let mut inventory = Inventory::load(&dest, &paths).await?;
    if !settings.scopes.is_empty() {
        inventory
            .scopes
            .retain(|scope, _| settings.scopes.contains(scope));
    }
    // A table of the whole account expects the account, held or not.
    let expected: Vec<Scope> = match scope {
        ScopeKind::Account => vec![Scope::Account],
        _ => settings.scopes.clone(),
    };
    let heading = Heading {
        table: dataset.name,
        dest: store.dest.display(),
        schema_version: schema.version,
    };
    let expect = settings.expect.map(|(from, to)| Expected {
        from,
        to,
        scopes: &expected,
    });
    Ok(inventory.status(&heading, expect, settings.json))
}
