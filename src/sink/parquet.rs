//! Parquet encoding of one partition, and rewriting a file to a newer dataset schema.

use std::io::Write;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, SchemaRef};
use bytes::Bytes;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::arrow::arrow_writer::{compute_leaves, ArrowColumnChunk, ArrowRowGroupWriterFactory};
use parquet::arrow::{ArrowSchemaConverter, ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, ZstdLevel};
use parquet::column::writer::ColumnCloseResult;
use parquet::errors::ParquetError;
use parquet::file::metadata::{KeyValue, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::empty_strings::{empty_rows, restored, EmptyStrings, EMPTY_STRINGS_KEY};
use crate::privacy::Policy;

/// Row groups close at 122,880 rows (DuckDB's own row-group size) or 128 MiB, whichever comes
/// first: within the contract's "up to about 1 M rows", readers get row groups to parallelise
/// over and to prune, and the writer holds at most one such group of a big snapshot in memory.
pub const ROW_GROUP_ROWS: usize = 122_880;
pub const ROW_GROUP_BYTES: usize = 128 << 20;

/// File-level metadata key holding the dataset schema version the file was written under.
pub const SCHEMA_VERSION_KEY: &str = "cube.schema_version";
/// File-level metadata key holding a JSON object: column name -> label of its custom field.
pub const LABELS_KEY: &str = "cube.labels";
/// File-level metadata key holding a JSON array of the columns whose values are HMAC digests.
pub const HASHED_KEY: &str = "cube.hashed_columns";
/// File-level metadata key holding the moment (UTC, RFC 3339) a snapshot's reading began.
pub const SNAPSHOT_AT_KEY: &str = "cube.snapshot_at";
/// File-level metadata key of a month file: the day files it was built from (a JSON array).
pub const DAYS_KEY: &str = "cube.days";

/// A month file's `cube.days`: each day file it was built from, as (name, size, version: what
/// changes when the file is written anew). The same days again mean the same rows.
pub(crate) fn days_text(days: &[(&str, u64, &str)]) -> String {
    serde_json::to_string(days).expect("names serialise")
}

/// The names of the day files a `cube.days` lists (none if it is not one).
pub(crate) fn day_files_in(days: &str) -> Vec<String> {
    serde_json::from_str::<Vec<(String, u64, String)>>(days)
        .map(|days| days.into_iter().map(|(name, _, _)| name).collect())
        .unwrap_or_default()
}

/// `cube.days` from a file's last bytes, `tail`, of `size` in all: `Err(n)` when the footer
/// needs the last `n` bytes; `None` when the file is not one of ours (or holds no days).
pub(crate) fn days_in_footer(tail: &Bytes, size: u64) -> Result<Option<String>, u64> {
    let mut reader = ParquetMetaDataReader::new();
    match reader.try_parse_sized(tail, size) {
        Ok(()) => Ok(reader.finish().ok().and_then(|metadata| {
            metadata
                .file_metadata()
                .key_value_metadata()
                .and_then(|kv| kv.iter().find(|k| k.key == DAYS_KEY))
                .and_then(|k| k.value.clone())
        })),
        Err(ParquetError::NeedMoreData(needed)) if (needed as u64) > tail.len() as u64 => {
            Err(needed as u64)
        }
        Err(_) => Ok(None),
    }
}

/// What a file says about itself in its key/value metadata.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FileMeta {
    pub schema_version: u64,
    /// `cube.labels`: a JSON object, column -> label.
    pub labels: String,
    /// `cube.hashed_columns`.
    pub hashed: Vec<String>,
    /// `cube.snapshot_at`, in files of snapshot tables.
    pub snapshot_at: Option<String>,
    /// `cube.days`, in month files.
    pub days: Option<String>,
}

impl FileMeta {
    fn key_values(&self) -> Vec<KeyValue> {
        let mut kv = vec![
            KeyValue::new(
                SCHEMA_VERSION_KEY.to_owned(),
                self.schema_version.to_string(),
            ),
            KeyValue::new(LABELS_KEY.to_owned(), self.labels.clone()),
        ];
        if !self.hashed.is_empty() {
            kv.push(KeyValue::new(
                HASHED_KEY.to_owned(),
                serde_json::to_string(&self.hashed).expect("names serialise"),
            ));
        }
        if let Some(at) = &self.snapshot_at {
            kv.push(KeyValue::new(SNAPSHOT_AT_KEY.to_owned(), at.clone()));
        }
        if let Some(days) = &self.days {
            kv.push(KeyValue::new(DAYS_KEY.to_owned(), days.clone()));
        }
        kv
    }
}

/// Why a file could not be encoded (or an existing one read for a rewrite).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("{0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Writing the encoded bytes failed (the upload they stream to stopped).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How a file's pages are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// zstd: the files readers see.
    Zstd,
    /// None: a month table's day segments, which only the tool reads back. parquet-rs makes a
    /// zstd compressor for every column chunk it writes or reads, and each one runs `CPUID`,
    /// which this VM makes dear: segments without it made a year's backfill into month files
    /// faster than the one into day files.
    Plain,
}

/// Writer settings; `plain` lists the columns written without a dictionary.
pub fn writer_properties(meta: &FileMeta, plain: &[&str]) -> WriterProperties {
    packed_writer_properties(meta, plain, Packing::Zstd)
}

/// As [`writer_properties`], compressed as `packing` says.
fn packed_writer_properties(meta: &FileMeta, plain: &[&str], packing: Packing) -> WriterProperties {
    let compression = match packing {
        Packing::Zstd => Compression::ZSTD(ZstdLevel::try_new(1).expect("valid level")),
        Packing::Plain => Compression::UNCOMPRESSED,
    };
    let mut builder = WriterProperties::builder()
        .set_compression(compression)
        // Chunk statistics give readers min/max and null counts for pruning; page-level
        // indexes would more than double the size of a typical (small) partition file.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_statistics_truncate_length(Some(64))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
        .set_created_by(concat!("cube-extract ", env!("CARGO_PKG_VERSION")).to_owned())
        .set_key_value_metadata(Some(meta.key_values()));
    for column in plain {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    builder.build()
}

/// Encodes batches of one partition into a Parquet file written to `W`.
///
/// The Parquet writer is opened at the first batch, which decides per column whether a
/// dictionary pays: parquet-rs would dictionary-encode every column until the dictionary
/// outgrows its page limit, and for the many columns that are (nearly) unique per row (ids,
/// phones, e-mails, timestamps) a dictionary plus indexes is larger and slower than plain values.
pub struct PartitionWriter<W: Write + Send = Vec<u8>> {
    /// Until the first batch: where and how to open the writer.
    pending: Option<Pending<W>>,
    writer: Option<ArrowWriter<W>>,
}

struct Pending<W> {
    out: W,
    schema: SchemaRef,
    meta: FileMeta,
    packing: Packing,
}

impl<W: Write + Send> PartitionWriter<W> {
    pub fn new(out: W, schema: SchemaRef, meta: FileMeta) -> Self {
        Self::packed(out, schema, meta, Packing::Zstd)
    }

    pub fn packed(out: W, schema: SchemaRef, meta: FileMeta, packing: Packing) -> Self {
        PartitionWriter {
            pending: Some(Pending {
                out,
                schema,
                meta,
                packing,
            }),
            writer: None,
        }
    }

    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), EncodeError> {
        self.open(Some(batch))?.write(batch)?;
        Ok(())
    }

    /// Writes the footer, with the rows where typed columns held `""` (known only once every
    /// row is in), and returns the output.
    pub fn finish(mut self, empty: &EmptyStrings) -> Result<W, EncodeError> {
        self.open(None)?;
        let mut writer = self.writer.expect("opened above");
        if let Some(kv) = empty.key_value() {
            writer.append_key_value_metadata(kv);
        }
        Ok(writer.into_inner()?)
    }

    /// The Parquet writer, opened with column settings chosen from `sample` if not open yet.
    fn open(&mut self, sample: Option<&RecordBatch>) -> Result<&mut ArrowWriter<W>, EncodeError> {
        if let Some(Pending {
            out,
            schema,
            meta,
            packing,
        }) = self.pending.take()
        {
            let plain: Vec<&str> = match sample {
                Some(batch) => schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .filter(|(_, column)| !dictionary_pays(column.as_ref()))
                    .map(|(field, _)| field.name().as_str())
                    .collect(),
                None => Vec::new(),
            };
            // The Parquet logical types already say everything our Arrow types need
            // (UTC-adjusted timestamps read back as zoned, the rest as naive), so the embedded
            // Arrow schema copy is dropped: it is a large part of a small file's footer.
            let options = ArrowWriterOptions::new()
                .with_properties(packed_writer_properties(&meta, &plain, packing))
                .with_skip_arrow_metadata(true);
            self.writer = Some(ArrowWriter::try_new_with_options(
                out,
                schema.clone(),
                options,
            )?);
        }
        Ok(self.writer.as_mut().expect("opened above"))
    }
}

/// Whether a dictionary is worth it for a column, judged on a sample: at most one distinct
/// value per two non-null values (the rule of thumb DuckDB's writer also lands near).
fn dictionary_pays(column: &dyn Array) -> bool {
    let values = column.len() - column.null_count();
    if values == 0 {
        return false;
    }
    let limit = values / 2;
    let distinct = match column.data_type() {
        DataType::Utf8 => count_distinct(column.as_string::<i32>().iter().flatten(), limit),
        DataType::Int64 => {
            count_distinct(column.as_primitive::<Int64Type>().iter().flatten(), limit)
        }
        DataType::Float64 => count_distinct(
            column
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .map(f64::to_bits),
            limit,
        ),
        DataType::Timestamp(_, _) => count_distinct(
            column
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .flatten(),
            limit,
        ),
        DataType::Date32 => {
            count_distinct(column.as_primitive::<Date32Type>().iter().flatten(), limit)
        }
        // Booleans are bit-packed either way.
        _ => return true,
    };
    distinct <= limit
}

/// Distinct values, counted up to just past `limit`. Run on every column of every file: a set
/// sized for the limit and a fast hasher keep it cheap (SipHash and rehashing as the set grew
/// were most of its cost).
fn count_distinct<T: std::hash::Hash + Eq>(values: impl Iterator<Item = T>, limit: usize) -> usize {
    let mut seen = std::collections::HashSet::with_capacity_and_hasher(
        limit + 1,
        foldhash::fast::RandomState::default(),
    );
    for v in values {
        seen.insert(v);
        if seen.len() > limit {
            break;
        }
    }
    seen.len()
}

/// A stored file's Arrow schema and what its metadata says about it.
pub struct FileInfo {
    pub schema: SchemaRef,
    /// Its footer, parsed once for every use (a rewrite reads it too).
    footer: ArrowReaderMetadata,
    /// The dataset schema version it was written under (absent in foreign files).
    pub version: Option<u64>,
    /// Its columns holding HMAC digests.
    pub hashed: Vec<String>,
    /// When its snapshot began, for files of snapshot tables.
    pub snapshot_at: Option<String>,
    /// The day files a month file was built from.
    pub days: Option<String>,
    /// The rows where its typed columns held `""`.
    pub empty_strings: EmptyStrings,
}

impl FileInfo {
    /// The rows the file holds, as its footer counts them.
    pub fn rows(&self) -> u64 {
        self.footer.metadata().file_metadata().num_rows().max(0) as u64
    }
}

/// Reads a Parquet file's Arrow schema and metadata.
pub fn file_info(bytes: &Bytes) -> Result<FileInfo, EncodeError> {
    let footer = ArrowReaderMetadata::load(bytes, ArrowReaderOptions::default())?;
    let kv = footer.metadata().file_metadata().key_value_metadata();
    let value = |key: &str| {
        kv.and_then(|kv| kv.iter().find(|k| k.key == key))
            .and_then(|k| k.value.clone())
    };
    Ok(FileInfo {
        schema: footer.schema().clone(),
        version: value(SCHEMA_VERSION_KEY).and_then(|v| v.parse().ok()),
        hashed: value(HASHED_KEY)
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default(),
        snapshot_at: value(SNAPSHOT_AT_KEY),
        days: value(DAYS_KEY),
        empty_strings: value(EMPTY_STRINGS_KEY)
            .and_then(|v| EmptyStrings::from_json(&v))
            .unwrap_or_default(),
        footer,
    })
}

/// The columns of a file that a rewrite to `target` would narrow, losing values: a type the
/// target's does not widen (`Float64` to `Int64`, `Utf8` to `Boolean`, ...), except a `Utf8`
/// column that holds only `""` and null, which may become typed (it was a column of empty
/// values so far). A target that narrows is behind the file: another writer widened the
/// column, and this one has not seen that generation of the schema yet.
pub fn narrowed_columns(
    bytes: &Bytes,
    info: &FileInfo,
    target: &SchemaRef,
) -> Result<Vec<String>, EncodeError> {
    let mut narrowed = Vec::new();
    let mut text = Vec::new();
    for (i, field) in info.schema.fields().iter().enumerate() {
        let Ok(wanted) = target.field_with_name(field.name()) else {
            continue;
        };
        match (field.data_type(), wanted.data_type()) {
            (from, to) if from == to => {}
            (DataType::Int64, DataType::Float64) => {}
            (DataType::Int64 | DataType::Float64 | DataType::Boolean, DataType::Utf8) => {}
            (DataType::Utf8, DataType::Int64 | DataType::Float64 | DataType::Boolean) => {
                text.push(i)
            }
            _ => narrowed.push(field.name().clone()),
        }
    }
    if !text.is_empty() {
        let mask =
            ProjectionMask::roots(info.footer.metadata().file_metadata().schema_descr(), text);
        let reader =
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), info.footer.clone())
                .with_projection(mask)
                .build()?;
        let mut holds_text = std::collections::BTreeSet::new();
        for batch in reader {
            let batch = batch?;
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                let strings = column.as_string::<i32>();
                if strings.iter().flatten().any(|v| !v.is_empty()) {
                    holds_text.insert(field.name().clone());
                }
            }
        }
        narrowed.extend(holds_text);
    }
    Ok(narrowed)
}

/// Rewrites a file to `target` into `out`: columns it lacks become null, narrower types are
/// cast up (a column widened to `Utf8` gets back the `""` the file lists for it), dropped
/// columns go. Columns `meta` lists as hashed that the file holds in the clear
/// are hashed with `policy`; columns the file holds hashed that are no longer hashed become
/// null (a digest cannot be turned back into its value). Returns `out` and the row count.
///
/// A column the file already holds as the target wants it is copied as it is (its compressed
/// pages spliced into the new file), so only added, widened and newly hashed columns are
/// decoded and encoded: a schema change that adds one column costs one column's encoding per
/// file, not the whole file's.
pub fn rewrite<W: Write + Send>(
    bytes: Bytes,
    info: &FileInfo,
    target: SchemaRef,
    meta: FileMeta,
    policy: &Policy,
    out: W,
) -> Result<(W, usize), EncodeError> {
    let metadata = info.footer.metadata().clone();
    let plan = RewritePlan::new(info, &target, &meta, Splice::Where)?;
    let parquet_schema = ArrowSchemaConverter::new().convert(&target)?;
    let mut writer = SerializedFileWriter::new(
        out,
        parquet_schema.root_schema_ptr(),
        Arc::new(writer_properties(&meta, &[])),
    )?;
    let from = Conformed {
        info,
        meta: &meta,
        policy,
        day: None,
        offset: 0,
    };
    let mut empty = EmptyStrings::default();
    from.list_kept_empty_strings(&target, &mut empty);
    let mut rows = 0;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        let n = group.num_rows() as usize;
        let arrays = from.group(&plan, &bytes, g, rows as u64, n, &mut empty)?;
        rows += n;
        let mut chunks = encode_columns(&plan.encoded, &arrays, &meta)?.into_iter();
        let mut group_writer = writer.next_row_group()?;
        for copy in &plan.copy {
            match copy {
                Some(i) => group_writer.append_column(&bytes, spliced(group.column(*i), n))?,
                None => chunks
                    .next()
                    .expect("one chunk per encoded column")
                    .append_to_row_group(&mut group_writer)?,
            }
        }
        group_writer.close()?;
    }
    if let Some(kv) = empty.key_value() {
        writer.append_key_value_metadata(kv);
    }
    Ok((writer.into_inner()?, rows))
}

/// Writes one file from the rows of others, in order, each brought to the target as [`rewrite`]
/// brings a file: a month file from its days' files. The rows are decoded and encoded again,
/// so that the file has row groups of [`ROW_GROUP_ROWS`]: days of a few hundred rows would
/// otherwise make a row group each, and readers pay per row group (DuckDB took 5x as long over
/// a year of month files with one row group per day as over the same files with one per month).
pub struct Merger<W: Write + Send> {
    writer: PartitionWriter<W>,
    target: SchemaRef,
    meta: FileMeta,
    empty: EmptyStrings,
    rows: usize,
    /// Rows held until there are [`DICTIONARY_SAMPLE_ROWS`] of them: the writer decides per
    /// column whether a dictionary pays from its first batch, and one day is too small a sample
    /// for a month (a customer id is nearly unique in a day, and repeats over a month).
    held: Vec<RecordBatch>,
    sampled: bool,
}

/// Rows a month file's encoder sees before it decides on dictionaries.
const DICTIONARY_SAMPLE_ROWS: usize = 16_384;

impl<W: Write + Send> Merger<W> {
    pub fn new(target: SchemaRef, meta: FileMeta, out: W) -> Self {
        Merger {
            writer: PartitionWriter::new(out, target.clone(), meta.clone()),
            target,
            meta,
            empty: EmptyStrings::default(),
            rows: 0,
            held: Vec::new(),
            sampled: false,
        }
    }

    /// Appends every row of a file. `day`: a column the file lacks, filled with one day (a
    /// month file's `date`, which its day files hold in their path).
    pub fn append(
        &mut self,
        bytes: Bytes,
        info: &FileInfo,
        policy: &Policy,
        day: Option<(&str, chrono::NaiveDate)>,
    ) -> Result<usize, EncodeError> {
        let metadata = info.footer.metadata().clone();
        let plan = RewritePlan::new(info, &self.target, &self.meta, Splice::Never)?;
        let meta = self.meta.clone();
        let from = Conformed {
            info,
            meta: &meta,
            policy,
            day,
            offset: self.rows as u64,
        };
        from.list_kept_empty_strings(&self.target, &mut self.empty);
        let mut start = 0;
        for (g, group) in metadata.row_groups().iter().enumerate() {
            let n = group.num_rows() as usize;
            let arrays = from.group(&plan, &bytes, g, start, n, &mut self.empty)?;
            start += n as u64;
            let batch = RecordBatch::try_new(self.target.clone(), arrays)?;
            match self.sampled {
                true => self.writer.write(&batch)?,
                false => {
                    self.held.push(batch);
                    if self.held_rows() >= DICTIONARY_SAMPLE_ROWS {
                        self.release()?;
                    }
                }
            }
        }
        self.rows += start as usize;
        Ok(start as usize)
    }

    fn held_rows(&self) -> usize {
        self.held.iter().map(RecordBatch::num_rows).sum()
    }

    /// Writes the rows held, as one batch: the writer's sample.
    fn release(&mut self) -> Result<(), EncodeError> {
        self.sampled = true;
        if self.held.is_empty() {
            return Ok(());
        }
        let sample = arrow_select::concat::concat_batches(&self.target, &self.held)?;
        self.held.clear();
        self.writer.write(&sample)
    }

    /// Writes the footer; returns the output and the rows written.
    pub fn finish(mut self) -> Result<(W, usize), EncodeError> {
        self.release()?;
        Ok((self.writer.finish(&self.empty)?, self.rows))
    }
}

/// Whether a rewrite copies the column chunks it can.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Splice {
    Where,
    Never,
}

/// How the rows of one file are brought to the target.
struct Conformed<'a> {
    info: &'a FileInfo,
    meta: &'a FileMeta,
    policy: &'a Policy,
    day: Option<(&'a str, chrono::NaiveDate)>,
    /// The row of the new file the file's first row becomes.
    offset: u64,
}

impl Conformed<'_> {
    /// Lists the `""` rows of the file that stay listed in the new file, at their new rows.
    fn list_kept_empty_strings(&self, target: &SchemaRef, empty: &mut EmptyStrings) {
        let kept = kept_empty_strings(self.info, target);
        for field in target.fields() {
            let rows = kept.rows(field.name());
            if !rows.is_empty() {
                empty.extend(field.name(), rows.iter().map(|r| r + self.offset).collect());
            }
        }
    }

    /// The columns `plan` encodes of row group `g` (`n` rows, from the file's row `start`),
    /// brought to the target; `""` that typed columns now hold as null are listed in `empty`.
    fn group(
        &self,
        plan: &RewritePlan,
        bytes: &Bytes,
        g: usize,
        start: u64,
        n: usize,
        empty: &mut EmptyStrings,
    ) -> Result<Vec<ArrayRef>, EncodeError> {
        let old = plan.read_sources(bytes, self.info, g, n)?;
        plan.encoded
            .fields()
            .iter()
            .map(|field| {
                let name = field.name();
                let source = old.column_by_name(name);
                if let Some((_, day)) = self.day.filter(|(c, _)| c == name && source.is_none()) {
                    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("a day");
                    let value = (day - epoch).num_days() as i32;
                    return Ok(Arc::new(arrow_array::Date32Array::from_value(value, n)) as ArrayRef);
                }
                // A `Utf8` column that held only `""` and null becomes typed: its `""` become
                // null, and the file lists them.
                if let Some(c) = source.filter(|_| field.data_type() != &DataType::Utf8) {
                    let rows = empty_rows(c.as_ref(), self.offset + start);
                    if !rows.is_empty() {
                        empty.extend(name, rows);
                    }
                }
                let was_empty = self.info.empty_strings.rows_in(name, start, n);
                let column = Conform {
                    was_hashed: self.info.hashed.contains(name),
                    hash: self.meta.hashed.contains(name),
                    policy: self.policy,
                };
                column.conform(source, field, n, was_empty)
            })
            .collect()
    }
}

/// Which target columns a rewrite copies from the file and which it encodes anew.
struct RewritePlan {
    /// Per target column: the file's column to copy as it is, or `None` to encode it.
    copy: Vec<Option<usize>>,
    /// The target columns to encode.
    encoded: SchemaRef,
    /// The file's columns those come from (those it has at all).
    sources: Vec<usize>,
}

impl RewritePlan {
    fn new(
        info: &FileInfo,
        target: &SchemaRef,
        meta: &FileMeta,
        splice: Splice,
    ) -> Result<Self, EncodeError> {
        let copy: Vec<Option<usize>> = target
            .fields()
            .iter()
            .map(|f| {
                if splice == Splice::Never {
                    return None;
                }
                let i = info.schema.index_of(f.name()).ok()?;
                let same_type = info.schema.field(i).data_type() == f.data_type();
                let same_hashing = info.hashed.contains(f.name()) == meta.hashed.contains(f.name());
                (same_type && same_hashing).then_some(i)
            })
            .collect();
        let encoded: Vec<usize> = (0..copy.len()).filter(|&i| copy[i].is_none()).collect();
        let sources = encoded
            .iter()
            .filter_map(|&i| info.schema.index_of(target.field(i).name()).ok())
            .collect();
        Ok(RewritePlan {
            copy,
            encoded: Arc::new(target.project(&encoded)?),
            sources,
        })
    }

    /// The source columns of row group `g` (`n` rows), decoded; an empty batch when the file
    /// has none of them.
    fn read_sources(
        &self,
        bytes: &Bytes,
        info: &FileInfo,
        g: usize,
        n: usize,
    ) -> Result<RecordBatch, EncodeError> {
        if self.sources.is_empty() {
            return Ok(RecordBatch::new_empty(Arc::new(
                arrow_schema::Schema::empty(),
            )));
        }
        let mask = ProjectionMask::roots(
            info.footer.metadata().file_metadata().schema_descr(),
            self.sources.clone(),
        );
        let batches =
            ParquetRecordBatchReaderBuilder::new_with_metadata(bytes.clone(), info.footer.clone())
                .with_row_groups(vec![g])
                .with_projection(mask)
                .with_batch_size(n.max(1))
                .build()?
                .collect::<Result<Vec<_>, _>>()?;
        let schema = batches
            .first()
            .map_or_else(|| Arc::new(arrow_schema::Schema::empty()), |b| b.schema());
        Ok(arrow_select::concat::concat_batches(&schema, &batches)?)
    }
}

/// The `""` rows of a file that its rewrite to `target` keeps listing: those of columns that
/// stay typed (copied, or widened from one number type to another). A column that becomes
/// `Utf8` holds its `""` itself from then on.
fn kept_empty_strings(info: &FileInfo, target: &SchemaRef) -> EmptyStrings {
    let mut kept = EmptyStrings::default();
    for field in target.fields() {
        let rows = info.empty_strings.rows(field.name());
        if !rows.is_empty() && field.data_type() != &DataType::Utf8 {
            kept.insert(field.name().clone(), rows.to_vec());
        }
    }
    kept
}

/// How a rewrite brings one column to the target: cast up, `""` given back, hashed or not.
struct Conform<'p> {
    was_hashed: bool,
    hash: bool,
    policy: &'p Policy,
}

impl Conform<'_> {
    /// One column of a row group as the target wants it, from what the file held (`old`);
    /// `was_empty`: the group's rows where the file lists `""` for it.
    fn conform(
        &self,
        old: Option<&ArrayRef>,
        field: &arrow_schema::Field,
        rows: usize,
        was_empty: impl Iterator<Item = usize>,
    ) -> Result<ArrayRef, EncodeError> {
        let array = match old {
            Some(c) if c.data_type() == field.data_type() => c.clone(),
            // `safe` casting: what cannot be cast becomes null; in a widening that is only the
            // "" of a column that held nothing else, which the contract nulls (and the file
            // lists).
            Some(c) => cast_with_options(c, field.data_type(), &CastOptions::default())?,
            None => new_null_array(field.data_type(), rows),
        };
        // A typed column widened to `Utf8` gets back its `""` (before hashing: "" stays "").
        let array = if old.is_some_and(|c| c.data_type() != &DataType::Utf8)
            && field.data_type() == &DataType::Utf8
        {
            restored(&array, was_empty)
        } else {
            array
        };
        Ok(match (self.hash, self.was_hashed) {
            (true, false) => self.policy.hash_column(&array),
            // A digest cannot be turned back into its value.
            (false, true) => new_null_array(field.data_type(), rows),
            _ => array,
        })
    }
}

/// A column chunk of the old file, to be appended to the new one as it is.
fn spliced(
    column: &parquet::file::metadata::ColumnChunkMetaData,
    rows: usize,
) -> ColumnCloseResult {
    ColumnCloseResult {
        bytes_written: column.compressed_size() as u64,
        rows_written: rows as u64,
        metadata: column.clone(),
        bloom_filter: None,
        column_index: None,
        offset_index: None,
    }
}

/// Encodes whole columns into column chunks, each with a dictionary only where it pays.
fn encode_columns(
    schema: &SchemaRef,
    arrays: &[ArrayRef],
    meta: &FileMeta,
) -> Result<Vec<ArrowColumnChunk>, EncodeError> {
    if arrays.is_empty() {
        return Ok(Vec::new());
    }
    let plain: Vec<&str> = schema
        .fields()
        .iter()
        .zip(arrays)
        .filter(|(_, a)| !dictionary_pays(a.as_ref()))
        .map(|(f, _)| f.name().as_str())
        .collect();
    let props = Arc::new(writer_properties(meta, &plain));
    let parquet_schema = ArrowSchemaConverter::new().convert(schema)?;
    // The factory takes its schema and settings from a file writer; this one only lends them.
    let lender =
        SerializedFileWriter::new(std::io::sink(), parquet_schema.root_schema_ptr(), props)?;
    let writers =
        ArrowRowGroupWriterFactory::new(&lender, schema.clone()).create_column_writers(0)?;
    writers
        .into_iter()
        .zip(schema.fields().iter().zip(arrays))
        .map(|(mut writer, (field, array))| {
            for leaf in compute_leaves(field, array)? {
                writer.write(&leaf)?;
            }
            Ok(writer.close()?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::{Array, Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn rewrite_adds_columns_and_widens() {
        let old = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("e", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            old.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(56), None])),
                Arc::new(StringArray::from(vec![Some(""), None])),
            ],
        )
        .unwrap();
        let meta = |v| FileMeta {
            schema_version: v,
            labels: r#"{"n": "Number"}"#.to_owned(),
            ..FileMeta::default()
        };
        let mut w = PartitionWriter::new(Vec::new(), old, meta(1));
        w.write(&batch).unwrap();
        let file = Bytes::from(w.finish(&Default::default()).unwrap());
        assert_eq!(file_info(&file).unwrap().version, Some(1));

        let target = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Float64, true),
            Field::new("e", DataType::Int64, true),
            Field::new("new", DataType::Utf8, true),
        ]));
        let info = file_info(&file).unwrap();
        let (file, rows) = rewrite(
            file,
            &info,
            target.clone(),
            meta(2),
            &Policy::default(),
            Vec::new(),
        )
        .unwrap();
        let file = Bytes::from(file);
        assert_eq!(rows, 2);
        let info = file_info(&file).unwrap();
        assert_eq!(info.schema.fields(), target.fields());
        assert_eq!(info.version, Some(2));
        let b = ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(b.column(0).as_primitive::<Float64Type>().value(0), 56.0);
        assert!(
            b.column(1).as_primitive::<Int64Type>().is_null(0),
            "\"\" of an empty column becomes null"
        );
        assert_eq!(b.column(2).null_count(), 2);
    }

    /// Writes `batch` into a file with `empty` as its `""` rows.
    fn file_of(batch: &RecordBatch, empty: &EmptyStrings) -> Bytes {
        let mut w = PartitionWriter::new(Vec::new(), batch.schema(), FileMeta::default());
        w.write(batch).unwrap();
        Bytes::from(w.finish(empty).unwrap())
    }

    fn rewritten(file: Bytes, target: &SchemaRef) -> Bytes {
        let info = file_info(&file).unwrap();
        let (out, _) = rewrite(
            file,
            &info,
            target.clone(),
            FileMeta::default(),
            &Policy::default(),
            Vec::new(),
        )
        .unwrap();
        Bytes::from(out)
    }

    fn first_batch(file: Bytes) -> RecordBatch {
        ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
    }

    /// `""` in a column while it was typed (stored as null, listed in the file) is `""` again
    /// once the column widens to Utf8, through any chain of rewrites.
    #[test]
    fn empty_strings_survive_widening_to_utf8() {
        let schema = |t: DataType| Arc::new(Schema::new(vec![Field::new("c", t, true)]));
        // Written while `c` held only "" and null: Utf8.
        let only_empty = RecordBatch::try_new(
            schema(DataType::Utf8),
            vec![Arc::new(StringArray::from(vec![Some(""), None, Some("")]))],
        )
        .unwrap();
        let file = file_of(&only_empty, &EmptyStrings::default());
        // Then `c` became Int64: "" is null and the file lists it.
        let as_int = rewritten(file, &schema(DataType::Int64));
        let info = file_info(&as_int).unwrap();
        assert_eq!(info.empty_strings.rows("c"), &[0, 2]);
        assert_eq!(first_batch(as_int.clone()).column(0).null_count(), 3);
        // Then Float64: still listed.
        let as_float = rewritten(as_int, &schema(DataType::Float64));
        assert_eq!(
            file_info(&as_float).unwrap().empty_strings.rows("c"),
            &[0, 2]
        );
        // Then Utf8: "" is back, null stays null, and the list is gone.
        let as_text = rewritten(as_float, &schema(DataType::Utf8));
        assert!(file_info(&as_text).unwrap().empty_strings.is_empty());
        let b = first_batch(as_text);
        let c = b.column(0).as_string::<i32>();
        assert_eq!((c.value(0), c.is_null(1), c.value(2)), ("", true, ""));

        // A Boolean column written by the decoder with its "" rows listed.
        let booleans = RecordBatch::try_new(
            schema(DataType::Boolean),
            vec![Arc::new(arrow_array::BooleanArray::from(vec![
                Some(true),
                None,
                None,
            ]))],
        )
        .unwrap();
        let mut empty = EmptyStrings::default();
        empty.insert("c".into(), vec![2]);
        let b = first_batch(rewritten(
            file_of(&booleans, &empty),
            &schema(DataType::Utf8),
        ));
        let c = b.column(0).as_string::<i32>();
        assert_eq!((c.value(0), c.is_null(1), c.value(2)), ("true", true, ""));
    }

    /// A target behind the file (a column another writer widened) would lose values: such
    /// columns are named, and a column of only `""` may still become typed.
    #[test]
    fn a_rewrite_that_would_narrow_a_column_is_named() {
        let file_schema = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float64, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("e", DataType::Utf8, true),
            Field::new("i", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            file_schema,
            vec![
                Arc::new(arrow_array::Float64Array::from(vec![41.5])),
                Arc::new(StringArray::from(vec![Some("Ja")])),
                Arc::new(StringArray::from(vec![Some("")])),
                Arc::new(Int64Array::from(vec![7])),
            ],
        )
        .unwrap();
        let file = file_of(&batch, &EmptyStrings::default());
        let info = file_info(&file).unwrap();
        let behind = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Int64, true),
            Field::new("t", DataType::Boolean, true),
            Field::new("e", DataType::Boolean, true),
            Field::new("i", DataType::Float64, true),
        ]));
        assert_eq!(narrowed_columns(&file, &info, &behind).unwrap(), ["f", "t"]);
        let ahead = Arc::new(Schema::new(vec![
            Field::new("f", DataType::Utf8, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("e", DataType::Int64, true),
            Field::new("i", DataType::Utf8, true),
        ]));
        assert!(narrowed_columns(&file, &info, &ahead).unwrap().is_empty());
    }

    /// The compressed bytes of column `i` of row group 0.
    fn chunk_bytes(file: &Bytes, i: usize) -> Bytes {
        let meta = ParquetRecordBatchReaderBuilder::try_new(file.clone())
            .unwrap()
            .metadata()
            .clone();
        let c = meta.row_group(0).column(i);
        let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset()) as usize;
        file.slice(start..start + c.compressed_size() as usize)
    }

    #[test]
    fn rewrite_copies_unchanged_columns_without_reencoding() {
        let old = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let strings: Vec<String> = (0..500).map(|i| format!("value {}", i % 7)).collect();
        let batch = RecordBatch::try_new(
            old.clone(),
            vec![
                Arc::new(StringArray::from_iter_values(strings)),
                Arc::new(Int64Array::from_iter_values(0..500)),
            ],
        )
        .unwrap();
        let meta = |v| FileMeta {
            schema_version: v,
            ..FileMeta::default()
        };
        let mut w = PartitionWriter::new(Vec::new(), old, meta(1));
        w.write(&batch).unwrap();
        let file = Bytes::from(w.finish(&Default::default()).unwrap());
        let target = Arc::new(Schema::new(vec![
            Field::new("s", DataType::Utf8, true),
            Field::new("n", DataType::Float64, true),
            Field::new("new", DataType::Boolean, true),
        ]));
        let info = file_info(&file).unwrap();
        let (out, rows) = rewrite(
            file.clone(),
            &info,
            target,
            meta(2),
            &Policy::default(),
            Vec::new(),
        )
        .unwrap();
        let out = Bytes::from(out);
        assert_eq!(rows, 500);
        assert_eq!(
            chunk_bytes(&out, 0),
            chunk_bytes(&file, 0),
            "s is spliced as it was"
        );
        assert_ne!(
            chunk_bytes(&out, 1),
            chunk_bytes(&file, 1),
            "n is re-encoded as Float64"
        );
        let b = ParquetRecordBatchReaderBuilder::try_new(out)
            .unwrap()
            .build()
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(b.column(0).as_string::<i32>().value(8), "value 1");
        assert_eq!(b.column(1).as_primitive::<Float64Type>().value(499), 499.0);
        assert_eq!(b.column(2).null_count(), 500);
    }

    /// Days merged into one month file keep their order, each row gets its day, and the rows
    /// where a typed column held `""` are listed at their place in the new file.
    #[test]
    fn a_merge_of_days_keeps_their_order_dates_and_empty_strings() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, true)]));
        let day_file = |values: Vec<Option<i64>>, empty: Vec<u64>| {
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values))])
                    .unwrap();
            let meta = FileMeta {
                schema_version: 1,
                ..FileMeta::default()
            };
            let mut w = PartitionWriter::new(Vec::new(), schema.clone(), meta);
            w.write(&batch).unwrap();
            let mut listed = EmptyStrings::default();
            listed.insert("n".to_owned(), empty);
            Bytes::from(w.finish(&listed).unwrap())
        };
        let first = day_file(vec![Some(1), None], vec![1]);
        let second = day_file(vec![None, Some(4), None], vec![0, 2]);
        let target = Arc::new(Schema::new(vec![
            Field::new("date", DataType::Date32, false),
            Field::new("n", DataType::Int64, true),
        ]));
        let meta = FileMeta {
            schema_version: 2,
            ..FileMeta::default()
        };
        let mut merger = Merger::new(target.clone(), meta, Vec::new());
        let days = [
            chrono::NaiveDate::from_ymd_opt(2024, 2, 28).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        ];
        for (file, day) in [(first, days[0]), (second, days[1])] {
            let info = file_info(&file).unwrap();
            merger
                .append(file, &info, &Policy::default(), Some(("date", day)))
                .unwrap();
        }
        let (out, rows) = merger.finish().unwrap();
        assert_eq!(rows, 5);
        let out = Bytes::from(out);
        let info = file_info(&out).unwrap();
        assert_eq!(info.schema.fields(), target.fields());
        assert_eq!(info.version, Some(2));
        assert_eq!(info.empty_strings.rows("n"), &[1, 2, 4]);
        let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(out)
            .unwrap()
            .build()
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let all = arrow_select::concat::concat_batches(&batches[0].schema(), &batches).unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let day = |d: chrono::NaiveDate| (d - epoch).num_days() as i32;
        let dates: Vec<i32> = all.column(0).as_primitive::<Date32Type>().values().to_vec();
        assert_eq!(
            dates,
            [days[0], days[0], days[1], days[1], days[1]].map(day)
        );
        let n: Vec<Option<i64>> = all.column(1).as_primitive::<Int64Type>().iter().collect();
        assert_eq!(n, [Some(1), None, None, Some(4), None]);
    }
}
