//! Images: [`FakeImage`] (what a test declares), the stored record, its data
//! source and the Glance-shaped metadata document.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use md5::Digest;
use serde::Serialize;

use super::behaviour::{Behaviour, MetaField, MultihashField};
use super::json;
use super::pattern::Pattern;

/// Glance image statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ImageStatus {
    /// Created, no data yet (downloads answer 204).
    Queued,
    /// Data is being uploaded.
    Saving,
    /// Uploading through the interoperable import flow.
    Uploading,
    /// Being imported.
    Importing,
    /// Has data and can be downloaded.
    Active,
    /// An upload failed.
    Killed,
    /// Downloads are forbidden for non-admins.
    Deactivated,
    /// Deleted, data still being removed (invisible, like `Deleted`).
    PendingDelete,
    /// Deleted (invisible: every lookup answers 404).
    Deleted,
}

impl ImageStatus {
    /// The status as Glance spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            ImageStatus::Queued => "queued",
            ImageStatus::Saving => "saving",
            ImageStatus::Uploading => "uploading",
            ImageStatus::Importing => "importing",
            ImageStatus::Active => "active",
            ImageStatus::Killed => "killed",
            ImageStatus::Deactivated => "deactivated",
            ImageStatus::PendingDelete => "pending_delete",
            ImageStatus::Deleted => "deleted",
        }
    }

    /// Whether Glance's lookup hides an image in this status.
    pub(crate) fn is_deleted(&self) -> bool {
        matches!(self, ImageStatus::Deleted | ImageStatus::PendingDelete)
    }
}

impl fmt::Display for ImageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Glance image visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Visibility {
    /// Everyone sees it.
    Public,
    /// Only the owner project (and admins).
    Private,
    /// The owner and the projects it is shared with (Glance's default).
    #[default]
    Shared,
    /// Everyone sees it; not listed by default.
    Community,
}

impl Visibility {
    /// The visibility as Glance spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Visibility::Public => "public",
            Visibility::Private => "private",
            Visibility::Shared => "shared",
            Visibility::Community => "community",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "public" => Visibility::Public,
            "private" => Visibility::Private,
            "shared" => Visibility::Shared,
            "community" => Visibility::Community,
            _ => return None,
        })
    }
}

impl fmt::Display for Visibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an image's bytes come from.
#[derive(Clone, Debug)]
pub(crate) enum Data {
    /// No data (queued): downloads answer 204.
    None,
    /// Small data held in memory.
    Bytes(Bytes),
    /// `len` bytes of a [`Pattern`], generated chunk by chunk.
    Pattern { pattern: Pattern, len: u64 },
    /// An uploaded file in the fake's upload directory.
    File { path: Arc<PathBuf>, len: u64 },
}

impl Data {
    pub(crate) fn len(&self) -> Option<u64> {
        match self {
            Data::None => None,
            Data::Bytes(b) => Some(b.len() as u64),
            Data::Pattern { len, .. } | Data::File { len, .. } => Some(*len),
        }
    }

    /// MD5 and SHA-512 of the data (blocking for patterns and files).
    pub(crate) fn digests(&self) -> io::Result<Option<Digests>> {
        Ok(match self {
            Data::None => None,
            Data::Bytes(b) => {
                let mut h = Digests::hasher();
                h.update(b);
                Some(h.finish())
            }
            Data::Pattern { pattern, len } => Some(pattern.digests(*len)),
            Data::File { path, .. } => {
                use std::io::Read;
                let mut f = std::fs::File::open(path.as_path())?;
                let mut h = Digests::hasher();
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                Some(h.finish())
            }
        })
    }
}

/// Lower-case hex MD5 (Glance's `checksum`) and SHA-512 (`os_hash_value`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Digests {
    pub(crate) md5: String,
    pub(crate) sha512: String,
}

/// Feeds bytes to MD5 and SHA-512 at once.
pub(crate) struct DigestHasher {
    md5: md5::Md5,
    sha512: sha2::Sha512,
}

impl Digests {
    pub(crate) fn hasher() -> DigestHasher {
        DigestHasher {
            md5: md5::Md5::new(),
            sha512: sha2::Sha512::new(),
        }
    }
}

impl DigestHasher {
    pub(crate) fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        self.sha512.update(data);
    }

    pub(crate) fn finish(self) -> Digests {
        Digests {
            md5: hex::encode(self.md5.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

/// An image to put into the fake, built up with chained calls.
///
/// Without data the image is `queued`; with data (`bytes` or `pattern`) it
/// is `active`, unless a status is set explicitly. The owner defaults to
/// none (Glance shows such an image to everyone) and the visibility to
/// `shared`, Glance's default.
///
/// ```
/// use glance_cache_support::fake_glance::{FakeImage, ImageStatus, Visibility};
///
/// let small = FakeImage::new("6c5d7e0a-3f43-4d3c-9c55-7b1f8a1e2d01")
///     .bytes("IMAGEDATA")
///     .visibility(Visibility::Public)
///     .owner("X");
/// assert_eq!(small.size(), Some(9));
///
/// // 1 GiB that is never held in memory.
/// let big = FakeImage::new("6c5d7e0a-3f43-4d3c-9c55-7b1f8a1e2d02").pattern(1 << 30, 7);
/// assert_eq!(big.size(), Some(1 << 30));
///
/// let deact = FakeImage::new("6c5d7e0a-3f43-4d3c-9c55-7b1f8a1e2d03")
///     .bytes("IMAGEDATA")
///     .status(ImageStatus::Deactivated);
/// # let _ = deact;
/// ```
#[derive(Clone, Debug)]
pub struct FakeImage {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: Option<ImageStatus>,
    pub(crate) visibility: Visibility,
    pub(crate) owner: Option<String>,
    pub(crate) members: Vec<String>,
    pub(crate) protected: bool,
    pub(crate) disk_format: Option<String>,
    pub(crate) container_format: Option<String>,
    pub(crate) data: Data,
    pub(crate) with_checksum: bool,
    pub(crate) created_at: SystemTime,
}

impl FakeImage {
    /// An image with id `id` (Glance uses UUID strings) and no data.
    pub fn new(id: impl Into<String>) -> Self {
        FakeImage {
            id: id.into(),
            name: None,
            status: None,
            visibility: Visibility::default(),
            owner: None,
            members: Vec::new(),
            protected: false,
            disk_format: Some("raw".into()),
            container_format: Some("bare".into()),
            data: Data::None,
            with_checksum: true,
            created_at: SystemTime::now(),
        }
    }

    /// The image id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The data size, if the image has data.
    pub fn size(&self) -> Option<u64> {
        self.data.len()
    }

    /// Sets the image name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Uses `data` (kept in memory: meant for small images) as the image data.
    pub fn bytes(mut self, data: impl Into<Bytes>) -> Self {
        self.data = Data::Bytes(data.into());
        self
    }

    /// Uses `len` bytes of [`Pattern::new(seed)`](Pattern) as the image data.
    ///
    /// The data is generated chunk by chunk when served. Its MD5 and SHA-512
    /// are computed once when the image is added to a fake, by streaming the
    /// pattern through both hashes on two blocking threads: about 3 s for
    /// 1 GiB in an optimised build, 6–8 s in a debug build with the hash
    /// crates optimised (results are remembered per process for each
    /// `(len, seed)`, so fixtures that repeat an image pay once).
    pub fn pattern(mut self, len: u64, seed: u64) -> Self {
        self.data = Data::Pattern {
            pattern: Pattern::new(seed),
            len,
        };
        self
    }

    /// Removes the data: the image stays `queued` and downloads answer 204.
    pub fn no_data(mut self) -> Self {
        self.data = Data::None;
        self
    }

    /// Sets the status (default: `active` with data, `queued` without).
    pub fn status(mut self, status: ImageStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Sets the visibility (default `shared`).
    pub fn visibility(mut self, visibility: Visibility) -> Self {
        self.visibility = visibility;
        self
    }

    /// Sets the owner project.
    pub fn owner(mut self, project: impl Into<String>) -> Self {
        self.owner = Some(project.into());
        self
    }

    /// Shares the image with `project` (an image member; matters for
    /// `shared` images, which only the owner and members can see).
    pub fn member(mut self, project: impl Into<String>) -> Self {
        self.members.push(project.into());
        self
    }

    /// Marks the image protected: deleting it answers 403.
    pub fn protected(mut self, protected: bool) -> Self {
        self.protected = protected;
        self
    }

    /// Sets `disk_format` (default `raw`).
    pub fn disk_format(mut self, format: impl Into<String>) -> Self {
        self.disk_format = Some(format.into());
        self
    }

    /// Sets `container_format` (default `bare`).
    pub fn container_format(mut self, format: impl Into<String>) -> Self {
        self.container_format = Some(format.into());
        self
    }

    /// The image genuinely has no checksum: metadata `checksum`,
    /// `os_hash_algo` and `os_hash_value` are null and downloads carry no
    /// `Content-MD5` (as for images registered by location).
    pub fn without_checksum(mut self) -> Self {
        self.with_checksum = false;
        self
    }

    /// Sets `created_at` (default: when the `FakeImage` was made).
    pub fn created_at(mut self, at: SystemTime) -> Self {
        self.created_at = at;
        self
    }

    /// Turns the declaration into a stored record (`digests` computed by the
    /// caller, on a blocking thread).
    pub(crate) fn into_record(self, digests: Option<Digests>) -> ImageRecord {
        let status = self.status.unwrap_or(match self.data {
            Data::None => ImageStatus::Queued,
            _ => ImageStatus::Active,
        });
        let created = iso8601(self.created_at);
        ImageRecord {
            id: self.id,
            name: self.name,
            status,
            visibility: self.visibility,
            owner: self.owner,
            members: self.members,
            protected: self.protected,
            disk_format: self.disk_format,
            container_format: self.container_format,
            data: self.data,
            digests: if self.with_checksum { digests } else { None },
            updated_at: created.clone(),
            created_at: created,
        }
    }
}

/// An image as the fake stores it.
#[derive(Clone, Debug)]
pub(crate) struct ImageRecord {
    pub(crate) id: String,
    pub(crate) name: Option<String>,
    pub(crate) status: ImageStatus,
    pub(crate) visibility: Visibility,
    pub(crate) owner: Option<String>,
    pub(crate) members: Vec<String>,
    pub(crate) protected: bool,
    pub(crate) disk_format: Option<String>,
    pub(crate) container_format: Option<String>,
    pub(crate) data: Data,
    pub(crate) digests: Option<Digests>,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
}

impl ImageRecord {
    pub(crate) fn touch(&mut self) {
        self.updated_at = iso8601(SystemTime::now());
    }

    pub(crate) fn md5(&self) -> Option<&str> {
        self.digests.as_ref().map(|d| d.md5.as_str())
    }

    /// The metadata document, in Glance's key order and JSON spacing, with
    /// `behaviour`'s metadata lies applied.
    pub(crate) fn to_json(&self, behaviour: &Behaviour) -> Vec<u8> {
        let size = self.data.len();
        let reported_size = match behaviour.metadata_size {
            MetaField::Actual => size,
            MetaField::Null => None,
            MetaField::Zero => Some(0),
        };
        let checksum = match behaviour.metadata_checksum {
            MetaField::Actual => self.md5(),
            MetaField::Null => None,
            MetaField::Zero => Some("00000000000000000000000000000000"),
        };
        let sha256;
        let (os_hash_algo, os_hash_value) = match (behaviour.metadata_multihash, &self.digests) {
            (_, None) | (MultihashField::Null, _) => (None, None),
            (MultihashField::Actual, Some(d)) => (Some("sha512"), Some(d.sha512.as_str())),
            (MultihashField::Wrong, Some(_)) => (Some("sha512"), Some(ZERO_SHA512)),
            (MultihashField::Sha256, Some(_)) => match &self.data {
                Data::Bytes(b) => {
                    sha256 = hex::encode(sha2::Sha256::digest(b));
                    (Some("sha256"), Some(sha256.as_str()))
                }
                _ => (None, None),
            },
        };
        let doc = ImageDoc {
            name: self.name.as_deref(),
            disk_format: self.disk_format.as_deref(),
            container_format: self.container_format.as_deref(),
            visibility: self.visibility.as_str(),
            size: reported_size,
            virtual_size: size,
            status: self.status.as_str(),
            checksum,
            protected: self.protected,
            min_ram: 0,
            min_disk: 0,
            owner: self.owner.as_deref(),
            os_hidden: false,
            os_hash_algo,
            os_hash_value,
            id: &self.id,
            created_at: &self.created_at,
            updated_at: &self.updated_at,
            tags: [],
            self_link: format!("/v2/images/{}", self.id),
            file: format!("/v2/images/{}/file", self.id),
            schema: "/v2/schemas/image",
            stores: size.map(|_| "fs"),
        };
        json::to_vec(&doc)
    }
}

/// A SHA-512 that no data has (in practice).
const ZERO_SHA512: &str = "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

/// `GET /v2/images/{id}` body, fields in Glance's order.
#[derive(Serialize)]
struct ImageDoc<'a> {
    name: Option<&'a str>,
    disk_format: Option<&'a str>,
    container_format: Option<&'a str>,
    visibility: &'a str,
    size: Option<u64>,
    virtual_size: Option<u64>,
    status: &'a str,
    checksum: Option<&'a str>,
    protected: bool,
    min_ram: u64,
    min_disk: u64,
    owner: Option<&'a str>,
    os_hidden: bool,
    os_hash_algo: Option<&'a str>,
    os_hash_value: Option<&'a str>,
    id: &'a str,
    created_at: &'a str,
    updated_at: &'a str,
    tags: [&'a str; 0],
    #[serde(rename = "self")]
    self_link: String,
    file: String,
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stores: Option<&'static str>,
}

/// `2026-11-24T08:19:30Z` (UTC, seconds), as Glance formats timestamps.
pub(crate) fn iso8601(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_format_like_glance() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_508_370);
        assert_eq!(iso8601(t), "2026-11-24T08:19:30Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_825_600); // 2000-02-29 12:00
        assert_eq!(iso8601(leap), "2000-02-29T12:00:00Z");
    }

    #[test]
    fn metadata_has_glance_keys_in_order() {
        let img = FakeImage::new("e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c")
            .name("img1")
            .bytes("IMAGEDATA")
            .created_at(UNIX_EPOCH + Duration::from_secs(1_795_508_370));
        let digests = img.data.digests().unwrap();
        let rec = img.into_record(digests);
        let text = String::from_utf8(rec.to_json(&Behaviour::default())).unwrap();
        assert!(text.starts_with(
            r#"{"name": "img1", "disk_format": "raw", "container_format": "bare", "visibility": "shared", "size": 9, "virtual_size": 9, "status": "active", "checksum": "#
        ));
        assert!(text.contains(r#""os_hash_algo": "sha512", "os_hash_value": ""#));
        assert!(text.ends_with(
            r#""id": "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c", "created_at": "2026-11-24T08:19:30Z", "updated_at": "2026-11-24T08:19:30Z", "tags": [], "self": "/v2/images/e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c", "file": "/v2/images/e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c/file", "schema": "/v2/schemas/image", "stores": "fs"}"#
        ));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["checksum"], hex::encode(md5::Md5::digest(b"IMAGEDATA")));
    }

    #[test]
    fn queued_image_has_nulls_and_no_stores() {
        let rec = FakeImage::new("q").into_record(None);
        let v: serde_json::Value =
            serde_json::from_slice(&rec.to_json(&Behaviour::default())).unwrap();
        assert_eq!(v["status"], "queued");
        assert!(v["size"].is_null() && v["checksum"].is_null() && v["os_hash_value"].is_null());
        assert!(v.get("stores").is_none());
    }

    #[test]
    fn metadata_lies() {
        let img = FakeImage::new("x").bytes("IMAGEDATA");
        let d = img.data.digests().unwrap();
        let rec = img.into_record(d);
        let b = Behaviour::default()
            .metadata_size_null()
            .metadata_checksum_null();
        let v: serde_json::Value = serde_json::from_slice(&rec.to_json(&b)).unwrap();
        assert!(v["size"].is_null() && v["checksum"].is_null());
        let v: serde_json::Value =
            serde_json::from_slice(&rec.to_json(&Behaviour::default().metadata_size_zero()))
                .unwrap();
        assert_eq!(v["size"], 0);
    }
}
