//! Bringing a dataset's files to its current schema: every file whose ledger entry names
//! another layout version (and any file a killed run placed without recording it) is rewritten
//! (see `sink::parquet::rewrite`). Runs at the end of every extraction and as
//! `cube-extract reconcile`, the fan-in step after many writers.

use std::collections::BTreeMap;

use futures::StreamExt;

use crate::pipeline::{now, Target, UnitError};
use crate::privacy::Policy;
use crate::sink::parquet::{file_info, rewrite, EncodeError};
use crate::sink::upload::{self, CHUNK_BYTES};
use crate::sink::{Committed, Destination, Layout, Ledger, LedgerRecord, StoreError};
use crate::unit::Unit;

pub(crate) struct Reconciler<'a> {
    pub(crate) dest: &'a Destination,
    pub(crate) layout: &'a Layout,
    /// Hashes columns that the new layout hashes and a file still holds in the clear.
    pub(crate) policy: &'a Policy,
    /// CPU slots shared with whatever else the process encodes.
    pub(crate) cpu: &'a tokio::sync::Semaphore,
}

impl Reconciler<'_> {
    /// Rewrites every file recorded under an older schema version (and any file a killed run
    /// placed without recording it) to the current dataset schema. Returns files and bytes written.
    pub(crate) async fn reconcile(
        &self,
        target: &Target,
        concurrency: usize,
    ) -> Result<(usize, u64), UnitError> {
        let version = target.version;
        let ledger = Ledger::new(self.dest, self.layout);
        let committed: BTreeMap<Unit, Committed> = ledger.load().await?;
        let mut stale: Vec<(Unit, Option<Committed>)> = committed
            .iter()
            .filter(|(_, c)| c.schema_version != version)
            .map(|(u, c)| (*u, Some(c.clone())))
            .collect();
        for meta in self.dest.list(&self.layout.table_root()).await? {
            if let Some(unit) = self.layout.unit_of(&meta.location) {
                if !committed.contains_key(&unit) {
                    stale.push((unit, None));
                }
            }
        }
        let results: Vec<Result<u64, UnitError>> = futures::stream::iter(stale)
            .map(|(unit, recorded)| self.bring_up_to_date(unit, recorded, target))
            .buffer_unordered(concurrency.clamp(1, 8))
            .collect()
            .await;
        let mut files = 0;
        let mut bytes = 0;
        for r in results {
            let written = r?;
            if written > 0 {
                files += 1;
                bytes += written;
            }
        }
        Ok((files, bytes))
    }

    async fn bring_up_to_date(
        &self,
        unit: Unit,
        recorded: Option<Committed>,
        target: &Target,
    ) -> Result<u64, UnitError> {
        let version = target.version;
        let path = self.layout.data_file(&unit);
        let ledger = Ledger::new(self.dest, self.layout);
        let mut record = match &recorded {
            Some(c) => self.read_record(c).await?,
            None => None,
        }
        .unwrap_or_else(|| LedgerRecord {
            campaign_id: unit.campaign_id,
            date: unit.day,
            rows: 0,
            pages: 0,
            file: None,
            schema_version: version,
            committed_at: now(),
        });
        let mut written = 0;
        if let Some(old) = self.dest.get(&path).await? {
            let t = target.arrow.clone();
            let meta = target.meta.clone();
            let policy = self.policy.clone();
            let (out, chunks) = upload::channel(CHUNK_BYTES);
            let cpu = self.cpu.acquire().await.expect("never closed");
            let job = tokio::task::spawn_blocking(move || {
                let info = file_info(&old)?;
                if info.schema.fields() == t.fields() && info.hashed == meta.hashed {
                    // Dropping `out` unfinished abandons the upload: nothing is written.
                    return Ok::<_, EncodeError>(None);
                }
                let (out, rows) = rewrite(old, t, meta, &policy, out)?;
                Ok(Some((out.complete()?, rows)))
            });
            // The CPU slot is free again as soon as the file is encoded, before it is placed.
            let job = async move {
                let done = job.await;
                drop(cpu);
                done
            };
            let placing = self.dest.upload(&path, self.layout.staging_dir(), chunks);
            let (job, placed) = tokio::join!(job, placing);
            let placed = placed?;
            if let Some((bytes, rows)) = job.expect("rewriting does not panic")? {
                if !placed {
                    return Err(UnitError::Encode(EncodeError::from(std::io::Error::other(
                        "the rewrite stopped before the file was complete",
                    ))));
                }
                written = bytes;
                tracing::info!(campaign = unit.campaign_id, day = %unit.day, rows, "rewrote file for the current dataset schema");
                record.rows = rows;
            }
            record.file = Some(path.to_string());
        }
        // Files nobody recorded stay unrecorded, so --resume fetches their day again.
        if recorded.is_some() {
            record.schema_version = version;
            ledger.record(&unit, &record).await?;
        }
        Ok(written)
    }

    /// The newest ledger record of a unit, if readable.
    async fn read_record(&self, c: &Committed) -> Result<Option<LedgerRecord>, StoreError> {
        let newest = c
            .entries
            .iter()
            .find(|p| p.filename() == Some(&format!("v{}.json", c.schema_version)));
        Ok(match newest {
            Some(p) => self
                .dest
                .get(p)
                .await?
                .and_then(|b| serde_json::from_slice(&b).ok()),
            None => None,
        })
    }
}

/// `cube-extract reconcile`: brings every file of `dataset` at `dest` to the newest committed
/// schema and settles `schema.json`. The error carries the exit code.
pub async fn run(dest: &str, dataset: crate::unit::Dataset) -> Result<(), (u8, String)> {
    use crate::report::exit;
    use crate::sink::{DestinationSpec, SchemaStore};
    let usage = |e: String| (exit::USAGE, e);
    let spec = DestinationSpec::parse(dest).map_err(usage)?;
    let dest = Destination::open(&spec).map_err(|e| usage(e.to_string()))?;
    let layout = Layout::new(dataset.name);
    dest.check(&layout.state_root())
        .await
        .map_err(|e| usage(e.to_string()))?;
    let store = SchemaStore::new(&dest, &layout);
    let Some((schema, _)) = store.load().await.map_err(usage)? else {
        return Err(usage(format!(
            "{} holds no {} dataset; check --dest and --table",
            dest.display(),
            dataset.name
        )));
    };
    // Hashing a file that still holds a column in the clear (a `--rewrite` run that was
    // stopped) needs the dataset's key.
    let spec = schema.policy();
    let key = std::env::var(crate::cli::env::HASH_KEY).ok();
    let policy = match Policy::new(&spec.drop_columns, &spec.hash_columns, key.as_deref()) {
        Ok(p) if p.spec().key_check == spec.key_check => p,
        Ok(_) => {
            return Err(usage(format!(
                "{} is not the key the dataset's columns were hashed with; set it to that key",
                crate::cli::env::HASH_KEY
            )))
        }
        Err(e) => return Err(usage(e)),
    };
    store
        .settle_mirror(&schema)
        .await
        .map_err(|e| (exit::PARTIAL, e.to_string()))?;
    let cpu = crate::partition::cpu_slots();
    let (files, bytes) = Reconciler {
        dest: &dest,
        layout: &layout,
        policy: &policy,
        cpu: &cpu,
    }
    .reconcile(&crate::pipeline::target_of(&schema), 8)
    .await
    .map_err(|e| {
        (
            exit::PARTIAL,
            format!("{e}; the files not yet rewritten keep their old columns: run reconcile again"),
        )
    })?;
    tracing::info!(
        dest = dest.display(),
        table = dataset.name,
        schema_version = schema.version,
        files_rewritten = files,
        bytes_written = bytes,
        "every file has the dataset schema"
    );
    Ok(())
}
