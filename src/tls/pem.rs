//! Reading certificates, keys and CA bundles from PEM files.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;

/// Every certificate in a PEM file, in order (a leaf and its chain, or a
/// CA bundle).
pub(crate) fn certificates(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path, what)?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Empty {
            what,
            path: path.to_owned(),
            detail: format!("; {e}"),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
            detail: String::new(),
        });
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path, "private key")?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| TlsError::Empty {
        what: "private key",
        path: path.to_owned(),
        detail: format!("; {e}"),
    })
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_names_itself() {
        let e = certificates(Path::new("/nonexistent/ca.pem"), "CA bundle").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
        assert!(e.to_string().contains("CA bundle"), "{e}");
    }

    #[test]
    fn a_file_without_pem_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cert.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let e = certificates(&path, "certificate").unwrap_err();
        assert!(matches!(e, TlsError::Empty { .. }), "{e:?}");
        let e = private_key(&path).unwrap_err();
        assert!(e.to_string().contains("no private key found"), "{e}");
    }
}
