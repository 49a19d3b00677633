//! Hashing a cached file again, and what becomes of it: the entry is
//! recorded as verified, or quarantined.
//!
//! A committed file is trusted while it is the file that was verified: its
//! identity ([`FileStamp`]) is recorded with its digests. Three things hash
//! it again: a hit that finds the identity changed (or an entry never
//! hashed), the background scrubber (for rot that changes no metadata) and
//! `glance-cache-proxy verify`.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::blocking::{blocking, in_background};
use super::index::Verified;
use super::stamp::FileStamp;
use super::{disk, CacheStore};
use crate::checksum::{DigestMismatch, Digests, Expected, HashAlgorithm, Hashers};
use crate::{Error, ImageId};

/// Bytes hashed per read.
const READ_SIZE: usize = 1 << 20;

/// Longest stretch of reading a reader that fell behind its rate may do
/// without pausing to catch up: a reader starved of CPU for a while (at
/// nice 19 on a busy machine) must not then read at full speed until its
/// average is back.
const MAX_CATCH_UP: Duration = Duration::from_secs(1);

/// Keeps a reader at or under `rate` bytes per second (unpaced when
/// `None`), and stops it when whoever waits for it has gone.
pub(crate) struct Pace {
    rate: Option<u64>,
    started: Instant,
    /// Lag given up on (see [`MAX_CATCH_UP`]): time since `started` that
    /// no longer counts.
    forgiven: Duration,
    done: u64,
    stop: Option<Arc<AtomicBool>>,
}

impl Pace {
    pub(crate) fn new(rate: Option<u64>) -> Self {
        Pace {
            rate: rate.filter(|r| *r > 0),
            started: Instant::now(),
            forgiven: Duration::ZERO,
            done: 0,
            stop: None,
        }
    }

    /// Stops the reader (at its next read) once `stop` is set.
    fn stopped_by(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// `n` more bytes were read: sleeps until the average rate is back
    /// under the limit. Blocking: call it on a blocking thread. An error
    /// when the reader must stop.
    fn after(&mut self, n: u64) -> io::Result<()> {
        let pause = self.pause(n, self.started.elapsed());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
        {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "verification abandoned",
            ));
        }
        Ok(())
    }

    /// How long to pause after `n` more bytes, `elapsed` after the start:
    /// until the average is back under the rate. Behind it by more than
    /// [`MAX_CATCH_UP`], the reader forgets the rest of its lag: the rate
    /// holds over any stretch longer than that, not only on average.
    fn pause(&mut self, n: u64, elapsed: Duration) -> Duration {
        self.done += n;
        let Some(rate) = self.rate else {
            return Duration::ZERO;
        };
        let due = Duration::from_secs_f64(self.done as f64 / rate as f64);
        let elapsed = elapsed.saturating_sub(self.forgiven);
        match due.checked_sub(elapsed) {
            Some(ahead) => ahead,
            None => {
                let behind = elapsed - due;
                if let Some(forgotten) = behind.checked_sub(MAX_CATCH_UP) {
                    self.forgiven += forgotten;
                }
                Duration::ZERO
            }
        }
    }
}

/// Sets its flag when dropped: tells a blocking reader that nobody waits
/// for it any more (the task awaiting it was cancelled).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Hashes `len` bytes of `file` from its start with MD5 and, when asked,
/// `multi`; `progress` hears of every read. A file shorter than `len` is an
/// `UnexpectedEof` error. Blocking.
pub(crate) fn hash_file(
    file: &File,
    len: u64,
    multi: Option<HashAlgorithm>,
    pace: &mut Pace,
    progress: &mut dyn FnMut(u64),
) -> io::Result<Digests> {
    let mut hashers = Hashers::new(multi);
    hash_into(&mut hashers, file, len, pace, progress)?;
    Ok(hashers.finish())
}

/// The MD5 of the first `len` bytes of `file`, as a running digest that
/// more bytes may follow (a follower's bytes sent from a fill that failed,
/// before the upstream's rest). Blocking.
pub(crate) fn hash_start(file: &File, len: u64) -> io::Result<Hashers> {
    let mut hashers = Hashers::new(None);
    hash_into(&mut hashers, file, len, &mut Pace::new(None), &mut |_| {})?;
    Ok(hashers)
}

fn hash_into(
    hashers: &mut Hashers,
    file: &File,
    len: u64,
    pace: &mut Pace,
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut buf = vec![0u8; READ_SIZE];
    let mut pos = 0u64;
    while pos < len {
        let want = (len - pos).min(READ_SIZE as u64) as usize;
        let n = match file.read_at(&mut buf[..want], pos) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the file ends at byte {pos} of {len}"),
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hashers.update(&buf[..n]);
        pos += n as u64;
        progress(n as u64);
        pace.after(n as u64)?;
    }
    Ok(())
}

/// What hashing a cached entry again found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Integrity {
    /// The file hashes to its recorded digests; recorded as verified now.
    Intact,
    /// It does not (or it is not the recorded size, or its bytes cannot be
    /// read): the file was moved to `invalid/` and its row dropped, so the
    /// next request fetches the image again.
    Quarantined(IntegrityFailure),
    /// Nothing to compare with: the entry has no recorded checksum (it was
    /// adopted from a directory written by Glance, or after the index was
    /// lost). The proxy verifies it against the upstream's checksum before
    /// its first hit is served complete.
    Unverifiable,
    /// Not cached (no row, or no file).
    NotCached,
}

/// How a cached file differs from what was recorded for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntegrityFailure {
    /// A digest differs.
    #[error("{0}")]
    Digest(String),
    /// The file is not the recorded size.
    #[error("the file has {found} bytes, the index says {expected}")]
    Size {
        /// Bytes in the file.
        found: u64,
        /// The recorded size.
        expected: u64,
    },
    /// Reading the file's bytes failed (a disk error, say): they cannot be
    /// served either.
    #[error("the file cannot be read: {0}")]
    Unreadable(String),
}

impl From<DigestMismatch> for IntegrityFailure {
    fn from(m: DigestMismatch) -> Self {
        IntegrityFailure::Digest(m.to_string())
    }
}

impl fmt::Display for Integrity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Integrity::Intact => f.write_str("intact"),
            Integrity::Quarantined(why) => write!(f, "corrupt ({why}); quarantined"),
            Integrity::Unverifiable => f.write_str("no recorded checksum to verify against"),
            Integrity::NotCached => f.write_str("not cached"),
        }
    }
}

/// What examining a cached file found.
pub(super) enum Hashed {
    Digests(Digests),
    /// Not the recorded size: the file's.
    Size(u64),
    /// A read failed.
    Unreadable(io::Error),
}

impl Hashed {
    /// What reading the file whole and hashing it gave.
    pub(super) fn read(result: io::Result<Digests>) -> Self {
        match result {
            Ok(digests) => Hashed::Digests(digests),
            Err(e) => Hashed::Unreadable(e),
        }
    }

    /// The digests, when the file of `size` bytes is what `expected`
    /// says; else how it fails that.
    pub(super) fn judged(
        self,
        expected: &Expected,
        size: u64,
    ) -> Result<Digests, IntegrityFailure> {
        match self {
            Hashed::Size(found) => Err(IntegrityFailure::Size {
                found,
                expected: size,
            }),
            Hashed::Unreadable(e) => Err(IntegrityFailure::Unreadable(e.to_string())),
            Hashed::Digests(digests) => expected
                .check(&digests)
                .map(|()| digests)
                .map_err(Into::into),
        }
    }
}

/// Where a verification's hashing runs.
enum Priority {
    /// On the blocking pool, at the process's priority.
    Normal,
    /// On a thread of its own at the lowest CPU priority.
    Background,
}

/// The digests recorded for an entry, as an expectation.
pub(crate) fn recorded(entry: &super::CacheEntry) -> Option<Expected> {
    let md5 = entry.checksum.as_deref().and_then(|c| {
        let mut out = [0u8; 16];
        hex::decode_to_slice(c.trim(), &mut out).ok().map(|()| out)
    });
    let expected = Expected {
        md5,
        multihash: entry.multihash.clone(),
    };
    (!expected.is_empty()).then_some(expected)
}

impl CacheStore {
    /// Hashes the cached file of `id` again and compares it with the
    /// digests recorded at its commit (MD5, and the multihash when one was
    /// recorded), reading at most `rate` bytes per second (`None`: as fast
    /// as the disk goes); `progress` hears of every read. A match records
    /// the entry as verified now; a mismatch quarantines it, and so does a
    /// failure to read the file's bytes (a disk error: no hit could serve
    /// them either). A file that cannot be opened or examined is an error,
    /// and left as it is.
    ///
    /// Safe beside a serving proxy: a file committed anew while it was
    /// being hashed is neither recorded nor quarantined on the old file's
    /// account.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// use glance_cache::store::{CacheStore, Integrity};
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = CacheStore::builder(dir.path()).open().await?;
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// assert_eq!(store.verify_entry(&id, None, |_| {}).await?, Integrity::NotCached);
    /// # Ok(()) }
    /// ```
    pub async fn verify_entry(
        &self,
        id: &ImageId,
        rate: Option<u64>,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<Integrity, Error> {
        self.verify(id, rate, Priority::Normal, progress).await
    }

    /// [`verify_entry`](Self::verify_entry) for the scrubber: the hashing
    /// runs on a thread of its own at the lowest CPU priority, so that on a
    /// busy machine it takes only what serving leaves (it slows below
    /// `rate` rather than slowing hits).
    pub(crate) async fn scrub_entry(
        &self,
        id: &ImageId,
        rate: u64,
        progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<Integrity, Error> {
        self.verify(id, Some(rate), Priority::Background, progress)
            .await
    }

    async fn verify(
        &self,
        id: &ImageId,
        rate: Option<u64>,
        priority: Priority,
        mut progress: impl FnMut(u64) + Send + 'static,
    ) -> Result<Integrity, Error> {
        let Some(entry) = self.inner.index.get(id).await? else {
            return Ok(Integrity::NotCached);
        };
        let Some(expected) = recorded(&entry) else {
            return Ok(Integrity::Unverifiable);
        };
        let path = self.inner.layout.entry(id);
        // An entry recorded without a multihash gets a SHA-512 now.
        let multi = Some(expected.multihash_to_record());
        let size = entry.size;
        let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
        let pace = Pace::new(rate).stopped_by(Arc::clone(&stop.0));
        let at = path.clone();
        let hash = move || {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io("open", &path, e)),
            };
            let meta = file.metadata().map_err(|e| Error::io("stat", &path, e))?;
            let stamp = FileStamp::of(&meta);
            if meta.len() != size {
                return Ok(Some((file, stamp, Hashed::Size(meta.len()))));
            }
            let mut pace = pace;
            let hashed = match hash_file(&file, size, multi, &mut pace, &mut progress) {
                // Abandoned: nobody waits for the verdict.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return Err(Error::io("read", &path, e))
                }
                result => Hashed::read(result),
            };
            Ok(Some((file, stamp, hashed)))
        };
        let hashed = match priority {
            Priority::Normal => blocking("verify", &at, hash).await?,
            Priority::Background => in_background("scrub", &at, hash).await?,
        };
        drop(stop);
        let Some((file, stamp, hashed)) = hashed else {
            return Ok(Integrity::NotCached);
        };
        let failure = match hashed.judged(&expected, size) {
            Ok(digests) => {
                self.record_verified(&entry, stamp, digests, entry.verified)
                    .await?;
                return Ok(Integrity::Intact);
            }
            Err(failure) => failure,
        };
        tracing::warn!(image_id = %id, %failure, "cached file is corrupt; quarantined");
        self.quarantine_file(&entry, Arc::new(file)).await?;
        Ok(Integrity::Quarantined(failure))
    }

    /// Records that `entry`'s file, with identity `stamp` now, hashed to
    /// `digests` (which matched what was expected of it).
    pub(crate) async fn record_verified(
        &self,
        entry: &super::CacheEntry,
        stamp: FileStamp,
        digests: Digests,
        verified_upstream: bool,
    ) -> Result<bool, Error> {
        let multihash = digests.multihash.or_else(|| entry.multihash.clone());
        let verified = Verified {
            md5: hex::encode(digests.md5),
            multihash,
            stamp: Some(stamp),
        };
        self.inner
            .index
            .record_verified(
                &entry.image_id,
                entry.stamp,
                verified,
                verified_upstream,
                super::now_epoch(),
            )
            .await
    }

    /// Moves the committed file of `entry` to `invalid/` if the file there
    /// is still `file` (a file committed anew since is left alone: `file`
    /// is open, so its inode cannot have been reused), and drops the row if
    /// it is still `entry`'s or names `file`. A file that cannot be moved
    /// (`invalid/` gone or not writable) is removed instead: it is never
    /// left to be served.
    pub(crate) async fn quarantine_file(
        &self,
        entry: &super::CacheEntry,
        file: Arc<File>,
    ) -> Result<(), Error> {
        let id = &entry.image_id;
        let from = self.inner.layout.entry(id);
        let to = self.inner.layout.invalid(id);
        let (ours, ino) = blocking("quarantine", &from.clone(), move || {
            let ino = file
                .metadata()
                .map_err(|e| Error::io("stat", &from, e))?
                .ino();
            match std::fs::metadata(&from) {
                Ok(m) if m.ino() == ino => {}
                Ok(_) => return Ok((false, ino)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((false, ino)),
                Err(e) => return Err(Error::io("stat", &from, e)),
            }
            disk::quarantine_or_remove(&from, &to);
            Ok((true, ino))
        })
        .await?;
        if !ours {
            tracing::debug!(image_id = %id, "the corrupt file was replaced meanwhile; nothing quarantined");
        }
        self.inner
            .index
            .delete_if_still(id, entry.stamp, ino)
            .await?;
        Ok(())
    }
}

/// A file opened for a hit, with its identity at opening.
#[derive(Debug, Clone)]
pub(crate) struct OpenedHit {
    pub(crate) file: Arc<File>,
    pub(crate) stamp: FileStamp,
}

impl OpenedHit {
    /// Whether the file is no longer what it was when it was opened (a
    /// write, a truncation, a rename since). An `fstat` of the open file:
    /// no disk wait. A file that cannot be examined counts as changed.
    pub(crate) fn changed_since_opened(&self) -> bool {
        self.file
            .metadata()
            .map_or(true, |meta| FileStamp::of(&meta) != self.stamp)
    }

    /// Why the file must be hashed again before it is served complete:
    /// never hashed (adopted), or changed since it was verified.
    pub(crate) fn unverified(&self, entry: &super::CacheEntry) -> Option<&'static str> {
        match entry.stamp {
            _ if entry.checksum.is_none() => Some("never verified"),
            None => Some("no file identity recorded at its verification"),
            Some(stamp) if stamp != self.stamp => Some("changed since it was verified"),
            Some(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_reader_ahead_of_its_rate_pauses_until_it_is_back_under_it() {
        let mut pace = Pace::new(Some(MIB));
        assert_eq!(pace.pause(MIB, Duration::ZERO), Duration::from_secs(1));
        assert_eq!(
            pace.pause(MIB / 2, Duration::from_secs(1)),
            Duration::from_millis(500)
        );
        assert_eq!(Pace::new(None).pause(MIB, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_reader_starved_for_a_while_catches_up_a_second_at_most() {
        let mut pace = Pace::new(Some(MIB));
        // Ten seconds without a byte read (no CPU at nice 19, say).
        let elapsed = Duration::from_secs(10);
        let mut unpaused = 0;
        while pace.pause(MIB / 4, elapsed).is_zero() {
            unpaused += MIB / 4;
            assert!(unpaused < 10 * MIB, "read flat out to catch up ten seconds");
        }
        // A second's worth of lag is made up at once, and no more.
        assert!(
            unpaused <= 2 * MIB,
            "{unpaused} bytes before the first pause"
        );
        // From there on, the rate holds: four more MiB at once take four
        // seconds (the ten seconds of lag would have let them through).
        let pause = pace.pause(4 * MIB, elapsed);
        assert!(pause >= Duration::from_secs(4), "{pause:?}");
    }
}
