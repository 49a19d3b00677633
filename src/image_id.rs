//! [`ImageId`]: the only way a value from a request becomes a file name.
//!
//! Glance uses any non-slash path segment as a file name in its cache
//! directory, so `..`, `cache.db` or `queue` reach the
//! filesystem. This crate accepts only canonical, lower-case UUIDs
//! (`8-4-4-4-12` hex digits): they can never contain a separator, a dot, a
//! `#` (which `object_store` reserves) or anything a shell or SQL would
//! treat specially, and they cannot collide with the names the cache keeps
//! for itself (`cache.db`, `incomplete/`, `invalid/`, `queue/`).
//!
//! # Example
//!
//! ```
//! use glance_cache::ImageId;
//!
//! let id: ImageId = "3f1f7c8e-2b9d-4d6a-9c43-1a2b3c4d5e6f".parse().unwrap();
//! assert_eq!(id.as_str(), "3f1f7c8e-2b9d-4d6a-9c43-1a2b3c4d5e6f");
//! assert!("../cache.db".parse::<ImageId>().is_err());
//! assert!("3F1F7C8E-2B9D-4D6A-9C43-1A2B3C4D5E6F".parse::<ImageId>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

/// A validated Glance image id: a canonical lower-case UUID string.
///
/// See the [module docs](crate::image_id) for why nothing else is accepted.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(Box<str>);

/// Why a string is not an [`ImageId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image id {shown:?} is not a canonical lower-case UUID ({reason})")]
pub struct InvalidImageId {
    shown: String,
    reason: &'static str,
}

impl InvalidImageId {
    fn new(raw: &str, reason: &'static str) -> Self {
        // Never echo an unbounded value back into logs or responses.
        let shown: String = raw.chars().take(64).collect();
        InvalidImageId { shown, reason }
    }
}

impl ImageId {
    /// Validates `raw` as a canonical lower-case UUID.
    ///
    /// ```
    /// use glance_cache::ImageId;
    /// assert!(ImageId::parse("00000000-0000-0000-0000-000000000000").is_ok());
    /// assert!(ImageId::parse("detail").is_err());
    /// ```
    pub fn parse(raw: &str) -> Result<Self, InvalidImageId> {
        let bytes = raw.as_bytes();
        if bytes.len() != 36 {
            return Err(InvalidImageId::new(raw, "wrong length"));
        }
        for (i, b) in bytes.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(b),
            };
            if !ok {
                return Err(InvalidImageId::new(raw, "unexpected character"));
            }
        }
        Ok(ImageId(raw.into()))
    }

    /// The id as a string slice (also the file name used in the cache).
    ///
    /// ```
    /// # use glance_cache::ImageId;
    /// let id = ImageId::parse("00000000-0000-0000-0000-000000000001").unwrap();
    /// assert_eq!(id.as_str().len(), 36);
    /// ```
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ImageId {
    type Err = InvalidImageId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageId::parse(s)
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageId({})", self.0)
    }
}

impl AsRef<str> for ImageId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_canonical_uuid() {
        let s = "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c";
        assert_eq!(ImageId::parse(s).unwrap().as_str(), s);
    }

    #[test]
    fn rejects_path_tricks_and_oddities() {
        let long = "a".repeat(4096);
        for bad in [
            "",
            "..",
            "%2e%2e",
            "detail",
            "cache.db",
            "queue",
            "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c/",
            "e9dcfc44/0cc6-4689-ac18-0f5d1beb6c2c0",
            "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c#1",
            "E9DCFC44-0CC6-4689-AC18-0F5D1BEB6C2C",
            "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2cc",
            "e9dcfc440cc64689ac180f5d1beb6c2c",
            "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2\u{e9}",
            long.as_str(),
        ] {
            assert!(ImageId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn error_message_is_bounded() {
        let long = "x".repeat(4096);
        let msg = ImageId::parse(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "{msg}");
    }
}
