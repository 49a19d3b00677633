//! [`ClientTls`]: how the proxy checks the servers it connects to (the
//! upstream image service, Keystone) and which certificate it shows them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::{pem, provider, TlsError};

/// Settings of a TLS client: which certificate authorities it trusts, the
/// client certificate it presents (mutual TLS), or that it checks nothing
/// at all (`insecure`, for labs).
///
/// Without a CA bundle the system's trust store is used (the files under
/// `/etc/ssl/certs` that `openssl` and `curl` use).
///
/// ```no_run
/// use glance_cache::tls::ClientTls;
///
/// let tls = ClientTls::new()
///     .with_ca_file("/etc/glance/ca.pem")
///     .with_client_cert("/etc/glance/proxy.pem", "/etc/glance/proxy.key");
/// let config = tls.build().expect("readable certificates");
/// assert!(config.alpn_protocols.is_empty());
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    insecure: bool,
}

impl fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl ClientTls {
    /// The system trust store, no client certificate.
    ///
    /// ```
    /// let tls = glance_cache::tls::ClientTls::new();
    /// assert!(!tls.is_insecure());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts the certificate authorities in this PEM bundle instead of the
    /// system's.
    ///
    /// ```
    /// let tls = glance_cache::tls::ClientTls::new().with_ca_file("/etc/glance/ca.pem");
    /// assert_eq!(tls.ca_file().unwrap().to_str(), Some("/etc/glance/ca.pem"));
    /// ```
    pub fn with_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Presents this certificate (PEM, leaf first, chain after) and key to
    /// servers that ask for one.
    ///
    /// ```
    /// let tls = glance_cache::tls::ClientTls::new()
    ///     .with_client_cert("/etc/glance/proxy.pem", "/etc/glance/proxy.key");
    /// assert!(tls.client_cert().is_some());
    /// ```
    pub fn with_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.client_cert = Some((cert.into(), key.into()));
        self
    }

    /// Accepts any server certificate, unchecked. For labs only: anyone
    /// between the proxy and the server can read and change the traffic.
    ///
    /// ```
    /// let tls = glance_cache::tls::ClientTls::new().with_insecure(true);
    /// assert!(tls.is_insecure());
    /// ```
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// The CA bundle, if one was set.
    ///
    /// ```
    /// assert!(glance_cache::tls::ClientTls::new().ca_file().is_none());
    /// ```
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// The client certificate and key files, if set.
    ///
    /// ```
    /// assert!(glance_cache::tls::ClientTls::new().client_cert().is_none());
    /// ```
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        self.client_cert
            .as_ref()
            .map(|(c, k)| (c.as_path(), k.as_path()))
    }

    /// Whether server certificates go unchecked.
    ///
    /// ```
    /// assert!(!glance_cache::tls::ClientTls::new().is_insecure());
    /// ```
    pub fn is_insecure(&self) -> bool {
        self.insecure
    }

    /// Reads the files and builds the rustls configuration (TLS 1.2 and
    /// 1.3; no ALPN: the HTTP client adds the protocols it speaks).
    ///
    /// # Errors
    /// A file that cannot be read or holds no certificate or key, a key that
    /// does not match its certificate, or an empty system trust store.
    ///
    /// ```no_run
    /// let config = glance_cache::tls::ClientTls::new().build().unwrap();
    /// # drop(config);
    /// ```
    pub fn build(&self) -> Result<ClientConfig, TlsError> {
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(provider.clone())))
        } else {
            builder.with_root_certificates(self.roots()?)
        };
        match &self.client_cert {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let certified = super::certified_key(cert, key, &provider)?;
                builder
                    .with_client_auth_cert(certified.cert, pem::private_key(key)?)
                    .map_err(|e| TlsError::Invalid {
                        path: cert.clone(),
                        message: e.to_string(),
                    })
            }
        }
    }

    /// A configuration that trusts nothing: for a client that must be able
    /// to hold a TLS configuration but only ever speaks plain `http` (any
    /// TLS handshake with it fails).
    ///
    /// ```
    /// let config = glance_cache::tls::ClientTls::no_roots();
    /// assert!(config.alpn_protocols.is_empty());
    /// ```
    pub fn no_roots() -> ClientConfig {
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(RootCertStore::empty())
            .with_no_client_auth()
    }

    fn roots(&self) -> Result<RootCertStore, TlsError> {
        let mut roots = RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                for cert in pem::certificates(path, "CA bundle")? {
                    roots.add(cert).map_err(|e| TlsError::Invalid {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    let why = found
                        .errors
                        .first()
                        .map_or_else(|| "no certificates".to_owned(), |e| e.to_string());
                    return Err(TlsError::NoRoots(why));
                }
            }
        }
        Ok(roots)
    }
}

/// The verifier of `insecure`: every certificate passes; signatures are
/// still checked so the handshake itself is sound.
#[derive(Debug)]
struct AcceptAnything(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
