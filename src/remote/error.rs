//! [`RemoteError`]: what can go wrong with the remote tier.

use std::time::Duration;

/// An operation on the remote tier failed. The cache never fails a
/// download for it: the request goes on to the upstream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The remote store's configuration cannot be used (URL, credentials,
    /// TLS files).
    #[error("remote store configuration: {0}")]
    Config(String),
    /// The store answered with an error (refused credentials, a missing
    /// bucket, a 5xx, a broken connection).
    #[error("remote store {operation} {key}: {source}")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// The object key.
        key: String,
        /// The store's error.
        #[source]
        source: object_store::Error,
    },
    /// The store took longer than the configured timeout.
    #[error("remote store {operation} {key}: no answer within {timeout:?}")]
    Timeout {
        /// What was being done.
        operation: &'static str,
        /// The object key.
        key: String,
        /// The bound that passed.
        timeout: Duration,
    },
    /// Recent requests failed: the store is left alone for a while.
    #[error("remote store unavailable (recent failures); retrying in {retry_in:?}")]
    Unavailable {
        /// When it is tried again.
        retry_in: Duration,
    },
    /// Reading the local file to upload failed.
    #[error("reading the cached file to upload: {0}")]
    Local(#[from] std::io::Error),
    /// An object's content is not what this crate wrote (a lease that is
    /// not one, an image object without its size).
    #[error("remote object {key}: {why}")]
    Malformed {
        /// The object key.
        key: String,
        /// What is wrong.
        why: String,
    },
}

impl RemoteError {
    /// Whether the error says the store refused this proxy's credentials
    /// or access to the bucket (a configuration problem, not an outage).
    ///
    /// ```
    /// use glance_cache::remote::RemoteError;
    /// let e = RemoteError::Config("no bucket".into());
    /// assert!(!e.is_access_denied());
    /// ```
    pub fn is_access_denied(&self) -> bool {
        match self {
            RemoteError::Store { source, .. } => matches!(
                source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
            ),
            _ => false,
        }
    }
}
