//! What the latest version holds, day by day: the record `--resume` and `status` believe over
//! the ledger.

use std::collections::{BTreeMap, HashSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use super::DeltaLog;
use crate::sink::parquet::{day_files_in, days_in_footer};
use crate::sink::{Committed, Destination, Ledger, Paths, StoreError};
use crate::unit::Unit;

impl DeltaLog {
    /// The units (days, snapshots) whose rows the latest version holds: a day or snapshot
    /// file's own; the days a month file was built from (`cube.days` in its footer).
    pub(crate) async fn units_held(
        &self,
        dest: &Destination,
        paths: &Paths,
    ) -> Result<HashSet<Unit>, StoreError> {
        let files = match self
            .active_files()
            .await
            .map_err(|e| StoreError::Delta(Box::new(e)))?
        {
            Some((_, files)) => files,
            None => return Ok(HashSet::new()),
        };
        let mut held = HashSet::new();
        if !paths.builds_months() {
            held.extend(files.iter().filter_map(|f| paths.unit_of(&f.path)));
            return Ok(held);
        }
        let days: Vec<Option<String>> = futures::stream::iter(files)
            .map(|f| async move { footer_days(dest, &f.path, f.bytes).await })
            .buffer_unordered(FOOTERS_AT_ONCE)
            .try_collect()
            .await?;
        for days in days.into_iter().flatten() {
            held.extend(
                day_files_in(&days)
                    .iter()
                    .filter_map(|segment| paths.unit_of(&Path::from(segment.as_str()))),
            );
        }
        Ok(held)
    }

    /// `committed` (the ledger's units) less those with rows that the latest version does not
    /// hold: the log is the record of which files hold the data, and the ledger never says
    /// more than it. An empty day (no file) is the ledger's alone.
    pub(crate) async fn confirm(
        &self,
        dest: &Destination,
        paths: &Paths,
        committed: BTreeMap<Unit, Committed>,
    ) -> Result<BTreeMap<Unit, Committed>, StoreError> {
        let held = self.units_held(dest, paths).await?;
        let ledger = Ledger::new(dest, paths);
        let mut confirmed = BTreeMap::new();
        for (unit, c) in committed {
            let keep =
                held.contains(&unit) || ledger.read(&c).await?.is_some_and(|r| r.file.is_none());
            if keep {
                confirmed.insert(unit, c);
            } else {
                tracing::debug!(table = self.inner.table, %unit, "recorded in the ledger, not held by the Delta log: not committed");
            }
        }
        Ok(confirmed)
    }
}

/// Footers read at once by [`DeltaLog::units_held`].
const FOOTERS_AT_ONCE: usize = 8;

/// The bytes read from a file's end to find its footer in one request, most times.
const FOOTER_GUESS: u64 = 64 * 1024;

/// The `cube.days` of the Parquet file at `path` (`size` bytes), reading only its footer.
async fn footer_days(
    dest: &Destination,
    path: &Path,
    size: u64,
) -> Result<Option<String>, StoreError> {
    let mut want = FOOTER_GUESS.min(size);
    loop {
        let tail = dest.get_range(path, size - want..size).await?;
        match days_in_footer(&tail, size) {
            Ok(days) => return Ok(days),
            Err(needed) => want = needed.min(size),
        }
    }
}
