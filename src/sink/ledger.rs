//! The ledger: one small object per committed partition, written the moment it commits, so a
//! killed run resumes where it stopped and several writers never contend on one file.
//!
//! `_cube_extract/<dataset>/ledger/campaign_id=<id>/date=<day>/v<schema version>.json`: the
//! version in the name lets one listing tell which files predate the current dataset schema.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::paths::Paths;
use super::store::{Destination, StoreError};
use crate::unit::Unit;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerRecord {
    /// The partition values (`campaign_id` and `date`, `data_owner_id` and `crm_type`, ...).
    #[serde(flatten)]
    pub partition: serde_json::Map<String, serde_json::Value>,
    /// When the snapshot in the file began (UTC, RFC 3339); `None` for a day partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_at: Option<String>,
    pub rows: usize,
    pub pages: usize,
    /// The data file, relative to `--dest`; `None` for a day without records.
    pub file: Option<String>,
    pub schema_version: u64,
    pub committed_at: String,
}

/// What a listing of the ledger tells about one committed unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Committed {
    /// Newest schema version recorded for the unit.
    pub schema_version: u64,
    /// Every entry object of the unit (older ones linger only if a run died mid-update).
    pub entries: Vec<Path>,
}

pub struct Ledger<'a> {
    dest: &'a Destination,
    paths: &'a Paths,
}

impl<'a> Ledger<'a> {
    pub fn new(dest: &'a Destination, paths: &'a Paths) -> Ledger<'a> {
        Ledger { dest, paths }
    }

    /// Every committed unit, from one listing.
    pub async fn load(&self) -> Result<BTreeMap<Unit, Committed>, StoreError> {
        let mut out: BTreeMap<Unit, Committed> = BTreeMap::new();
        for meta in self.dest.list(&self.paths.ledger_root()).await? {
            let (Some(unit), Some(version)) = (
                self.paths.unit_of(&meta.location),
                version_of(&meta.location),
            ) else {
                continue;
            };
            let c = out.entry(unit).or_insert(Committed {
                schema_version: version,
                entries: Vec::new(),
            });
            c.schema_version = c.schema_version.max(version);
            c.entries.push(meta.location);
        }
        Ok(out)
    }

    /// The newest record of a committed unit, if it can be read.
    pub async fn read(&self, committed: &Committed) -> Result<Option<LedgerRecord>, StoreError> {
        let newest = committed
            .entries
            .iter()
            .max_by_key(|p| version_of(p).unwrap_or(0));
        let Some(path) = newest else {
            return Ok(None);
        };
        Ok(self
            .dest
            .get(path)
            .await?
            .and_then(|body| serde_json::from_slice(&body).ok()))
    }

    /// The newest record of one unit, from a fresh listing of its entries: for a unit whose
    /// entry another writer replaced since the ledger was listed.
    pub async fn read_unit(&self, unit: &Unit) -> Result<Option<LedgerRecord>, StoreError> {
        let entries: Vec<Path> = self
            .listed(unit)
            .await?
            .into_iter()
            .filter(|p| version_of(p).is_some())
            .collect();
        let Some(schema_version) = entries.iter().filter_map(version_of).max() else {
            return Ok(None);
        };
        self.read(&Committed {
            schema_version,
            entries,
        })
        .await
    }

    /// Records a unit as committed under `record.schema_version`, then drops its older entries.
    pub async fn record(&self, unit: &Unit, record: &LedgerRecord) -> Result<(), StoreError> {
        let path = self.put(unit, record).await?;
        let older = self.listed(unit).await?;
        self.drop_entries(&path, &older).await
    }

    /// Every object in a unit's ledger folder, from a fresh listing.
    async fn listed(&self, unit: &Unit) -> Result<Vec<Path>, StoreError> {
        let listing = self.dest.list(&self.paths.ledger_dir(unit)).await?;
        Ok(listing.into_iter().map(|meta| meta.location).collect())
    }

    /// Records a unit anew in place of the entries a listing found for it (`replaced`): no
    /// listing of its own, which on S3 is one request per rewritten file saved.
    pub async fn replace(
        &self,
        unit: &Unit,
        record: &LedgerRecord,
        replaced: &Committed,
    ) -> Result<(), StoreError> {
        let path = self.put(unit, record).await?;
        self.drop_entries(&path, &replaced.entries).await
    }

    async fn put(&self, unit: &Unit, record: &LedgerRecord) -> Result<Path, StoreError> {
        let path = self.paths.ledger_entry(unit, record.schema_version);
        let body = serde_json::to_vec_pretty(record).expect("ledger record serialises");
        self.dest.put_state(&path, Bytes::from(body)).await?;
        Ok(path)
    }

    async fn drop_entries(&self, kept: &Path, entries: &[Path]) -> Result<(), StoreError> {
        for entry in entries.iter().filter(|e| *e != kept) {
            self.dest.delete(entry).await?;
        }
        Ok(())
    }
}

fn version_of(path: &Path) -> Option<u64> {
    path.filename()?
        .strip_prefix('v')?
        .strip_suffix(".json")?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::DestinationSpec;

    fn record(unit: &Unit, version: u64) -> LedgerRecord {
        LedgerRecord {
            partition: unit.values("date"),
            snapshot_at: None,
            rows: 3,
            pages: 1,
            file: Some("f".into()),
            schema_version: version,
            committed_at: String::new(),
        }
    }

    #[tokio::test]
    async fn records_replace_older_entries_and_load_lists_every_unit() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let ledger = Ledger::new(&dest, &paths);
        let day = |d| chrono::NaiveDate::from_ymd_opt(2019, 8, d).unwrap();
        let a = Unit::campaign_day(101, day(1));
        let b = Unit::campaign_day(102, day(2));
        assert!(ledger.load().await.unwrap().is_empty());
        ledger.record(&a, &record(&a, 1)).await.unwrap();
        ledger.record(&a, &record(&a, 3)).await.unwrap();
        ledger.record(&b, &record(&b, 2)).await.unwrap();
        let loaded = ledger.load().await.unwrap();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[&a].schema_version, 3);
        assert_eq!(loaded[&a].entries, vec![paths.ledger_entry(&a, 3)]);
        assert_eq!(loaded[&b].schema_version, 2);
        let stored = dest.get(&paths.ledger_entry(&a, 3)).await.unwrap().unwrap();
        let back: LedgerRecord = serde_json::from_slice(&stored).unwrap();
        assert_eq!((back.rows, back.schema_version), (3, 3));
    }

    /// An entry a killed run left beside a newer one counts as the newer version.
    #[tokio::test]
    async fn the_newest_of_lingering_entries_wins() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let unit = Unit::campaign_day(7, chrono::NaiveDate::from_ymd_opt(2020, 2, 29).unwrap());
        for v in [4, 2] {
            let body = serde_json::to_vec(&record(&unit, v)).unwrap();
            dest.put_state(&paths.ledger_entry(&unit, v), Bytes::from(body))
                .await
                .unwrap();
        }
        let loaded = Ledger::new(&dest, &paths).load().await.unwrap();
        assert_eq!(loaded[&unit].schema_version, 4);
        assert_eq!(loaded[&unit].entries.len(), 2);
    }
}
