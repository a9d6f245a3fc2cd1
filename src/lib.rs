//! cube-extract: Headshed Cube call outcomes -> Hive-partitioned Parquet on disk or S3.
//!
//! Stages, each in its own module, talking through plain types:
//! [`settings`] (what to do) -> [`source`] (pages of raw JSON) -> [`schema`] (keys and types)
//! -> [`decode`] (Arrow batches) -> [`sink`] (Parquet files, atomically placed, and the ledger)
//! -> [`report`] (outcome and exit status). [`pipeline`] runs them.

pub mod cli;
pub mod decode;
pub mod logging;
mod partition;
pub mod pipeline;
pub mod privacy;
pub mod reconcile;
pub mod report;
pub mod schema;
pub mod schema_view;
pub mod settings;
pub mod sink;
pub mod source;
pub mod unit;

use std::process::ExitCode;

use cli::{Cli, Command};
use report::{exit, Report};

/// An error and its causes on one line ("error sending request: connection refused").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// Runs a parsed command line; the return value is the process exit status.
pub fn main_with(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CallOutcomes(args) => extract(&args, unit::CALL_OUTCOMES),
        Command::ProductRegistrations(args) => extract(&args, unit::PRODUCT_REGISTRATIONS),
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "cube-extract",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
        Command::Reconcile(args) => {
            logging::init(
                args.log_format,
                args.verbose,
                args.quiet,
                &logging::Progress::hidden(),
            );
            let runtime = runtime();
            let outcome = runtime.block_on(reconcile::run(&args.dest, table(args.table)));
            runtime.shutdown_background();
            match outcome {
                Ok(()) => ExitCode::SUCCESS,
                Err((code, e)) => {
                    tracing::error!("{e}");
                    ExitCode::from(code)
                }
            }
        }
        Command::Schema(args) => {
            logging::init(
                cli::LogFormat::Human,
                0,
                false,
                &logging::Progress::hidden(),
            );
            match runtime().block_on(schema_view::run(&args, table(args.table))) {
                Ok(text) => {
                    print!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    tracing::error!("{e}");
                    ExitCode::from(exit::USAGE)
                }
            }
        }
    }
}

fn table(table: cli::Table) -> unit::Dataset {
    match table {
        cli::Table::CallOutcomes => unit::CALL_OUTCOMES,
        cli::Table::ProductRegistrations => unit::PRODUCT_REGISTRATIONS,
    }
}

/// The runtime of a command. Blocking threads do the CPU work (one per core, see
/// `partition::cpu_slots`) and short file-system calls. Each thread that allocates gets its own
/// malloc arena, which stays at its high-water mark, so a small pool keeps peak memory down.
fn runtime() -> tokio::runtime::Runtime {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(cores + 2)
        .enable_all()
        .build()
        .expect("tokio runtime starts")
}

fn extract(args: &cli::ExtractArgs, dataset: unit::Dataset) -> ExitCode {
    let progress = logging::Progress::new(args.log_format);
    logging::init(args.log_format, args.verbose, args.quiet, &progress);
    let today = chrono::Local::now().date_naive();
    let settings = match settings::Settings::resolve(args, today) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = runtime();
    let report = runtime.block_on(pipeline::run(&settings, dataset, &progress));
    // After a signal, encoders of abandoned partitions may still be finishing on blocking
    // threads; their output goes nowhere, so the process need not wait for them.
    runtime.shutdown_background();
    finish(&settings, &report)
}

fn finish(settings: &settings::Settings, report: &Report) -> ExitCode {
    if let Some(error) = &report.error {
        tracing::error!("{error}");
    }
    let failed = report
        .partitions
        .iter()
        .filter(|p| p.status == report::PartitionStatus::Failed)
        .count();
    tracing::info!(
        status = report.status,
        exit_code = report.exit_code,
        rows = report.rows,
        partitions = report.partitions.len(),
        failed,
        files_rewritten = report.files_rewritten,
        "run finished"
    );
    let mut code = report.exit_code;
    if let Some(path) = &settings.report {
        if let Err(e) = std::fs::write(path, report.to_json()) {
            tracing::error!(
                "could not write the report to {}: {e}; check the --report path",
                path.display()
            );
            if code == exit::OK {
                code = exit::PARTIAL;
            }
        }
    }
    ExitCode::from(code)
}
