//! What a fill must match before it is committed.

use http::header::{HeaderMap, CONTENT_LENGTH};

use crate::checksum::DigestMismatch;
use crate::upstream::md5_from_header;

/// The expected size and MD5 of an upstream body, from its response headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Expectation {
    /// `Content-Length`, when sent.
    pub(crate) len: Option<u64>,
    /// `Content-MD5` (Glance sends lower-case hex; RFC 1864 base64 is also
    /// accepted), falling back to the v1 `x-image-meta-checksum`.
    pub(crate) md5: Option<[u8; 16]>,
}

/// A checksum header that can never match: the body must not be cached.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unusable {header} header {value:?}")]
pub(crate) struct BadChecksumHeader {
    header: &'static str,
    value: String,
}

/// How the received bytes differ from what the upstream announced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    /// Not the announced number of bytes.
    #[error("received {got} bytes, Content-Length said {want}")]
    Length {
        /// Bytes received.
        got: u64,
        /// `Content-Length`.
        want: u64,
    },
    /// Not the announced digests (the `Content-MD5`, the image record's
    /// multihash).
    #[error(transparent)]
    Digest(#[from] DigestMismatch),
}

impl Expectation {
    pub(crate) fn from_headers(headers: &HeaderMap) -> Result<Self, BadChecksumHeader> {
        let len = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let mut md5 = None;
        for header in ["content-md5", "x-image-meta-checksum"] {
            if let Some(value) = headers.get(header) {
                let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                if text.trim().is_empty() {
                    continue;
                }
                md5 = Some(md5_from_header(&text).ok_or(BadChecksumHeader {
                    header,
                    value: text.chars().take(64).collect(),
                })?);
                break;
            }
        }
        Ok(Expectation { len, md5 })
    }

    /// Checks what the fill received.
    pub(crate) fn check(&self, len: u64, md5: &[u8; 16]) -> Result<(), Mismatch> {
        if let Some(want) = self.len.filter(|want| *want != len) {
            return Err(Mismatch::Length { got: len, want });
        }
        if let Some(want) = self.md5.filter(|want| want != md5) {
            return Err(DigestMismatch::Md5 { got: *md5, want }.into());
        }
        Ok(())
    }

    /// Whether anything at all can be verified.
    pub(crate) fn verifiable(&self) -> bool {
        self.md5.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn hex_and_base64_md5_and_fallback_header() {
        let hex = "7bcc1cf6064c8daf12448ecb8cdc0933";
        let e =
            Expectation::from_headers(&headers(&[("content-md5", hex), ("content-length", "9")]))
                .unwrap();
        assert_eq!(e.len, Some(9));
        assert_eq!(hex::encode(e.md5.unwrap()), hex);
        let b64 = base64::engine::general_purpose::STANDARD.encode(hex::decode(hex).unwrap());
        let e2 = Expectation::from_headers(&headers(&[("content-md5", &b64)])).unwrap();
        assert_eq!(e2.md5, e.md5);
        let e3 = Expectation::from_headers(&headers(&[("x-image-meta-checksum", hex)])).unwrap();
        assert_eq!(e3.md5, e.md5);
        let none = Expectation::from_headers(&HeaderMap::new()).unwrap();
        assert!(!none.verifiable());
    }

    #[test]
    fn garbage_checksum_is_refused() {
        assert!(Expectation::from_headers(&headers(&[("content-md5", "not-a-digest")])).is_err());
    }

    #[test]
    fn check_reports_mismatches() {
        let e = Expectation {
            len: Some(3),
            md5: Some([1; 16]),
        };
        assert!(e
            .check(2, &[1; 16])
            .unwrap_err()
            .to_string()
            .contains("Content-Length"));
        assert!(e
            .check(3, &[2; 16])
            .unwrap_err()
            .to_string()
            .contains("MD5"));
        assert!(e.check(3, &[1; 16]).is_ok());
    }
}
