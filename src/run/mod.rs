//! The engine: plan a run, extract its partitions concurrently (fetch -> infer -> decode ->
//! encode -> place -> record), then bring files written under an older dataset schema up to
//! date. The stages it drives (source, schema, decode, sink) know nothing of it.

mod budget;
mod month;
mod partition;
mod place;
mod plan;
mod publish;
mod reconcile;
mod signal;
mod state;
mod tail;

use futures::StreamExt;

pub(crate) use reconcile::reconcile_dataset;

use crate::datasets::{Dataset, Partitioning, ScopeKind, TableFormat};
use crate::decode::DecodeError;
use crate::error::{Outcome, Signal};
use crate::logging::Progress;
use crate::report::{PartitionStatus, Report};
use crate::settings::Settings;
use crate::sink::parquet::EncodeError;
use crate::sink::StoreError;
use crate::source::SourceError;
use crate::unit::Unit;
use partition::Partition;
use plan::Context;
use reconcile::{Reconciler, Rewritten};
use signal::Shutdown;
use state::Run;

/// Why a run stopped before (or instead of) extracting partitions.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("campaign {0} is not listed by this Cube account; check --campaign against GET /api/v1/campaigns or use --all-campaigns")]
    UnknownCampaigns(String),
    #[error("--crm {0} is not a CRM of any campaign this Cube account lists; check the data owner id and CRM type against GET /api/v1/campaigns")]
    UnknownCrms(String),
    #[error("the credentials cannot read CRM {crm} ({cause}); ask for access to it or leave it out of --crm/--campaign")]
    CrmUnreadable { crm: String, cause: String },
    #[error("CRM {crm} could not be read: {cause}")]
    CrmNotAnswered { crm: String, cause: String },
    #[error("{table} was created {}; run with the same choice, or extract into a new --dest", if *.kept { "with --keep-history (one snapshot per day)" } else { "without --keep-history (each snapshot replaces the last)" })]
    HistoryChanged { table: &'static str, kept: bool },
    #[error("{table} was created with --scope {}; run with --scope {}, or extract into a new --dest", .created.as_str(), .created.as_str())]
    ScopeChanged {
        table: &'static str,
        created: ScopeKind,
    },
    #[error("{table} was created with --partitioning {}; run with --partitioning {} (or without the option), or extract into a new --dest", .created.as_str(), .created.as_str())]
    PartitioningChanged {
        table: &'static str,
        created: Partitioning,
    },
    #[error("{table} was created with --table-format {}; run with --table-format {} (or without the option), or extract into a new --dest", .created.as_str(), .created.as_str())]
    FormatChanged {
        table: &'static str,
        created: TableFormat,
    },
    #[error("{0}")]
    Delta(#[source] crate::sink::delta::DeltaError),
    #[error("{table} is a Delta table, whose earlier versions keep the values of its files: new --drop-columns/--hash-columns settings cannot be applied to it; give the same settings as before, or extract into a new --dest")]
    DeltaPolicyChanged { table: &'static str },
    #[error("{0}; give the same --drop-columns/--hash-columns (and key) as before, or add --rewrite to rewrite the existing files under the new settings")]
    PolicyChanged(String),
    #[error("this Cube account does not serve {table} ({url} answered 404 Not Found for page 1 of {listing}); leave {table} out, or check --base-url")]
    Unserved {
        table: &'static str,
        url: String,
        /// Whose listing it was.
        listing: &'static str,
    },
    #[error("{0}")]
    Auth(#[source] SourceError),
    #[error("{0}")]
    Api(#[source] SourceError),
    #[error("{0}")]
    Destination(#[source] StoreError),
    /// The dataset's schema could not be read.
    #[error("{0}")]
    State(#[source] StoreError),
    /// The tool's state could not be written (or the ledger read).
    #[error("{0}; check the destination's permissions")]
    StateWrite(#[source] StoreError),
}

impl RunError {
    fn outcome(&self) -> Outcome {
        match self {
            // The API could not be reached even after retries: worth retrying later.
            RunError::Api(_) | RunError::CrmNotAnswered { .. } => Outcome::Partial,
            _ => Outcome::Refused,
        }
    }
}

/// Why one partition (or the rewrite of one file) failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PartitionError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("encoding Parquet failed: {0}")]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Delta(crate::sink::delta::DeltaError),
}

impl PartitionError {
    fn is_contract_violation(&self) -> bool {
        match self {
            PartitionError::Source(e) => e.is_contract_violation(),
            PartitionError::Decode(_) => true,
            PartitionError::Encode(_) | PartitionError::Store(_) | PartitionError::Delta(_) => {
                false
            }
        }
    }
}

/// The time of day as the report and the ledger write it.
pub(crate) fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// The runtime of a command. Blocking threads do the CPU work (one per core, see
/// [`budget::CpuSlots`]) and short file-system calls. Each thread that allocates gets its own
/// malloc arena, which stays at its high-water mark, so a small pool keeps peak memory down.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(budget::cores() + 2)
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

/// Runs one extraction of `datasets` and returns a report per table, whose worst outcome is
/// the command's. The tables share one client, campaign listing and label fetch, and their
/// partitions run in one stream under one `--concurrency`.
///
/// SIGINT or SIGTERM stops it cleanly: the partitions whose files were not yet placed are
/// abandoned (nothing partial is visible), those placed finish their ledger entry, every
/// committed partition is in the ledger and the report, and the outcome is
/// [`Outcome::Interrupted`].
pub(crate) async fn extract(
    settings: &Settings,
    datasets: &[Dataset],
    progress: &Progress,
) -> Vec<(Dataset, Report)> {
    let shutdown = Shutdown::listen();
    let started = now();
    let mut reports: Vec<(Dataset, Report)> = datasets
        .iter()
        .map(|&d| {
            (
                d,
                Report::new(started.clone(), settings.store.dest.display()),
            )
        })
        .collect();
    let context = match shutdown
        .unless_stopped(Context::new(settings, &mut reports[0].1))
        .await
    {
        Err(signal) => {
            for (_, report) in &mut reports {
                report.interrupted(signal, now());
            }
            return reports;
        }
        Ok(Err(e)) => {
            let requests = reports[0].1.requests;
            for (_, report) in &mut reports {
                report.requests = requests;
                report.stopped(e.outcome(), e.to_string(), now());
            }
            return reports;
        }
        Ok(Ok(context)) => context,
    };
    // The destination must take writes before any page is fetched (and only once the API has
    // taken the credentials and campaigns: a refused run writes nothing, not even a folder).
    if let Err(e) = settings.store.open_for_writing(datasets[0]).await {
        let e = RunError::Destination(e);
        for (_, report) in &mut reports {
            report.requests = context.client.requests();
            report.stopped(e.outcome(), e.to_string(), now());
        }
        return reports;
    }
    for (_, report) in &mut reports {
        report.campaigns = context.campaigns.clone();
    }
    let stopped_by = execute(settings, &context, progress, &shutdown, &mut reports).await;
    progress.finish();
    for (_, report) in &mut reports {
        report.requests = context.client.requests();
        report.retries = context.client.retries();
        report.concurrency = Some(context.client.concurrency_used());
        if !report.finished.is_empty() {
            continue; // stopped while planning
        }
        match stopped_by {
            Some(signal) => report.interrupted(signal, now()),
            None => report.conclude(now()),
        }
    }
    reports
}

/// Plans every table and runs their partitions; `Some(signal)` when a signal stopped it. A table
/// that cannot be planned ends with its error in its report; the others go on.
async fn execute(
    settings: &Settings,
    context: &Context,
    progress: &Progress,
    shutdown: &Shutdown,
    reports: &mut [(Dataset, Report)],
) -> Option<Signal> {
    let sectioned = reports.len() > 1;
    let mut planned: Vec<(usize, Run)> = Vec::new();
    let mut todo: Vec<(usize, Unit)> = Vec::new();
    for (i, (dataset, report)) in reports.iter_mut().enumerate() {
        match shutdown
            .unless_stopped(plan::plan(
                settings,
                context,
                *dataset,
                todo.is_empty(),
                report,
            ))
            .await
        {
            Err(signal) => return Some(signal),
            // `sync` copies what the account has: a table it does not serve is skipped.
            Ok(Err(e @ RunError::Unserved { .. })) if sectioned => {
                tracing::warn!("skipping {}: {e}", dataset.name);
                report.skipped(e.to_string(), now());
            }
            Ok(Err(e)) => report.stopped(e.outcome(), e.to_string(), now()),
            Ok(Ok((run, units))) => {
                tracing::info!(
                    dest = run.dest.display(),
                    partitions = units.len(),
                    skipped = report.partitions.len(),
                    "extracting {}",
                    dataset.name
                );
                todo.extend(units.into_iter().map(|u| (i, u)));
                planned.push((i, run));
            }
        }
    }
    progress.start(todo.len() as u64);
    {
        let runs: Vec<Option<&Run>> = (0..reports.len())
            .map(|i| planned.iter().find(|(j, _)| *j == i).map(|(_, r)| r))
            .collect();
        let unfinished = &tail::Unfinished::new(
            &todo,
            2 * budget::partitions_in_flight(settings.concurrency),
        );
        let mut outcomes = std::pin::pin!(futures::stream::iter(todo)
            .map(|(i, unit)| {
                let run = runs[i].expect("units come from planned tables");
                unfinished.started();
                async move {
                    let ended = Partition::new(run, unit).extract(shutdown).await;
                    let settled = month::settle(run, unit, ended, shutdown).await;
                    unfinished.ended(i, &unit);
                    for p in &settled.partitions {
                        let failed = p.status == PartitionStatus::Failed;
                        progress.partition_done(
                            p.rows as u64,
                            failed,
                            run.client.retries(),
                            run.client.concurrency_used(),
                        );
                    }
                    (i, settled)
                }
            })
            .buffer_unordered(budget::partitions_in_flight(settings.concurrency)));
        // Into the report as each partition ends, so that a report written after a signal has
        // every partition committed before it.
        let drain = async {
            while let Some((i, settled)) = outcomes.next().await {
                reports[i].1.partitions.extend(settled.partitions);
                reports[i].1.bytes_written += settled.month_bytes;
            }
            unfinished.all_ended();
        };
        let early = tail::rewrite_early(&planned, unfinished, shutdown);
        let ((), rewritten_early) = futures::join!(drain, early);
        for (i, done) in rewritten_early {
            reports[i].1.files_rewritten += done.files;
            reports[i].1.bytes_written += done.bytes;
        }
    }
    let mut stopped_by = shutdown.received();
    for (i, run) in planned {
        let report = &mut reports[i].1;
        if stopped_by.is_none() {
            if let Err(e) = publish::republish_lost(&run).await {
                tracing::error!(table = run.dataset.name, error = %e, "a commit lost to another writer could not be made again");
                report.error = Some(format!("{e}; run again with --resume"));
            }
        }
        if stopped_by.is_none() {
            match shutdown.unless_stopped(bring_up_to_date(&run)).await {
                Err(signal) => stopped_by = Some(signal),
                Ok(Ok(done)) => {
                    report.files_rewritten += done.files;
                    report.bytes_written += done.bytes;
                }
                Ok(Err(e)) => {
                    tracing::error!(table = run.dataset.name, error = %e, "could not bring earlier files up to date");
                    report.error = Some(format!(
                        "{e}; earlier files keep their old columns until a later run succeeds"
                    ));
                }
            }
        }
        // Uploads of partitions (or rewrites) a signal abandoned are being aborted: wait for
        // that before the process exits.
        run.dest.settle_aborts().await;
        report.files_rewritten += run.publisher.rewritten();
        report.storage_retries = run.dest.storage_retries();
        (report.schema_changes, report.schema) = {
            let (changes, schema) = run.into_schema();
            (changes, Some(schema))
        };
    }
    stopped_by
}

/// Takes up what other writers committed meanwhile, then rewrites every file written under an
/// older layout.
async fn bring_up_to_date(run: &Run) -> Result<Rewritten, PartitionError> {
    let target = run.settle_schema().await?;
    Reconciler {
        dest: &run.dest,
        paths: &run.paths,
        policy: &run.policy,
        cpu: &run.cpu,
        every_file: false,
        policy_changed: run.policy_changed,
    }
    .reconcile(&target)
    .await
}
