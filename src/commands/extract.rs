//! The extraction commands: one table (`call-outcomes`, `customers`, ...) or all of them
//! (`sync`).

use std::time::Instant;

use crate::cli::{ExtractArgs, LogFormat, SummaryFormat};
use crate::datasets::Dataset;
use crate::error::Outcome;
use crate::logging::{self, Progress, DETAIL};
use crate::observers::Observers;
use crate::report::{summary_json, Report, SyncReport};
use crate::run;
use crate::settings::Settings;

pub(super) fn run(args: &ExtractArgs, datasets: &[Dataset]) -> Outcome {
    let started = Instant::now();
    let progress = Progress::new(args.log_format, args.no_progress);
    let ansi = logging::colors(args.color);
    logging::init(args.log_format, args.verbose, args.quiet, ansi, &progress);
    let job = match datasets {
        [one] => one.name,
        _ => "sync",
    };
    let mut observers = match Observers::open(job, args.openlineage_file.clone()) {
        Ok(observers) => observers,
        Err(e) => {
            tracing::error!("{e}");
            return Outcome::Refused;
        }
    };
    // Launched by Dagster: its partitions are the days, unless the command line names them.
    let mut args = args.clone();
    if let (Some((from, to)), None, None) = (observers.days(), &args.from, &args.to) {
        if datasets.iter().any(Dataset::by_day) {
            (args.from, args.to) = (Some(from), Some(to));
        }
    }
    let args = &args;
    let runtime = run::runtime();
    let settings = match Settings::resolve(args, datasets) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            runtime.block_on(observers.refused(&e.to_string()));
            return Outcome::Refused;
        }
    };
    runtime.block_on(observers.started(&settings));
    let reports = runtime.block_on(run::extract(&settings, &settings.tables, &progress));
    progress.finish();
    let outcome = finish(&settings, &reports, datasets.len() > 1);
    runtime.block_on(observers.ended(&reports, outcome));
    // After a signal, encoders of abandoned partitions may still be finishing on blocking
    // threads; their output goes nowhere, so the process need not wait for them.
    runtime.shutdown_background();
    if args.summary == Some(SummaryFormat::Json) {
        let tables: Vec<(&str, &Report)> = reports.iter().map(|(d, r)| (d.name, r)).collect();
        println!("{}", summary_json(&tables, outcome.exit_code()));
    }
    // A person reads a summary of a run that got as far as its partitions (those it skipped
    // included); JSON logs already hold every event.
    if args.log_format == LogFormat::Human && !args.quiet {
        for (dataset, report) in &reports {
            if !report.partitions.is_empty() {
                eprint!("{}", report.summary(dataset.name, started.elapsed()));
            }
        }
    }
    outcome
}

/// Logs the end of the run and writes the report file (one table's report, or for `sync` a
/// section per table); a report that cannot be written turns a complete run into a partial
/// one, so that the orchestrator looks.
fn finish(settings: &Settings, reports: &[(Dataset, Report)], sectioned: bool) -> Outcome {
    let mut outcome = Outcome::Done;
    // A run stopped before any table (bad credentials, say) gives every table the same error:
    // say it once.
    let errors: Vec<&String> = reports
        .iter()
        .filter_map(|(_, r)| r.error.as_ref())
        .collect();
    let shared = errors.len() == reports.len() && errors.windows(2).all(|w| w[0] == w[1]);
    if shared {
        tracing::error!("{}", errors[0]);
    }
    for (dataset, report) in reports {
        match &report.error {
            Some(error) if !shared && sectioned => tracing::error!("{}: {error}", dataset.name),
            Some(error) if !shared => tracing::error!("{error}"),
            _ => {}
        }
        // For people the summary says it (see `run`); the event is for logs read by tools.
        tracing::info!(
            target: DETAIL,
            table = dataset.name,
            status = report.status,
            exit_code = report.exit_code,
            rows = report.rows,
            partitions = report.partitions.len(),
            failed = report.count(crate::report::PartitionStatus::Failed),
            files_rewritten = report.files_rewritten,
            "run finished"
        );
        outcome = outcome.worst(report.outcome);
    }
    if let Some(path) = &settings.report {
        let text = match reports {
            [(_, report)] if !sectioned => report.to_json(),
            _ => SyncReport::new(reports.iter().map(|(d, r)| (d.name, r))).to_json(),
        };
        if let Err(e) = std::fs::write(path, text) {
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
