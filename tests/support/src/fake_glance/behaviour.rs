//! [`Behaviour`]: how an image's responses misbehave.

use std::time::Duration;

use http::StatusCode;

use super::gate::Gate;

/// What to report for a metadata field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum MetaField {
    #[default]
    Actual,
    Null,
    Zero,
}

/// What to report as the multihash (`os_hash_algo`/`os_hash_value`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum MultihashField {
    /// SHA-512 of the data, as Glance computes it by default.
    #[default]
    Actual,
    /// Both `null` (an image uploaded before Glance had multihashes).
    Null,
    /// `sha512` with a value of zeros: a lie about one digest.
    Wrong,
    /// `sha256` of the data (Glance's `hashing_algorithm = sha256`).
    Sha256,
}

/// What to send as `Content-MD5` on downloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Md5Header {
    #[default]
    Actual,
    Wrong,
    Omitted,
    Garbage,
}

/// Misbehaviour for one image (or, as the fake's default, for every image
/// without its own). The default behaves like Glance.
///
/// A request takes a snapshot of the behaviour when it arrives; changing it
/// later affects later requests only.
///
/// ```
/// use std::time::Duration;
/// use glance_cache_support::fake_glance::Behaviour;
///
/// // Send the headers after 200 ms, then 1 MiB of the body, then abort.
/// let flaky = Behaviour::default()
///     .header_delay(Duration::from_millis(200))
///     .reset_after(1 << 20);
/// // A body at 4 MiB/s whose bytes do not match its Content-MD5.
/// let liar = Behaviour::default().rate(4 << 20).corrupt();
/// # let _ = (flaky, liar);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    pub(crate) header_delay: Option<Duration>,
    pub(crate) hold_headers: Option<Gate>,
    pub(crate) metadata_delay: Option<Duration>,
    pub(crate) chunk_delay: Option<Duration>,
    pub(crate) rate: Option<u64>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) reset_after: Option<u64>,
    pub(crate) stall_after: Option<u64>,
    pub(crate) hold_after: Option<(u64, Gate)>,
    pub(crate) content_md5: Md5Header,
    pub(crate) chunked: bool,
    pub(crate) corrupt: bool,
    pub(crate) force_status: Option<StatusCode>,
    pub(crate) force_metadata_status: Option<StatusCode>,
    pub(crate) force_delete_status: Option<StatusCode>,
    pub(crate) metadata_size: MetaField,
    pub(crate) metadata_checksum: MetaField,
    pub(crate) metadata_multihash: MultihashField,
}

impl Behaviour {
    /// Waits `delay` before sending the response headers of a file GET.
    pub fn header_delay(mut self, delay: Duration) -> Self {
        self.header_delay = Some(delay);
        self
    }

    /// Waits until `gate` is [opened](Gate::open) before answering a file
    /// GET (the request is there: [`Gate::waiting`] counts it): the test
    /// decides when the upstream's response begins.
    pub fn hold_headers(mut self, gate: Gate) -> Self {
        self.hold_headers = Some(gate);
        self
    }

    /// Waits `delay` before answering a metadata GET (`/v2/images/{id}`).
    pub fn metadata_delay(mut self, delay: Duration) -> Self {
        self.metadata_delay = Some(delay);
        self
    }

    /// Waits `delay` before each body chunk after the first.
    pub fn chunk_delay(mut self, delay: Duration) -> Self {
        self.chunk_delay = Some(delay);
        self
    }

    /// Limits the body to about `bytes_per_second` (chunks shrink to a tenth
    /// of a second's worth when that is below 64 KiB).
    pub fn rate(mut self, bytes_per_second: u64) -> Self {
        self.rate = Some(bytes_per_second.max(1));
        self
    }

    /// Sends the body in chunks of `bytes` (default 64 KiB, like Glance).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = Some(bytes.max(1));
        self
    }

    /// Sends `bytes` of the body, then fails it, so that the server aborts
    /// the connection: the client sees a truncated body and an error. Has
    /// no effect when the body is not longer than `bytes`.
    pub fn reset_after(mut self, bytes: u64) -> Self {
        self.reset_after = Some(bytes);
        self
    }

    /// Sends `bytes` of the body, then sends nothing more until the client
    /// goes away or the fake shuts down. Has no effect when the body is not
    /// longer than `bytes`.
    pub fn stall_after(mut self, bytes: u64) -> Self {
        self.stall_after = Some(bytes);
        self
    }

    /// Sends `bytes` of the body, then waits until `gate` is
    /// [opened](Gate::open) (or the client goes away) and sends the rest:
    /// the test decides when the body may end. Has no effect when the body
    /// is not longer than `bytes` or the gate is already open.
    pub fn hold_after(mut self, bytes: u64, gate: Gate) -> Self {
        self.hold_after = Some((bytes, gate));
        self
    }

    /// Sends a well-formed but wrong `Content-MD5` (the MD5 of the real
    /// checksum's text).
    pub fn wrong_content_md5(mut self) -> Self {
        self.content_md5 = Md5Header::Wrong;
        self
    }

    /// Sends no `Content-MD5` header.
    /// Send a `Content-MD5` that is not a digest at all (`not-a-digest`).
    pub fn garbage_content_md5(mut self) -> Self {
        self.content_md5 = Md5Header::Garbage;
        self
    }

    /// Send no `Content-MD5` header.
    pub fn omit_content_md5(mut self) -> Self {
        self.content_md5 = Md5Header::Omitted;
        self
    }

    /// Sends no `Content-Length`: the body goes out chunked.
    pub fn chunked(mut self) -> Self {
        self.chunked = true;
        self
    }

    /// Serves bytes that differ from the checksum: the byte in the middle of
    /// the image is inverted (same length, same headers).
    pub fn corrupt(mut self) -> Self {
        self.corrupt = true;
        self
    }

    /// Answers file GETs with `status` and Glance's HTML error page, before
    /// any lookup or policy check.
    pub fn force_status(mut self, status: StatusCode) -> Self {
        self.force_status = Some(status);
        self
    }

    /// Answers metadata GETs with `status`, before any lookup.
    pub fn force_metadata_status(mut self, status: StatusCode) -> Self {
        self.force_metadata_status = Some(status);
        self
    }

    /// Answers `DELETE /v2/images/{id}` with `status` (e.g. 403, 409) and
    /// keeps the image.
    pub fn force_delete_status(mut self, status: StatusCode) -> Self {
        self.force_delete_status = Some(status);
        self
    }

    /// Reports `"size": null` in the metadata (downloads are unchanged).
    pub fn metadata_size_null(mut self) -> Self {
        self.metadata_size = MetaField::Null;
        self
    }

    /// Reports `"size": 0` in the metadata (downloads are unchanged).
    pub fn metadata_size_zero(mut self) -> Self {
        self.metadata_size = MetaField::Zero;
        self
    }

    /// Reports `"checksum": null` in the metadata (downloads still carry
    /// `Content-MD5`; add [`Behaviour::omit_content_md5`] for that).
    pub fn metadata_checksum_null(mut self) -> Self {
        self.metadata_checksum = MetaField::Null;
        self
    }

    /// Reports an all-zero checksum in the metadata.
    pub fn metadata_checksum_wrong(mut self) -> Self {
        self.metadata_checksum = MetaField::Zero;
        self
    }

    /// Reports `"os_hash_algo": null, "os_hash_value": null`.
    pub fn metadata_multihash_null(mut self) -> Self {
        self.metadata_multihash = MultihashField::Null;
        self
    }

    /// Reports a SHA-512 of zeros as `os_hash_value` (the MD5 stays right).
    pub fn metadata_multihash_wrong(mut self) -> Self {
        self.metadata_multihash = MultihashField::Wrong;
        self
    }

    /// Reports `"os_hash_algo": "sha256"` and the data's SHA-256, as a
    /// Glance configured with `hashing_algorithm = sha256` does (images
    /// held in memory; others report `null`).
    pub fn metadata_multihash_sha256(mut self) -> Self {
        self.metadata_multihash = MultihashField::Sha256;
        self
    }
}
