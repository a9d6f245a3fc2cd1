//! Uploads in flight. A file smaller than one chunk goes up in one PUT; a larger one as a
//! multipart upload whose parts go up as the file is written (object_store's `WriteMultipart`).
//! object_store's `BufWriter` does the same but cannot abort an upload once it is finishing, so
//! a run stopped by SIGINT/SIGTERM would leave it open for a bucket lifecycle rule: here the
//! parts are all up before the completion, and an upload dropped before that is aborted.
//! Dropping cannot wait, so the abort runs as a task the destination keeps, and
//! [`Aborts::settle`] waits for those tasks before the process exits.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::task::JoinHandle;

/// How long the end of a run waits for its aborts: each is one request.
const SETTLE_WITHIN: Duration = Duration::from_secs(15);

/// Parts uploaded at once per file.
const PARTS_AT_ONCE: usize = 2;

/// The abort tasks of one destination.
#[derive(Debug, Default)]
pub(crate) struct Aborts(Mutex<Vec<JoinHandle<()>>>);

impl Aborts {
    /// Waits (a bounded time) for every abort begun so far.
    pub(crate) async fn settle(&self) {
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        if tasks.is_empty() {
            return;
        }
        let count = tasks.len();
        let all = futures::future::join_all(tasks);
        if tokio::time::timeout(SETTLE_WITHIN, all).await.is_err() {
            tracing::warn!(
                uploads = count,
                "aborting unfinished uploads took too long; a bucket lifecycle rule can clean up what is left"
            );
        }
    }

    fn keep(&self, task: JoinHandle<()>) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(task);
    }
}

enum State {
    /// Less than one chunk so far: held for one PUT.
    Buffered(Vec<Bytes>, usize),
    Multipart(WriteMultipart),
    /// Finished or aborted.
    Ended,
}

/// One file on its way to `path`; aborted if dropped before [`Upload::finish`].
pub(crate) struct Upload {
    store: Arc<dyn ObjectStore>,
    path: Path,
    chunk: usize,
    state: State,
    aborts: Arc<Aborts>,
}

impl Upload {
    /// An upload to `path` in parts of `chunk` bytes.
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        path: Path,
        chunk: usize,
        aborts: Arc<Aborts>,
    ) -> Upload {
        Upload {
            store,
            path,
            chunk,
            state: State::Buffered(Vec::new(), 0),
            aborts,
        }
    }

    /// Adds bytes; once they exceed one chunk the multipart upload begins, and from then on
    /// this waits while more than [`PARTS_AT_ONCE`] parts are in flight.
    pub(crate) async fn put(&mut self, bytes: Bytes) -> object_store::Result<()> {
        match &mut self.state {
            State::Buffered(held, size) if *size + bytes.len() <= self.chunk => {
                *size += bytes.len();
                held.push(bytes);
                return Ok(());
            }
            State::Buffered(held, _) => {
                let held = std::mem::take(held);
                let upload = self.store.put_multipart(&self.path).await?;
                let mut parts = WriteMultipart::new_with_chunk_size(upload, self.chunk);
                for b in held {
                    parts.put(b);
                }
                self.state = State::Multipart(parts);
            }
            State::Multipart(_) | State::Ended => {}
        }
        let State::Multipart(parts) = &mut self.state else {
            unreachable!("an upload takes bytes until it ends")
        };
        parts.put(bytes);
        parts.wait_for_capacity(PARTS_AT_ONCE).await
    }

    /// Waits until every part is up: all that is left is the one request of [`Upload::finish`].
    pub(crate) async fn upload_parts(&mut self) -> object_store::Result<()> {
        match &mut self.state {
            State::Multipart(parts) => parts.wait_for_capacity(0).await,
            _ => Ok(()),
        }
    }

    /// Makes the file whole at its path: one PUT, or the multipart completion.
    pub(crate) async fn finish(mut self) -> object_store::Result<()> {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Buffered(held, _) => {
                let payload: PutPayload = held.into_iter().collect();
                self.store.put(&self.path, payload).await.map(drop)
            }
            State::Multipart(parts) => parts.finish().await.map(drop),
            State::Ended => Ok(()),
        }
    }

    /// Aborts the upload now.
    pub(crate) async fn abort(mut self) {
        if let State::Multipart(parts) = std::mem::replace(&mut self.state, State::Ended) {
            let _ = parts.abort().await;
        }
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        let State::Multipart(parts) = std::mem::replace(&mut self.state, State::Ended) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.aborts.keep(runtime.spawn(async move {
            if let Err(e) = parts.abort().await {
                tracing::warn!(error = %e, "could not abort an unfinished upload");
            }
        }));
    }
}
