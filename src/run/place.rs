//! Placing a file: its bytes are produced (encoded on CPU slots) while they stream to the
//! destination, and it becomes visible only once it is whole, in one atomic step that the
//! caller takes ([`Staged::place`]). Used by extraction and by reconcile alike.

use std::future::Future;

use object_store::path::Path;

use crate::sink::parquet::EncodeError;
use crate::sink::upload::{self, ChunkWriter, CHUNK_BYTES};
use crate::sink::{Destination, Staged, StoreError};

/// How streaming a file ended.
// Short-lived and matched at once: boxing the upload would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Streamed<'d, T, G> {
    /// The producer finished the file with `T`; one step makes it visible.
    Staged(T, Staged<'d>),
    /// The producer gave up for reason `G`; nothing was left behind.
    GaveUp(G),
}

/// Streams the file that `produce` writes into its [`ChunkWriter`] towards `path`. `produce`
/// returns `Ok(Ok(_))` once it has completed the writer, `Ok(Err(reason))` to give up (it
/// drops the writer unfinished, which abandons the upload), or an error.
pub(crate) async fn stream<'d, T, G, E, F>(
    dest: &'d Destination,
    path: &Path,
    staging: Path,
    produce: impl FnOnce(ChunkWriter) -> F,
) -> Result<Streamed<'d, T, G>, E>
where
    F: Future<Output = Result<Result<T, G>, E>>,
    E: From<StoreError> + From<EncodeError>,
{
    let (out, chunks) = upload::channel(CHUNK_BYTES);
    let (produced, staged) = tokio::join!(produce(out), dest.stage(path, staging, chunks));
    let staged = staged?;
    let value = match produced? {
        Ok(value) => value,
        Err(reason) => return Ok(Streamed::GaveUp(reason)),
    };
    match staged {
        Some(staged) => Ok(Streamed::Staged(value, staged)),
        None => Err(EncodeError::from(std::io::Error::other(
            "the encoder stopped before the file was complete",
        ))
        .into()),
    }
}
