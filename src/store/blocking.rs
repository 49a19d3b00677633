//! Running blocking filesystem work off the async worker threads.

use std::io;
use std::path::Path;

use crate::Error;

/// Runs `f` on the blocking pool. A panicked or cancelled task becomes an
/// [`Error::Io`] naming `op` and `path`.
pub(super) async fn blocking<T, F>(op: &'static str, path: &Path, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::io(op, path, io::Error::other(e)))?
}
