//! The destination: local disk or an S3-compatible bucket behind one `object_store` interface.
//!
//! Data files reach their final path in one atomic step, so the table root never holds a
//! partial or staging object: on S3 a single PUT; on local disk a write into `_cube_extract/`
//! followed by a rename (object_store's own local `put` stages `<name>#<n>` *beside* the target,
//! which a crash would leave under the table root).

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;

use super::in_flight::{Aborts, Upload};
use super::store_http::{self, FailedAttempts};
use super::upload::{Chunk, CHUNK_BYTES};

use crate::error::error_chain;
use crate::schema::SchemaFileError;

/// Where `--dest` points, parsed but not yet opened (opening may create the directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DestinationSpec {
    Local(std::path::PathBuf),
    S3 { bucket: String, prefix: String },
}

/// Why `--dest` is not a destination.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("--dest {0:?} names no bucket; write it as s3://BUCKET/PREFIX")]
    NoBucket(String),
    #[error("--dest {0:?} is not a valid file:// URL; write it as file:///absolute/path")]
    BadFileUrl(String),
    #[error("--dest {0:?} uses an unsupported scheme; use a local path, file:///path or s3://bucket/prefix")]
    UnsupportedScheme(String),
    #[error("--dest is empty; give a local directory or s3://bucket/prefix")]
    Empty,
    #[error("--dest {dest:?} cannot be resolved: {source}")]
    Unresolvable {
        dest: String,
        #[source]
        source: std::io::Error,
    },
}

impl DestinationSpec {
    pub fn parse(dest: &str) -> Result<DestinationSpec, DestinationError> {
        if let Some(rest) = dest.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(DestinationError::NoBucket(dest.to_owned()));
            }
            return Ok(DestinationSpec::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        let path = if dest.starts_with("file://") {
            url::Url::parse(dest)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .ok_or_else(|| DestinationError::BadFileUrl(dest.to_owned()))?
        } else if dest.contains("://") {
            return Err(DestinationError::UnsupportedScheme(dest.to_owned()));
        } else {
            std::path::PathBuf::from(dest)
        };
        if path.as_os_str().is_empty() {
            return Err(DestinationError::Empty);
        }
        let absolute =
            std::path::absolute(&path).map_err(|source| DestinationError::Unresolvable {
                dest: dest.to_owned(),
                source,
            })?;
        Ok(DestinationSpec::Local(absolute))
    }

    pub fn display(&self) -> String {
        match self {
            DestinationSpec::Local(p) => p.display().to_string(),
            DestinationSpec::S3 { bucket, prefix } if prefix.is_empty() => format!("s3://{bucket}"),
            DestinationSpec::S3 { bucket, prefix } => format!("s3://{bucket}/{prefix}"),
        }
    }
}

/// What went wrong at the destination. Messages name the destination and the object, never a
/// credential.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot use destination {dest}: {}", first_line(&error_chain(source)))]
    Open {
        dest: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("cannot use destination {dest}: {source}")]
    CreateDir {
        dest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use destination {dest}: {problem}")]
    Unusable {
        dest: String,
        problem: Unusable,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{op} {path} in {dest} failed: {}", first_line(&error_chain(source)))]
    Io {
        op: &'static str,
        path: String,
        dest: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{dest} is full: {op} {path} found no space left on the device; free space (or choose another --dest), then run again with --resume")]
    Full {
        op: &'static str,
        path: String,
        dest: String,
        #[source]
        source: Box<object_store::Error>,
    },
    #[error("{path} was rebuilt {attempts} times while other writers kept changing its days; run again with --resume once fewer writers run at once")]
    Contended { path: String, attempts: usize },
    #[error("{0}")]
    Setting(#[from] store_http::BadSetting),
    #[error("{0}")]
    Delta(Box<super::delta::DeltaError>),
    #[error("{dest}/{path} is not a valid dataset schema ({source}); restore it from a backup or extract into a new --dest")]
    BadSchema {
        dest: String,
        path: String,
        #[source]
        source: SchemaFileError,
    },
}

/// Whether a local write failed for want of space (ENOSPC). object_store's local errors keep
/// the `io::Error` only in their message, so the message is what can be read.
fn is_disk_full(e: &object_store::Error) -> bool {
    let text = error_chain(e);
    text.contains("No space left on device") || text.contains("os error 28")
}

/// Why a destination that opened does not answer as one, with the fix.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("{endpoint} refused the credentials for bucket {bucket} (HTTP 403); check AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN")]
    Refused { endpoint: String, bucket: String },
    #[error("bucket {bucket} does not exist at {endpoint}; create it or fix --dest")]
    NoBucket { endpoint: String, bucket: String },
    #[error("cannot reach {endpoint} for bucket {bucket}; check AWS_ENDPOINT_URL (and AWS_ALLOW_HTTP=true for a plain-http endpoint)")]
    Unreachable { endpoint: String, bucket: String },
    #[error("bucket {bucket} at {endpoint} failed: {first_line}")]
    Failed {
        endpoint: String,
        bucket: String,
        first_line: String,
    },
    #[error("{path} cannot be read: {first_line}")]
    Unreadable { path: String, first_line: String },
    #[error("{probe} cannot be written ({first_line}); give these credentials (or this user) write access to it, or choose another --dest")]
    ReadOnly { probe: String, first_line: String },
}

/// An opened destination: every read and write of the tool goes through it.
pub struct Destination {
    spec: DestinationSpec,
    store: Arc<dyn ObjectStore>,
    /// The directory of a local destination; `None` for object stores.
    local_root: Option<std::path::PathBuf>,
    display: String,
    /// Failed attempts of requests to an object store (object_store retried them).
    failed: Arc<FailedAttempts>,
    /// Aborts of uploads dropped unfinished, to wait for before the process exits.
    aborts: Arc<Aborts>,
    /// The destination as a Delta reader names it: a store rooted where URLs' paths start (the
    /// file system's root, the bucket), and the URL of `--dest` in it.
    kernel: (Arc<dyn ObjectStore>, url::Url),
}

impl Destination {
    /// Opens the destination, creating a local directory if needed. Call only once the run is
    /// known to be valid: a usage error must leave nothing behind.
    pub fn open(spec: &DestinationSpec) -> Result<Destination, StoreError> {
        let display = spec.display();
        let open_err = |source| StoreError::Open {
            dest: display.clone(),
            source: Box::new(source),
        };
        let failed = Arc::new(FailedAttempts::default());
        let bad_url = |_| StoreError::CreateDir {
            dest: display.clone(),
            source: std::io::Error::other("its path cannot be written as a URL"),
        };
        let (store, local_root, kernel): (Arc<dyn ObjectStore>, _, _) = match spec {
            DestinationSpec::Local(path) => {
                std::fs::create_dir_all(path).map_err(|source| StoreError::CreateDir {
                    dest: display.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(path).map_err(open_err)?;
                let absolute =
                    std::fs::canonicalize(path).map_err(|source| StoreError::CreateDir {
                        dest: display.clone(),
                        source,
                    })?;
                let url = url::Url::from_directory_path(&absolute).map_err(bad_url)?;
                let root: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new());
                (Arc::new(fs), Some(path.clone()), (root, url))
            }
            DestinationSpec::S3 { bucket, prefix } => {
                let mut builder = store_http::configure(
                    AmazonS3Builder::from_env().with_bucket_name(bucket),
                    &failed,
                )?;
                if std::env::var_os("AWS_REGION").is_none()
                    && std::env::var_os("AWS_DEFAULT_REGION").is_none()
                {
                    builder = builder.with_region("us-east-1");
                } else if let Ok(region) = std::env::var("AWS_REGION") {
                    builder = builder.with_region(region);
                }
                let s3: Arc<dyn ObjectStore> = Arc::new(builder.build().map_err(open_err)?);
                let url = match prefix.is_empty() {
                    true => format!("s3://{bucket}/"),
                    false => format!("s3://{bucket}/{prefix}/"),
                };
                let url = url::Url::parse(&url).map_err(|_| bad_url(()))?;
                let store: Arc<dyn ObjectStore> = match prefix.is_empty() {
                    true => Arc::clone(&s3),
                    false => Arc::new(PrefixStore::new(
                        Arc::clone(&s3),
                        Path::from(prefix.as_str()),
                    )),
                };
                (store, None, (s3, url))
            }
        };
        Ok(Destination {
            spec: spec.clone(),
            store,
            local_root,
            display,
            failed,
            aborts: Arc::default(),
            kernel,
        })
    }

    /// The store and URL a Delta reader (the kernel) uses for this destination.
    pub(crate) fn for_kernel(&self) -> (Arc<dyn ObjectStore>, url::Url) {
        (Arc::clone(&self.kernel.0), self.kernel.1.clone())
    }

    /// Waits for the aborts of uploads dropped unfinished (see [`Upload`]).
    pub async fn settle_aborts(&self) {
        self.aborts.settle().await;
    }

    /// Storage requests that failed and were retried (by object_store) so far.
    pub fn storage_retries(&self) -> u64 {
        self.failed.count()
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    /// A directory on local disk, as opposed to an object store reached over the network.
    pub fn is_local(&self) -> bool {
        self.local_root.is_some()
    }

    /// Checks the destination answers before anything is written (one listing of `probe`),
    /// turning the usual failures into a sentence that names the bucket or endpoint and the fix.
    pub async fn check(&self, probe: &Path) -> Result<(), StoreError> {
        let Err(e) = self.store.list_with_delimiter(Some(probe)).await else {
            return Ok(());
        };
        let text = error_chain(&e);
        let problem = match &self.spec {
            DestinationSpec::S3 { bucket, .. } => {
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .unwrap_or_else(|_| "AWS S3".to_owned());
                let bucket = bucket.clone();
                if matches!(
                    e,
                    object_store::Error::PermissionDenied { .. }
                        | object_store::Error::Unauthenticated { .. }
                ) || text.contains("403 Forbidden")
                {
                    Unusable::Refused { endpoint, bucket }
                } else if text.contains("NoSuchBucket") || text.contains("404 Not Found") {
                    // Listing a prefix never 404s in a bucket that exists. (Match status texts, not
                    // bare codes: the error also carries the endpoint, whose port may contain them.)
                    Unusable::NoBucket { endpoint, bucket }
                } else if text.contains("onnect")
                    || text.contains("dns")
                    || text.contains("timed out")
                {
                    Unusable::Unreachable { endpoint, bucket }
                } else {
                    Unusable::Failed {
                        endpoint,
                        bucket,
                        first_line: first_line(&text),
                    }
                }
            }
            DestinationSpec::Local(path) => Unusable::Unreadable {
                path: path.display().to_string(),
                first_line: first_line(&text),
            },
        };
        Err(StoreError::Unusable {
            dest: self.display.clone(),
            problem,
            source: Box::new(e),
        })
    }

    /// Checks the destination takes writes before anything is fetched: writes a small object
    /// under `dir` (the tool's state folder) and deletes it. A destination that can be listed
    /// but not written (a read-only directory, a bucket policy without `s3:PutObject`) fails
    /// here, not at its first partition.
    pub async fn check_writable(&self, dir: &Path) -> Result<(), StoreError> {
        let probe = dir
            .clone()
            .join(format!("write-probe-{:016x}", rand::random::<u64>()));
        let written = self
            .store
            .put(
                &probe,
                PutPayload::from_static(b"cube-extract write probe\n"),
            )
            .await;
        let result = match written {
            Ok(_) => self.store.delete(&probe).await,
            Err(e) => Err(e),
        };
        result.map_err(|e| StoreError::Unusable {
            dest: self.display.clone(),
            problem: Unusable::ReadOnly {
                probe: format!("{}/{probe}", self.display),
                first_line: first_line(&error_chain(&e)),
            },
            source: Box::new(e),
        })
    }

    fn io(&self, op: &'static str, path: &Path, source: object_store::Error) -> StoreError {
        if is_disk_full(&source) {
            return StoreError::Full {
                op,
                path: path.to_string(),
                dest: self.display.clone(),
                source: Box::new(source),
            };
        }
        StoreError::Io {
            op,
            path: path.to_string(),
            dest: self.display.clone(),
            source: Box::new(source),
        }
    }

    /// A state object that is not a valid dataset schema.
    pub fn bad_schema(&self, path: &Path, source: SchemaFileError) -> StoreError {
        StoreError::BadSchema {
            dest: self.display.clone(),
            path: path.to_string(),
            source,
        }
    }

    /// Reads a whole object; `None` if there is none.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>, StoreError> {
        match self.store.get(path).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| self.io("reading", path, e)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.io("reading", path, e)),
        }
    }

    /// Bytes `range` of the object at `path`.
    pub async fn get_range(
        &self,
        path: &Path,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, StoreError> {
        self.store
            .get_range(path, range)
            .await
            .map_err(|e| self.io("reading", path, e))
    }

    /// Writes tool state (under `_cube_extract/`), replacing what was there.
    pub async fn put_state(&self, path: &Path, bytes: Bytes) -> Result<(), StoreError> {
        self.store
            .put(path, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.io("writing", path, e))
    }

    /// Creates a state object only if none exists at `path` (atomically: a hard link on local
    /// disk, `If-None-Match: *` on S3). Returns `false` if another one existed.
    ///
    /// A conditional create is not idempotent, so object_store does not retry one whose answer
    /// was lost (a timeout, a reset): whether it happened is unknown. The object is read back
    /// then: our bytes mean it happened, other bytes that another writer won, none that it did
    /// not happen, and it is tried again.
    pub async fn create_state(&self, path: &Path, bytes: Bytes) -> Result<bool, StoreError> {
        const TRIES: u32 = 3;
        let mut tried = 0;
        loop {
            tried += 1;
            let opts = object_store::PutOptions {
                mode: object_store::PutMode::Create,
                ..Default::default()
            };
            let error = match self
                .store
                .put_opts(path, PutPayload::from(bytes.clone()), opts)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e) => e,
            };
            let exists = matches!(
                error,
                object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
            );
            match self.get(path).await {
                Ok(Some(found)) => return Ok(found == bytes),
                Ok(None) if !exists && tried < TRIES => {
                    tracing::warn!(path = %path, error = %error_chain(&error), "creating a state object failed and it is not there; trying again");
                }
                _ => return Err(self.io("creating", path, error)),
            }
        }
    }

    /// Streams a data file from `chunks` towards its final path, stopping one step short of
    /// making it visible: on S3 every part but the last is up (or, for a small file, all of it
    /// is still buffered for one PUT); on local disk the file is written under `staging`.
    /// Returns `Ok(None)` when the producer gave up (nothing is left behind then); otherwise
    /// [`Staged::place`] is the one atomic step left.
    pub async fn stage(
        &self,
        path: &Path,
        staging: Path,
        mut chunks: mpsc::Receiver<Chunk>,
    ) -> Result<Option<Staged<'_>>, StoreError> {
        let target = match self.local_root {
            Some(_) => staging.join(format!("{:016x}.parquet", rand::random::<u64>())),
            None => path.clone(),
        };
        // Dropped unfinished (the partition abandoned on a signal), the upload is aborted.
        let mut upload = Upload::new(
            self.store.clone(),
            target.clone(),
            CHUNK_BYTES,
            self.aborts.clone(),
        );
        loop {
            match chunks.recv().await {
                Some(Chunk::Data(bytes)) => {
                    if let Err(e) = upload.put(bytes).await {
                        upload.abort().await;
                        return Err(self.io("uploading", path, e));
                    }
                }
                Some(Chunk::Done) => break,
                None => {
                    upload.abort().await;
                    return Ok(None);
                }
            }
        }
        let mut staged = Staged {
            dest: self,
            path: path.clone(),
            target,
            upload: Some(upload),
        };
        if self.local_root.is_some() {
            // Local files are written whole under staging now; placing them is a rename.
            staged.upload_parts().await?;
            staged.finish_writing().await?;
        }
        Ok(Some(staged))
    }

    pub async fn delete(&self, path: &Path) -> Result<(), StoreError> {
        match self.store.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.io("deleting", path, e)),
        }
    }

    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>, StoreError> {
        self.store
            .list(Some(prefix))
            .try_collect()
            .await
            .map_err(|e| self.io("listing", prefix, e))
    }

    /// Removes empty folders a deleted partition leaves on local disk (object stores have none).
    pub fn prune_empty_dirs(&self, path: &Path) {
        let Some(root) = &self.local_root else {
            return;
        };
        let mut dir = root.join(path.as_ref());
        while dir.pop() && dir.starts_with(root) && dir != *root {
            if std::fs::remove_dir(&dir).is_err() {
                break;
            }
        }
    }
}

/// A data file streamed to the destination but not yet visible there; see
/// [`Destination::stage`]. Dropping it unplaced leaves nothing under the table root.
pub struct Staged<'a> {
    dest: &'a Destination,
    path: Path,
    /// Where the bytes go: `path` itself on S3, a file under staging on local disk.
    target: Path,
    /// The upload, until it is completed.
    upload: Option<Upload>,
}

impl Staged<'_> {
    /// Where the file becomes visible.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until every part of a multipart upload is up, so that placing the file is one
    /// request. A signal may drop this wait: the upload is then aborted (see [`Upload`]).
    pub async fn upload_parts(&mut self) -> Result<(), StoreError> {
        let Some(upload) = &mut self.upload else {
            return Ok(());
        };
        if let Err(e) = upload.upload_parts().await {
            if let Some(upload) = self.upload.take() {
                upload.abort().await;
            }
            return Err(self.dest.io("uploading", &self.path, e));
        }
        Ok(())
    }

    /// Completes the upload (on S3, this makes the object visible).
    async fn finish_writing(&mut self) -> Result<(), StoreError> {
        self.upload_parts().await?;
        let Some(upload) = self.upload.take() else {
            return Ok(());
        };
        if let Err(e) = upload.finish().await {
            let _ = self.dest.store.delete(&self.target).await;
            return Err(self.dest.io("uploading", &self.path, e));
        }
        Ok(())
    }

    /// Makes the file visible at its final path, in one atomic step: the PUT (or the multipart
    /// completion) on S3, a rename on local disk.
    pub async fn place(mut self) -> Result<(), StoreError> {
        self.finish_writing().await?;
        if self.target != self.path {
            if let Err(e) = self.dest.store.rename(&self.target, &self.path).await {
                let _ = self.dest.store.delete(&self.target).await;
                return Err(self.dest.io("moving into place", &self.path, e));
            }
        }
        Ok(())
    }
}

/// The first line of a cause, shortened: S3 errors carry whole XML bodies.
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    match line.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_destinations() {
        assert_eq!(
            DestinationSpec::parse("s3://bucket/a/b/").unwrap(),
            DestinationSpec::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into()
            }
        );
        assert_eq!(
            DestinationSpec::parse("file:///tmp/x").unwrap(),
            DestinationSpec::Local("/tmp/x".into())
        );
        assert!(
            matches!(DestinationSpec::parse("out").unwrap(), DestinationSpec::Local(p) if p.is_absolute())
        );
        assert!(DestinationSpec::parse("gs://x").is_err());
        assert!(DestinationSpec::parse("s3://").is_err());
    }
}
