//! Planning an extraction. Once per run ([`Context::new`]): the client, the campaign listing,
//! the selected campaigns and CRMs, and the fetch of their labels. Then per table ([`plan`]):
//! the dataset schema and personal-data policy it writes under, and the partitions left to do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use futures::future::{BoxFuture, Shared};
use futures::FutureExt;

use super::budget::{CpuSlots, PageBudget};
use super::month::Months;
use super::publish::Publisher;
use super::state::Run;
use super::RunError;
use crate::datasets::{Dataset, Partitioning, ScopeKind, TableFormat};
use crate::privacy::Treatment;
use crate::report::{PartitionReport, PartitionStatus, Report};
use crate::schema::{DatasetSchema, KnownFields};
use crate::settings::{CampaignSelection, Settings};
use crate::sink::delta::DeltaLog;
use crate::sink::{Base, Committed, Destination, Ledger, Paths, SchemaStore};
use crate::source::adaptive::Concurrency;
use crate::source::{Campaign, CubeClient, SourceError};
use crate::unit::{Crm, CrmType, Scope, Unit};
use crate::zone::Zone;

/// What every table of a run shares: one client, one campaign listing, one label fetch, one
/// set of budgets.
pub(crate) struct Context {
    pub(crate) client: Arc<CubeClient>,
    pub(crate) pages: Arc<PageBudget>,
    pub(crate) cpu: Arc<CpuSlots>,
    /// The selected campaigns, in the order given (or listed).
    pub(crate) campaigns: Vec<u64>,
    /// The CRMs of CRM tables: `--crm`, or those of the selected campaigns.
    crms: Vec<Crm>,
    /// The labels of the CRMs' custom fields: one fetch, shared by every table, sent when the
    /// first table needs them (with its first page, so the two take one round trip).
    labels: Shared<BoxFuture<'static, Arc<Labels>>>,
    /// Request slots the label fetch leaves free while it runs: one per CRM it reads.
    free_while_labelling: usize,
}

/// Labels of custom fields by JSON key, and the CRMs whose definitions could not be read.
struct Labels {
    by_key: HashMap<String, String>,
    unreadable: Vec<(Crm, SourceError)>,
}

impl Context {
    /// Checks credentials, campaign ids and CRMs against the API before anything is written.
    /// On an error, `report` gets the requests sent.
    pub(crate) async fn new(settings: &Settings, report: &mut Report) -> Result<Context, RunError> {
        let client = CubeClient::new(
            settings.api_root.clone(),
            settings.auth.clone(),
            Concurrency {
                ceiling: settings.concurrency,
                adaptive: !settings.fixed_concurrency,
            },
            settings.retry.clone(),
        )
        .map_err(RunError::Api)?;
        let listed = match client.campaigns().await {
            Ok(listed) => listed,
            Err(e) => {
                report.requests = client.requests();
                return Err(match e {
                    SourceError::Auth { .. } => RunError::Auth(e),
                    other => RunError::Api(other),
                });
            }
        };
        let campaigns = match &settings.campaigns {
            Some(selection) => select_campaigns(selection, &listed)?,
            None => Vec::new(),
        };
        let crms = if settings.crms.is_empty() {
            crms_of(&listed, &campaigns)
        } else {
            let known = crms_of(&listed, &listed.iter().map(|c| c.id).collect::<Vec<_>>());
            let unknown: Vec<String> = settings
                .crms
                .iter()
                .filter(|crm| !known.contains(crm))
                .map(|crm| crm.to_string())
                .collect();
            if !unknown.is_empty() {
                return Err(RunError::UnknownCrms(unknown.join(", ")));
            }
            settings.crms.clone()
        };
        // The labels of every CRM whose records a table reads: those of the selected campaigns,
        // the CRMs read per CRM, and for a table of the whole account, every CRM it lists.
        let mut with_labels: BTreeSet<Crm> = crms_of(&listed, &campaigns).into_iter().collect();
        with_labels.extend(crms.iter().copied());
        if settings
            .tables
            .iter()
            .any(|t| t.scope() == ScopeKind::Account && !t.is_array())
        {
            let every: Vec<u64> = listed.iter().map(|c| c.id).collect();
            with_labels.extend(crms_of(&listed, &every));
        }
        let free_while_labelling = settings.concurrency.saturating_sub(with_labels.len());
        let client = Arc::new(client);
        let labels = fetch_labels(Arc::clone(&client), with_labels)
            .map(Arc::new)
            .boxed()
            .shared();
        Ok(Context {
            client,
            pages: Arc::new(PageBudget::new(settings.concurrency)),
            cpu: Arc::new(CpuSlots::new()),
            campaigns,
            crms,
            labels,
            free_while_labelling,
        })
    }
}

/// Whether the account serves a campaign table: page 1 of the first partition to do is fetched
/// (and kept for that partition's read, so it costs no request). DRF answers page 1 of every
/// listing it serves, empty or not (its "Invalid page." 404 is for pages past the end), so a 404
/// there, for a campaign the account lists, means the endpoint is not there. Any other answer is
/// left to the partition.
///
/// `ahead` more partitions have their page 1 fetched and kept meanwhile: the request slots
/// the labels leave free would otherwise wait a round trip for the partitions to start. Their
/// answers, whatever they are, are left to their partitions too.
async fn check_served(
    client: &CubeClient,
    dataset: &Dataset,
    todo: &[Unit],
    ahead: usize,
) -> Result<(), RunError> {
    // A plain array has no pages, and its endpoints are those planning already read.
    let Some(unit) = todo.first().filter(|_| !dataset.is_array()) else {
        return Ok(());
    };
    let fetched_ahead = futures::future::join_all(
        todo[1..]
            .iter()
            .take(ahead)
            .map(|unit| client.first_page_kept(dataset, unit)),
    );
    match futures::join!(client.first_page_kept(dataset, unit), fetched_ahead).0 {
        Err(SourceError::NotFound { url }) => Err(RunError::Unserved {
            table: dataset.name,
            listing: match unit.scope.kind() {
                ScopeKind::Campaign => "a campaign it lists",
                ScopeKind::Crm => "a CRM it lists",
                ScopeKind::Account => "the account's listing",
            },
            // The endpoint, without the day's query.
            url: url.split('?').next().unwrap_or(&url).to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The ids of the selected campaigns, in the order given (or listed).
fn select_campaigns(
    selection: &CampaignSelection,
    listed: &[Campaign],
) -> Result<Vec<u64>, RunError> {
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
                Err(RunError::UnknownCampaigns(unknown.join(", ")))
            }
        }
    }
}

/// The CRMs (data owner, CRM type) of campaigns `ids`, in the order of the listing.
fn crms_of(listed: &[Campaign], ids: &[u64]) -> Vec<Crm> {
    let mut out = Vec::new();
    for c in listed.iter().filter(|c| ids.contains(&c.id)) {
        let crm = c
            .data_owner_id
            .zip(c.crm_type.as_deref().and_then(CrmType::parse));
        if let Some((data_owner_id, crm_type)) = crm {
            let crm = Crm {
                data_owner_id,
                crm_type,
            };
            if !out.contains(&crm) {
                out.push(crm);
            }
        }
    }
    out
}

/// Labels of the custom fields of `crms`, by JSON key, and the CRMs whose definitions could not
/// be read. Labels only name columns, so for the tables that are not read per CRM an unreadable
/// CRM costs a warning, not the run.
async fn fetch_labels(client: Arc<CubeClient>, crms: BTreeSet<Crm>) -> Labels {
    let client = &client;
    let answers = futures::future::join_all(
        crms.into_iter()
            .map(|crm| async move { (crm, client.custom_field_labels(crm).await) }),
    )
    .await;
    let mut labels = HashMap::new();
    let mut unreadable = Vec::new();
    for (crm, answer) in answers {
        match answer {
            Ok(fields) => {
                for (key, label) in fields {
                    match labels.get(&key) {
                        Some(existing) if existing != &label => {
                            tracing::warn!(column = %key, label = %existing, other = %label, crm = %crm, "two CRMs label the same custom field differently; keeping the first");
                        }
                        Some(_) => {}
                        None => {
                            labels.insert(key, label);
                        }
                    }
                }
            }
            Err(e) => unreadable.push((crm, e)),
        }
    }
    Labels {
        by_key: labels,
        unreadable,
    }
}

/// The dataset schema at the destination (its newest generation), or a new one; its base; and
/// whether it existed.
async fn load_schema(
    dest: &Destination,
    paths: &Paths,
    dataset: &Dataset,
) -> Result<(DatasetSchema, Base, bool), RunError> {
    match SchemaStore::new(dest, paths).load().await {
        Ok(Some((schema, base))) => Ok((schema, base, true)),
        Ok(None) => {
            let schema = DatasetSchema::new(&KnownFields::of(dataset));
            Ok((schema, Base::empty(), false))
        }
        Err(e) => Err(RunError::State(e)),
    }
}

/// Makes the run's personal-data policy the dataset's. An existing dataset keeps its policy
/// unless `--rewrite` is given: its files were written under it. Returns whether it changed.
fn adopt_policy(
    schema: &mut DatasetSchema,
    settings: &Settings,
    existed: bool,
) -> Result<bool, RunError> {
    let wanted = settings.policy.spec();
    if existed {
        if let Some(difference) = wanted.difference(schema.policy()) {
            if !settings.rewrite {
                return Err(RunError::PolicyChanged(difference));
            }
            let lost: Vec<&str> = schema
                .columns()
                .iter()
                .filter(|c| schema.treatment(c) != Treatment::Keep)
                .filter(|c| settings.policy.treatment(&c.name) != schema.treatment(c))
                .filter(|c| settings.policy.treatment(&c.name) != Treatment::Drop)
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

/// The scope of a table: chosen when the table is created, and kept. A table made before
/// `--scope` has its table's first scope.
fn adopt_scope(
    schema: &mut DatasetSchema,
    dataset: &Dataset,
    existed: bool,
) -> Result<(), RunError> {
    let created = schema.scope.unwrap_or(dataset.default_scope());
    if existed && created != dataset.scope() {
        return Err(RunError::ScopeChanged {
            table: dataset.name,
            created,
        });
    }
    schema.scope = Some(dataset.scope());
    Ok(())
}

/// How a date-partitioned table's files are cut: chosen when the table is created (month
/// unless asked otherwise), and kept. A table made before `--partitioning` is cut by day.
fn adopt_partitioning(
    schema: &mut DatasetSchema,
    dataset: &Dataset,
    settings: &Settings,
    existed: bool,
) -> Result<Partitioning, RunError> {
    if !dataset.by_day() {
        return Ok(Partitioning::Day);
    }
    let created = match (existed, schema.partitioning) {
        (true, recorded) => recorded.unwrap_or(Partitioning::OLDER_TABLES),
        (false, _) => settings.partitioning.unwrap_or(Partitioning::NEW_TABLES),
    };
    if settings.partitioning.is_some_and(|asked| asked != created) {
        return Err(RunError::PartitioningChanged {
            table: dataset.name,
            created,
        });
    }
    schema.partitioning = Some(created);
    Ok(created)
}

/// What a table is (`--table-format`): chosen when the table is created, and kept. A table made
/// before the option is Parquet.
fn adopt_format(
    schema: &mut DatasetSchema,
    dataset: &Dataset,
    settings: &Settings,
    existed: bool,
) -> Result<TableFormat, RunError> {
    let created = match existed {
        true => schema.format.unwrap_or(TableFormat::DEFAULT),
        false => settings.table_format.unwrap_or(TableFormat::DEFAULT),
    };
    if settings.table_format.is_some_and(|asked| asked != created) {
        return Err(RunError::FormatChanged {
            table: dataset.name,
            created,
        });
    }
    if created != TableFormat::DEFAULT || schema.format.is_some() {
        schema.format = Some(created);
    }
    Ok(created)
}

/// How the table's partitions are published; for a Delta table, its log is checked to be one
/// this tool can write (the table itself is created by the first commit).
async fn publisher(
    dest: &Destination,
    paths: &Paths,
    dataset: &Dataset,
    schema: &DatasetSchema,
) -> Result<Publisher, RunError> {
    if !paths.is_delta() {
        return Ok(Publisher::Files);
    }
    let dated = dataset.by_day() || schema.keep_history;
    let keys = paths.partition_keys(dataset.scope().keys(), dated);
    let log = DeltaLog::new(dest, &paths.table_root(), keys).map_err(RunError::Delta)?;
    log.check(dest).await.map_err(RunError::Delta)?;
    Ok(Publisher::Delta(log))
}

/// Whether a snapshot table keeps one snapshot per day: chosen when the table is created, and
/// kept.
fn adopt_history(
    schema: &mut DatasetSchema,
    dataset: &Dataset,
    settings: &Settings,
    existed: bool,
) -> Result<(), RunError> {
    let wanted = settings.keep_history && dataset.keeps_history();
    if existed && schema.keep_history != wanted {
        return Err(RunError::HistoryChanged {
            table: dataset.name,
            kept: schema.keep_history,
        });
    }
    schema.keep_history = wanted;
    Ok(())
}

/// The partitions of a table, in order: by day then campaign for day tables, one per scope for
/// snapshots.
fn units(
    dataset: &Dataset,
    context: &Context,
    settings: &Settings,
    keep_history: bool,
) -> Vec<Unit> {
    let scopes: Vec<Scope> = match dataset.scope() {
        ScopeKind::Campaign => context
            .campaigns
            .iter()
            .map(|&id| Scope::Campaign(id))
            .collect(),
        ScopeKind::Crm => context.crms.iter().map(|&crm| Scope::Crm(crm)).collect(),
        ScopeKind::Account => vec![Scope::Account],
    };
    if dataset.by_day() {
        let days = &settings.days;
        days.iter()
            .flat_map(|&day| {
                scopes.iter().map(move |&scope| Unit {
                    scope,
                    day: Some(day),
                })
            })
            .collect()
    } else {
        let day = keep_history.then_some(settings.today);
        scopes
            .into_iter()
            .map(|scope| Unit { scope, day })
            .collect()
    }
}

/// Whether `--resume` skips a committed unit: a day partition or a kept snapshot once
/// committed; a replacing snapshot if it was taken today.
async fn done_already(
    ledger: &Ledger<'_>,
    unit: &Unit,
    committed: Option<&Committed>,
    today: NaiveDate,
    zone: Zone,
    by_day: bool,
) -> Result<bool, RunError> {
    let Some(committed) = committed else {
        return Ok(false);
    };
    if by_day || unit.day.is_some() {
        return Ok(true);
    }
    let record = ledger.read(committed).await.map_err(RunError::StateWrite)?;
    let taken = record
        .and_then(|r| r.snapshot_at)
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .map(|at| zone.day_of(&at));
    Ok(taken == Some(today))
}

/// The partitions to extract; those `--resume` skips go into `skipped`.
async fn partitions(
    ledger: &Ledger<'_>,
    dataset: &Dataset,
    settings: &Settings,
    units: Vec<Unit>,
    committed: &BTreeMap<Unit, Committed>,
    skipped: &mut Vec<PartitionReport>,
) -> Result<Vec<Unit>, RunError> {
    let mut todo = Vec::new();
    for unit in units {
        if settings.resume
            && done_already(
                ledger,
                &unit,
                committed.get(&unit),
                settings.today,
                settings.zone,
                dataset.by_day(),
            )
            .await?
        {
            skipped.push(PartitionReport::new(
                &unit,
                dataset.day_key(),
                PartitionStatus::Skipped,
            ));
        } else {
            todo.push(unit);
        }
    }
    Ok(todo)
}

/// Settles the dataset schema a table's run starts from and lists its partitions to do.
/// Nothing is written before the request is known to be valid. `starts_first`: the table's
/// partitions are the first of the run to start.
pub(super) async fn plan(
    settings: &Settings,
    context: &Context,
    dataset: Dataset,
    starts_first: bool,
    report: &mut Report,
) -> Result<(Run, Vec<Unit>), RunError> {
    if dataset.scope() == ScopeKind::Crm {
        // A CRM table is read per CRM: one whose definitions cannot be read is an error, known
        // before anything else is done.
        let labels = context.labels.clone().await;
        let unreadable = labels
            .unreadable
            .iter()
            .find(|(crm, _)| context.crms.contains(crm));
        if let Some((crm, e)) = unreadable {
            return Err(match e {
                SourceError::Auth { .. } | SourceError::NotFound { .. } => {
                    RunError::CrmUnreadable {
                        crm: crm.to_string(),
                        cause: e.to_string(),
                    }
                }
                other => RunError::CrmNotAnswered {
                    crm: crm.to_string(),
                    cause: other.to_string(),
                },
            });
        }
    }
    let dest = settings
        .store
        .open(dataset)
        .await
        .map_err(RunError::Destination)?;
    let (mut schema, mut base, existed) =
        load_schema(&dest, &Paths::new(&dataset), &dataset).await?;
    adopt_scope(&mut schema, &dataset, existed)?;
    let paths = Paths::new(&dataset)
        .cut_by(adopt_partitioning(
            &mut schema,
            &dataset,
            settings,
            existed,
        )?)
        .in_format(adopt_format(&mut schema, &dataset, settings, existed)?);
    let policy_changed = adopt_policy(&mut schema, settings, existed)?;
    if policy_changed && paths.is_delta() {
        // Earlier versions would keep the values in the clear: a Delta table's old files stay
        // readable by time travel until vacuumed.
        return Err(RunError::DeltaPolicyChanged {
            table: dataset.name,
        });
    }
    adopt_history(&mut schema, &dataset, settings, existed)?;
    let publisher = publisher(&dest, &paths, &dataset, &schema).await?;
    let ledger = Ledger::new(&dest, &paths);
    // Only `--resume` needs to know what is committed: a nightly run over years of history
    // lists no ledger before its first page.
    let mut committed = match settings.resume {
        true => ledger.load().await.map_err(RunError::StateWrite)?,
        false => BTreeMap::new(),
    };
    if let (Publisher::Delta(log), false) = (&publisher, committed.is_empty()) {
        committed = log
            .confirm(&dest, &paths, committed)
            .await
            .map_err(RunError::State)?;
    }
    let units = units(&dataset, context, settings, schema.keep_history);
    let mut skipped = Vec::new();
    let todo = partitions(&ledger, &dataset, settings, units, &committed, &mut skipped).await?;
    // The labels come while page 1 of the first partitions does: one round trip, not two. Only
    // the partitions of the first table start at once: a later table's pages would be held
    // until its turn.
    let ahead = match starts_first {
        true => context.free_while_labelling.saturating_sub(1),
        false => 0,
    };
    let (labels, served) = futures::join!(
        context.labels.clone(),
        check_served(&context.client, &dataset, &todo, ahead)
    );
    served?;
    for (crm, e) in &labels.unreadable {
        tracing::warn!(crm = %crm, error = %e, "could not read the labels of this CRM's custom fields; its columns stay unlabelled");
    }
    let labels_changed = schema.set_labels(labels.by_key.clone());
    report.partitions.extend(skipped);
    // Committed before any file is written under the new settings or with the new labels.
    if policy_changed || labels_changed || !existed {
        SchemaStore::new(&dest, &paths)
            .commit(&mut schema, &mut base)
            .await
            .map_err(RunError::StateWrite)?;
    }
    let mut run = Run::new(context, dest, paths, dataset, settings, schema, base);
    run.months = Months::new(&run.paths, &todo);
    run.policy_changed = policy_changed;
    run.publisher = publisher;
    Ok((run, todo))
}
