//! The ledger: one small object per committed partition, written the moment it commits, so a
//! killed run resumes where it stopped and several writers never contend on one file.
//!
//! `_cube_extract/<dataset>/ledger/campaign_id=<id>/date=<day>/v<schema version>.json`: the
//! version in the name lets one listing tell which files predate the current dataset schema.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::layout::Layout;
use super::store::{Destination, StoreError};
use crate::unit::Unit;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LedgerRecord {
    pub campaign_id: u64,
    pub date: chrono::NaiveDate,
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
    layout: &'a Layout,
}

impl<'a> Ledger<'a> {
    pub fn new(dest: &'a Destination, layout: &'a Layout) -> Ledger<'a> {
        Ledger { dest, layout }
    }

    /// Every committed unit, from one listing.
    pub async fn load(&self) -> Result<BTreeMap<Unit, Committed>, StoreError> {
        let mut out: BTreeMap<Unit, Committed> = BTreeMap::new();
        for meta in self.dest.list(&self.layout.ledger_root()).await? {
            let (Some(unit), Some(version)) = (
                self.layout.unit_of(&meta.location),
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

    /// Records a unit as committed under `record.schema_version`, then drops its older entries.
    pub async fn record(&self, unit: &Unit, record: &LedgerRecord) -> Result<(), StoreError> {
        let path = self.layout.ledger_entry(unit, record.schema_version);
        let body = serde_json::to_vec_pretty(record).expect("ledger record serialises");
        self.dest.put_state(&path, Bytes::from(body)).await?;
        for meta in self.dest.list(&self.layout.ledger_dir(unit)).await? {
            if meta.location != path {
                self.dest.delete(&meta.location).await?;
            }
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
