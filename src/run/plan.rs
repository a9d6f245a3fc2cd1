//! Planning an extraction: which campaigns, under which dataset schema and personal-data
//! policy, with which labels, and which (campaign, day) partitions are left to do.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::state::Run;
use super::RunError;
use crate::privacy::Treatment;
use crate::report::{PartitionReport, PartitionStatus, Report};
use crate::schema::{DatasetSchema, KnownFields};
use crate::settings::{CampaignSelection, Settings};
use crate::sink::{Base, Committed, Destination, Ledger, Paths, SchemaStore};
use crate::source::{Campaign, CubeClient, SourceError};
use crate::unit::{Dataset, Unit};

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
            let schema = DatasetSchema::new(&KnownFields::parse(dataset.known_fields));
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

/// Labels of the custom fields of every CRM (data owner, CRM type) of the selected campaigns,
/// by JSON key. Labels only name columns, so a CRM whose definitions cannot be read costs a
/// warning, not the run.
async fn fetch_labels(
    client: &CubeClient,
    listed: &[Campaign],
    ids: &[u64],
) -> HashMap<String, String> {
    let crms: BTreeSet<(u64, String)> = listed
        .iter()
        .filter(|c| ids.contains(&c.id))
        .filter_map(|c| Some((c.data_owner_id?, c.crm_type.clone()?)))
        .collect();
    let answers = futures::future::join_all(crms.into_iter().map(|(owner, crm_type)| async move {
        let answer = client.custom_field_labels(owner, &crm_type).await;
        (owner, crm_type, answer)
    }))
    .await;
    let mut labels = HashMap::new();
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

/// The partitions to extract, day by day; those `--resume` skips go into `skipped`.
fn partitions(
    settings: &Settings,
    ids: &[u64],
    committed: &BTreeMap<Unit, Committed>,
    skipped: &mut Vec<PartitionReport>,
) -> Vec<Unit> {
    let mut todo = Vec::new();
    for &day in &settings.days {
        for &campaign_id in ids {
            let unit = Unit { day, campaign_id };
            if settings.resume && committed.contains_key(&unit) {
                skipped.push(PartitionReport::new(&unit, PartitionStatus::Skipped));
            } else {
                todo.push(unit);
            }
        }
    }
    todo
}

/// Checks the request against the API and the destination, settles the dataset schema the run
/// starts from, and lists the partitions to do. Nothing is written before the request is known
/// to be valid.
pub(super) async fn plan(
    settings: &Settings,
    dataset: Dataset,
    report: &mut Report,
) -> Result<(Run, Vec<Unit>), RunError> {
    let client = CubeClient::new(
        settings.api_root.clone(),
        settings.auth.clone(),
        settings.concurrency,
        settings.retry.clone(),
    )
    .map_err(RunError::Api)?;
    // Checks credentials and campaign ids before anything is written.
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
    let ids = select_campaigns(&settings.campaigns, &listed)?;
    report.campaigns = ids.clone();

    let dest = settings
        .store
        .open(dataset)
        .await
        .map_err(RunError::Destination)?;
    let paths = Paths::new(dataset.name);
    let (mut schema, mut base, existed) = load_schema(&dest, &paths, &dataset).await?;
    let policy_changed = adopt_policy(&mut schema, settings, existed)?;
    let labels_changed = schema.set_labels(fetch_labels(&client, &listed, &ids).await);
    // Committed before any file is written under the new settings or with the new labels.
    if policy_changed || labels_changed || !existed {
        SchemaStore::new(&dest, &paths)
            .commit(&mut schema, &mut base)
            .await
            .map_err(RunError::StateWrite)?;
    }
    let committed = Ledger::new(&dest, &paths)
        .load()
        .await
        .map_err(RunError::StateWrite)?;
    let todo = partitions(settings, &ids, &committed, &mut report.partitions);
    let run = Run::new(
        client,
        dest,
        paths,
        dataset,
        settings.concurrency,
        settings.policy.clone(),
        schema,
        base,
    );
    Ok((run, todo))
}
