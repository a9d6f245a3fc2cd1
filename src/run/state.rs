//! What every partition of a run shares: the client, the destination, the budgets, and the
//! dataset schema as it grows.

use std::sync::Arc;

use chrono::NaiveDate;
use tokio::sync::Mutex;

use super::budget::{CpuSlots, PageBudget};
use super::plan::Context;
use crate::datasets::Dataset;
use crate::logging::DETAIL;
use crate::privacy::Policy;
use crate::schema::{DatasetSchema, KeyKinds, SchemaChange};
use crate::settings::Settings;
use crate::sink::{Base, Destination, Paths, SchemaStore, StoreError, Target};
use crate::source::CubeClient;

/// One table's extraction.
pub(crate) struct Run {
    /// Shared by every table of the run, as are the budgets.
    pub(crate) client: Arc<CubeClient>,
    pub(crate) dest: Destination,
    pub(crate) paths: Paths,
    pub(crate) dataset: Dataset,
    /// Requests in flight at most (`--concurrency`): also the fan-out of one partition's pages.
    pub(crate) fan_out: usize,
    /// Personal-data policy: hashes columns before they are encoded.
    pub(crate) policy: Policy,
    pub(crate) pages: Arc<PageBudget>,
    pub(crate) cpu: Arc<CpuSlots>,
    /// The day a snapshot of this run belongs to, and the first-seen day of its new columns.
    pub(crate) today: NaiveDate,
    schema: Mutex<SchemaState>,
}

struct SchemaState {
    schema: DatasetSchema,
    /// The committed generation `schema` builds on.
    base: Base,
    /// Every change this run made or took up, for the report.
    changes: Vec<SchemaChange>,
}

impl Run {
    pub(crate) fn new(
        context: &Context,
        dest: Destination,
        paths: Paths,
        dataset: Dataset,
        settings: &Settings,
        schema: DatasetSchema,
        base: Base,
    ) -> Run {
        Run {
            client: Arc::clone(&context.client),
            dest,
            paths,
            dataset,
            fan_out: settings.concurrency.max(1),
            policy: settings.policy.clone(),
            pages: Arc::clone(&context.pages),
            cpu: Arc::clone(&context.cpu),
            today: settings.today,
            schema: Mutex::new(SchemaState {
                schema,
                base,
                changes: Vec::new(),
            }),
        }
    }

    /// Folds a partition's keys into the dataset schema, persisting it before any file that
    /// depends on it is written.
    pub(crate) async fn merge(
        &self,
        keys: &KeyKinds,
        day: chrono::NaiveDate,
    ) -> Result<(), StoreError> {
        self.merge_locked(&mut *self.schema.lock().await, keys, day)
            .await
    }

    /// As [`Run::merge`], then takes the write target and a copy of the schema to check later
    /// pages against.
    pub(crate) async fn merge_and_snapshot(
        &self,
        keys: &KeyKinds,
        day: chrono::NaiveDate,
    ) -> Result<(Target, DatasetSchema), StoreError> {
        let mut state = self.schema.lock().await;
        self.merge_locked(&mut state, keys, day).await?;
        Ok((Target::of(&state.schema), state.schema.clone()))
    }

    async fn merge_locked(
        &self,
        state: &mut SchemaState,
        keys: &KeyKinds,
        day: chrono::NaiveDate,
    ) -> Result<(), StoreError> {
        let (changes, touched) = state.schema.merge(keys, day);
        if touched {
            for c in &changes {
                tracing::info!(target: DETAIL, column = %c.column, change = %c, "schema change");
            }
            let taken_up = SchemaStore::new(&self.dest, &self.paths)
                .commit(&mut state.schema, &mut state.base)
                .await?;
            state.changes.extend(changes);
            state.changes.extend(taken_up);
        }
        Ok(())
    }

    /// The current dataset schema as a write target.
    pub(crate) async fn target(&self) -> Target {
        Target::of(&self.schema.lock().await.schema)
    }

    /// Takes up what other writers committed meanwhile, and returns the target every file of
    /// the dataset must be brought to.
    pub(crate) async fn settle_schema(&self) -> Result<Target, StoreError> {
        let mut guard = self.schema.lock().await;
        let state = &mut *guard;
        let taken_up = SchemaStore::new(&self.dest, &self.paths)
            .settle(&mut state.schema, &mut state.base)
            .await?;
        state.changes.extend(taken_up);
        Ok(Target::of(&state.schema))
    }

    /// Every schema change of the run.
    pub(crate) fn into_changes(self) -> Vec<SchemaChange> {
        self.schema.into_inner().changes
    }
}
