//! `cube-extract call-outcomes` and `cube-extract product-registrations`.

use std::time::Instant;

use crate::cli::{ExtractArgs, LogFormat};
use crate::error::Outcome;
use crate::logging::{self, Progress, DETAIL};
use crate::report::Report;
use crate::run;
use crate::settings::Settings;
use crate::unit::Dataset;

pub(super) fn run(args: &ExtractArgs, dataset: Dataset) -> Outcome {
    let started = Instant::now();
    let progress = Progress::new(args.log_format);
    logging::init(args.log_format, args.verbose, args.quiet, &progress);
    let settings = match Settings::resolve(args, chrono::Local::now().date_naive()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return Outcome::Refused;
        }
    };
    let runtime = run::runtime();
    let report = runtime.block_on(run::extract(&settings, dataset, &progress));
    // After a signal, encoders of abandoned partitions may still be finishing on blocking
    // threads; their output goes nowhere, so the process need not wait for them.
    runtime.shutdown_background();
    let outcome = finish(&settings, &report);
    // A person reads a summary of a run that got as far as its partitions (those it skipped
    // included); JSON logs already hold every event.
    if args.log_format == LogFormat::Human && !args.quiet && !report.partitions.is_empty() {
        eprint!("{}", report.summary(dataset.name, started.elapsed()));
    }
    outcome
}

/// Logs the end of the run and writes the report file; a report that cannot be written turns a
/// complete run into a partial one, so that the orchestrator looks.
fn finish(settings: &Settings, report: &Report) -> Outcome {
    if let Some(error) = &report.error {
        tracing::error!("{error}");
    }
    // For people the summary says it (see `run`); the event is for logs that are read by tools.
    tracing::info!(
        target: DETAIL,
        status = report.status,
        exit_code = report.exit_code,
        rows = report.rows,
        partitions = report.partitions.len(),
        failed = report.count(crate::report::PartitionStatus::Failed),
        files_rewritten = report.files_rewritten,
        "run finished"
    );
    let mut outcome = report.outcome;
    if let Some(path) = &settings.report {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            tracing::error!(
                "could not write the report to {}: {e}; check the --report path",
                path.display()
            );
            if outcome == Outcome::Done {
                outcome = Outcome::Partial;
            }
        }
    }
    outcome
}
