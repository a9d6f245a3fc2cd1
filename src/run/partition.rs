//! Extracting one partition (a campaign's day, or a snapshot of a CRM, a campaign or the
//! account). Pages are fetched concurrently and decoded as they arrive (which also finds their
//! keys for the listing checks and the schema), then encoded into the partition's Parquet file
//! in order, while the file streams to the destination. Memory holds only the pages in flight (bounded by the run's page budget)
//! and the row group being encoded, whatever the size of the day. The file is placed only if
//! the whole listing was complete and consistent; otherwise the upload is abandoned.
//!
//! Two phases: reading and staging the file may be abandoned at any point (nothing is visible
//! yet), but once the file is to be placed, placing it and recording it in the ledger run to
//! the end, so that every placed file is in the ledger and in the report.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures::StreamExt;
use tokio::sync::OwnedSemaphorePermit;

use super::place::{self, Streamed};
use super::signal::Shutdown;
use super::state::Run;
use super::{now, PartitionError};
use crate::decode::{decode_page, Decoded, PageDecoder};
use crate::logging::DETAIL;
use crate::privacy::Policy;
use crate::report::{PartitionReport, PartitionStatus};
use crate::schema::KeyKinds;
use crate::sink::delta::NewFile;
use crate::sink::parquet::{EncodeError, Packing, PartitionWriter};
use crate::sink::upload::ChunkWriter;
use crate::sink::{EmptyStrings, Ledger, LedgerRecord, Staged, Target};
use crate::source::{Listing, ListingChange, Page, Seen, SourceError, MAX_READS};
use crate::unit::Unit;

/// A parsed page, its records decoded under the dataset schema as it stood then (`None` when
/// they did not fit it), and its share of the run's page budget, released once it is encoded
/// (`None` when the partition holds one share for all its pages).
struct Parsed {
    page: Page,
    decoded: Option<Decoded>,
    share: Option<OwnedSemaphorePermit>,
}

/// A page's raw body as fetched, with its budget share.
struct Fetched {
    url: url::Url,
    body: bytes::Bytes,
    share: Option<OwnedSemaphorePermit>,
}

/// What one complete read of a partition staged.
struct Read<'d> {
    rows: usize,
    pages: usize,
    /// The file, ready to be placed, its size and the schema version it was written under;
    /// `None` for an empty day.
    file: Option<(Staged<'d>, u64, u64)>,
    /// When the read of a snapshot began (UTC).
    snapshot_at: Option<String>,
}

/// What a file is written from: the listing it holds, and when its snapshot began.
struct Written {
    listing: Listing,
    snapshot_at: Option<String>,
}

/// A file produced from every page of a listing: its size and schema version.
struct Produced {
    bytes: u64,
    version: u64,
}

/// One partition of a run.
pub(crate) struct Partition<'r> {
    run: &'r Run,
    unit: Unit,
}

impl<'r> Partition<'r> {
    pub(crate) fn new(run: &'r Run, unit: Unit) -> Partition<'r> {
        Partition { run, unit }
    }

    /// Extracts the partition; `None` when a shutdown signal came before its file was to be placed (the
    /// partition was abandoned and is not reported). A day of a month table is not recorded
    /// yet: its ledger record comes back with its report, for when its month is built.
    pub(crate) async fn extract(self, shutdown: &Shutdown) -> Option<Ended> {
        let unit = self.unit;
        let mut report =
            PartitionReport::new(&unit, self.run.paths.day_key(), PartitionStatus::Failed);
        let mut unrecorded = None;
        let outcome = match shutdown.unless_stopped(self.read()).await {
            Err(_) => return None,
            Ok(Err(e)) => Err(e),
            Ok(Ok(read)) => match self.commit(read, &mut report, shutdown).await {
                Ok(Placed::Abandoned) => return None,
                Ok(Placed::Committed(record)) => {
                    unrecorded = record;
                    Ok(())
                }
                Err(e) => Err(e),
            },
        };
        match outcome {
            Ok(()) => {
                tracing::info!(target: DETAIL, table = self.run.dataset.name, partition = %unit, rows = report.rows, pages = report.pages, "partition {}", if report.status == PartitionStatus::Empty { "empty" } else { "committed" });
            }
            Err(e) => {
                tracing::error!(table = self.run.dataset.name, partition = %unit, error = %e, "partition failed");
                report.status = PartitionStatus::Failed;
                report.contract_violation = e.is_contract_violation();
                report.error = Some(e.to_string());
                report.file = None;
            }
        }
        Some(Ended { report, unrecorded })
    }

    /// Places the file (or, for an empty day, removes the old one) and records the partition.
    /// A file that is visible is recorded, signal or not. Before that, a signal abandons the
    /// partition while parts of its multipart upload are still going up (the upload is then
    /// aborted); the one request or rename that makes the file visible is let be.
    async fn commit(
        &self,
        read: Read<'_>,
        report: &mut PartitionReport,
        shutdown: &Shutdown,
    ) -> Result<Placed, PartitionError> {
        let run = self.run;
        report.rows = read.rows;
        report.pages = read.pages;
        report.snapshot_at = read.snapshot_at.clone();
        let mut record = LedgerRecord {
            partition: self.unit.values(run.paths.day_key()),
            snapshot_at: read.snapshot_at,
            rows: read.rows,
            pages: read.pages,
            file: None,
            schema_version: 0,
            committed_at: String::new(),
        };
        match read.file {
            None => {
                let target = run.target().await;
                match run.paths.month_of(&self.unit) {
                    // A day of a month table loses its segment; its month is published when
                    // it is built.
                    Some(_) => {
                        let segment = run.paths.data_file(&self.unit);
                        run.dest.delete(&segment).await?;
                        run.dest.prune_empty_dirs(&segment);
                    }
                    None => {
                        let partition = run.paths.partition_of(&self.unit);
                        run.publisher
                            .publish(&run.publishing(), partition, None, &target)
                            .await?;
                    }
                }
                record.schema_version = target.version;
                report.status = PartitionStatus::Empty;
            }
            Some((mut staged, bytes, version)) => {
                // Until every part is up, a signal abandons the partition (and so aborts its
                // upload); placing is then one request, and runs to the end.
                match shutdown.unless_stopped(staged.upload_parts()).await {
                    Err(_signal) => return Ok(Placed::Abandoned),
                    Ok(uploaded) => uploaded?,
                }
                let path = staged.path().clone();
                staged.place().await?;
                record.file = Some(match run.paths.month_of(&self.unit) {
                    // Named once its month is built.
                    Some(_) => run.paths.table_file(&self.unit).to_string(),
                    None => {
                        let file = NewFile {
                            path: path.clone(),
                            bytes,
                            rows: read.rows as u64,
                        };
                        let partition = run.paths.partition_of(&self.unit);
                        let target = run.target().await;
                        run.publisher
                            .publish(&run.publishing(), partition, Some(file), &target)
                            .await?;
                        path.to_string()
                    }
                });
                record.schema_version = version;
                report.bytes_written = bytes;
                report.status = PartitionStatus::Committed;
                report.file = record.file.clone();
            }
        }
        if run.paths.month_of(&self.unit).is_some() {
            // Recorded once a month file holding the day is placed.
            return Ok(Placed::Committed(Some(record)));
        }
        record.committed_at = now();
        Ledger::new(&run.dest, &run.paths)
            .record(&self.unit, &record)
            .await?;
        Ok(Placed::Committed(None))
    }

    /// Reads the listing until one read is complete and consistent, a bounded number of times.
    async fn read(&self) -> Result<Read<'r>, PartitionError> {
        let unit = &self.unit;
        let mut last = None;
        for read in 1..=MAX_READS {
            match self.read_once().await? {
                Ok(done) => return Ok(done),
                Err(change) => {
                    tracing::warn!(table = self.run.dataset.name, partition = %unit, read, problem = %change, "reading the {} again", if self.run.dataset.by_day() { "day" } else { "snapshot" });
                    last = Some(change);
                }
            }
        }
        Err(SourceError::Inconsistent {
            unit: *unit,
            reads: MAX_READS,
            last: last.expect("every read that did not end found a change"),
        }
        .into())
    }

    /// One read of the listing: the staged file, or the change that makes it read again.
    async fn read_once(&self) -> Result<Result<Read<'r>, ListingChange>, PartitionError> {
        let run = self.run;
        let snapshot_at = (!run.dataset.by_day())
            .then(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
        let first = self.parse(1, self.fetch(1).await?).await?;
        let listing = match Listing::from_first(&first.page) {
            Ok(Some(listing)) => listing,
            Ok(None) => {
                return Ok(Ok(Read {
                    rows: 0,
                    pages: 1,
                    file: None,
                    snapshot_at,
                }))
            }
            Err(change) => return Ok(Err(change)),
        };
        let mut seen = Seen::new(run.dataset.unique_key);
        if let Err(change) = seen.check(&first.page) {
            return Ok(Err(change));
        }
        let path = run.paths.data_file(&self.unit);
        let at = snapshot_at.clone();
        let streamed = place::stream(&run.dest, &path, run.paths.staging_dir(), |out| {
            self.produce(listing, first, out, &mut seen, at)
        })
        .await?;
        Ok(match streamed {
            Streamed::Staged(Produced { bytes, version }, staged) => Ok(Read {
                rows: listing.count as usize,
                pages: listing.pages as usize,
                file: Some((staged, bytes, version)),
                snapshot_at,
            }),
            Streamed::GaveUp(change) => Err(change),
        })
    }

    /// How the partition's file is compressed: a month table's day segment is read back only
    /// by the tool, as its month is built.
    fn packing(&self) -> Packing {
        match self.run.paths.month_of(&self.unit) {
            Some(_) => Packing::Plain,
            None => Packing::Zstd,
        }
    }

    /// The day the partition's rows belong to: its own, or the day of the snapshot.
    fn day(&self) -> chrono::NaiveDate {
        self.unit.day.unwrap_or(self.run.today)
    }

    /// Decodes and encodes every page in order into `out`; a snapshot's file says when it
    /// began (`snapshot_at`).
    async fn produce(
        &self,
        listing: Listing,
        first: Parsed,
        out: ChunkWriter,
        seen: &mut Seen,
        snapshot_at: Option<String>,
    ) -> Result<Result<Produced, ListingChange>, PartitionError> {
        let written = Written {
            listing,
            snapshot_at,
        };
        if listing.pages as usize <= self.run.pages.whole_read_pages() {
            self.produce_whole(written, first, out, seen).await
        } else {
            self.produce_streaming(written, first, out, seen).await
        }
    }

    /// Encodes each page as it arrives. The file is written with the dataset schema as it
    /// stands after page 1; a later page it cannot hold makes the day read again.
    async fn produce_streaming(
        &self,
        written: Written,
        first: Parsed,
        out: ChunkWriter,
        seen: &mut Seen,
    ) -> Result<Result<Produced, ListingChange>, PartitionError> {
        let run = self.run;
        let listing = written.listing;
        let (mut target, written_with) =
            run.merge_and_snapshot(&first.page.keys, self.day()).await?;
        target.meta.snapshot_at = written.snapshot_at;
        let version = target.version;
        let mut encoder = PageEncoder::new(
            &target,
            listing.page_size as usize,
            out,
            &run.policy,
            self.packing(),
        );
        encoder = self.encode(encoder, first).await?;
        let mut rest = std::pin::pin!(futures::stream::iter(2..=listing.pages)
            .map(|n| async move { (n, self.fetch(n).await) })
            .buffered(run.fan_out));
        while let Some((n, fetched)) = rest.next().await {
            let parsed = match self.checked(n, fetched, &listing, seen).await? {
                Ok(parsed) => parsed,
                Err(change) => return Ok(Err(change)),
            };
            // Keep the dataset schema current, then see whether this file can hold the page.
            run.merge(&parsed.page.keys, self.day()).await?;
            if let Err(misfit) = written_with.holds(&parsed.page.keys) {
                return Ok(Err(misfit.into()));
            }
            encoder = self.encode(encoder, parsed).await?;
        }
        let bytes = run.cpu.run(move || encoder.finish()).await?;
        Ok(Ok(Produced { bytes, version }))
    }

    /// Reads every page of a small partition, then encodes the file in one go. The encoder
    /// (whose Parquet column writers hold sizeable compression contexts) then lives only for
    /// the CPU time of the encoding, not across the wait for pages: with many partitions in
    /// flight to hide the API's latency, that is what keeps memory flat. It also lets the file
    /// be written with a schema that already holds every page.
    async fn produce_whole(
        &self,
        written: Written,
        first: Parsed,
        out: ChunkWriter,
        seen: &mut Seen,
    ) -> Result<Result<Produced, ListingChange>, PartitionError> {
        let run = self.run;
        let listing = written.listing;
        // One share for all the other pages, taken at once.
        let _share = match listing.pages.saturating_sub(1) {
            0 => None,
            n => Some(run.pages.many(n).await),
        };
        let fetched: Vec<_> = futures::stream::iter(2..=listing.pages)
            .map(|n| async move { (n, self.fetch_outside_budget(n).await) })
            .buffered(run.fan_out)
            .collect()
            .await;
        let mut pages = Vec::with_capacity(listing.pages as usize);
        let mut keys = KeyKinds::default();
        keys.merge(&first.page.keys);
        pages.push(first);
        for (n, body) in fetched {
            match self.checked(n, body, &listing, seen).await? {
                Ok(parsed) => {
                    keys.merge(&parsed.page.keys);
                    pages.push(parsed);
                }
                Err(change) => return Ok(Err(change)),
            }
        }
        let (mut target, written_with) = run.merge_and_snapshot(&keys, self.day()).await?;
        target.meta.snapshot_at = written.snapshot_at;
        if let Err(misfit) = written_with.holds(&keys) {
            return Ok(Err(misfit.into()));
        }
        let version = target.version;
        let page_size = listing.page_size as usize;
        let policy = run.policy.clone();
        let packing = self.packing();
        let bytes = run
            .cpu
            .run(move || {
                let mut encoder = PageEncoder::new(&target, page_size, out, &policy, packing);
                // Each page is dropped once encoded, so the memory held shrinks as the file grows.
                for parsed in pages {
                    encoder = encoder.push(parsed.page, parsed.decoded)?;
                }
                encoder.finish()
            })
            .await?;
        Ok(Ok(Produced { bytes, version }))
    }

    /// A fetched page 2..N, parsed and checked against the listing and the records seen so far;
    /// a page that vanished, does not fit the listing or repeats a record is a change of the
    /// listing.
    async fn checked(
        &self,
        number: u32,
        fetched: Result<Fetched, SourceError>,
        listing: &Listing,
        seen: &mut Seen,
    ) -> Result<Result<Parsed, ListingChange>, PartitionError> {
        let fetched = match fetched {
            Ok(fetched) => fetched,
            Err(SourceError::NotFound { url }) => return Ok(Err(ListingChange::Vanished { url })),
            Err(e) => return Err(e.into()),
        };
        let parsed = self.parse(number, fetched).await?;
        Ok(
            match listing
                .check(&parsed.page)
                .and_then(|()| seen.check(&parsed.page))
            {
                Ok(()) => Ok(parsed),
                Err(change) => Err(change),
            },
        )
    }

    /// Fetches a page once the run's page budget has room for it. Only I/O happens here: these
    /// futures wait in a `buffered` stream that is not polled while a page is encoded, so they
    /// must not hold CPU slots.
    async fn fetch(&self, number: u32) -> Result<Fetched, SourceError> {
        let share = self.run.pages.one().await;
        let mut fetched = self.fetch_outside_budget(number).await?;
        fetched.share = Some(share);
        Ok(fetched)
    }

    /// Fetches a page whose budget share the partition already holds.
    async fn fetch_outside_budget(&self, number: u32) -> Result<Fetched, SourceError> {
        let run = self.run;
        let (url, body) = run
            .client
            .page_body(&run.dataset, &self.unit, number)
            .await?;
        Ok(Fetched {
            url,
            body,
            share: None,
        })
    }

    /// Parses a fetched page on a CPU slot. Its records are decoded there and then, under the
    /// dataset schema as it stands: the decoder finds the keys and kinds the listing checks and
    /// the schema need, so the page is read once. Records that do not fit that schema (a new
    /// type of value) are scanned instead, and decoded when the file is encoded.
    async fn parse(&self, number: u32, fetched: Fetched) -> Result<Parsed, SourceError> {
        let Fetched { url, body, share } = fetched;
        let run = self.run;
        let dataset = run.dataset;
        let (decode_schema, target) = run.decode_schemas();
        let batch_rows = run.rows_per_page();
        let id_keys = dataset.unique_key.map(|k| k.parts()).unwrap_or_default();
        let (page, decoded) = run
            .cpu
            .run(move || {
                let decode = |json: &[u8]| {
                    decode_page(
                        decode_schema.clone(),
                        target.clone(),
                        batch_rows,
                        json,
                        &id_keys,
                    )
                    .ok()
                };
                if dataset.is_array() {
                    Page::from_array_with(body, &id_keys, decode)
                } else {
                    Page::parse_with(number, body, &id_keys, decode)
                }
            })
            .await
            .map_err(|cause| SourceError::BadResponse {
                url: url.to_string(),
                cause,
            })?;
        run.saw_page_rows(page.records);
        Ok(Parsed {
            page,
            decoded,
            share,
        })
    }

    /// Encodes a page on a CPU slot, then frees its share of the page budget.
    async fn encode(
        &self,
        encoder: PageEncoder,
        parsed: Parsed,
    ) -> Result<PageEncoder, PartitionError> {
        self.run
            .cpu
            .run(move || {
                let Parsed {
                    page,
                    decoded,
                    share,
                } = parsed;
                let encoder = encoder.push(page, decoded);
                drop(share);
                encoder
            })
            .await
    }
}

/// How a partition ended, unless a signal abandoned it.
pub(crate) struct Ended {
    pub(crate) report: PartitionReport,
    /// The ledger record of a day of a month table whose segment was placed (or removed),
    /// to be written once its month is built.
    pub(crate) unrecorded: Option<LedgerRecord>,
}

/// How committing a partition ended, short of an error.
enum Placed {
    /// The file is placed; the record, when it is still to be written.
    Committed(Option<LedgerRecord>),
    /// A signal came before the file was visible: nothing of the partition is.
    Abandoned,
}

/// Turns pages into the partition's Parquet file, on blocking threads. A page decoded when it
/// was parsed is written as it is if it was decoded with this file's schema; any other page is
/// decoded here, by one decoder for the partition (made at the first such page), so its
/// buffers are allocated once.
struct PageEncoder {
    decoder: Option<PageDecoder>,
    page_size: usize,
    decode_schema: SchemaRef,
    /// The file's columns.
    arrow: SchemaRef,
    writer: PartitionWriter<ChunkWriter>,
    /// Columns to hash (positions) and the policy that hashes them.
    hashed: Vec<usize>,
    policy: Policy,
    /// Rows written so far, and the rows of the file where a typed column held `""`.
    rows: u64,
    empty_strings: BTreeMap<String, Vec<u64>>,
}

impl PageEncoder {
    fn new(
        target: &Target,
        page_size: usize,
        out: ChunkWriter,
        policy: &Policy,
        packing: Packing,
    ) -> Self {
        PageEncoder {
            decoder: None,
            page_size,
            decode_schema: target.decode.clone(),
            arrow: target.arrow.clone(),
            writer: PartitionWriter::packed(
                out,
                target.arrow.clone(),
                target.meta.clone(),
                packing,
            ),
            hashed: target.hashed.clone(),
            policy: policy.clone(),
            rows: 0,
            empty_strings: BTreeMap::new(),
        }
    }

    fn push(mut self, page: Page, decoded: Option<Decoded>) -> Result<Self, PartitionError> {
        let writer = &mut self.writer;
        let (hashed, policy) = (&self.hashed, &self.policy);
        let schema = &self.arrow;
        let mut rows = 0;
        let mut sink = |batch: RecordBatch| -> Result<(), PartitionError> {
            rows += batch.num_rows() as u64;
            let mut columns = batch.columns().to_vec();
            // Personal data is replaced before the encoder ever sees it.
            for &i in hashed {
                columns[i] = policy.hash_column(&columns[i]);
            }
            // The file's column names: a page decoded earlier has those of its schema then.
            let batch = RecordBatch::try_new(schema.clone(), columns).map_err(EncodeError::from)?;
            writer.write(&batch)?;
            Ok(())
        };
        let empty_strings =
            // Two moments of a run share the schema's allocation or its content when no change
            // came between (`Arc`'s `==` compares pointers first).
            match decoded.filter(|d| d.decode_schema == self.decode_schema) {
                Some(decoded) => {
                    for batch in decoded.batches {
                        sink(batch)?;
                    }
                    decoded.empty_strings
                }
                None => {
                    let decoder = match &mut self.decoder {
                        Some(decoder) => decoder,
                        None => self.decoder.insert(PageDecoder::new(
                            self.decode_schema.clone(),
                            schema.clone(),
                            self.page_size,
                        )?),
                    };
                    decoder.push(page.results_json(), &mut sink)?;
                    decoder.finish(&mut sink)?;
                    decoder.take_empty_strings()
                }
            };
        for (column, page_rows) in empty_strings {
            let file_rows = self.empty_strings.entry(column).or_default();
            file_rows.extend(page_rows.into_iter().map(|r| self.rows + r));
        }
        self.rows += rows;
        Ok(self)
    }

    /// Writes the footer and marks the file complete. Returns its size.
    fn finish(self) -> Result<u64, PartitionError> {
        let empty = EmptyStrings::from(self.empty_strings);
        let out = self.writer.finish(&empty)?;
        Ok(out.complete().map_err(EncodeError::from)?)
    }
}
