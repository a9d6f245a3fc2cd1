//! Plan and run: check the request against the API, plan the (campaign, day) units, extract
//! them concurrently (fetch -> infer -> decode -> encode -> place -> record), then bring files
//! written under an older dataset schema up to date.

use arrow_schema::SchemaRef;
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::decode::DecodeError;
use crate::logging::Progress;
use crate::reconcile::Reconciler;
use crate::report::{exit, PartitionReport, PartitionStatus, Report};
use crate::schema::{DatasetSchema, KeyKinds, KnownFields, SchemaChange};
use crate::settings::{CampaignSelection, Settings};
use crate::sink::parquet::{EncodeError, FileMeta};
use crate::sink::{Base, Destination, Layout, Ledger, SchemaStore, StoreError};
use crate::source::{Campaign, CubeClient, SourceError};
use crate::unit::{Dataset, Unit};

/// Why a run stopped before (or instead of) extracting partitions.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Auth(SourceError),
    #[error("{0}")]
    Api(SourceError),
    #[error("{0}")]
    Destination(StoreError),
    #[error("{0}")]
    State(String),
}

impl Stop {
    pub fn exit_code(&self) -> u8 {
        match self {
            Stop::Usage(_) | Stop::Auth(_) | Stop::Destination(_) | Stop::State(_) => exit::USAGE,
            // The API could not be reached even after retries: worth retrying later.
            Stop::Api(_) => exit::PARTIAL,
        }
    }
}

/// Why one partition failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnitError {
    #[error("{0}")]
    Source(#[from] SourceError),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("encoding Parquet failed: {0}")]
    Encode(#[from] EncodeError),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl UnitError {
    pub(crate) fn is_contract_violation(&self) -> bool {
        match self {
            UnitError::Source(e) => e.is_contract_violation(),
            UnitError::Decode(_) => true,
            UnitError::Encode(_) | UnitError::Store(_) => false,
        }
    }
}

pub(crate) fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// Runs one extraction and returns its report (whose exit code is the process's).
///
/// SIGINT or SIGTERM stops it cleanly: the partitions in flight are abandoned (their files were
/// never placed, so nothing partial is visible), the committed ones stay in the ledger and the
/// report, and the exit code is 130 or 143.
pub async fn run(settings: &Settings, dataset: Dataset, progress: &Progress) -> Report {
    let mut report = Report::new(now(), settings.dest.display());
    let stopped_by = tokio::select! {
        outcome = execute(settings, dataset, progress, &mut report) => {
            match outcome {
                Ok(()) => report.conclude(now()),
                Err(stop) => report.stopped(stop.exit_code(), stop.to_string(), now()),
            }
            None
        }
        signal = shutdown_signal() => Some(signal),
    };
    if let Some((name, code)) = stopped_by {
        progress.finish();
        report.interrupted(name, code, now());
    }
    report
}

/// The first SIGINT or SIGTERM: its name and the exit code it gives (128 + its number).
async fn shutdown_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        // No handler could be installed: only Ctrl-C stops the run cleanly.
        let _ = tokio::signal::ctrl_c().await;
        return ("SIGINT", exit::SIGINT);
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("SIGINT", exit::SIGINT),
        _ = term.recv() => ("SIGTERM", exit::SIGTERM),
    }
}

async fn execute(
    settings: &Settings,
    dataset: Dataset,
    progress: &Progress,
    report: &mut Report,
) -> Result<(), Stop> {
    let client = CubeClient::new(
        settings.api_root.clone(),
        settings.auth.clone(),
        settings.concurrency,
        settings.retry.clone(),
    )
    .map_err(Stop::Api)?;
    // Checks credentials and campaign ids before anything is written.
    let listed = client.campaigns().await.map_err(|e| match e {
        SourceError::Auth { .. } => Stop::Auth(e),
        other => Stop::Api(other),
    });
    let counters = client.counters.clone();
    let listed = match listed {
        Ok(l) => l,
        Err(stop) => {
            report.requests = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
            return Err(stop);
        }
    };
    let ids = select_campaigns(&settings.campaigns, &listed)?;
    report.campaigns = ids.clone();

    let dest = Destination::open(&settings.dest).map_err(Stop::Destination)?;
    let layout = Layout::new(dataset.name);
    dest.check(&layout.state_root())
        .await
        .map_err(Stop::Destination)?;
    let (mut schema, mut base, existed) = load_schema(&dest, &layout, &dataset).await?;
    let policy_changed = adopt_policy(&mut schema, settings, existed)?;
    let labels_changed = schema.set_labels(fetch_labels(&client, &listed, &ids).await);
    // Committed before any file is written under the new settings or with the new labels.
    if policy_changed || labels_changed || !existed {
        SchemaStore::new(&dest, &layout)
            .commit(&mut schema, &mut base)
            .await
            .map_err(|e| Stop::State(format!("{e}; check the destination's permissions")))?;
    }
    let committed = Ledger::new(&dest, &layout)
        .load()
        .await
        .map_err(|e| Stop::State(format!("{e}; check the destination's permissions")))?;

    let mut todo = Vec::new();
    for day in &settings.days {
        for &campaign_id in &ids {
            let unit = Unit {
                day: *day,
                campaign_id,
            };
            if settings.resume && committed.contains_key(&unit) {
                report
                    .partitions
                    .push(PartitionReport::new(&unit, PartitionStatus::Skipped));
            } else {
                todo.push(unit);
            }
        }
    }
    tracing::info!(
        dest = dest.display(),
        partitions = todo.len(),
        skipped = report.partitions.len(),
        "extracting {}",
        dataset.name
    );
    progress.start(todo.len() as u64);

    let run = Run {
        client,
        dest,
        layout,
        dataset,
        fan_out: settings.concurrency,
        policy: settings.policy.clone(),
        partitions_in_flight: crate::partition::partitions_in_flight(settings.concurrency),
        page_budget: crate::partition::page_budget(settings.concurrency),
        cpu: crate::partition::cpu_slots(),
        schema: Mutex::new(SchemaState {
            schema,
            base,
            changes: Vec::new(),
        }),
    };
    let run_ref = &run;
    let retries = &counters.retries;
    {
        let mut outcomes = std::pin::pin!(futures::stream::iter(todo)
            .map(|unit| async move {
                let outcome = run_ref.extract(unit).await;
                progress.partition_done(
                    outcome.rows as u64,
                    outcome.status == PartitionStatus::Failed,
                    retries.load(std::sync::atomic::Ordering::Relaxed),
                );
                outcome
            })
            .buffer_unordered(run_ref.partitions_in_flight));
        // Into the report as each partition ends, so that a report written after a signal has
        // every partition committed before it.
        while let Some(outcome) = outcomes.next().await {
            report.partitions.push(outcome);
            report.requests = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
            report.retries = retries.load(std::sync::atomic::Ordering::Relaxed);
        }
    }

    match run.finish_schema_and_reconcile(settings.concurrency).await {
        Ok((rewritten, bytes)) => {
            report.files_rewritten = rewritten;
            report.bytes_written += bytes;
        }
        Err(e) => {
            tracing::error!(error = %e, "could not bring earlier files up to date");
            report.error = Some(format!(
                "{e}; earlier files keep their old columns until a later run succeeds"
            ));
        }
    }
    progress.finish();
    report.schema_changes = run.schema.into_inner().changes;
    report.requests = counters.requests.load(std::sync::atomic::Ordering::Relaxed);
    report.retries = counters.retries.load(std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

fn select_campaigns(selection: &CampaignSelection, listed: &[Campaign]) -> Result<Vec<u64>, Stop> {
    match selection {
        CampaignSelection::All { include_archived } => Ok(listed
            .iter()
            .filter(|c| *include_archived || !c.archived)
            .map(|c| c.id)
            .collect()),
        CampaignSelection::Ids(ids) => {
            let unknown: Vec<String> = ids
                .iter()
                .filter(|id| !listed.iter().any(|c| c.id == **id))
                .map(|id| id.to_string())
                .collect();
            if unknown.is_empty() {
                Ok(ids.clone())
            } else {
                Err(Stop::Usage(format!(
                    "campaign {} is not listed by this Cube account; check --campaign against GET /api/v1/campaigns or use --all-campaigns",
                    unknown.join(", ")
                )))
            }
        }
    }
}

/// The dataset schema at the destination (its newest generation), or a new one; its base; and
/// whether it existed.
async fn load_schema(
    dest: &Destination,
    layout: &Layout,
    dataset: &Dataset,
) -> Result<(DatasetSchema, Base, bool), Stop> {
    match SchemaStore::new(dest, layout).load().await {
        Ok(Some((schema, base))) => Ok((schema, base, true)),
        Ok(None) => {
            let schema = DatasetSchema::new(&KnownFields::parse(dataset.known_fields));
            Ok((schema, Base::empty(), false))
        }
        Err(e) => Err(Stop::State(e)),
    }
}

/// Makes the run's personal-data policy the dataset's. An existing dataset keeps its policy
/// unless `--rewrite` is given: its files were written under it. Returns whether it changed.
fn adopt_policy(
    schema: &mut DatasetSchema,
    settings: &Settings,
    existed: bool,
) -> Result<bool, Stop> {
    let wanted = settings.policy.spec();
    if existed {
        if let Some(difference) = wanted.difference(schema.policy()) {
            if !settings.rewrite {
                return Err(Stop::Usage(format!(
                    "{difference}; give the same --drop-columns/--hash-columns (and key) as before, or add --rewrite to rewrite the existing files under the new settings"
                )));
            }
            let lost: Vec<&str> = schema
                .columns()
                .iter()
                .filter(|c| schema.treatment(c) != crate::privacy::Treatment::Keep)
                .filter(|c| settings.policy.treatment(&c.name) != schema.treatment(c))
                .filter(|c| settings.policy.treatment(&c.name) != crate::privacy::Treatment::Drop)
                .map(|c| c.name.as_str())
                .collect();
            tracing::warn!(%difference, "--rewrite: existing files are rewritten under the new personal-data settings");
            if !lost.is_empty() {
                tracing::warn!(
                    columns = lost.join(", "),
                    "earlier values of these columns were dropped or hashed and cannot be restored: they are null in existing files until their days are extracted again"
                );
            }
        }
    }
    Ok(schema.set_policy(wanted, settings.policy.matcher()))
}

/// Labels of the custom fields of every CRM (data owner, CRM type) of the selected campaigns,
/// by JSON key. Labels only name columns, so a CRM whose definitions cannot be read costs a
/// warning, not the run.
async fn fetch_labels(
    client: &CubeClient,
    listed: &[Campaign],
    ids: &[u64],
) -> std::collections::HashMap<String, String> {
    let crms: std::collections::BTreeSet<(u64, String)> = listed
        .iter()
        .filter(|c| ids.contains(&c.id))
        .filter_map(|c| Some((c.data_owner_id?, c.crm_type.clone()?)))
        .collect();
    let answers = futures::future::join_all(crms.into_iter().map(|(owner, crm_type)| async move {
        let answer = client.custom_field_labels(owner, &crm_type).await;
        (owner, crm_type, answer)
    }))
    .await;
    let mut labels = std::collections::HashMap::new();
    for (owner, crm_type, answer) in answers {
        match answer {
            Ok(fields) => {
                for (key, label) in fields {
                    match labels.get(&key) {
                        Some(existing) if existing != &label => {
                            tracing::warn!(column = %key, label = %existing, other = %label, data_owner = owner, crm_type = %crm_type, "two CRMs label the same custom field differently; keeping the first");
                        }
                        Some(_) => {}
                        None => {
                            labels.insert(key, label);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(data_owner = owner, crm_type = %crm_type, error = %e, "could not read the labels of this CRM's custom fields; its columns stay unlabelled");
            }
        }
    }
    labels
}

struct SchemaState {
    schema: DatasetSchema,
    /// The committed generation `schema` builds on.
    base: Base,
    changes: Vec<SchemaChange>,
}

/// The schema a partition is written with.
pub(crate) struct Target {
    pub(crate) arrow: SchemaRef,
    pub(crate) decode: SchemaRef,
    pub(crate) version: u64,
    /// The files' key/value metadata (version, labels, hashed columns).
    pub(crate) meta: FileMeta,
    /// Positions in `arrow` of the columns to hash.
    pub(crate) hashed: Vec<usize>,
}

/// What every partition of a run shares.
pub(crate) struct Run {
    pub(crate) client: CubeClient,
    pub(crate) dest: Destination,
    pub(crate) layout: Layout,
    pub(crate) dataset: Dataset,
    pub(crate) fan_out: usize,
    /// Personal-data policy: hashes columns before they are encoded.
    pub(crate) policy: crate::privacy::Policy,
    /// Partitions extracted at once.
    pub(crate) partitions_in_flight: usize,
    /// Pages fetched but not yet encoded, bounded: see [`crate::partition::page_budget`].
    pub(crate) page_budget: std::sync::Arc<tokio::sync::Semaphore>,
    /// Blocking threads doing CPU work at once: see [`crate::partition::cpu_slots`].
    pub(crate) cpu: tokio::sync::Semaphore,
    schema: Mutex<SchemaState>,
}

impl Run {
    /// Folds a partition's keys into the dataset schema, persisting it before any file that
    /// depends on it is written.
    pub(crate) async fn merge(
        &self,
        keys: &KeyKinds,
        day: chrono::NaiveDate,
    ) -> Result<Target, StoreError> {
        let mut guard = self.schema.lock().await;
        let state = &mut *guard;
        let (changes, touched) = state.schema.merge(keys, day);
        if touched {
            for c in &changes {
                tracing::info!(column = %c.column, change = ?c.change, from = c.from, to = c.to, "schema change");
            }
            let taken_up = SchemaStore::new(&self.dest, &self.layout)
                .commit(&mut state.schema, &mut state.base)
                .await?;
            state.changes.extend(changes);
            state.changes.extend(taken_up);
        }
        Ok(target_of(&state.schema))
    }

    /// The current dataset schema as a write target.
    pub(crate) async fn target(&self) -> Target {
        target_of(&self.schema.lock().await.schema)
    }

    /// The current dataset schema, as a write target and as a copy to check pages against.
    pub(crate) async fn snapshot(&self) -> (Target, DatasetSchema) {
        let state = self.schema.lock().await;
        (target_of(&state.schema), state.schema.clone())
    }

    /// Takes up what other writers committed meanwhile, then rewrites every file written
    /// under an older layout (see [`crate::reconcile`]). Returns files and bytes written.
    async fn finish_schema_and_reconcile(
        &self,
        concurrency: usize,
    ) -> Result<(usize, u64), UnitError> {
        let target = {
            let mut guard = self.schema.lock().await;
            let state = &mut *guard;
            let store = SchemaStore::new(&self.dest, &self.layout);
            if let Some((newest, base)) = store.load().await.map_err(|e| StoreError::Io {
                op: "reading",
                path: self.layout.schema_generations().to_string(),
                dest: self.dest.display().to_owned(),
                cause: e,
            })? {
                if base.generation > state.base.generation {
                    let rebased = state.schema.rebased_on(&newest);
                    state.changes.extend(rebased.widenings_since(&state.schema));
                    state.schema = rebased;
                    state.base = base;
                    store.settle_mirror(&state.schema).await?;
                }
            }
            target_of(&state.schema)
        };
        Reconciler {
            dest: &self.dest,
            layout: &self.layout,
            policy: &self.policy,
            cpu: &self.cpu,
        }
        .reconcile(&target, concurrency)
        .await
    }
}

/// The write target of a dataset schema.
pub(crate) fn target_of(schema: &DatasetSchema) -> Target {
    let arrow = schema.arrow();
    let hashed_names = schema.hashed_columns();
    let hashed = arrow
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| hashed_names.contains(f.name()))
        .map(|(i, _)| i)
        .collect();
    Target {
        decode: schema.decode_arrow(),
        version: schema.version,
        meta: FileMeta {
            schema_version: schema.version,
            labels: schema.labels_json(),
            hashed: hashed_names,
        },
        hashed,
        arrow,
    }
}
