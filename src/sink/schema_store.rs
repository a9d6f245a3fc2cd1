//! The dataset schema at the destination, safe with several writers at once.
//!
//! Every change is committed as a new immutable generation
//! `_cube_extract/<table>/schema/g<N>.json`, created only if it does not exist yet (an
//! exclusive create: a hard link on local disk, `If-None-Match: *` on S3). A writer that loses
//! the race for generation N reads the newest generation, adds its own columns and widenings on
//! top of it, and tries N+1; so the generations form one line in which no writer's change is
//! lost. `schema.json` mirrors the newest generation for people and tools; the generations are
//! the truth.
//!
//! The layout `version` (which names files' ledger entries) is raised at a commit only when
//! the layout changed, and always above its base's, so one version denotes one layout across
//! all writers.

use bytes::Bytes;
use object_store::path::Path;

use super::{Destination, Paths, StoreError};
use crate::schema::{DatasetSchema, SchemaChange};

/// The committed state a writer builds on.
#[derive(Clone, Debug)]
pub struct Base {
    /// The newest generation read or committed (0: none yet).
    pub generation: u64,
    /// The layout version of that generation.
    pub version: u64,
    layout: FileLayout,
}

/// What decides whether a file must be rewritten: columns, their types, and which are hashed.
type FileLayout = (arrow_schema::SchemaRef, Vec<String>);

fn layout_of(schema: &DatasetSchema) -> FileLayout {
    (schema.arrow(), schema.hashed_columns())
}

impl Base {
    /// No generation yet: a new dataset.
    pub fn empty() -> Base {
        Base {
            generation: 0,
            version: 0,
            layout: (
                std::sync::Arc::new(arrow_schema::Schema::empty()),
                Vec::new(),
            ),
        }
    }

    fn of(generation: u64, schema: &DatasetSchema) -> Base {
        Base {
            generation,
            version: schema.version,
            layout: layout_of(schema),
        }
    }
}

pub struct SchemaStore<'a> {
    dest: &'a Destination,
    paths: &'a Paths,
}

impl<'a> SchemaStore<'a> {
    pub fn new(dest: &'a Destination, paths: &'a Paths) -> SchemaStore<'a> {
        SchemaStore { dest, paths }
    }

    /// The newest committed schema and its base: the newest generation, else `schema.json` (a
    /// dataset from before generations), else `None`. The error names the bad file.
    pub async fn load(&self) -> Result<Option<(DatasetSchema, Base)>, StoreError> {
        let (generation, path) = match self.newest_generation().await? {
            Some((g, path)) => (g, path),
            None => (0, self.paths.schema_file()),
        };
        let Some(bytes) = self.dest.get(&path).await? else {
            return Ok(None);
        };
        let schema =
            DatasetSchema::from_json(&bytes).map_err(|e| self.dest.bad_schema(&path, e))?;
        let base = Base::of(generation, &schema);
        Ok(Some((schema, base)))
    }

    /// Commits `schema` as the next generation after `base`. If another writer got there first,
    /// `schema` is rebuilt on the newest generation and committed after it. On return `schema`
    /// is what was committed and `base` its generation. Returns the widenings that taking up
    /// other writers' changes brought to this writer's columns.
    pub async fn commit(
        &self,
        schema: &mut DatasetSchema,
        base: &mut Base,
    ) -> Result<Vec<SchemaChange>, StoreError> {
        let before = schema.clone();
        loop {
            let generation = base.generation + 1;
            schema.version = if layout_of(schema) != base.layout {
                base.version + 1
            } else {
                base.version
            };
            let json = Bytes::from(schema.to_json());
            let path = self.paths.schema_generation(generation);
            // Read back what was created: an S3-compatible store whose conditional create is
            // not atomic (moto's is a check, then a put) can let two writers both "create"
            // the same generation; the one that reads back the other's bytes lost.
            if self.dest.create_state(&path, json.clone()).await?
                && self.dest.get(&path).await?.as_ref() == Some(&json)
            {
                *base = Base::of(generation, schema);
                // The mirror may briefly lag when writers race; `reconcile` settles it.
                self.dest.put_state(&self.paths.schema_file(), json).await?;
                return Ok(schema.widenings_since(&before));
            }
            let Some((newest, path)) = self.newest_generation().await? else {
                continue;
            };
            let bytes = self.dest.get(&path).await?.unwrap_or_default();
            let theirs =
                DatasetSchema::from_json(&bytes).map_err(|e| self.dest.bad_schema(&path, e))?;
            tracing::debug!(
                generation = newest,
                "another writer changed the dataset schema; building on its change"
            );
            *schema = schema.rebased_on(&theirs);
            *base = Base::of(newest, &theirs);
        }
    }

    /// Takes up what other writers committed since `base`, at the end of a run. If the newest
    /// generation lacks some of this writer's columns or widenings, they are committed again:
    /// a store whose conditional create is not atomic (moto's) can let two writers both win
    /// one generation, the later put replacing the earlier writer's change, and this writer's
    /// files hold those columns. On return `schema` and `base` are the newest generation (or
    /// what was committed after it); returns the widenings taking up others' changes brought.
    pub async fn settle(
        &self,
        schema: &mut DatasetSchema,
        base: &mut Base,
    ) -> Result<Vec<SchemaChange>, StoreError> {
        let Some((newest, newest_base)) = self.load().await? else {
            return Ok(Vec::new());
        };
        let rebased = schema.rebased_on(&newest);
        let changes = rebased.widenings_since(schema);
        if layout_of(&rebased) != newest_base.layout {
            tracing::debug!(
                generation = newest_base.generation,
                "the newest dataset schema lacks some of this run's columns; committing them again"
            );
            *schema = rebased;
            *base = newest_base;
            let mut taken_up = self.commit(schema, base).await?;
            taken_up.extend(changes);
            return Ok(taken_up);
        }
        if newest_base.generation != base.generation || rebased.to_json() != schema.to_json() {
            *schema = rebased;
            *base = newest_base;
            self.settle_mirror(schema).await?;
        }
        Ok(changes)
    }

    /// Writes `schema.json` from the newest generation (after concurrent writers, whose mirror
    /// writes may have landed out of order).
    pub async fn settle_mirror(&self, schema: &DatasetSchema) -> Result<(), StoreError> {
        self.dest
            .put_state(&self.paths.schema_file(), Bytes::from(schema.to_json()))
            .await
    }

    /// The newest generation's number and path.
    pub async fn newest_generation(&self) -> Result<Option<(u64, Path)>, StoreError> {
        let listed = self.dest.list(&self.paths.schema_generations()).await?;
        Ok(listed
            .into_iter()
            .filter_map(|m| Some((Paths::generation_of(&m.location)?, m.location)))
            .max_by_key(|(g, _)| *g))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::keys_of;
    use crate::schema::test_schema_with as schema_with;
    use crate::sink::DestinationSpec;

    fn has(schema: &DatasetSchema, column: &str) -> bool {
        schema.columns().iter().any(|c| c.name == column)
    }

    /// Writers that race for the same generation all land, one generation after another, and
    /// the newest holds every writer's columns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_writers_lose_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let store = SchemaStore::new(&dest, &paths);
        let writers = 6;
        let commits = (0..writers).map(|w| {
            let store = &store;
            async move {
                let mut schema = schema_with(&format!(r#"[{{"writer_{w}": {w}}}]"#));
                let mut base = Base::empty();
                store.commit(&mut schema, &mut base).await.unwrap();
                base.generation
            }
        });
        let mut generations = futures::future::join_all(commits).await;
        generations.sort();
        assert_eq!(generations, (1..=writers).collect::<Vec<u64>>());
        let (newest, base) = store.load().await.unwrap().unwrap();
        assert_eq!(base.generation, writers);
        for w in 0..writers {
            assert!(has(&newest, &format!("writer_{w}")), "writer {w} was lost");
        }
        let mirror = dest.get(&paths.schema_file()).await.unwrap().unwrap();
        assert!(DatasetSchema::from_json(&mirror).is_ok());
    }

    /// A commit that changes no layout keeps the version; one that adds a column raises it.
    #[tokio::test]
    async fn versions_rise_only_with_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let store = SchemaStore::new(&dest, &paths);
        let mut schema = schema_with(r#"[{"a": 1}]"#);
        let mut base = Base::empty();
        store.commit(&mut schema, &mut base).await.unwrap();
        let first = base.version;
        store.commit(&mut schema, &mut base).await.unwrap();
        assert_eq!((base.generation, base.version), (2, first));
        let keys = keys_of(r#"[{"b": "x"}]"#);
        schema.merge(&keys, chrono::NaiveDate::from_ymd_opt(2019, 8, 2).unwrap());
        store.commit(&mut schema, &mut base).await.unwrap();
        assert_eq!((base.generation, base.version), (3, first + 1));
    }

    /// A store whose conditional create is not atomic let another writer's put replace this
    /// writer's generation: settling at the end of the run commits this writer's columns again.
    #[tokio::test]
    async fn settling_commits_again_what_a_lost_race_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        let store = SchemaStore::new(&dest, &paths);
        let mut ours = schema_with(r#"[{"ours": 1}]"#);
        let mut base = Base::empty();
        store.commit(&mut ours, &mut base).await.unwrap();
        // The other writer "also won" generation 1: its put landed after ours.
        let theirs = schema_with(r#"[{"theirs": "a"}]"#);
        dest.put_state(&paths.schema_generation(1), Bytes::from(theirs.to_json()))
            .await
            .unwrap();

        store.settle(&mut ours, &mut base).await.unwrap();
        assert_eq!(base.generation, 2);
        let (newest, _) = store.load().await.unwrap().unwrap();
        assert!(has(&newest, "ours") && has(&newest, "theirs"));
        assert!(newest.version > theirs.version);

        // Nothing lost: settling again commits nothing.
        store.settle(&mut ours, &mut base).await.unwrap();
        assert_eq!(base.generation, 2);
    }

    #[tokio::test]
    async fn a_broken_schema_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let paths = Paths::new(&crate::datasets::CALL_OUTCOMES);
        dest.put_state(&paths.schema_file(), Bytes::from_static(b"{not json"))
            .await
            .unwrap();
        let e = SchemaStore::new(&dest, &paths).load().await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("schema.json is not a valid dataset schema"),
            "{text}"
        );
    }
}
