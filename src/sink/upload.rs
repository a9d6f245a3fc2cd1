//! Streaming a file from a blocking encoder to the destination with a bounded buffer.
//!
//! The encoder writes into a [`ChunkWriter`] (a plain `std::io::Write`) on a blocking thread; full
//! chunks cross a small bounded channel to [`Destination::upload`], which feeds object_store's
//! `BufWriter`: a file smaller than one chunk goes up in one PUT, a larger one as a multipart
//! upload that becomes visible only when completed and is aborted on any failure. At most a few
//! chunks are in memory at once, whatever the size of the file.

use std::io::Write;

use bytes::Bytes;
use tokio::sync::mpsc;

/// Bytes per chunk (and the single-PUT threshold); S3 parts must be at least 5 MiB.
pub const CHUNK_BYTES: usize = 8 << 20;
/// Chunks queued between encoder and uploader.
const QUEUE: usize = 2;

/// What the encoder sends: data, then `Done` once the file is whole. A channel that closes
/// without `Done` means the encoder failed, and the upload is abandoned.
pub enum Chunk {
    Data(Bytes),
    Done,
}

pub struct ChunkWriter {
    tx: mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    chunk_bytes: usize,
    written: u64,
}

pub fn channel(chunk_bytes: usize) -> (ChunkWriter, mpsc::Receiver<Chunk>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (
        ChunkWriter {
            tx,
            buf: Vec::new(),
            chunk_bytes,
            written: 0,
        },
        rx,
    )
}

impl ChunkWriter {
    fn send(&mut self, chunk: Chunk) -> std::io::Result<()> {
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the upload stopped"))
    }

    /// Sends what is buffered and marks the file complete. Returns the bytes written.
    pub fn complete(mut self) -> std::io::Result<u64> {
        let rest = std::mem::take(&mut self.buf);
        if !rest.is_empty() {
            self.send(Chunk::Data(Bytes::from(rest)))?;
        }
        self.send(Chunk::Done)?;
        Ok(self.written)
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        self.written += data.len() as u64;
        if self.buf.len() >= self.chunk_bytes {
            let full = std::mem::take(&mut self.buf);
            self.send(Chunk::Data(Bytes::from(full)))?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::{Destination, DestinationSpec, Paths};

    /// Streams `bytes` from a blocking thread in writes of 100 bytes; completes the file only
    /// when `complete`.
    async fn stage_from_thread<'d>(
        dest: &'d Destination,
        path: &object_store::path::Path,
        bytes: Vec<u8>,
        complete: bool,
    ) -> Option<crate::sink::Staged<'d>> {
        let (mut out, chunks) = channel(1000);
        let producer = tokio::task::spawn_blocking(move || {
            for piece in bytes.chunks(100) {
                out.write_all(piece).unwrap();
            }
            if complete {
                assert_eq!(out.complete().unwrap(), 25_000);
            }
        });
        let staging = Paths::new(&crate::datasets::CALL_OUTCOMES).staging_dir();
        let (staged, produced) = tokio::join!(dest.stage(path, staging, chunks), producer);
        produced.unwrap();
        staged.unwrap()
    }

    fn data() -> Vec<u8> {
        (0..25_000u32).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_in_many_chunks_arrives_whole_only_when_placed() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let path =
            object_store::path::Path::from("t/campaign_id=1/date=2019-08-01/part-00000.parquet");
        let staged = stage_from_thread(&dest, &path, data(), true)
            .await
            .expect("a completed file is staged");
        assert_eq!(
            dest.get(&path).await.unwrap(),
            None,
            "not visible before place"
        );
        staged.place().await.unwrap();
        assert_eq!(dest.get(&path).await.unwrap().unwrap().as_ref(), data());
        let leftovers = dest
            .list(&Paths::new(&crate::datasets::CALL_OUTCOMES).staging_dir())
            .await
            .unwrap();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_producer_that_gives_up_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = Destination::open(&DestinationSpec::Local(dir.path().into())).unwrap();
        let path =
            object_store::path::Path::from("t/campaign_id=1/date=2019-08-01/part-00000.parquet");
        assert!(stage_from_thread(&dest, &path, data(), false)
            .await
            .is_none());
        assert_eq!(dest.get(&path).await.unwrap(), None);
        assert!(dest
            .list(&object_store::path::Path::from("t"))
            .await
            .unwrap()
            .is_empty());
    }
}
