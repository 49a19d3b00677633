//! [`ServerTls`]: the listener's certificate, reloadable while serving.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use sha2::{Digest, Sha256};

use super::{certified_key, pem, provider, TlsError};

/// TLS on a listener: a certificate chain and key (PEM), optionally a CA
/// bundle that client certificates must chain to. TLS 1.2 and 1.3 only;
/// ALPN offers HTTP/2 and HTTP/1.1.
///
/// [`reload`](Self::reload) reads the files again and swaps the
/// configuration for the connections that come after; connections already
/// open keep theirs. A reload that fails keeps the configuration in use.
/// Clones share the configuration.
///
/// ```no_run
/// use glance_cache::tls::ServerTls;
///
/// let tls = ServerTls::builder("/etc/glance/proxy.pem", "/etc/glance/proxy.key")
///     .client_ca_file("/etc/glance/clients-ca.pem")
///     .build()
///     .expect("a readable certificate and its key");
/// println!("serving {}", tls.loaded());
/// // later, on SIGHUP:
/// match tls.reload() {
///     Ok(now) => println!("now serving {now}"),
///     Err(e) => eprintln!("kept the old certificate: {e}"),
/// }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    files: Arc<Files>,
    current: Arc<RwLock<Current>>,
}

#[derive(Debug)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

struct Current {
    config: Arc<ServerConfig>,
    loaded: Loaded,
}

/// Which certificate a [`ServerTls`] serves: its file and the SHA-256
/// fingerprint of the leaf certificate (as `openssl x509 -fingerprint
/// -sha256` prints it, without colons).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    /// The certificate file.
    pub cert_file: PathBuf,
    /// SHA-256 of the leaf certificate's DER, lowercase hex.
    pub fingerprint: String,
    /// Certificates in the chain, the leaf included.
    pub chain_len: usize,
}

impl fmt::Display for Loaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (sha256 {}, {} certificate{})",
            self.cert_file.display(),
            self.fingerprint,
            self.chain_len,
            if self.chain_len == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("files", &self.files)
            .field("loaded", &self.loaded())
            .finish()
    }
}

/// Builder of a [`ServerTls`]; see [`ServerTls::builder`].
#[derive(Debug)]
#[must_use]
pub struct ServerTlsBuilder {
    files: Files,
}

impl ServerTlsBuilder {
    /// Asks every client for a certificate that chains to a CA in this PEM
    /// bundle; clients without one fail the handshake.
    ///
    /// ```
    /// let builder = glance_cache::tls::ServerTls::builder("c.pem", "k.pem")
    ///     .client_ca_file("clients.pem");
    /// # drop(builder);
    /// ```
    pub fn client_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.files.client_ca = Some(path.into());
        self
    }

    /// Reads the files.
    ///
    /// # Errors
    /// Unreadable files, no certificate or key in them, a key that does not
    /// match the certificate, or an unusable client CA bundle.
    ///
    /// ```
    /// let e = glance_cache::tls::ServerTls::builder("/nonexistent.pem", "/nonexistent.key")
    ///     .build()
    ///     .unwrap_err();
    /// assert!(e.to_string().contains("/nonexistent.pem"));
    /// ```
    pub fn build(self) -> Result<ServerTls, TlsError> {
        let current = load(&self.files)?;
        Ok(ServerTls {
            files: Arc::new(self.files),
            current: Arc::new(RwLock::new(current)),
        })
    }
}

impl ServerTls {
    /// TLS with this certificate chain and key (PEM files).
    ///
    /// ```
    /// let builder = glance_cache::tls::ServerTls::builder("proxy.pem", "proxy.key");
    /// # drop(builder);
    /// ```
    pub fn builder(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> ServerTlsBuilder {
        ServerTlsBuilder {
            files: Files {
                cert: cert.into(),
                key: key.into(),
                client_ca: None,
            },
        }
    }

    /// Reads the files again; new connections use what they hold. On error
    /// the configuration in use stays.
    ///
    /// # Errors
    /// As [`ServerTlsBuilder::build`].
    ///
    /// ```no_run
    /// # let tls = glance_cache::tls::ServerTls::builder("c.pem", "k.pem").build().unwrap();
    /// let now = tls.reload()?;
    /// println!("serving {now}");
    /// # Ok::<(), glance_cache::tls::TlsError>(())
    /// ```
    pub fn reload(&self) -> Result<Loaded, TlsError> {
        let next = load(&self.files)?;
        let loaded = next.loaded.clone();
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = next;
        Ok(loaded)
    }

    /// The certificate in use.
    ///
    /// ```no_run
    /// # let tls = glance_cache::tls::ServerTls::builder("c.pem", "k.pem").build().unwrap();
    /// println!("{}", tls.loaded().fingerprint);
    /// ```
    pub fn loaded(&self) -> Loaded {
        self.read().loaded.clone()
    }

    /// Whether clients must present a certificate.
    ///
    /// ```no_run
    /// # let tls = glance_cache::tls::ServerTls::builder("c.pem", "k.pem").build().unwrap();
    /// assert!(!tls.verifies_clients());
    /// ```
    pub fn verifies_clients(&self) -> bool {
        self.files.client_ca.is_some()
    }

    /// An acceptor with the configuration in use now.
    ///
    /// ```no_run
    /// # let tls = glance_cache::tls::ServerTls::builder("c.pem", "k.pem").build().unwrap();
    /// let acceptor = tls.acceptor();
    /// # drop(acceptor);
    /// ```
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.read().config))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|e| e.into_inner())
    }
}

fn load(files: &Files) -> Result<Current, TlsError> {
    let provider = provider();
    let certified = certified_key(&files.cert, &files.key, &provider)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in pem::certificates(path, "client CA bundle")? {
                roots.add(cert).map_err(|e| invalid(path, e))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|e| invalid(path, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let chain = certified.cert.clone();
    let mut config = builder
        .with_single_cert(chain.clone(), pem::private_key(&files.key)?)
        .map_err(|e| invalid(&files.cert, e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Current {
        config: Arc::new(config),
        loaded: Loaded {
            cert_file: files.cert.clone(),
            fingerprint: hex::encode(Sha256::digest(chain[0].as_ref())),
            chain_len: chain.len(),
        },
    })
}

fn invalid(path: &Path, e: impl fmt::Display) -> TlsError {
    TlsError::Invalid {
        path: path.to_owned(),
        message: e.to_string(),
    }
}
