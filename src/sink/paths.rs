//! Where everything lives under `--dest` (the contract's "Output layout").

use chrono::NaiveDate;
use object_store::path::Path;

use crate::unit::Unit;

/// Folder of the tool's own state, beside (never under) the table roots.
pub const STATE_DIR: &str = "_cube_extract";
pub const DATA_FILE: &str = "part-00000.parquet";

/// The paths of one table and of its state under `--dest`.
#[derive(Clone, Debug)]
pub struct Paths {
    dataset: &'static str,
}

impl Paths {
    pub fn new(dataset: &'static str) -> Paths {
        Paths { dataset }
    }

    pub fn table_root(&self) -> Path {
        Path::from(self.dataset)
    }

    pub fn partition_dir(&self, unit: &Unit) -> Path {
        self.table_root()
            .join(format!("campaign_id={}", unit.campaign_id))
            .join(format!("date={}", unit.day))
    }

    pub fn data_file(&self, unit: &Unit) -> Path {
        self.partition_dir(unit).join(DATA_FILE)
    }

    pub fn state_root(&self) -> Path {
        Path::from(STATE_DIR).join(self.dataset)
    }

    pub fn schema_file(&self) -> Path {
        self.state_root().join("schema.json")
    }

    /// Where the committed generations of the dataset schema live (see `schema_store`).
    pub fn schema_generations(&self) -> Path {
        self.state_root().join("schema")
    }

    pub fn schema_generation(&self, generation: u64) -> Path {
        self.schema_generations()
            .join(format!("g{generation:010}.json"))
    }

    /// The generation number of a path made by [`Paths::schema_generation`].
    pub fn generation_of(path: &Path) -> Option<u64> {
        path.filename()?
            .strip_prefix('g')?
            .strip_suffix(".json")?
            .parse()
            .ok()
    }

    pub fn ledger_root(&self) -> Path {
        self.state_root().join("ledger")
    }

    pub fn ledger_dir(&self, unit: &Unit) -> Path {
        self.ledger_root()
            .join(format!("campaign_id={}", unit.campaign_id))
            .join(format!("date={}", unit.day))
    }

    pub fn ledger_entry(&self, unit: &Unit, schema_version: u64) -> Path {
        self.ledger_dir(unit)
            .join(format!("v{schema_version}.json"))
    }

    /// Local destinations write data files here first, then rename them into place.
    pub fn staging_dir(&self) -> Path {
        self.state_root().join("staging")
    }

    /// The unit a path under the table root or the ledger belongs to, if it is one.
    pub fn unit_of(&self, path: &Path) -> Option<Unit> {
        let mut campaign = None;
        let mut day = None;
        for part in path.parts() {
            let part = part.as_ref();
            if let Some(v) = part.strip_prefix("campaign_id=") {
                campaign = v.parse().ok();
            } else if let Some(v) = part.strip_prefix("date=") {
                day = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
            }
        }
        Some(Unit {
            campaign_id: campaign?,
            day: day?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let l = Paths::new("call_outcomes");
        let u = Unit {
            campaign_id: 926,
            day: NaiveDate::from_ymd_opt(2019, 8, 14).unwrap(),
        };
        assert_eq!(
            l.data_file(&u).as_ref(),
            "call_outcomes/campaign_id=926/date=2019-08-14/part-00000.parquet"
        );
        assert_eq!(
            l.schema_file().as_ref(),
            "_cube_extract/call_outcomes/schema.json"
        );
        assert_eq!(l.unit_of(&l.ledger_entry(&u, 7)), Some(u));
        assert_eq!(l.unit_of(&l.data_file(&u)), Some(u));
    }
}
