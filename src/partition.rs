//! Extracting one partition (campaign, day). Pages are fetched concurrently, then decoded and
//! encoded into the partition's Parquet file in order as they arrive, while the file streams to
//! the destination. Memory holds only the pages in flight (bounded by the run's page budget)
//! and the row group being encoded, whatever the size of the day. The file is placed only if
//! the whole listing was complete and consistent; otherwise the upload is abandoned.

use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::decode::PageDecoder;
use crate::pipeline::{now, Run, Target, UnitError};
use crate::report::{PartitionReport, PartitionStatus};
use crate::schema::DatasetSchema;
use crate::sink::parquet::{EncodeError, PartitionWriter};
use crate::sink::upload::{self, ChunkWriter, CHUNK_BYTES};
use crate::sink::{Ledger, LedgerRecord};
use crate::source::{Listing, Page, SourceError, MAX_READS};
use crate::unit::Unit;

/// A page together with its share of the run's page budget, released once it is encoded
/// (`None` when the partition holds one share for all its pages).
type Budgeted = (Page, Option<OwnedSemaphorePermit>);

/// A page's raw body as fetched, with its budget share.
struct Fetched {
    number: u32,
    url: url::Url,
    body: bytes::Bytes,
    slot: Option<OwnedSemaphorePermit>,
}

/// What one complete read of a partition wrote.
struct Written {
    rows: usize,
    pages: usize,
    /// The file's size and the schema version it was written under; `None` for an empty day.
    file: Option<(u64, u64)>,
}

/// How one read of a listing ended.
enum Read {
    Complete(Written),
    /// Read the day again: the listing changed under us, or a page brought a key or type the
    /// file being written cannot hold (it was started with the schema known at page 1).
    Again(String),
}

/// How producing the file ended.
enum Produced {
    /// The file is complete: its size and the schema version it was written under.
    File { bytes: u64, version: u64 },
    /// Read the day again, for this reason (the unfinished file is abandoned).
    Again(String),
}

/// Turns pages into the partition's Parquet file, on blocking threads. One decoder serves
/// every page of the partition, so its buffers are allocated once.
struct PageEncoder {
    decoder: PageDecoder,
    writer: PartitionWriter<ChunkWriter>,
    /// Columns to hash (positions) and the policy that hashes them.
    hashed: Vec<usize>,
    policy: crate::privacy::Policy,
}

impl PageEncoder {
    fn new(
        target: &Target,
        page_size: usize,
        out: ChunkWriter,
        policy: &crate::privacy::Policy,
    ) -> Result<Self, UnitError> {
        Ok(PageEncoder {
            decoder: PageDecoder::new(target.decode.clone(), target.arrow.clone(), page_size)?,
            writer: PartitionWriter::new(out, target.arrow.clone(), target.meta.clone())?,
            hashed: target.hashed.clone(),
            policy: policy.clone(),
        })
    }

    fn push(mut self, page: &Page) -> Result<Self, UnitError> {
        let writer = &mut self.writer;
        let (hashed, policy) = (&self.hashed, &self.policy);
        let mut sink = |batch: RecordBatch| -> Result<(), UnitError> {
            if hashed.is_empty() {
                writer.write(&batch)?;
            } else {
                // Personal data is replaced before the encoder ever sees it.
                let mut columns = batch.columns().to_vec();
                for &i in hashed {
                    columns[i] = policy.hash_column(&columns[i]);
                }
                let batch =
                    RecordBatch::try_new(batch.schema(), columns).map_err(EncodeError::from)?;
                writer.write(&batch)?;
            }
            Ok(())
        };
        self.decoder.push(page.results_json(), &mut sink)?;
        self.decoder.finish(&mut sink)?;
        Ok(self)
    }

    /// Writes the footer and marks the file complete. Returns its size.
    fn finish(self) -> Result<u64, UnitError> {
        let out = self.writer.finish()?;
        Ok(out.complete().map_err(EncodeError::from)?)
    }
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
        let written = self.read(unit).await?;
        let path = self.layout.data_file(unit);
        report.rows = written.rows;
        report.pages = written.pages;
        let mut record = LedgerRecord {
            campaign_id: unit.campaign_id,
            date: unit.day,
            rows: written.rows,
            pages: written.pages,
            file: None,
            schema_version: 0,
            committed_at: String::new(),
        };
        match written.file {
            None => {
                // A re-run replaces a partition, so a day that is empty now loses its old file.
                self.dest.delete(&path).await?;
                self.dest.prune_empty_dirs(&path);
                record.schema_version = self.target().await.version;
                report.status = PartitionStatus::Empty;
            }
            Some((bytes, version)) => {
                record.file = Some(path.to_string());
                record.schema_version = version;
                report.bytes_written = bytes;
                report.status = PartitionStatus::Committed;
                report.file = record.file.clone();
            }
        }
        record.committed_at = now();
        Ledger::new(&self.dest, &self.layout)
            .record(unit, &record)
            .await?;
        Ok(())
    }

    /// Reads the listing until one read is complete and consistent, a bounded number of times.
    async fn read(&self, unit: &Unit) -> Result<Written, UnitError> {
        let mut problem = String::new();
        for read in 1..=MAX_READS {
            match self.read_once(unit).await? {
                Read::Complete(written) => return Ok(written),
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
        let first = self.parse(self.fetch(unit, 1).await?).await?;
        let listing = match Listing::from_first(&first.0) {
            Ok(Some(listing)) => listing,
            Ok(None) => {
                return Ok(Read::Complete(Written {
                    rows: 0,
                    pages: 1,
                    file: None,
                }))
            }
            Err(problem) => return Ok(Read::Again(problem)),
        };
        let path = self.layout.data_file(unit);
        let (out, chunks) = upload::channel(CHUNK_BYTES);
        let placing = self.dest.upload(&path, self.layout.staging_dir(), chunks);
        // Returning early drops the encoder unfinished, which abandons the upload.
        let producing = self.produce(unit, listing, first, out);
        let (produced, placed) = tokio::join!(producing, placing);
        let placed = placed?;
        let (bytes, version) = match produced? {
            Produced::File { bytes, version } => (bytes, version),
            Produced::Again(reason) => return Ok(Read::Again(reason)),
        };
        if !placed {
            return Err(EncodeError::from(std::io::Error::other(
                "the encoder stopped before the file was complete",
            ))
            .into());
        }
        Ok(Read::Complete(Written {
            rows: listing.count as usize,
            pages: listing.pages as usize,
            file: Some((bytes, version)),
        }))
    }

    /// Decodes and encodes every page in order.
    async fn produce(
        &self,
        unit: &Unit,
        listing: Listing,
        first: Budgeted,
        out: ChunkWriter,
    ) -> Result<Produced, UnitError> {
        if listing.pages as usize <= self.whole_read_pages() {
            return self.produce_whole(unit, listing, first, out).await;
        }
        // The file is written with the dataset schema as it stands after page 1.
        let (target, written_with) = self.merge_and_snapshot(&first.0.keys, unit).await?;
        let version = target.version;
        let encoder = PageEncoder::new(&target, listing.page_size as usize, out, &self.policy)?;
        let mut encoder = Some(self.encode(encoder, first).await?);
        let mut rest = std::pin::pin!(futures::stream::iter(2..=listing.pages)
            .map(|n| self.fetch(unit, n))
            .buffered(self.fan_out.max(1)));
        while let Some(fetched) = rest.next().await {
            let page = match fetched {
                Ok(fetched) => self.parse(fetched).await?,
                // A page that vanished means the listing shrank under us.
                Err(SourceError::NotFound { url }) => {
                    return Ok(Produced::Again(format!("{url} vanished")))
                }
                Err(e) => return Err(e.into()),
            };
            if let Err(problem) = listing.check(&page.0) {
                return Ok(Produced::Again(problem));
            }
            // Keep the dataset schema current, then see whether this file can hold the page.
            self.merge(&page.0.keys, unit.day).await?;
            if let Err(misfit) = written_with.holds(&page.0.keys) {
                return Ok(Produced::Again(format!("{misfit} while the day was read")));
            }
            encoder = Some(
                self.encode(encoder.take().expect("encoder is back"), page)
                    .await?,
            );
        }
        let encoder = encoder.expect("encoder is back");
        let _cpu = self.cpu.acquire().await.expect("never closed");
        let bytes = tokio::task::spawn_blocking(move || encoder.finish())
            .await
            .expect("encoding does not panic")?;
        Ok(Produced::File { bytes, version })
    }

    /// The most pages a partition may read completely before encoding: the page budget less
    /// one page for every other partition in flight (each may hold its page 1 while it waits),
    /// so that a whole-partition read can always get its share and never waits on a partition
    /// that waits on it.
    fn whole_read_pages(&self) -> usize {
        page_budget_pages(self.fan_out).saturating_sub(self.partitions_in_flight) + 1
    }

    /// Reads every page of a small partition, then encodes the file in one go. The encoder
    /// (whose Parquet column writers hold sizeable compression contexts) then lives only for
    /// the CPU time of the encoding, not across the wait for pages: with many partitions in
    /// flight to hide the API's latency, that is what keeps memory flat. It also lets the file
    /// be written with a schema that already holds every page.
    async fn produce_whole(
        &self,
        unit: &Unit,
        listing: Listing,
        first: Budgeted,
        out: ChunkWriter,
    ) -> Result<Produced, UnitError> {
        let rest_pages = listing.pages.saturating_sub(1);
        // One share for all the other pages, taken at once, so no partition holds part of its
        // share while it waits for the rest.
        let _share = match rest_pages {
            0 => None,
            n => Some(
                self.page_budget
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .expect("budget never closed"),
            ),
        };
        let fetched: Vec<Result<(url::Url, bytes::Bytes), SourceError>> =
            futures::stream::iter(2..=listing.pages)
                .map(|n| self.client.page_body(&self.dataset, unit, n))
                .buffered(self.fan_out.max(1))
                .collect()
                .await;
        let mut pages = Vec::with_capacity(listing.pages as usize);
        pages.push(first.0);
        for (n, result) in (2..).zip(fetched) {
            let (url, body) = match result {
                Ok(fetched) => fetched,
                // A page that vanished means the listing shrank under us.
                Err(SourceError::NotFound { url }) => {
                    return Ok(Produced::Again(format!("{url} vanished")))
                }
                Err(e) => return Err(e.into()),
            };
            let (page, _) = self
                .parse(Fetched {
                    number: n,
                    url,
                    body,
                    slot: None,
                })
                .await?;
            if let Err(problem) = listing.check(&page) {
                return Ok(Produced::Again(problem));
            }
            pages.push(page);
        }
        let mut keys = crate::schema::KeyKinds::default();
        for page in &pages {
            keys.merge(&page.keys);
        }
        let (target, written_with) = self.merge_and_snapshot(&keys, unit).await?;
        if let Err(misfit) = written_with.holds(&keys) {
            return Ok(Produced::Again(format!("{misfit} while the day was read")));
        }
        let version = target.version;
        let page_size = listing.page_size as usize;
        let policy = self.policy.clone();
        let _cpu = self.cpu.acquire().await.expect("never closed");
        let bytes = tokio::task::spawn_blocking(move || {
            let mut encoder = PageEncoder::new(&target, page_size, out, &policy)?;
            // Each page is dropped once encoded, so the raw JSON held shrinks as the file grows.
            for page in pages {
                encoder = encoder.push(&page)?;
            }
            encoder.finish()
        })
        .await
        .expect("encoding does not panic")?;
        Ok(Produced::File { bytes, version })
    }

    /// Fetches a page once the run's page budget has room for it. Only I/O happens here: these
    /// futures wait in a `buffered` stream that is not polled while a page is encoded, so they
    /// must not hold CPU slots.
    async fn fetch(&self, unit: &Unit, number: u32) -> Result<Fetched, SourceError> {
        let slot = self
            .page_budget
            .clone()
            .acquire_owned()
            .await
            .expect("budget never closed");
        let (url, body) = self.client.page_body(&self.dataset, unit, number).await?;
        Ok(Fetched {
            number,
            url,
            body,
            slot: Some(slot),
        })
    }

    /// Parses a fetched page on a CPU slot.
    async fn parse(&self, fetched: Fetched) -> Result<Budgeted, SourceError> {
        let Fetched {
            number,
            url,
            body,
            slot,
        } = fetched;
        let _cpu = self.cpu.acquire().await.expect("never closed");
        let page = tokio::task::spawn_blocking(move || Page::parse(number, body))
            .await
            .expect("page parsing does not panic")
            .map_err(|cause| SourceError::BadResponse {
                url: url.to_string(),
                cause,
            })?;
        Ok((page, slot))
    }

    /// Folds `keys` into the dataset schema, then takes the target and a copy to check pages
    /// against.
    async fn merge_and_snapshot(
        &self,
        keys: &crate::schema::KeyKinds,
        unit: &Unit,
    ) -> Result<(Target, DatasetSchema), UnitError> {
        self.merge(keys, unit.day).await?;
        Ok(self.snapshot().await)
    }

    async fn encode(
        &self,
        encoder: PageEncoder,
        (page, slot): Budgeted,
    ) -> Result<PageEncoder, UnitError> {
        let _cpu = self.cpu.acquire().await.expect("never closed");
        tokio::task::spawn_blocking(move || {
            let encoder = encoder.push(&page);
            drop(slot);
            encoder
        })
        .await
        .expect("encoding does not panic")
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// CPU work (decoding, encoding) runs on at most one blocking thread per core: more would only
/// contend, and every extra thread grows its own allocator arena.
pub(crate) fn cpu_slots() -> Semaphore {
    Semaphore::new(cores())
}

/// Partitions extracted at once: one per request slot, plus one per core for the partitions
/// that are being encoded (or recorded) and so have no request in flight; with only one per
/// request slot, those slots would idle while the API's latency dominates.
pub(crate) fn partitions_in_flight(concurrency: usize) -> usize {
    concurrency.max(1) + cores()
}

/// The page budget of a run: pages fetched but not yet encoded. A page per partition in flight
/// plus one per request slot keeps every request slot busy while encoding lags a little, and
/// bounds raw JSON in memory. It must exceed the partitions in flight: see
/// `Run::whole_read_pages`.
pub(crate) fn page_budget(concurrency: usize) -> Arc<Semaphore> {
    Arc::new(Semaphore::new(page_budget_pages(concurrency)))
}

fn page_budget_pages(concurrency: usize) -> usize {
    partitions_in_flight(concurrency) + concurrency.max(1)
}
