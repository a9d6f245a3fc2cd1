//! Which files of a Delta table no version a reader may still ask for reads (`cube-extract
//! vacuum`).

use object_store::path::Path;

use super::{DeltaError, DeltaLog, LOG_DIR};
use crate::sink::{Destination, StoreError};

impl DeltaLog {
    /// The files under the table's folder that no version a reader may still ask for reads:
    /// neither the latest version, nor one whose files were removed at or after `cutoff` (Unix
    /// milliseconds), and were themselves written before it (so a file of a commit in flight
    /// is left alone). With the number of files referenced.
    pub(crate) async fn unreferenced(
        &self,
        dest: &Destination,
        cutoff: i64,
    ) -> Result<(Vec<object_store::ObjectMeta>, usize), DeltaError> {
        let table = Path::from(self.inner.table.as_str());
        let log = table.clone().join(LOG_DIR);
        let unreadable = |e: StoreError| self.inner.unreadable(e);
        let mut kept: std::collections::HashSet<String> = self
            .active_files()
            .await?
            .map(|(_, files)| files.into_iter().map(|f| f.path.to_string()).collect())
            .unwrap_or_default();
        for commit in dest.list(&log).await.map_err(unreadable)? {
            if commit.location.extension() != Some("json") {
                continue;
            }
            let bytes = dest
                .get(&commit.location)
                .await
                .map_err(unreadable)?
                .unwrap_or_default();
            for path in removed_since(&bytes, cutoff) {
                kept.insert(format!("{table}/{path}"));
            }
        }
        let listed = dest.list(&table).await.map_err(unreadable)?;
        let referenced = kept.len();
        let unreferenced = listed
            .into_iter()
            .filter(|m| !m.location.as_ref().starts_with(log.as_ref()))
            .filter(|m| !kept.contains(m.location.as_ref()))
            .filter(|m| m.last_modified.timestamp_millis() < cutoff)
            .collect();
        Ok((unreferenced, referenced))
    }
}

/// The paths a commit file's `remove` actions removed at or after `cutoff` (Unix ms).
fn removed_since(bytes: &[u8], cutoff: i64) -> Vec<String> {
    bytes
        .split(|b| *b == b'\n')
        .filter_map(|line| serde_json::from_slice::<serde_json::Value>(line).ok())
        .filter_map(|action| {
            let remove = action.get("remove")?;
            let at = remove
                .get("deletionTimestamp")?
                .as_i64()
                .unwrap_or(i64::MAX);
            (at >= cutoff).then(|| remove.get("path")?.as_str().map(str::to_owned))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_count_from_their_deletion_time() {
        let log = br#"{"remove":{"path":"a=1/x.parquet","deletionTimestamp":100}}
{"remove":{"path":"a=1/y.parquet","deletionTimestamp":300}}
{"add":{"path":"a=1/z.parquet"}}
"#;
        assert_eq!(removed_since(log, 200), ["a=1/y.parquet"]);
        assert_eq!(removed_since(log, 50).len(), 2);
    }
}
