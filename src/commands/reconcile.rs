//! `cube-extract reconcile`: bring every file of a dataset to its current schema.

use crate::cli::{ColorChoice, ReconcileArgs};
use crate::error::Outcome;
use crate::logging::{self, Progress};
use crate::run;
use crate::settings::StoreSettings;

pub(super) fn run(args: &ReconcileArgs) -> Outcome {
    logging::init(
        args.log_format,
        args.verbose,
        args.quiet,
        logging::colors(ColorChoice::Auto),
        &Progress::hidden(),
    );
    let store = match StoreSettings::resolve(&args.dest) {
        Ok(store) => store,
        Err(e) => {
            tracing::error!("{e}");
            return Outcome::Refused;
        }
    };
    let runtime = run::runtime();
    let result = runtime.block_on(run::reconcile_dataset(&store, super::dataset(args.table)));
    runtime.shutdown_background();
    match result {
        Ok(()) => Outcome::Done,
        Err(e) => {
            tracing::error!("{e}");
            e.outcome()
        }
    }
}
