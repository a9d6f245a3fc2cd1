//! Where everything lives under `--dest` (the contract's "Output layout").

use chrono::{Datelike, NaiveDate};
use object_store::path::Path;

use crate::datasets::{Dataset, Partitioning, TableFormat};
use crate::sink::delta::Partition;
use crate::unit::{Crm, CrmType, Scope, Unit};

/// Folder of the tool's own state, beside (never under) the table roots.
pub const STATE_DIR: &str = "_cube_extract";
pub const DATA_FILE: &str = "part-00000.parquet";
/// The column of a month file that holds each row's day (in a day file, the day is the folder).
pub const DAY_COLUMN: &str = "date";
/// The folder key of a month file.
const MONTH_KEY: &str = "month";

/// The paths of one table and of its state under `--dest`.
#[derive(Clone, Debug)]
pub struct Paths {
    dataset: &'static str,
    /// The folder key of a partition's day (`date`, or `snapshot_date` of a kept snapshot).
    day_key: &'static str,
    partitioning: Partitioning,
    format: TableFormat,
}

/// The file of a month table that holds a month of one scope: the scope of its units, and
/// the first day of the month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct MonthKey(Unit);

impl MonthKey {
    pub(crate) fn of(unit: &Unit) -> Option<MonthKey> {
        let day = unit.day?;
        Some(MonthKey(Unit {
            scope: unit.scope,
            day: day.with_day(1),
        }))
    }

    /// The month's first day, as a unit of its scope.
    pub(crate) fn first_day(&self) -> Unit {
        self.0
    }

    /// `YYYY-MM`.
    pub(crate) fn month(&self) -> String {
        self.0
            .day
            .expect("a month key has its first day")
            .format("%Y-%m")
            .to_string()
    }
}

impl std::fmt::Display for MonthKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scope = Unit {
            day: None,
            ..self.0
        };
        write!(f, "{scope} {}", self.month())
    }
}

impl Paths {
    pub(crate) fn new(dataset: &Dataset) -> Paths {
        Paths {
            dataset: dataset.name,
            day_key: dataset.day_key(),
            partitioning: Partitioning::Day,
            format: TableFormat::DEFAULT,
        }
    }

    /// The paths of a stored table, cut as its schema says.
    pub(crate) fn of_schema(dataset: &Dataset, schema: &crate::schema::DatasetSchema) -> Paths {
        Paths::new(dataset)
            .cut_by(schema.partitioning.unwrap_or(Partitioning::OLDER_TABLES))
            .in_format(schema.format.unwrap_or(TableFormat::DEFAULT))
    }

    /// The paths of a table whose files are cut by `partitioning`.
    pub(crate) fn cut_by(self, partitioning: Partitioning) -> Paths {
        Paths {
            partitioning,
            ..self
        }
    }

    /// The paths of a table of `format`.
    pub(crate) fn in_format(self, format: TableFormat) -> Paths {
        Paths { format, ..self }
    }

    /// Whether a Delta log says which files hold the table's rows (rather than the files
    /// being there).
    pub(crate) fn is_delta(&self) -> bool {
        self.format == TableFormat::Delta
    }

    /// The name of a new data file: in a Delta table each write's own, so that a path is never
    /// reused and the versions before it keep their files.
    fn new_file_name(&self) -> String {
        match self.format {
            TableFormat::Parquet => DATA_FILE.to_owned(),
            TableFormat::Delta => format!("part-00000-{}.parquet", uuid::Uuid::new_v4()),
        }
    }

    /// A new data file in the folder of `path`.
    pub(crate) fn new_file_beside(&self, path: &Path) -> Path {
        let mut parts: Vec<_> = path.parts().collect();
        parts.pop();
        Path::from_iter(parts).join(self.new_file_name())
    }

    /// The folder and partition values of a unit's files (a day of a day table, a snapshot).
    pub(crate) fn partition_of(&self, unit: &Unit) -> Partition {
        Partition {
            dir: self.partition_dir(unit),
            values: unit.folders(self.day_key),
        }
    }

    /// The folder and partition values of a month's file.
    pub(crate) fn partition_of_month(&self, month: &MonthKey) -> Partition {
        let scope = Unit {
            day: None,
            ..month.0
        };
        let mut values = scope.folders(self.day_key);
        values.push((MONTH_KEY, month.month()));
        Partition {
            dir: self
                .partition_dir(&scope)
                .join(format!("{MONTH_KEY}={}", month.month())),
            values,
        }
    }

    /// The month whose file a month table's partition holds.
    pub(crate) fn month_of_partition(&self, partition: &Partition) -> Option<MonthKey> {
        let (_, month) = partition.values.iter().find(|(k, _)| *k == MONTH_KEY)?;
        let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
        let scope = self.unit_of(&partition.dir)?;
        MonthKey::of(&Unit {
            day: Some(first),
            ..scope
        })
    }

    /// A table's partition columns, outermost first, as a Delta table declares them: the scope's
    /// keys, then the month or the day (of a day, or of a kept snapshot).
    pub(crate) fn partition_keys(
        &self,
        scope_keys: &[&'static str],
        dated: bool,
    ) -> Vec<&'static str> {
        let mut keys = scope_keys.to_vec();
        if dated {
            keys.push(match self.partitioning {
                Partitioning::Month if self.day_key == DAY_COLUMN => MONTH_KEY,
                _ => self.day_key,
            });
        }
        keys
    }

    /// Whether the table's files are months built from day segments.
    pub(crate) fn builds_months(&self) -> bool {
        self.partitioning == Partitioning::Month
    }

    /// The month file a unit's rows live in, for a month table.
    pub(crate) fn month_of(&self, unit: &Unit) -> Option<MonthKey> {
        match self.partitioning {
            Partitioning::Month => MonthKey::of(unit),
            Partitioning::Day => None,
        }
    }

    /// The folder key of a partition's day.
    pub(crate) fn day_key(&self) -> &'static str {
        self.day_key
    }

    /// Below `root`, the partition's Hive folders.
    fn partition_under(&self, root: Path, unit: &Unit) -> Path {
        unit.folders(self.day_key)
            .into_iter()
            .fold(root, |path, (key, value)| {
                path.join(format!("{key}={value}"))
            })
    }

    pub fn table_root(&self) -> Path {
        Path::from(self.dataset)
    }

    pub(crate) fn partition_dir(&self, unit: &Unit) -> Path {
        self.partition_under(self.table_root(), unit)
    }

    /// The file that holds one unit's rows on its own: in a day table, the table's file; in a
    /// month table, the day's segment under the tool's state, from which its month is built.
    pub(crate) fn data_file(&self, unit: &Unit) -> Path {
        match self.month_of(unit) {
            None => self.partition_dir(unit).join(self.new_file_name()),
            Some(month) => self
                .segments_of(&month)
                .join(format!(
                    "{}={}",
                    self.day_key,
                    unit.day.expect("a month key's unit has a day")
                ))
                .join(DATA_FILE),
        }
    }

    /// The file a reader finds a unit's rows in (the ledger and the report name it).
    pub(crate) fn table_file(&self, unit: &Unit) -> Path {
        match self.month_of(unit) {
            None => self.data_file(unit),
            Some(month) => self.month_file(&month),
        }
    }

    /// Where the files of single units live: the table, or a month table's segments.
    pub(crate) fn unit_files_root(&self) -> Path {
        match self.partitioning {
            Partitioning::Day => self.table_root(),
            Partitioning::Month => self.state_root().join("days"),
        }
    }

    /// The folder of a month's day segments (each day in its `date=` folder).
    pub(crate) fn segments_of(&self, month: &MonthKey) -> Path {
        self.partition_under(
            self.unit_files_root(),
            &Unit {
                day: None,
                ..month.0
            },
        )
        .join(format!("{MONTH_KEY}={}", month.month()))
    }

    /// The file of a month of a month table.
    pub(crate) fn month_file(&self, month: &MonthKey) -> Path {
        self.partition_under(
            self.table_root(),
            &Unit {
                day: None,
                ..month.0
            },
        )
        .join(format!("{MONTH_KEY}={}", month.month()))
        .join(self.new_file_name())
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

    pub(crate) fn ledger_dir(&self, unit: &Unit) -> Path {
        self.partition_under(self.ledger_root(), unit)
    }

    pub(crate) fn ledger_entry(&self, unit: &Unit, schema_version: u64) -> Path {
        self.ledger_dir(unit)
            .join(format!("v{schema_version}.json"))
    }

    /// Local destinations write data files here first, then rename them into place.
    pub fn staging_dir(&self) -> Path {
        self.state_root().join("staging")
    }

    /// The unit a path under the table root or the ledger belongs to, if it is one.
    pub(crate) fn unit_of(&self, path: &Path) -> Option<Unit> {
        let (mut campaign, mut owner, mut crm_type, mut day) = (None, None, None, None);
        for part in path.parts() {
            let part = part.as_ref();
            let Some((key, value)) = part.split_once('=') else {
                continue;
            };
            match key {
                "campaign_id" => campaign = Some(value.parse().ok()?),
                "data_owner_id" => owner = Some(value.parse().ok()?),
                "crm_type" => crm_type = Some(CrmType::parse(value)?),
                k if k == self.day_key => {
                    day = Some(NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?)
                }
                _ => {}
            }
        }
        let scope = match (campaign, owner, crm_type) {
            (Some(id), None, None) => Scope::Campaign(id),
            (None, Some(data_owner_id), Some(crm_type)) => Scope::Crm(Crm {
                data_owner_id,
                crm_type,
            }),
            (None, None, None) => Scope::Account,
            _ => return None,
        };
        Some(Unit { scope, day })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_contract() {
        let l = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let u = Unit::campaign_day(926, NaiveDate::from_ymd_opt(2019, 8, 14).unwrap());
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

    #[test]
    fn month_tables_keep_days_as_segments_and_show_months() {
        let l = Paths::new(&crate::datasets::CALL_OUTCOMES).cut_by(Partitioning::Month);
        let u = Unit::campaign_day(926, NaiveDate::from_ymd_opt(2019, 8, 14).unwrap());
        assert_eq!(
            l.table_file(&u).as_ref(),
            "call_outcomes/campaign_id=926/month=2019-08/part-00000.parquet"
        );
        assert_eq!(
            l.data_file(&u).as_ref(),
            "_cube_extract/call_outcomes/days/campaign_id=926/month=2019-08/date=2019-08-14/part-00000.parquet"
        );
        assert_eq!(l.unit_of(&l.data_file(&u)), Some(u));
        assert_eq!(l.unit_of(&l.ledger_entry(&u, 7)), Some(u));
        assert!(l
            .data_file(&u)
            .prefix_matches(&l.segments_of(&l.month_of(&u).unwrap())));
        let account = Paths::new(
            &crate::datasets::PRODUCT_REGISTRATIONS
                .at(crate::datasets::ScopeKind::Account)
                .unwrap(),
        )
        .cut_by(Partitioning::Month);
        let a = Unit {
            scope: Scope::Account,
            day: u.day,
        };
        assert_eq!(
            account.table_file(&a).as_ref(),
            "product_registrations/month=2019-08/part-00000.parquet"
        );
    }

    #[test]
    fn snapshot_paths_nest_crm_and_day() {
        let l = Paths::new(&crate::datasets::CUSTOMERS);
        let crm = Crm {
            data_owner_id: 2,
            crm_type: CrmType::B2C,
        };
        let replaced = Unit {
            scope: Scope::Crm(crm),
            day: None,
        };
        assert_eq!(
            l.data_file(&replaced).as_ref(),
            "customers/data_owner_id=2/crm_type=B2C/part-00000.parquet"
        );
        let kept = Unit {
            day: NaiveDate::from_ymd_opt(2026, 12, 2),
            ..replaced
        };
        assert_eq!(
            l.data_file(&kept).as_ref(),
            "customers/data_owner_id=2/crm_type=B2C/snapshot_date=2026-12-02/part-00000.parquet"
        );
        assert_eq!(l.unit_of(&l.ledger_entry(&kept, 3)), Some(kept));
        assert_eq!(l.unit_of(&l.data_file(&replaced)), Some(replaced));
        let whole = Paths::new(&crate::datasets::CAMPAIGNS);
        let account = Unit {
            scope: Scope::Account,
            day: None,
        };
        assert_eq!(
            whole.data_file(&account).as_ref(),
            "campaigns/part-00000.parquet"
        );
    }
}
