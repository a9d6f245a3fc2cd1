//! What every partition of a run shares: the client, the destination, the budgets, and the
//! dataset schema as it grows.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_schema::SchemaRef;

use chrono::NaiveDate;
use tokio::sync::Mutex;

use super::budget::{CpuSlots, PageBudget};
use super::month::Months;
use super::plan::Context;
use super::publish::Publisher;
use crate::datasets::{Dataset, TableFormat};
use crate::logging::DETAIL;
use crate::privacy::Policy;
use crate::report::TableSchema;
use crate::schema::{DatasetSchema, KeyKinds, SchemaChange};
use crate::settings::Settings;
use crate::sink::{Base, Destination, Paths, SchemaStore, StoreError, Target};
use crate::source::CubeClient;

/// Records a page is taken to hold before any page was read: DRF's page sizes are in the
/// hundreds, and a decoder sized for more than a page holds is only reserved, not touched.
const FIRST_ROWS_PER_PAGE: usize = 1000;

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
    /// The dataset schema as [`Run::decode_schemas`] hands it out, kept beside `schema`.
    decoding: std::sync::Mutex<(SchemaRef, SchemaRef)>,
    /// The most records a page of this table held so far (see [`Run::rows_per_page`]).
    rows_per_page: AtomicUsize,
    /// A month table's months, each waiting for its days in this run.
    pub(crate) months: Months,
    /// This run adopted personal-data settings unlike the dataset's (`--rewrite`).
    pub(crate) policy_changed: bool,
    /// What makes a placed file what readers see (the table's format).
    pub(crate) publisher: Publisher,
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
        let decoding = std::sync::Mutex::new((schema.decode_arrow(), schema.arrow()));
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
            decoding,
            rows_per_page: AtomicUsize::new(FIRST_ROWS_PER_PAGE),
            months: Months::default(),
            policy_changed: false,
            publisher: Publisher::Files,
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
                .await;
            self.schema_changed(&state.schema);
            let taken_up = taken_up?;
            state.changes.extend(changes);
            state.changes.extend(taken_up);
        }
        Ok(())
    }

    /// The dataset schema as it stands, for decoding a page as it arrives: fields by JSON key,
    /// and the same by column name. Read without waiting for a schema change being committed.
    pub(crate) fn decode_schemas(&self) -> (SchemaRef, SchemaRef) {
        self.decoding
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn schema_changed(&self, schema: &DatasetSchema) {
        *self.decoding.lock().unwrap_or_else(|e| e.into_inner()) =
            (schema.decode_arrow(), schema.arrow());
    }

    /// The records a page of this table is likely to hold (the most a page held so far), which
    /// sizes a page's decoder buffers before the page is read.
    pub(crate) fn rows_per_page(&self) -> usize {
        self.rows_per_page.load(Ordering::Relaxed)
    }

    /// Notes the records of a page read.
    pub(crate) fn saw_page_rows(&self, records: usize) {
        if records > 0 {
            self.rows_per_page.fetch_max(records, Ordering::Relaxed);
        }
    }

    /// Whether this run changed the dataset schema (or took up another writer's change).
    pub(crate) async fn schema_changed_in_run(&self) -> bool {
        !self.schema.lock().await.changes.is_empty()
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
            .await;
        self.schema_changed(&state.schema);
        state.changes.extend(taken_up?);
        Ok(Target::of(&state.schema))
    }

    /// What publishing a partition of this table reads and writes with.
    pub(crate) fn publishing(&self) -> super::publish::Publishing<'_> {
        super::publish::Publishing {
            dest: &self.dest,
            paths: &self.paths,
            policy: &self.policy,
            cpu: &self.cpu,
        }
    }

    /// Every schema change of the run, and the schema the run left: its version and the
    /// columns of its files.
    pub(crate) fn into_schema(self) -> (Vec<SchemaChange>, TableSchema) {
        let state = self.schema.into_inner();
        let table = TableSchema {
            version: state.schema.version,
            columns: state.schema.file_columns(),
            format: state.schema.format.unwrap_or(TableFormat::DEFAULT).as_str(),
        };
        (state.changes, table)
    }
}
