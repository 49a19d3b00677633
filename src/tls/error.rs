//! [`TlsError`]: why a TLS configuration could not be built.

use std::path::PathBuf;

/// Why a certificate, key or CA bundle could not be used.
///
/// Every variant names the file it is about, so an operator can act on the
/// message alone.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {what} {path}: {source}")]
    Read {
        /// What the file was supposed to hold ("certificate", "CA bundle", ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was read but holds no usable PEM item of the expected kind.
    #[error("{path}: no {what} found (expected PEM{detail})")]
    Empty {
        /// What was looked for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// A parser message, with a leading "; ", or "".
        detail: String,
    },
    /// The private key does not belong to the certificate.
    #[error("{key}: this private key does not match the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// A certificate was refused while building the trust store or the
    /// certified key.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What rustls said.
        message: String,
    },
    /// A client certificate was given without its key, or the reverse.
    #[error("a client certificate needs both a certificate file and a key file")]
    HalfClientCert,
    /// The system trust store is empty and no CA bundle was given.
    #[error("no trusted certificate authority: the system trust store is empty or unreadable ({0}); set a CA bundle")]
    NoRoots(String),
    /// rustls refused the configuration as a whole.
    #[error("TLS configuration refused: {0}")]
    Config(String),
}
