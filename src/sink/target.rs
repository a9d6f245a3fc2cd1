//! What the sink writes a file with: the dataset schema as the decoder and the Parquet encoder
//! need it.

use arrow_schema::SchemaRef;

use super::parquet::FileMeta;
use crate::schema::DatasetSchema;

/// The schema a partition's file is written with.
#[derive(Clone)]
pub(crate) struct Target {
    /// The file's columns.
    pub(crate) arrow: SchemaRef,
    /// The same columns named by JSON key, for the decoder.
    pub(crate) decode: SchemaRef,
    pub(crate) version: u64,
    /// The files' key/value metadata (version, labels, hashed columns).
    pub(crate) meta: FileMeta,
    /// Positions in `arrow` of the columns to hash.
    pub(crate) hashed: Vec<usize>,
    /// Columns of the dataset the policy keeps out of the files: a file may hold them (from
    /// before the policy) and lose them in a rewrite.
    pub(crate) dropped: Vec<String>,
}

impl Target {
    /// The write target of a dataset schema.
    pub(crate) fn of(schema: &DatasetSchema) -> Target {
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
                snapshot_at: None,
                days: None,
            },
            hashed,
            dropped: schema.dropped_columns(),
            arrow,
        }
    }

    /// The columns of a file's `schema` that this target neither holds nor drops: a rewrite
    /// to it would lose their values. A file has them when another writer's schema change
    /// had not reached this one's yet.
    pub(crate) fn unknown_columns(&self, schema: &arrow_schema::Schema) -> Vec<String> {
        schema
            .fields()
            .iter()
            .map(|f| f.name())
            .filter(|name| self.arrow.index_of(name).is_err() && !self.dropped.contains(name))
            .cloned()
            .collect()
    }
}
