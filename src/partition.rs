//! Extracting one partition (campaign, day): read the listing page by page, decoding each page
//! into Arrow as it arrives (so raw JSON is held only for the pages in flight), check it is
//! complete and consistent, then encode one Parquet file, place it atomically and record it.

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use futures::StreamExt;

use crate::decode::PageDecoder;
use crate::pipeline::{now, Run, Target, UnitError};
use crate::report::{PartitionReport, PartitionStatus};
use crate::sink::parquet::{conform, EncodeError, PartitionWriter};
use crate::sink::upload::{self, ChunkWriter, CHUNK_BYTES};
use crate::sink::{Ledger, LedgerRecord};
use crate::source::{Listing, Page, SourceError, MAX_READS};
use crate::unit::Unit;

/// A partition read completely and consistently, as Arrow batches in API order.
#[derive(Default)]
struct Decoded {
    batches: Vec<RecordBatch>,
    rows: usize,
    pages: usize,
}

/// How one read of a listing ended.
enum Read {
    Complete(Decoded),
    /// Read the day again: the listing changed under us, or a column widened to Utf8 after
    /// earlier pages were decoded narrower (casting those back would lose their JSON text).
    Again(String),
}

impl Run {
    pub(crate) async fn extract(&self, unit: Unit) -> PartitionReport {
        let mut report = PartitionReport::new(&unit, PartitionStatus::Failed);
        match self.try_extract(&unit, &mut report).await {
            Ok(()) => {
                tracing::info!(campaign = unit.campaign_id, day = %unit.day, rows = report.rows, pages = report.pages, "partition {}", if report.status == PartitionStatus::Empty { "empty" } else { "committed" });
            }
            Err(e) => {
                tracing::error!(campaign = unit.campaign_id, day = %unit.day, error = %e, "partition failed");
                report.status = PartitionStatus::Failed;
                report.contract_violation = e.is_contract_violation();
                report.error = Some(e.to_string());
                report.file = None;
            }
        }
        report
    }

    async fn try_extract(
        &self,
        unit: &Unit,
        report: &mut PartitionReport,
    ) -> Result<(), UnitError> {
        let decoded = self.read(unit).await?;
        report.rows = decoded.rows;
        report.pages = decoded.pages;
        let path = self.layout.data_file(unit);
        let mut record = LedgerRecord {
            campaign_id: unit.campaign_id,
            date: unit.day,
            rows: decoded.rows,
            pages: decoded.pages,
            file: None,
            schema_version: 0,
            committed_at: String::new(),
        };
        if decoded.rows == 0 {
            // A re-run replaces a partition, so a day that is empty now loses its old file.
            self.dest.delete(&path).await?;
            self.dest.prune_empty_dirs(&path);
            report.status = PartitionStatus::Empty;
        } else {
            // The newest dataset schema, so files written late in a run need no rewrite.
            let target = self.target().await;
            record.schema_version = target.version;
            let (out, chunks) = upload::channel(CHUNK_BYTES);
            let batches = decoded.batches;
            let encoding = tokio::task::spawn_blocking(move || encode(&batches, &target, out));
            let placing = self.dest.upload(&path, self.layout.staging_dir(), chunks);
            let (encoded, placed) = tokio::join!(encoding, placing);
            // An upload failure also breaks the encoder's pipe: report the cause, not the symptom.
            let placed = placed?;
            report.bytes_written = encoded.expect("encoding does not panic")?;
            if !placed {
                return Err(EncodeError::from(std::io::Error::other(
                    "the encoder stopped before the file was complete",
                ))
                .into());
            }
            record.file = Some(path.to_string());
            report.status = PartitionStatus::Committed;
            report.file = record.file.clone();
        }
        if record.schema_version == 0 {
            record.schema_version = self.target().await.version;
        }
        record.committed_at = now();
        Ledger::new(&self.dest, &self.layout)
            .record(unit, &record)
            .await?;
        Ok(())
    }

    /// Reads the listing until one read is complete and consistent, a bounded number of times.
    async fn read(&self, unit: &Unit) -> Result<Decoded, UnitError> {
        let mut problem = String::new();
        for read in 1..=MAX_READS {
            match self.read_once(unit).await? {
                Read::Complete(decoded) => return Ok(decoded),
                Read::Again(p) => {
                    tracing::warn!(campaign = unit.campaign_id, day = %unit.day, read, problem = %p, "reading the day again");
                    problem = p;
                }
            }
        }
        Err(SourceError::Inconsistent(format!(
            "{unit}: the API's listing changed while it was read, {MAX_READS} times in a row (last: {problem}); nothing was written for it, so run again later"
        ))
        .into())
    }

    async fn read_once(&self, unit: &Unit) -> Result<Read, UnitError> {
        let first = self.client.page(&self.dataset, unit, 1).await?;
        let listing = match Listing::from_first(&first) {
            Ok(Some(listing)) => listing,
            Ok(None) => {
                return Ok(Read::Complete(Decoded {
                    pages: 1,
                    ..Decoded::default()
                }))
            }
            Err(problem) => return Ok(Read::Again(problem)),
        };
        let mut decoded = Decoded::default();
        if let Some(again) = self.decode_page(unit, first, &mut decoded).await? {
            return Ok(Read::Again(again));
        }
        let mut rest =
            std::pin::pin!(listing.rest(&self.client, &self.dataset, unit, self.fan_out));
        while let Some(page) = rest.next().await {
            let page = match page {
                Ok(page) => page,
                // A page that vanished means the listing shrank under us.
                Err(SourceError::NotFound { url }) => {
                    return Ok(Read::Again(format!("{url} vanished")))
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(problem) = listing.check(&page) {
                return Ok(Read::Again(problem));
            }
            if let Some(again) = self.decode_page(unit, page, &mut decoded).await? {
                return Ok(Read::Again(again));
            }
        }
        Ok(Read::Complete(decoded))
    }

    /// Folds the page's keys into the dataset schema and decodes it (off the async workers).
    /// Returns why the day must be read again, if it must.
    async fn decode_page(
        &self,
        unit: &Unit,
        page: Page,
        into: &mut Decoded,
    ) -> Result<Option<String>, UnitError> {
        let target = self.merge(&page.keys, unit.day).await?;
        if let Some(column) = narrower_than_utf8(&into.batches, &target) {
            return Ok(Some(format!(
                "column {column:?} became Utf8 while the day was read"
            )));
        }
        let records = page.records;
        let batches = tokio::task::spawn_blocking(move || {
            let mut decoder = PageDecoder::new(target.decode.clone(), target.arrow.clone())?;
            let mut batches = Vec::new();
            let mut sink = |b: RecordBatch| -> Result<(), UnitError> {
                batches.push(b);
                Ok(())
            };
            decoder.push(page.results_json(), &mut sink)?;
            decoder.finish(&mut sink)?;
            Ok::<_, UnitError>(batches)
        })
        .await
        .expect("decoding does not panic")?;
        into.batches.extend(batches);
        into.rows += records;
        into.pages += 1;
        Ok(None)
    }
}

/// A column the earlier batches hold as a number or boolean that the target now types Utf8.
fn narrower_than_utf8(batches: &[RecordBatch], target: &Target) -> Option<String> {
    let first = batches.first()?;
    first.schema().fields().iter().find_map(|f| {
        let now = target.arrow.field_with_name(f.name()).ok()?;
        (now.data_type() == &DataType::Utf8 && f.data_type() != &DataType::Utf8)
            .then(|| f.name().clone())
    })
}

/// Encodes a partition's batches, brought to `target`, as one Parquet file into `out`. Returns
/// the file's size.
fn encode(batches: &[RecordBatch], target: &Target, out: ChunkWriter) -> Result<u64, UnitError> {
    let mut writer = PartitionWriter::new(out, target.arrow.clone(), target.version)?;
    for batch in batches {
        writer.write(&conform(batch, &target.arrow)?)?;
    }
    let out = writer.finish()?;
    Ok(out.complete().map_err(EncodeError::from)?)
}
