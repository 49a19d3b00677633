//! What the upstream says about an image: its record, and the facts a
//! download answer carries.

use base64::Engine;
use http::header::{HeaderMap, CONTENT_LENGTH, CONTENT_RANGE};
use http::StatusCode;
use serde::Deserialize;

use crate::checksum::Multihash;

/// The MD5 of no bytes at all: an empty image's checksum.
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The parts of Glance's image record (`GET /v2/images/{id}`) the proxy uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct ImageRecord {
    /// `active`, `queued`, `deactivated`, ...
    #[serde(default)]
    pub(crate) status: String,
    /// Bytes of image data, when it has data.
    #[serde(default)]
    pub(crate) size: Option<u64>,
    /// Lower-case hex MD5 of the data, when it has data.
    #[serde(default)]
    pub(crate) checksum: Option<String>,
    /// The multihash algorithm (`sha512` by default).
    #[serde(default)]
    pub(crate) os_hash_algo: Option<String>,
    /// The multihash, hex.
    #[serde(default)]
    pub(crate) os_hash_value: Option<String>,
}

impl ImageRecord {
    /// Whether Glance serves this image's data to everyone allowed to (a
    /// deactivated image's only to admins).
    pub(crate) fn is_active(&self) -> bool {
        self.status == "active"
    }

    /// The multihash the record gives, when it names one this crate can
    /// compute.
    pub(crate) fn multihash(&self) -> Option<Multihash> {
        Multihash::from_record(
            self.os_hash_algo.as_deref()?,
            self.os_hash_value.as_deref()?,
        )
    }

    /// The size and digests the record gives.
    pub(crate) fn facts(&self) -> ImageFacts {
        ImageFacts {
            size: self.size,
            checksum: self.checksum.clone().filter(|c| !c.is_empty()),
            multihash: self.multihash(),
        }
    }
}

/// What the upstream says about an image's data: its size, MD5 and
/// multihash, as far as it said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageFacts {
    /// The whole image's size in bytes.
    pub(crate) size: Option<u64>,
    /// The whole image's MD5, lower-case hex.
    pub(crate) checksum: Option<String>,
    /// The whole image's multihash (from an image record only).
    pub(crate) multihash: Option<Multihash>,
}

impl ImageFacts {
    /// The facts in the head of an answer to a one-byte ranged download:
    /// a `206`'s `Content-Range: bytes 0-0/SIZE`, a `200`'s
    /// `Content-Length`, and `Content-MD5`. A `416` says the image is empty
    /// (not even byte 0 exists), whose MD5 is known; Glance sends neither
    /// `Content-Range` nor `Content-MD5` with it.
    pub(crate) fn from_probe(status: StatusCode, headers: &HeaderMap) -> Self {
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return ImageFacts {
                size: Some(0),
                checksum: Some(EMPTY_MD5.to_owned()),
                multihash: None,
            };
        }
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        let size = match status {
            StatusCode::OK => header(CONTENT_LENGTH).and_then(|v| v.trim().parse().ok()),
            _ => header(CONTENT_RANGE)
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.trim().parse().ok()),
        };
        let checksum = headers
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .and_then(md5_from_header)
            .map(hex::encode);
        ImageFacts {
            size,
            checksum,
            multihash: None,
        }
    }
}

/// An MD5 as `Content-MD5` carries it: Glance sends lower-case hex, RFC 1864
/// says base64; both are read. `None` for anything else.
pub(crate) fn md5_from_header(value: &str) -> Option<[u8; 16]> {
    let v = value.trim();
    let mut out = [0u8; 16];
    if v.len() == 32 && hex::decode_to_slice(v, &mut out).is_ok() {
        return Some(out);
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(v).ok()?;
    out.copy_from_slice(raw.get(..16).filter(|_| raw.len() == 16)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_ranged_answer_gives_the_whole_image_size_and_md5() {
        // Recorded from Glance 33: `Range: bytes=0-0` on a 9-byte image.
        let h = headers(&[
            ("content-range", "bytes 0-0/9"),
            ("content-md5", "0fc85dbea99575776296eaaa1d314eb1"),
            ("content-length", "1"),
        ]);
        let facts = ImageFacts::from_probe(StatusCode::PARTIAL_CONTENT, &h);
        assert_eq!(facts.size, Some(9));
        assert_eq!(
            facts.checksum.as_deref(),
            Some("0fc85dbea99575776296eaaa1d314eb1")
        );
    }

    #[test]
    fn a_full_answer_an_empty_image_and_base64() {
        let h = headers(&[
            ("content-length", "9"),
            ("content-md5", "D8hdvqmVdXdiluqqHTFOsQ=="),
        ]);
        let facts = ImageFacts::from_probe(StatusCode::OK, &h);
        assert_eq!(facts.size, Some(9));
        assert_eq!(
            facts.checksum.as_deref(),
            Some("0fc85dbea99575776296eaaa1d314eb1")
        );
        // Glance's 416 for `bytes=0-0` of an empty image (checked against
        // Glance 33): no Content-Range, no Content-MD5; the image is empty.
        let empty = ImageFacts::from_probe(StatusCode::RANGE_NOT_SATISFIABLE, &HeaderMap::new());
        assert_eq!(empty.size, Some(0));
        assert_eq!(empty.checksum.as_deref(), Some(EMPTY_MD5));
        assert_eq!(
            md5_from_header(EMPTY_MD5).map(hex::encode).as_deref(),
            Some(EMPTY_MD5)
        );
    }

    #[test]
    fn md5_headers() {
        assert!(md5_from_header("not-a-digest").is_none());
        assert!(md5_from_header("").is_none());
        assert_eq!(
            md5_from_header(" 0FC85DBEA99575776296EAAA1D314EB1 ").map(hex::encode),
            Some("0fc85dbea99575776296eaaa1d314eb1".to_owned())
        );
    }
}
