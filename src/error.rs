//! The crate's public error type.

use std::path::PathBuf;

/// A boxed error, as used by `http_body` bodies and tower services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from the cache store, its index and the fill machinery.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filesystem operation on the cache directory failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "rename", ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The SQLite index failed.
    #[error("cache index {}: {source}", path.display())]
    Index {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The object store failed.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// The index thread is gone (the process is shutting down).
    #[error("cache index thread has stopped")]
    IndexGone,
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
