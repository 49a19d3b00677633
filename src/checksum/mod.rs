//! The digests an image is checked against: Glance's `checksum` (MD5) and
//! its "multihash" (`os_hash_algo` / `os_hash_value`, SHA-512 by default).

use std::fmt;

mod engine;

pub(crate) use engine::Engine;

/// A hash algorithm Glance may name in `os_hash_algo` (its `hashing_algorithm`
/// option takes any name Python's `hashlib` knows; these are the ones with
/// a fixed-size digest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgorithm {
    /// `sha512`, Glance's default.
    Sha512,
    /// `sha384`.
    Sha384,
    /// `sha256`.
    Sha256,
    /// `sha224`.
    Sha224,
    /// `sha1`.
    Sha1,
    /// `md5`.
    Md5,
    /// `sha3_512`.
    Sha3_512,
    /// `sha3_384`.
    Sha3_384,
    /// `sha3_256`.
    Sha3_256,
    /// `sha3_224`.
    Sha3_224,
    /// `blake2b` (64-byte digest, `hashlib`'s default size).
    Blake2b,
    /// `blake2s` (32-byte digest).
    Blake2s,
}

impl HashAlgorithm {
    const ALL: [HashAlgorithm; 12] = [
        HashAlgorithm::Sha512,
        HashAlgorithm::Sha384,
        HashAlgorithm::Sha256,
        HashAlgorithm::Sha224,
        HashAlgorithm::Sha1,
        HashAlgorithm::Md5,
        HashAlgorithm::Sha3_512,
        HashAlgorithm::Sha3_384,
        HashAlgorithm::Sha3_256,
        HashAlgorithm::Sha3_224,
        HashAlgorithm::Blake2b,
        HashAlgorithm::Blake2s,
    ];

    /// `hashlib`'s name of the algorithm, as in `os_hash_algo`.
    ///
    /// ```
    /// use glance_cache::checksum::HashAlgorithm;
    /// assert_eq!(HashAlgorithm::Sha3_256.name(), "sha3_256");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha512 => "sha512",
            HashAlgorithm::Sha384 => "sha384",
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha224 => "sha224",
            HashAlgorithm::Sha1 => "sha1",
            HashAlgorithm::Md5 => "md5",
            HashAlgorithm::Sha3_512 => "sha3_512",
            HashAlgorithm::Sha3_384 => "sha3_384",
            HashAlgorithm::Sha3_256 => "sha3_256",
            HashAlgorithm::Sha3_224 => "sha3_224",
            HashAlgorithm::Blake2b => "blake2b",
            HashAlgorithm::Blake2s => "blake2s",
        }
    }

    /// The algorithm `hashlib` calls `name` (case-insensitive, as `hashlib`
    /// is); `None` for one this crate cannot compute.
    ///
    /// ```
    /// use glance_cache::checksum::HashAlgorithm;
    /// assert_eq!(HashAlgorithm::from_name("SHA512"), Some(HashAlgorithm::Sha512));
    /// assert_eq!(HashAlgorithm::from_name("shake_128"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An image's multihash: Glance's `os_hash_algo` and `os_hash_value`
/// (lower-case hex).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Multihash {
    /// The algorithm.
    pub algorithm: HashAlgorithm,
    /// The hex digest, lower case.
    pub value: String,
}

impl Multihash {
    /// The multihash of an image record's `os_hash_algo` and
    /// `os_hash_value`; `None` when either is missing or empty, or the
    /// algorithm is one this crate cannot compute.
    ///
    /// ```
    /// use glance_cache::checksum::{HashAlgorithm, Multihash};
    /// let m = Multihash::from_record("sha512", "ABC123").unwrap();
    /// assert_eq!((m.algorithm, m.value.as_str()), (HashAlgorithm::Sha512, "abc123"));
    /// assert!(Multihash::from_record("sha512", "").is_none());
    /// ```
    pub fn from_record(algo: &str, value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        Some(Multihash {
            algorithm: HashAlgorithm::from_name(algo)?,
            value: value.to_ascii_lowercase(),
        })
    }
}

/// The digests of some bytes: always MD5, and one multihash algorithm when
/// asked for.
pub(crate) struct Hashers {
    md5: Engine,
    multi: Option<(HashAlgorithm, Engine)>,
}

/// What [`Hashers`] computed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) md5: [u8; 16],
    /// The multihash, when one was computed.
    pub(crate) multihash: Option<Multihash>,
}

impl Hashers {
    pub(crate) fn new(multi: Option<HashAlgorithm>) -> Self {
        Hashers {
            md5: Engine::new(HashAlgorithm::Md5),
            multi: multi.map(|a| (a, Engine::new(a))),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some((_, h)) = &mut self.multi {
            h.update(data);
        }
    }

    pub(crate) fn finish(self) -> Digests {
        Digests {
            md5: md5_bytes(self.md5.finish()),
            multihash: self.multi.map(|(algorithm, h)| Multihash {
                algorithm,
                value: hex::encode(h.finish()),
            }),
        }
    }
}

/// One algorithm's digest of some bytes (the multihash thread of a fill).
pub(crate) struct MultiHasher {
    algorithm: HashAlgorithm,
    hasher: Engine,
}

impl MultiHasher {
    pub(crate) fn new(algorithm: HashAlgorithm) -> Self {
        MultiHasher {
            algorithm,
            hasher: Engine::new(algorithm),
        }
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    pub(crate) fn finish(self) -> Multihash {
        Multihash {
            algorithm: self.algorithm,
            value: hex::encode(self.hasher.finish()),
        }
    }
}

/// An MD5 digest as its 16 bytes (all zeros, which matches no expected
/// digest, if the engine gave another length, which it never does).
pub(crate) fn md5_bytes(digest: Vec<u8>) -> [u8; 16] {
    digest.try_into().unwrap_or_default()
}

/// What some bytes must hash to: an MD5 and a multihash, each when known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) md5: Option<[u8; 16]>,
    pub(crate) multihash: Option<Multihash>,
}

/// How computed digests differ from the expected ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DigestMismatch {
    /// Not the expected MD5.
    #[error(
        "MD5 of the bytes is {}, expected {}",
        hex::encode(got),
        hex::encode(want)
    )]
    Md5 {
        /// MD5 of the bytes.
        got: [u8; 16],
        /// The expected MD5.
        want: [u8; 16],
    },
    /// Not the expected multihash.
    #[error("{algorithm} of the bytes is {got}, expected {want}")]
    Multihash {
        /// The algorithm.
        algorithm: HashAlgorithm,
        /// Hex digest of the bytes.
        got: String,
        /// The expected hex digest.
        want: String,
    },
}

impl Expected {
    /// Whether anything is expected at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.md5.is_none() && self.multihash.is_none()
    }

    /// Checks `got` against what is expected. A multihash is compared when
    /// `got` has one of the expected algorithm (the caller computes the one
    /// it needs; see [`Expected::multihash_algorithm`]).
    pub(crate) fn check(&self, got: &Digests) -> Result<(), DigestMismatch> {
        if let Some(want) = self.md5.filter(|want| *want != got.md5) {
            return Err(DigestMismatch::Md5 { got: got.md5, want });
        }
        if let (Some(want), Some(have)) = (&self.multihash, &got.multihash) {
            if want.algorithm == have.algorithm && want.value != have.value {
                return Err(DigestMismatch::Multihash {
                    algorithm: want.algorithm,
                    got: have.value.clone(),
                    want: want.value.clone(),
                });
            }
        }
        Ok(())
    }

    /// The multihash algorithm to compute alongside MD5.
    pub(crate) fn multihash_algorithm(&self) -> Option<HashAlgorithm> {
        self.multihash.as_ref().map(|m| m.algorithm)
    }

    /// The multihash algorithm to compute when a cached file is hashed
    /// again: the expected one, else SHA-512 (recorded for later checks).
    pub(crate) fn multihash_to_record(&self) -> HashAlgorithm {
        self.multihash_algorithm().unwrap_or(HashAlgorithm::Sha512)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        // echo -n IMAGEDATA | sha512sum / md5sum / sha3-256 (Python hashlib)
        let mut h = Hashers::new(Some(HashAlgorithm::Sha256));
        h.update(b"IMAGE");
        h.update(b"DATA");
        let d = h.finish();
        assert_eq!(hex::encode(d.md5), "0fc85dbea99575776296eaaa1d314eb1");
        let m = d.multihash.unwrap();
        assert_eq!(m.algorithm, HashAlgorithm::Sha256);
        let mut one = MultiHasher::new(HashAlgorithm::Sha256);
        one.update(b"IMAGEDATA");
        assert_eq!(one.finish(), m);
        for algo in HashAlgorithm::ALL {
            assert_eq!(HashAlgorithm::from_name(algo.name()), Some(algo));
            let mut h = MultiHasher::new(algo);
            h.update(b"");
            assert!(!h.finish().value.is_empty(), "{algo}");
        }
        let mut sha512 = MultiHasher::new(HashAlgorithm::Sha512);
        sha512.update(b"");
        assert!(sha512.finish().value.starts_with("cf83e1357eefb8bd"));
    }

    #[test]
    fn expected_digests_are_checked_by_algorithm() {
        let mut h = Hashers::new(Some(HashAlgorithm::Sha512));
        h.update(b"IMAGEDATA");
        let got = h.finish();
        let right = Expected {
            md5: Some(got.md5),
            multihash: got.multihash.clone(),
        };
        assert_eq!(right.check(&got), Ok(()));
        let wrong_md5 = Expected {
            md5: Some([0; 16]),
            ..right.clone()
        };
        assert!(matches!(
            wrong_md5.check(&got),
            Err(DigestMismatch::Md5 { .. })
        ));
        let wrong_sha = Expected {
            multihash: Multihash::from_record("sha512", "00"),
            ..right.clone()
        };
        let err = wrong_sha.check(&got).unwrap_err();
        assert!(
            err.to_string().starts_with("sha512 of the bytes is "),
            "{err}"
        );
        // A multihash of another algorithm than the one computed is not compared.
        let other = Expected {
            multihash: Multihash::from_record("sha256", "00"),
            ..right
        };
        assert_eq!(other.check(&got), Ok(()));
        assert_eq!(other.multihash_algorithm(), Some(HashAlgorithm::Sha256));
        assert!(Expected::default().is_empty());
    }
}
