//! The engine: plan a run, extract its partitions concurrently (fetch -> infer -> decode ->
//! encode -> place -> record), then bring files written under an older dataset schema up to
//! date. The stages it drives (source, schema, decode, sink) know nothing of it.

mod budget;
mod partition;
mod place;
mod plan;
mod reconcile;
mod signal;
mod state;

use futures::StreamExt;

pub(crate) use reconcile::reconcile_dataset;

use crate::decode::DecodeError;
use crate::error::{Outcome, Signal};
use crate::logging::Progress;
use crate::report::{PartitionStatus, Report};
use crate::settings::Settings;
use crate::sink::parquet::EncodeError;
use crate::sink::StoreError;
use crate::source::SourceError;
use crate::unit::Dataset;
use partition::Partition;
use reconcile::{Reconciler, Rewritten};
use signal::Shutdown;
use state::Run;

/// Why a run stopped before (or instead of) extracting partitions.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("campaign {0} is not listed by this Cube account; check --campaign against GET /api/v1/campaigns or use --all-campaigns")]
    UnknownCampaigns(String),
    #[error("{0}; give the same --drop-columns/--hash-columns (and key) as before, or add --rewrite to rewrite the existing files under the new settings")]
    PolicyChanged(String),
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
            RunError::Api(_) => Outcome::Partial,
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
}

impl PartitionError {
    fn is_contract_violation(&self) -> bool {
        match self {
            PartitionError::Source(e) => e.is_contract_violation(),
            PartitionError::Decode(_) => true,
            PartitionError::Encode(_) | PartitionError::Store(_) => false,
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

/// Runs one extraction and returns its report, whose outcome is the command's.
///
/// SIGINT or SIGTERM stops it cleanly: the partitions whose files were not yet placed are
/// abandoned (nothing partial is visible), those placed finish their ledger entry, every
/// committed partition is in the ledger and the report, and the outcome is
/// [`Outcome::Interrupted`].
pub(crate) async fn extract(settings: &Settings, dataset: Dataset, progress: &Progress) -> Report {
    let shutdown = Shutdown::listen();
    let mut report = Report::new(now(), settings.store.dest.display());
    match execute(settings, dataset, progress, &shutdown, &mut report).await {
        Ok(None) => report.conclude(now()),
        Ok(Some(signal)) => {
            progress.finish();
            report.interrupted(signal, now());
        }
        Err(e) => report.stopped(e.outcome(), e.to_string(), now()),
    }
    report
}

/// Plans and runs the extraction; `Some(signal)` when a signal stopped it.
async fn execute(
    settings: &Settings,
    dataset: Dataset,
    progress: &Progress,
    shutdown: &Shutdown,
    report: &mut Report,
) -> Result<Option<Signal>, RunError> {
    let (run, todo) = match shutdown
        .unless_stopped(plan::plan(settings, dataset, report))
        .await
    {
        Ok(planned) => planned?,
        Err(signal) => return Ok(Some(signal)),
    };
    tracing::info!(
        dest = run.dest.display(),
        partitions = todo.len(),
        skipped = report.partitions.len(),
        "extracting {}",
        dataset.name
    );
    progress.start(todo.len() as u64);
    {
        let mut outcomes = std::pin::pin!(futures::stream::iter(todo)
            .map(|unit| {
                let run = &run;
                async move {
                    let outcome = Partition::new(run, unit).extract(shutdown).await;
                    if let Some(p) = &outcome {
                        let failed = p.status == PartitionStatus::Failed;
                        progress.partition_done(p.rows as u64, failed, run.client.retries());
                    }
                    outcome
                }
            })
            .buffer_unordered(budget::partitions_in_flight(settings.concurrency)));
        // Into the report as each partition ends, so that a report written after a signal has
        // every partition committed before it.
        while let Some(outcome) = outcomes.next().await {
            report.partitions.extend(outcome);
        }
    }
    let stopped_by = match shutdown.received() {
        Some(signal) => Some(signal),
        None => match shutdown
            .unless_stopped(bring_up_to_date(&run, settings))
            .await
        {
            Err(signal) => Some(signal),
            Ok(Ok(done)) => {
                report.files_rewritten = done.files;
                report.bytes_written += done.bytes;
                None
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "could not bring earlier files up to date");
                report.error = Some(format!(
                    "{e}; earlier files keep their old columns until a later run succeeds"
                ));
                None
            }
        },
    };
    progress.finish();
    report.requests = run.client.requests();
    report.retries = run.client.retries();
    report.schema_changes = run.into_changes();
    Ok(stopped_by)
}

/// Takes up what other writers committed meanwhile, then rewrites every file written under an
/// older layout.
async fn bring_up_to_date(run: &Run, settings: &Settings) -> Result<Rewritten, PartitionError> {
    let target = run.settle_schema().await?;
    Reconciler {
        dest: &run.dest,
        paths: &run.paths,
        policy: &run.policy,
        cpu: &run.cpu,
    }
    .reconcile(&target, settings.concurrency)
    .await
}
