//! A widening in one commit. The kernel changes no column's type (its only type change is to
//! nullable), but the protocol lets a metaData action declare any schema: the commit that
//! declares the wider one also replaces every file written under the old one, so no version
//! reads a file whose column type differs from its schema.

use std::sync::Arc;

use arrow_array::{Array, StringArray, StructArray};
use arrow_schema::Schema;
use delta_kernel::committer::{CommitMetadata, CommitResponse, Committer, FileSystemCommitter};
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::engine_data::FilteredEngineData;
use delta_kernel::schema::{StructField, StructType};
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{Engine, KernelError};
use object_store::path::Path;

use super::{DeltaError, DeltaLog, Inner, NewFile, ENGINE_INFO};

impl DeltaLog {
    /// Commits, in one version, the table's schema with the types of `columns` (and any of them
    /// it lacks), the removal of each file of `rewritten` and the addition of its copy written
    /// under those types. `Moved` when one of the files is no longer in the table.
    pub(crate) async fn widen(
        &self,
        rewritten: Vec<(Path, NewFile)>,
        columns: &Schema,
    ) -> Result<u64, DeltaError> {
        let columns = columns.clone();
        self.call(move |inner| inner.widen(rewritten, &columns))
            .await
    }
}

impl Inner {
    fn widen(&self, rewritten: Vec<(Path, NewFile)>, columns: &Schema) -> Result<u64, DeltaError> {
        let engine = self.engine.as_ref();
        let snapshot = self
            .latest()?
            .ok_or_else(|| self.unreadable("the table has no version"))?;
        let (missing, changed) = self.compare(&snapshot, columns)?;
        if changed.is_empty() {
            // Another widening of this run (or another writer's) committed these types first;
            // the files written for this one are left to `vacuum`.
            return Ok(snapshot.version());
        }
        // The schema the commit declares: the table's, each changed column at its new type in
        // its place, then the new ones.
        let mut fields: Vec<StructField> = snapshot
            .schema()
            .fields()
            .map(|f| {
                changed
                    .iter()
                    .find(|c| c.name() == f.name())
                    .cloned()
                    .unwrap_or_else(|| f.clone())
            })
            .collect();
        fields.extend(missing);
        let schema = StructType::try_new(fields).map_err(|e| self.failed(e))?;
        let schema_string = serde_json::to_string(&schema).map_err(|e| self.failed(e))?;
        let txn_version = self
            .next_txn
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Declaring a column nullable that is nullable already changes nothing, but makes the
        // commit carry a metaData action, whose schema the committer then replaces.
        let anchor = changed
            .first()
            .map(|f| f.name().clone())
            .ok_or_else(|| self.failed("no column changed type"))?;
        let mut txn = snapshot
            .clone()
            .update_table(UpdateTableOperation::Write, ENGINE_INFO, false)
            .with_transaction_id(self.app_id.clone(), txn_version)
            .set_nullable(delta_kernel::expressions::ColumnName::new([anchor]))
            .build(
                engine,
                Box::new(SchemaReplacing {
                    schema_string,
                    inner: FileSystemCommitter::new(),
                }),
            )
            .map_err(|e| self.unsupported("write", e))?;
        let old: Vec<String> = rewritten
            .iter()
            .map(|(path, _)| self.relative_file(path))
            .collect();
        let removed = self.files_matching(&snapshot, |p| old.iter().any(|o| o == p))?;
        let found: usize = removed
            .iter()
            .map(|r| r.selection_vector().iter().filter(|s| **s).count())
            .sum();
        if found != old.len() {
            return Err(DeltaError::Moved {
                table: self.table.clone(),
                path: rewritten
                    .first()
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default(),
            });
        }
        for r in removed {
            txn.remove_files(r);
        }
        let state = txn.write_state().map_err(|e| self.failed(e))?;
        for (_, file) in &rewritten {
            let values = self.values_of(&file.path);
            txn.add_files(self.added(&state, values, file)?);
        }
        match txn.commit(engine).map_err(|e| self.failed(e))? {
            CommitResult::Committed(committed) => {
                self.rewritten
                    .fetch_add(rewritten.len(), std::sync::atomic::Ordering::Relaxed);
                Ok(committed.commit_version())
            }
            CommitResult::Conflicted(_) | CommitResult::Retryable(_) => Err(DeltaError::Moved {
                table: self.table.clone(),
                path: self.table.clone(),
            }),
        }
    }
}

/// Commits through the file system (put-if-absent), with the schema of the commit's metaData
/// action replaced: what makes a widening one commit. The kernel changes no column's type
/// (it has no type change other than nullability), but the protocol lets a metaData action
/// declare any schema; the commit that carries it also replaces every file written under the
/// old one, so no version reads a file whose column type differs from its schema.
struct SchemaReplacing {
    schema_string: String,
    inner: FileSystemCommitter,
}

impl Committer for SchemaReplacing {
    fn commit(
        &self,
        engine: &dyn Engine,
        actions: delta_kernel::KernelResultIterator<'_, FilteredEngineData>,
        commit_metadata: CommitMetadata,
    ) -> Result<CommitResponse, KernelError> {
        let schema_string = self.schema_string.clone();
        let replaced = actions.map(move |batch| replace_schema(batch?, &schema_string));
        self.inner
            .commit(engine, Box::new(replaced), commit_metadata)
    }

    fn is_catalog_committer(&self) -> bool {
        false
    }

    fn publish(
        &self,
        engine: &dyn Engine,
        publish_metadata: delta_kernel::committer::PublishMetadata,
    ) -> Result<(), KernelError> {
        self.inner.publish(engine, publish_metadata)
    }
}

/// `batch` with the `schemaString` of each of its metaData actions replaced by `schema`.
fn replace_schema(
    batch: FilteredEngineData,
    schema: &str,
) -> Result<FilteredEngineData, KernelError> {
    let (data, selected) = batch.into_parts();
    let data = ArrowEngineData::try_from_engine_data(data)?;
    let record = data.record_batch();
    let Some(index) = record.schema().index_of("metaData").ok() else {
        return FilteredEngineData::try_new(data, selected);
    };
    let metadata = record
        .column(index)
        .as_any()
        .downcast_ref::<StructArray>()
        .ok_or_else(|| KernelError::generic("a metaData action is not a struct"))?;
    let (fields, mut columns, nulls) = metadata.clone().into_parts();
    let at = fields
        .iter()
        .position(|f| f.name() == "schemaString")
        .ok_or_else(|| KernelError::generic("a metaData action has no schemaString"))?;
    let strings: StringArray = (0..metadata.len())
        .map(|i| metadata.is_valid(i).then_some(schema))
        .collect();
    columns[at] = Arc::new(strings);
    let metadata = StructArray::try_new(fields, columns, nulls)
        .map_err(|e| KernelError::generic(e.to_string()))?;
    let mut all = record.columns().to_vec();
    all[index] = Arc::new(metadata);
    let record = arrow_array::RecordBatch::try_new(record.schema(), all)
        .map_err(|e| KernelError::generic(e.to_string()))?;
    FilteredEngineData::try_new(Box::new(ArrowEngineData::new(record)), selected)
}
