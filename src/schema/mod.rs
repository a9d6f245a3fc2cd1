//! The dataset schema: which columns every file of a dataset carries, with which types, and how
//! it grows. It only ever adds columns and widens types; see [`types`] for the type rules.

mod infer;
mod known;
mod names;
mod types;
pub(crate) mod view;

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[cfg(test)]
pub(crate) use infer::keys_of;
pub(crate) use infer::{id_digest, number_kind, scan_records, MAX_ID_PARTS};
pub use infer::{Found, KeyKinds};
pub use known::KnownFields;
pub use types::{ColumnType, Kinds};

use crate::datasets::{Partitioning, ScopeKind, TableFormat};
use crate::privacy::{Matcher, PolicySpec, Treatment};
use names::TakenNames;

/// Why records with some keys do not fit the files of a schema.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Misfit {
    #[error("key {0:?} is new")]
    NewKey(String),
    #[error("column {column:?} widened from {from} to {to}")]
    Widened {
        column: String,
        from: &'static str,
        to: &'static str,
    },
}

/// Why a stored `schema.json` (or schema generation) cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SchemaFileError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error("column {column:?} has unknown type {ty:?}")]
    UnknownType { column: String, ty: String },
    #[error("{0}")]
    Policy(#[from] crate::privacy::PolicyError),
    #[error("unknown scope {0:?} (expected campaign, crm or account)")]
    UnknownScope(String),
    #[error("unknown partitioning {0:?} (expected month or day)")]
    UnknownPartitioning(String),
    #[error("unknown table format {0:?} (expected parquet or delta)")]
    UnknownFormat(String),
}

/// One column of the dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// The Parquet column name (NFC, unique ignoring case).
    pub name: String,
    /// The JSON key the values come from.
    pub source_key: String,
    pub ty: ColumnType,
    /// Human label of a custom field, where the API tells it.
    pub label: Option<String>,
    /// The first partition day the key was seen on; `None` for a known field not seen yet.
    pub first_seen: Option<NaiveDate>,
    /// From `schemas/`: the type is fixed.
    pub known: bool,
}

/// A column of the files, as lineage and orchestrators describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileColumn {
    pub name: String,
    /// Arrow's name of the type, as `schema.json` writes it.
    pub ty: &'static str,
    pub label: Option<String>,
}

/// What a merge changed, for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SchemaChange {
    pub column: String,
    pub change: ChangeKind,
    pub from: Option<&'static str>,
    pub to: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Added,
    Widened,
}

/// As a person reads it in a log line: `added Utf8` or `widened Int64 -> Utf8`.
impl std::fmt::Display for SchemaChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.change, self.from) {
            (ChangeKind::Widened, Some(from)) => write!(f, "widened {from} -> {}", self.to),
            _ => write!(f, "added {}", self.to),
        }
    }
}

#[derive(Clone, Debug)]
pub struct DatasetSchema {
    pub dataset: String,
    /// Bumped whenever the Arrow layout (columns or their types) changes. A file written under
    /// an older version must be brought up to date.
    pub version: u64,
    columns: Vec<Column>,
    by_key: HashMap<String, usize>,
    /// The personal-data policy the files follow (part of the layout).
    policy: PolicySpec,
    matcher: Matcher,
    /// Labels of custom fields by JSON key, as the API gave them to this run: attached to a
    /// column when it is added (not stored themselves; `Column::label` is).
    labels: HashMap<String, String>,
    /// The columns no data column may shadow: those of the partition path, and for a snapshot
    /// table the day of a kept snapshot, reserved whether it keeps history or not.
    partition_columns: Vec<String>,
    /// A snapshot table that keeps one snapshot per day (`--keep-history`), chosen when the
    /// table was created.
    pub(crate) keep_history: bool,
    /// What one partition holds (`--scope`), chosen when the table was created; `None` for a
    /// table created before the option, which has its table's first scope.
    pub(crate) scope: Option<ScopeKind>,
    /// How a date-partitioned table's files are cut (`--partitioning`), chosen when the table
    /// was created; `None` for a snapshot table, or a table created before the option (`day`).
    pub(crate) partitioning: Option<Partitioning>,
    /// What readers find under the table's folder (`--table-format`), chosen when the table
    /// was created; `None` for a table created before the option (`parquet`).
    pub(crate) format: Option<TableFormat>,
}

impl DatasetSchema {
    /// A new dataset: version 1 with every known field.
    pub fn new(known: &KnownFields) -> DatasetSchema {
        let columns = known
            .columns
            .iter()
            .map(|(name, ty)| Column {
                name: name.clone(),
                source_key: name.clone(),
                ty: *ty,
                label: None,
                first_seen: None,
                known: true,
            })
            .collect();
        let mut schema = Self::from_parts(known.dataset.clone(), 1, columns);
        schema.partition_columns = known.partition_columns.clone();
        schema
    }

    fn from_parts(dataset: String, version: u64, columns: Vec<Column>) -> DatasetSchema {
        let by_key = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.source_key.clone(), i))
            .collect();
        DatasetSchema {
            dataset,
            version,
            columns,
            by_key,
            policy: PolicySpec::default(),
            matcher: Matcher::default(),
            labels: HashMap::new(),
            partition_columns: Vec::new(),
            keep_history: false,
            scope: None,
            partitioning: None,
            format: None,
        }
    }

    /// The columns a reader finds beside those of the dataset: the folders of the path, and
    /// in a month table the `month` folder and the `date` column.
    pub(crate) fn path_columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.partition_columns {
            if !self.keep_history && c == crate::datasets::SNAPSHOT_DAY_KEY {
                continue;
            }
            if c == "date" && self.partitioning == Some(Partitioning::Month) {
                out.push("month".to_owned());
            }
            out.push(c.clone());
        }
        out
    }

    /// The personal-data policy the dataset's files follow.
    pub(crate) fn policy(&self) -> &PolicySpec {
        &self.policy
    }

    /// Adopts a personal-data policy. Bumps `version` when the files' layout changes (a column
    /// dropped or hashed, or no longer), so that existing files are rewritten. Returns whether
    /// anything changed.
    pub(crate) fn set_policy(&mut self, policy: &PolicySpec, matcher: &Matcher) -> bool {
        if &self.policy == policy {
            return false;
        }
        let before = (self.arrow(), self.hashed_columns());
        self.policy = policy.clone();
        self.matcher = matcher.clone();
        if (self.arrow(), self.hashed_columns()) != before {
            self.version += 1;
        }
        true
    }

    /// Takes the labels of custom fields (by JSON key) for the columns there are and for those
    /// that appear later in this run. Returns whether a stored label changed.
    pub(crate) fn set_labels(&mut self, labels: HashMap<String, String>) -> bool {
        let mut touched = false;
        for col in &mut self.columns {
            if let Some(label) = labels.get(&col.source_key) {
                if col.label.as_ref() != Some(label) {
                    col.label = Some(label.clone());
                    touched = true;
                }
            }
        }
        self.labels = labels;
        touched
    }

    /// This schema's columns and widenings on top of `base` (another writer's newer schema):
    /// `base`'s columns keep their names and order, the columns only this one has follow, types
    /// are the union of both, and this schema's labels and policy stay.
    pub(crate) fn rebased_on(&self, base: &DatasetSchema) -> DatasetSchema {
        let mut out = base.clone();
        out.labels = self.labels.clone();
        out.policy = self.policy.clone();
        out.matcher = self.matcher.clone();
        let mut taken: Option<TakenNames> = None;
        for col in &self.columns {
            match out.by_key.get(&col.source_key) {
                Some(&i) => {
                    let theirs = &mut out.columns[i];
                    if !theirs.known {
                        theirs.ty = theirs.ty.widen(col.ty.as_kinds());
                    }
                    if let Some(day) = col.first_seen {
                        if theirs.first_seen.is_none_or(|seen| day < seen) {
                            theirs.first_seen = Some(day);
                        }
                    }
                    if col.label.is_some() {
                        theirs.label = col.label.clone();
                    }
                }
                None => {
                    let taken = taken.get_or_insert_with(|| {
                        TakenNames::new(
                            &out.partition_columns,
                            out.columns.iter().map(|c| c.name.as_str()),
                        )
                        .for_format(out.format)
                    });
                    // Keeps its name unless the other writer took it (ignoring case) meanwhile.
                    let name = taken.allocate(&col.name);
                    out.by_key.insert(col.source_key.clone(), out.columns.len());
                    out.columns.push(Column {
                        name,
                        ..col.clone()
                    });
                }
            }
        }
        out
    }

    /// The widenings of this schema's columns relative to `before` (the same dataset earlier),
    /// e.g. after taking up another writer's change: as report entries.
    pub(crate) fn widenings_since(&self, before: &DatasetSchema) -> Vec<SchemaChange> {
        before
            .columns
            .iter()
            .filter_map(|old| {
                let new = &self.columns[*self.by_key.get(&old.source_key)?];
                (new.ty.arrow() != old.ty.arrow()).then(|| SchemaChange {
                    column: new.name.clone(),
                    change: ChangeKind::Widened,
                    from: Some(old.ty.name()),
                    to: new.ty.name(),
                })
            })
            .collect()
    }

    /// What the policy does to a column.
    pub(crate) fn treatment(&self, col: &Column) -> Treatment {
        self.matcher.treatment(&col.name)
    }

    /// A column's Arrow type in the files, or `None` when the policy drops it.
    fn file_type(&self, col: &Column) -> Option<DataType> {
        match self.treatment(col) {
            Treatment::Keep => Some(col.ty.arrow()),
            Treatment::Hash => Some(DataType::Utf8),
            Treatment::Drop => None,
        }
    }

    /// Names of the hashed columns of the files.
    pub(crate) fn hashed_columns(&self) -> Vec<String> {
        self.names_treated(Treatment::Hash)
    }

    /// Names of the columns the policy keeps out of the files.
    pub(crate) fn dropped_columns(&self) -> Vec<String> {
        self.names_treated(Treatment::Drop)
    }

    fn names_treated(&self, treatment: Treatment) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| self.treatment(c) == treatment)
            .map(|c| c.name.clone())
            .collect()
    }

    /// Column name -> label of the columns in the files that have one, as a JSON object.
    pub(crate) fn labels_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .columns
            .iter()
            .filter(|c| self.file_type(c).is_some())
            .filter_map(|c| Some((c.name.clone(), c.label.clone()?.into())))
            .collect();
        serde_json::Value::Object(map).to_string()
    }

    pub(crate) fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The data columns as a reader finds them in the files: the policy's drops left out, a
    /// hashed column a string.
    pub(crate) fn file_columns(&self) -> Vec<FileColumn> {
        self.columns
            .iter()
            .filter_map(|c| {
                let ty = match self.treatment(c) {
                    Treatment::Keep => c.ty.name(),
                    Treatment::Hash => ColumnType::Utf8.name(),
                    Treatment::Drop => return None,
                };
                Some(FileColumn {
                    name: c.name.clone(),
                    ty,
                    label: c.label.clone(),
                })
            })
            .collect()
    }

    /// Folds one partition's keys into the schema. Returns the layout changes (added columns,
    /// widened types); bumps `version` when there are any. Also returns whether anything worth
    /// persisting changed at all (e.g. a first sighting of a known field).
    pub fn merge(&mut self, keys: &KeyKinds, day: NaiveDate) -> (Vec<SchemaChange>, bool) {
        let mut changes = Vec::new();
        let mut touched = false;
        let mut taken: Option<TakenNames> = None;
        for (key, kinds) in keys.iter() {
            match self.by_key.get(key) {
                Some(&i) => {
                    let col = &mut self.columns[i];
                    // Partitions finish in any order; the earliest day wins.
                    if col.first_seen.is_none_or(|seen| day < seen) {
                        col.first_seen = Some(day);
                        touched = true;
                    }
                    if col.known {
                        continue;
                    }
                    let wider = col.ty.widen(kinds);
                    if wider != col.ty {
                        touched = true;
                        let in_files = self.matcher.treatment(&col.name) == Treatment::Keep;
                        if in_files && wider.arrow() != col.ty.arrow() {
                            changes.push(SchemaChange {
                                column: col.name.clone(),
                                change: ChangeKind::Widened,
                                from: Some(col.ty.name()),
                                to: wider.name(),
                            });
                        }
                        col.ty = wider;
                    }
                }
                None => {
                    let taken = taken.get_or_insert_with(|| {
                        TakenNames::new(
                            &self.partition_columns,
                            self.columns.iter().map(|c| c.name.as_str()),
                        )
                        .for_format(self.format)
                    });
                    let ty = ColumnType::from_kinds(kinds);
                    let name = taken.allocate(key);
                    // A dropped column never reaches a file: not a layout change.
                    if self.matcher.treatment(&name) != Treatment::Drop {
                        changes.push(SchemaChange {
                            column: name.clone(),
                            change: ChangeKind::Added,
                            from: None,
                            to: ty.name(),
                        });
                    }
                    self.by_key.insert(key.to_owned(), self.columns.len());
                    self.columns.push(Column {
                        name,
                        source_key: key.to_owned(),
                        ty,
                        label: self.labels.get(key).cloned(),
                        first_seen: Some(day),
                        known: false,
                    });
                    touched = true;
                }
            }
        }
        if !changes.is_empty() {
            self.version += 1;
        }
        (changes, touched)
    }

    /// Whether files of this schema can hold records with these keys as they are: every key has
    /// a column whose Arrow type its values fit. Says what does not fit otherwise.
    pub(crate) fn holds(&self, keys: &KeyKinds) -> Result<(), Misfit> {
        for (key, kinds) in keys.iter() {
            let Some(&i) = self.by_key.get(key) else {
                return Err(Misfit::NewKey(key.to_owned()));
            };
            let col = &self.columns[i];
            let wider = col.ty.widen(kinds);
            // Hashed and dropped columns have one file type whatever their values.
            let in_files = self.treatment(col) == Treatment::Keep;
            if in_files && !col.known && wider.arrow() != col.ty.arrow() {
                return Err(Misfit::Widened {
                    column: col.name.clone(),
                    from: col.ty.name(),
                    to: wider.name(),
                });
            }
        }
        Ok(())
    }

    /// The Arrow schema every Parquet file of the dataset has.
    pub fn arrow(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter_map(|c| Some(Field::new(&c.name, self.file_type(c)?, true)))
                .collect::<Vec<_>>(),
        ))
    }

    /// The same schema named by JSON keys, for the JSON decoder (which matches keys exactly and
    /// skips the keys it is not given: those of dropped columns). Hashed columns are decoded
    /// as Utf8, i.e. the JSON text of each value, which is what gets hashed.
    pub fn decode_arrow(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .filter_map(|c| Some(Field::new(&c.source_key, self.file_type(c)?, true)))
                .collect::<Vec<_>>(),
        ))
    }

    pub(crate) fn to_json(&self) -> String {
        let file = SchemaFile {
            dataset: self.dataset.clone(),
            version: self.version,
            personal_data: (!self.policy.is_empty()).then(|| self.policy.clone()),
            partition_columns: self.partition_columns.clone(),
            keep_history: self.keep_history,
            scope: self.scope.map(|s| s.as_str().to_owned()),
            partitioning: self.partitioning.map(|p| p.as_str().to_owned()),
            format: self.format.map(|f| f.as_str().to_owned()),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnEntry {
                    name: c.name.clone(),
                    ty: match self.treatment(c) {
                        Treatment::Hash => "Utf8".to_owned(),
                        _ => c.ty.name().to_owned(),
                    },
                    source_type: (self.treatment(c) == Treatment::Hash)
                        .then(|| c.ty.name().to_owned()),
                    personal_data: match self.treatment(c) {
                        Treatment::Keep => None,
                        Treatment::Hash => Some("hashed".to_owned()),
                        Treatment::Drop => Some("dropped".to_owned()),
                    },
                    source_key: c.source_key.clone(),
                    label: c.label.clone(),
                    first_seen: c.first_seen,
                    known: c.known,
                    empty: matches!(c.ty, ColumnType::Empty),
                    big_ints: matches!(c.ty, ColumnType::Int64 { big_ints: true }),
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file).expect("schema serialises") + "\n"
    }

    pub(crate) fn from_json(text: &[u8]) -> Result<DatasetSchema, SchemaFileError> {
        let file: SchemaFile = serde_json::from_slice(text)?;
        let mut columns = Vec::with_capacity(file.columns.len());
        for c in file.columns {
            let inferred = c.source_type.as_deref().unwrap_or(&c.ty);
            let mut ty =
                ColumnType::from_name(inferred).ok_or_else(|| SchemaFileError::UnknownType {
                    column: c.name.clone(),
                    ty: c.ty.clone(),
                })?;
            if c.empty && ty == ColumnType::Utf8 {
                ty = ColumnType::Empty;
            }
            if c.big_ints && matches!(ty, ColumnType::Int64 { .. }) {
                ty = ColumnType::Int64 { big_ints: true };
            }
            columns.push(Column {
                name: c.name,
                source_key: c.source_key,
                ty,
                label: c.label,
                first_seen: c.first_seen,
                known: c.known,
            });
        }
        let mut schema = Self::from_parts(file.dataset, file.version, columns);
        schema.policy = file.personal_data.unwrap_or_default();
        schema.partition_columns = file.partition_columns;
        schema.keep_history = file.keep_history;
        schema.scope = match file.scope {
            None => None,
            Some(scope) => {
                Some(ScopeKind::parse(&scope).ok_or(SchemaFileError::UnknownScope(scope))?)
            }
        };
        schema.partitioning = match file.partitioning {
            None => None,
            Some(p) => {
                Some(Partitioning::parse(&p).ok_or(SchemaFileError::UnknownPartitioning(p))?)
            }
        };
        schema.format = match file.format {
            None => None,
            Some(f) => Some(TableFormat::parse(&f).ok_or(SchemaFileError::UnknownFormat(f))?),
        };
        schema.matcher = Matcher::new(&schema.policy)?;
        Ok(schema)
    }
}

/// `schema.json` as stored under `_cube_extract/<dataset>/`.
#[derive(Serialize, Deserialize)]
struct SchemaFile {
    dataset: String,
    version: u64,
    /// The personal-data policy, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    personal_data: Option<PolicySpec>,
    /// The folders of the partition path, outermost first.
    #[serde(default = "day_partitions")]
    partition_columns: Vec<String>,
    /// One snapshot per day is kept (snapshot tables made with `--keep-history`).
    #[serde(default, skip_serializing_if = "is_false")]
    keep_history: bool,
    /// `campaign`, `crm` or `account` (absent in tables made before `--scope`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// `month` or `day` for date-partitioned tables (absent in tables made before
    /// `--partitioning`, which are `day`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    partitioning: Option<String>,
    /// `parquet` or `delta` (absent in tables made before `--table-format`, which are
    /// `parquet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    format: Option<String>,
    columns: Vec<ColumnEntry>,
}

/// Datasets written before `schema.json` named its partition columns were all by day.
fn day_partitions() -> Vec<String> {
    names::DAY_PARTITION_COLUMNS.map(str::to_owned).to_vec()
}

#[derive(Serialize, Deserialize)]
struct ColumnEntry {
    name: String,
    /// The type in the files (`Utf8` for a hashed column).
    #[serde(rename = "type")]
    ty: String,
    /// A hashed column's type as inferred from the API's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    source_type: Option<String>,
    /// `hashed` or `dropped` under the dataset's personal-data policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    personal_data: Option<String>,
    source_key: String,
    label: Option<String>,
    first_seen: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "is_false")]
    known: bool,
    /// Only `""`/null seen so far: stored as Utf8 but may still take another type.
    #[serde(default, skip_serializing_if = "is_false")]
    empty: bool,
    /// Some integer exceeded 2^53: a fraction widens this column to Utf8, not Float64.
    #[serde(default, skip_serializing_if = "is_false")]
    big_ints: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A call-outcomes schema that has met the records of `json`, as a test writer's.
#[cfg(test)]
pub(crate) fn test_schema_with(json: &str) -> DatasetSchema {
    let keys = keys_of(json);
    let mut schema = DatasetSchema::new(&KnownFields::call_outcomes());
    schema.merge(&keys, chrono::NaiveDate::from_ymd_opt(2019, 8, 1).unwrap());
    schema
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(json: &str) -> KeyKinds {
        keys_of(json)
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2019, 8, d).unwrap()
    }

    #[test]
    fn merge_adds_then_widens_and_bumps_version_once_per_layout_change() {
        let mut s = DatasetSchema::new(&KnownFields::call_outcomes());
        let v0 = s.version;
        let (c, _) = s.merge(&keys(r#"[{"crm__custom_info__220": 56, "x": ""}]"#), day(1));
        assert_eq!(c.len(), 2);
        assert_eq!(s.version, v0 + 1);
        let (c, _) = s.merge(&keys(r#"[{"crm__custom_info__220": 5.5}]"#), day(2));
        assert_eq!(
            c,
            vec![SchemaChange {
                column: "crm__custom_info__220".into(),
                change: ChangeKind::Widened,
                from: Some("Int64"),
                to: "Float64"
            }]
        );
        assert_eq!(s.version, v0 + 2);
        // Nothing new: no change, no bump.
        let (c, _) = s.merge(&keys(r#"[{"crm__custom_info__220": 1}]"#), day(3));
        assert!(c.is_empty());
        assert_eq!(s.version, v0 + 2);
    }

    #[test]
    fn known_fields_keep_their_type() {
        let mut s = DatasetSchema::new(&KnownFields::call_outcomes());
        let (c, touched) = s.merge(&keys(r#"[{"crm__customer_id": 12}]"#), day(1));
        assert!(c.is_empty());
        assert!(touched, "first sighting is recorded");
        let col = s
            .columns()
            .iter()
            .find(|c| c.name == "crm__customer_id")
            .unwrap();
        assert_eq!(col.ty, ColumnType::Utf8);
        assert_eq!(col.first_seen, Some(day(1)));
    }

    #[test]
    fn holds_tells_what_does_not_fit() {
        let mut s = DatasetSchema::new(&KnownFields::call_outcomes());
        s.merge(
            &keys(r#"[{"n": 1, "e": "", "b": 9007199254740993}]"#),
            day(1),
        );
        assert!(s
            .holds(&keys(r#"[{"n": 2, "e": null, "crm__customer_id": 5}]"#))
            .is_ok());
        assert!(
            s.holds(&keys(r#"[{"b": 1}]"#)).is_ok(),
            "big_ints changes no Arrow type"
        );
        assert!(s
            .holds(&keys(r#"[{"n": 2.5}]"#))
            .unwrap_err()
            .to_string()
            .contains("Float64"));
        assert!(s
            .holds(&keys(r#"[{"e": 3}]"#))
            .unwrap_err()
            .to_string()
            .contains("Int64"));
        assert!(s
            .holds(&keys(r#"[{"new": 3}]"#))
            .unwrap_err()
            .to_string()
            .contains("new"));
    }

    #[test]
    fn schema_json_round_trips_flags() {
        let mut s = DatasetSchema::new(&KnownFields::call_outcomes());
        s.merge(
            &keys(r#"[{"a": "", "b": 9007199254740993, "Date": "x"}]"#),
            day(1),
        );
        let back = DatasetSchema::from_json(s.to_json().as_bytes()).unwrap();
        assert_eq!(back.columns(), s.columns());
        assert_eq!(back.version, s.version);
        let date = back
            .columns()
            .iter()
            .find(|c| c.source_key == "Date")
            .unwrap();
        assert_eq!(date.name, "Date__2");
    }
}
