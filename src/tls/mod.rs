//! TLS for every hop: [`ClientTls`] for the connections the proxy opens
//! (the upstream image service, Keystone), [`ServerTls`] for its listeners.
//!
//! Both are built on rustls with the *ring* provider, TLS 1.2 and 1.3 only,
//! and read PEM files (certificate chains, PKCS#8/PKCS#1/SEC1 keys, CA
//! bundles). Errors name the file at fault ([`TlsError`]).
//!
//! # Example
//!
//! ```no_run
//! use glance_cache::reverse_proxy::ReverseProxy;
//! use glance_cache::tls::{ClientTls, ServerTls};
//! use glance_cache::RequestBody;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An https upstream whose certificate chains to a private CA:
//! let upstream = ReverseProxy::<RequestBody>::try_new("https://glance.internal:9292".parse()?)?
//!     .with_tls(ClientTls::new().with_ca_file("/etc/glance/ca.pem"))?;
//! // The listener's own certificate:
//! let tls = ServerTls::builder("/etc/glance/proxy.pem", "/etc/glance/proxy.key").build()?;
//! # drop((upstream, tls));
//! # Ok(())
//! # }
//! ```

mod client;
mod error;
mod pem;
mod server;

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;

pub use client::ClientTls;
pub use error::TlsError;
pub use server::{Loaded, ServerTls, ServerTlsBuilder};

/// The crypto provider every configuration is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its key, checked to belong together.
fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = pem::certificates(cert, "certificate")?;
    let signing = provider
        .key_provider
        .load_private_key(pem::private_key(key)?)
        .map_err(|e| TlsError::Invalid {
            path: key.to_owned(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(_) => Err(TlsError::KeyMismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
    }
}
