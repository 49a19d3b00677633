//! [`RemoteImage`]: what the remote tier knows of one image object, and
//! how it is stored as object metadata.

use std::borrow::Cow;

use object_store::{Attribute, AttributeValue, Attributes};

use crate::checksum::{HashAlgorithm, Multihash};
use crate::ImageId;

const CHECKSUM: &str = "glance-checksum";
const HASH_ALGO: &str = "glance-os-hash-algo";
const HASH_VALUE: &str = "glance-os-hash-value";

/// An image in the remote tier: its size, and the digests it was verified
/// against before it was uploaded (stored as object metadata).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RemoteImage {
    /// The image id.
    pub image_id: ImageId,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex MD5, as Glance's `checksum`.
    pub checksum: Option<String>,
    /// Glance's `os_hash_algo` / `os_hash_value`.
    pub multihash: Option<Multihash>,
    /// Epoch seconds of the upload.
    pub last_modified: f64,
}

impl RemoteImage {
    /// An image to upload.
    ///
    /// ```
    /// use glance_cache::remote::RemoteImage;
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// let image = RemoteImage::new(id, 12, Some("abc".into()), None);
    /// assert_eq!(image.size, 12);
    /// ```
    pub fn new(
        image_id: ImageId,
        size: u64,
        checksum: Option<String>,
        multihash: Option<Multihash>,
    ) -> Self {
        RemoteImage {
            image_id,
            size,
            checksum,
            multihash,
            last_modified: 0.0,
        }
    }

    pub(crate) fn attributes(&self) -> Attributes {
        let mut attributes = Attributes::new();
        let mut put = |key: &'static str, value: String| {
            attributes.insert(
                Attribute::Metadata(Cow::Borrowed(key)),
                AttributeValue::from(value),
            );
        };
        put("glance-size", self.size.to_string());
        if let Some(checksum) = &self.checksum {
            put(CHECKSUM, checksum.clone());
        }
        if let Some(m) = &self.multihash {
            put(HASH_ALGO, m.algorithm.name().to_owned());
            put(HASH_VALUE, m.value.clone());
        }
        attributes
    }

    pub(crate) fn from_object(
        image_id: ImageId,
        size: u64,
        last_modified: f64,
        attributes: &Attributes,
    ) -> Self {
        let get = |key: &'static str| {
            attributes
                .get(&Attribute::Metadata(Cow::Borrowed(key)))
                .map(|v| v.as_ref().trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let multihash = match (get(HASH_ALGO), get(HASH_VALUE)) {
            (Some(algo), Some(value)) => {
                HashAlgorithm::from_name(&algo).map(|algorithm| Multihash {
                    algorithm,
                    value: value.to_ascii_lowercase(),
                })
            }
            _ => None,
        };
        RemoteImage {
            image_id,
            size,
            checksum: get(CHECKSUM).map(|c| c.to_ascii_lowercase()),
            multihash,
            last_modified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_round_trip_through_attributes() {
        let id = ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
        let m = Multihash::from_record("sha512", "AB12").unwrap();
        let image = RemoteImage::new(id.clone(), 7, Some("ff00".into()), Some(m));
        let back = RemoteImage::from_object(id, 7, 0.0, &image.attributes());
        assert_eq!(back, image);
    }
}
