//! [`FillFile`]: a fill's claim on `incomplete/<id>`, and its ways out:
//! commit, quarantine or discard.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::blocking::blocking;
use super::index::Verified;
use super::integrity::{hash_file, Pace};
use super::stamp::FileStamp;
use super::{disk, CacheStore};
use crate::checksum::{HashAlgorithm, Multihash};
use crate::{Error, ImageId};

/// Report the bytes on disk at least this often while draining queued chunks.
const PUBLISH_EVERY: u64 = 1 << 20;

/// Why a fill could not start.
#[derive(Debug)]
pub(crate) enum NoFill {
    /// `<id>` exists already.
    Cached,
    /// Another writer (this or another process) holds `incomplete/<id>`.
    Busy,
    /// The image is larger than `image_cache_max_size`.
    TooLarge { size: u64, max: u64 },
    /// Not enough free disk space.
    NoSpace { available: u64, needed: u64 },
    /// The incomplete file could not be created.
    Failed(Error),
}

impl fmt::Display for NoFill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoFill::Cached => f.write_str("already cached"),
            NoFill::Busy => f.write_str("another writer is filling it"),
            NoFill::TooLarge { size, max } => {
                write!(
                    f,
                    "image of {size} bytes exceeds image_cache_max_size {max}"
                )
            }
            NoFill::NoSpace { available, needed } => write!(
                f,
                "not enough free disk space ({available} bytes available, {needed} needed)"
            ),
            NoFill::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// A fill's exclusive, locked `incomplete/<id>`.
///
/// Followers read the file while a writer thread ([`FillFile::spawn_writer`])
/// appends to it. It ends in exactly one of [`commit`](FillFile::commit)
/// (`fsync`, rename to `<id>`, directory `fsync`, index row),
/// [`quarantine`](FillFile::quarantine) (to `invalid/`) or
/// [`discard`](FillFile::discard). Dropped without any of them (a panic),
/// the file stays behind unlocked: a stale incomplete file, which the next
/// fill of the image takes over and `clean` removes after the stall time.
pub(crate) struct FillFile {
    store: CacheStore,
    id: ImageId,
    file: Arc<File>,
    /// The announced size, whose disk space the writer reserves.
    expected: Option<u64>,
}

impl fmt::Debug for FillFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillFile").field("id", &self.id).finish()
    }
}

impl CacheStore {
    /// Claims `incomplete/<id>` for a fill of `expected` bytes: refused when
    /// the image is cached already, larger than `image_cache_max_size`, would
    /// leave less than `min_free_disk`, or another writer (of any process)
    /// holds the file. A leftover file nobody holds is taken over.
    pub(crate) async fn begin_fill(
        &self,
        id: &ImageId,
        expected: Option<u64>,
    ) -> Result<FillFile, NoFill> {
        let (store, claimed_id) = (self.clone(), id.clone());
        let claimed = tokio::task::spawn_blocking(move || store.claim(&claimed_id, expected))
            .await
            .map_err(|e| {
                NoFill::Failed(Error::io(
                    "claim",
                    self.inner.layout.incomplete(id),
                    io::Error::other(e),
                ))
            })??;
        Ok(FillFile {
            store: self.clone(),
            id: id.clone(),
            file: Arc::new(claimed),
            expected,
        })
    }

    /// Whether a writer (a fill of any process sharing the directory) holds
    /// `incomplete/<id>` right now. Probes with a shared lock, released at
    /// once.
    pub(crate) async fn fill_in_progress(&self, id: &ImageId) -> bool {
        let path = self.inner.layout.incomplete(id);
        tokio::task::spawn_blocking(move || {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(_) => return false,
            };
            matches!(file.try_lock_shared(), Err(TryLockError::WouldBlock))
        })
        .await
        .unwrap_or(false)
    }

    /// Blocking: the checks and the claim of [`begin_fill`](Self::begin_fill).
    fn claim(&self, id: &ImageId, expected: Option<u64>) -> Result<File, NoFill> {
        let layout = &self.inner.layout;
        if layout.entry(id).exists() {
            return Err(NoFill::Cached);
        }
        if let Some(size) = expected {
            if size > self.inner.max_size {
                return Err(NoFill::TooLarge {
                    size,
                    max: self.inner.max_size,
                });
            }
        }
        let needed = expected
            .unwrap_or(0)
            .saturating_add(self.inner.min_free_disk);
        match disk::available_space(layout.root()) {
            Ok(available) if available < needed => {
                return Err(NoFill::NoSpace { available, needed })
            }
            Ok(_) => {}
            Err(e) => return Err(NoFill::Failed(Error::io("statvfs", layout.root(), e))),
        }
        let path = layout.incomplete(id);
        // Another process's reconcile or clean may unlink the file between
        // our create and our lock: check that the path is still our file.
        for _ in 0..3 {
            let file = claim_incomplete(id, &path)?;
            if disk::same_file(&file, &path) {
                return Ok(file);
            }
        }
        Err(NoFill::Busy)
    }

    /// Blocking: makes a verified fill durable and visible: fsync, rename to
    /// `<id>`, fsync the directory, drop the queue marker.
    fn commit_blocking(&self, id: &ImageId, file: &File) -> Result<(), Error> {
        let layout = &self.inner.layout;
        let from = layout.incomplete(id);
        let to = layout.entry(id);
        file.sync_all().map_err(|e| Error::io("fsync", &from, e))?;
        #[cfg(any(test, feature = "test-hooks"))]
        self.inner.commit_hold.pause(id);
        std::fs::rename(&from, &to).map_err(|e| Error::io("rename", &from, e))?;
        disk::sync_dir(layout.root()).map_err(|e| Error::io("fsync", layout.root(), e))?;
        match std::fs::remove_file(layout.queue(id)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(image_id = %id, error = %e, "could not remove queue marker"),
        }
        Ok(())
    }
}

fn claim_incomplete(id: &ImageId, path: &Path) -> Result<File, NoFill> {
    let (file, stale) = open_incomplete(path)?;
    lock_incomplete(id, path, file, stale)
}

/// Creates `path`, or opens the one there (`true`: stale, or another
/// writer's).
fn open_incomplete(path: &Path) -> Result<(File, bool), NoFill> {
    // O_NOATIME: followers read the file while it grows, so its mtime
    // keeps passing its atime and every read would update the atime — a
    // journal write that can stall a read on the async worker.
    let fresh = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(path);
    let (file, stale) = match fresh {
        Ok(f) => (f, false),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            match OpenOptions::new().read(true).write(true).open(path) {
                Ok(f) => (f, true),
                Err(_) => return Err(NoFill::Busy),
            }
        }
        Err(e) => return Err(NoFill::Failed(Error::io("create", path, e))),
    };
    Ok((file, stale))
}

/// Takes the writer's lock on `file`, opened from `path`; a stale file
/// (its writer gone) is emptied for the new fill.
fn lock_incomplete(id: &ImageId, path: &Path, file: File, stale: bool) -> Result<File, NoFill> {
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Err(NoFill::Busy),
        Err(TryLockError::Error(e)) => return Err(NoFill::Failed(Error::io("lock", path, e))),
    }
    if stale {
        // Its writer may have committed it (renamed it to the entry) and
        // let go of the lock between our open and our lock: only the file
        // still at `path` is stale.
        if !disk::same_file(&file, path) {
            return Err(NoFill::Busy);
        }
        tracing::info!(image_id = %id, "taking over a stale incomplete file");
        file.set_len(0)
            .map_err(|e| NoFill::Failed(Error::io("truncate", path, e)))?;
    }
    Ok(file)
}

impl FillFile {
    /// The file, for followers' positional reads.
    pub(crate) fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Starts the writer: a blocking thread that appends every chunk
    /// received on `chunks` until the sender is dropped, and reports the
    /// bytes on disk to `written` (at least every MiB, and after each
    /// batch of queued chunks). Returns the total written.
    ///
    /// Once the first bytes are out (so that reserving never delays a
    /// client's first byte), the writer reserves the disk space of the
    /// whole announced size. Of fills that start together and do not all
    /// fit, the ones that cannot reserve stop there with a full-disk error
    /// (their clients continue from the upstream) instead of all of them
    /// running into a full disk midway; and the writes that follow fill
    /// blocks already laid out, which costs the kernel less.
    pub(crate) fn spawn_writer<F>(
        &self,
        mut chunks: mpsc::Receiver<Bytes>,
        written: F,
    ) -> JoinHandle<io::Result<u64>>
    where
        F: Fn(u64) + Send + 'static,
    {
        let file = Arc::clone(&self.file);
        let (store, id, mut reserve) = (self.store.clone(), self.id.clone(), self.expected);
        tokio::task::spawn_blocking(move || {
            let mut out: &File = &file;
            let mut total = 0u64;
            while let Some(chunk) = chunks.blocking_recv() {
                out.write_all(&chunk)?;
                total += chunk.len() as u64;
                let mut unpublished = chunk.len() as u64;
                while unpublished < PUBLISH_EVERY {
                    let Ok(more) = chunks.try_recv() else { break };
                    out.write_all(&more)?;
                    total += more.len() as u64;
                    unpublished += more.len() as u64;
                }
                written(total);
                if let Some(size) = reserve.take() {
                    let _one_at_a_time = store.inner.reservations.lock();
                    reserve_space(&id, &file, size)?;
                }
            }
            Ok(total)
        })
    }

    /// The `algorithm` digest of the first `len` bytes written, read back
    /// from the file (for a multihash that was not computed while the
    /// bytes arrived).
    pub(crate) async fn multihash(
        &self,
        algorithm: HashAlgorithm,
        len: u64,
    ) -> Result<Multihash, Error> {
        let file = Arc::clone(&self.file);
        let path = self.store.inner.layout.incomplete(&self.id);
        blocking("hash", &path.clone(), move || {
            let digests = hash_file(
                &file,
                len,
                Some(algorithm),
                &mut Pace::new(None),
                &mut |_| {},
            )
            .map_err(|e| Error::io("hash", &path, e))?;
            digests
                .multihash
                .ok_or_else(|| Error::io("hash", &path, io::Error::other("no multihash computed")))
        })
        .await
    }

    /// Commits the verified fill: `fsync`, rename to `<id>`, directory
    /// `fsync`, queue marker removed, then the index row (`md5`: hex MD5;
    /// `verified`: whether it was checked against the upstream's;
    /// `multihash`: the image's multihash it was checked against), with the
    /// file's identity for later integrity checks.
    ///
    /// An error means nothing was committed, and the incomplete file is
    /// gone. A failed index write after a successful rename is logged, not
    /// returned: the file is committed and the next lookup adopts it.
    pub(crate) async fn commit(
        self,
        size: u64,
        md5: String,
        verified: bool,
        multihash: Option<Multihash>,
    ) -> Result<(), Error> {
        let FillFile {
            store, id, file, ..
        } = self;
        let committed = {
            let (store, id, file) = (store.clone(), id.clone(), Arc::clone(&file));
            let path = store.inner.layout.incomplete(&id);
            blocking("commit", &path, move || {
                store.commit_blocking(&id, &file)?;
                // After the rename, which moves the ctime.
                Ok(file.metadata().ok().map(|m| FileStamp::of(&m)))
            })
            .await
        };
        let stamp = match committed {
            Ok(stamp) => stamp,
            Err(e) => {
                let path = store.inner.layout.incomplete(&id);
                let _ = blocking("remove", &path.clone(), move || {
                    disk::remove_if_present(&path);
                    Ok(())
                })
                .await;
                return Err(e);
            }
        };
        let digests = Verified {
            md5,
            multihash,
            stamp,
        };
        if let Err(e) = store
            .inner
            .index
            .insert_commit(&id, size, verified, digests, super::now_epoch())
            .await
        {
            tracing::warn!(image_id = %id, error = %e,
                "image cached but not indexed; it will be adopted at the next lookup");
        }
        // The writer's lock ends with the fill, not with the last reader:
        // followers keep the open file (and with it the lock) until their
        // clients are done, and another process following this fill learns
        // of the commit only once the lock is gone.
        if let Err(e) = file.unlock() {
            tracing::debug!(image_id = %id, error = %e, "could not release the fill's lock");
        }
        Ok(())
    }

    /// Moves the file to `invalid/<id>` (a fill whose bytes are wrong or
    /// incomplete), where `clean` removes it.
    pub(crate) async fn quarantine(self) {
        let layout = &self.store.inner.layout;
        let (from, to) = (layout.incomplete(&self.id), layout.invalid(&self.id));
        let file = self.file;
        let _ = blocking("quarantine", &from.clone(), move || {
            // A fill that ended short leaves reserved blocks past its end.
            if let Err(e) = disk::release_reserve(&file) {
                tracing::debug!(path = %from.display(), error = %e, "could not free the reserved space");
            }
            disk::quarantine_or_remove(&from, &to);
            Ok(())
        })
        .await;
    }

    /// Removes the file (the disk failed, or the image was deleted during
    /// its fill).
    pub(crate) async fn discard(self) {
        let path = self.store.inner.layout.incomplete(&self.id);
        let _ = blocking("remove", &path.clone(), move || {
            disk::remove_if_present(&path);
            Ok(())
        })
        .await;
    }
}

/// Blocking: reserves the disk space of a fill of `size` bytes; a full
/// disk is an error, a filesystem without `fallocate` is not.
fn reserve_space(id: &ImageId, file: &File, size: u64) -> io::Result<()> {
    match disk::reserve(file, size) {
        disk::Reserved::Yes => Ok(()),
        disk::Reserved::NoSpace => Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!("no room to reserve the image's {size} bytes"),
        )),
        disk::Reserved::Unsupported(e) => {
            tracing::debug!(image_id = %id, error = %e,
                "cannot reserve the fill's disk space; the file grows as it is written");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn id() -> ImageId {
        ImageId::parse("60000000-0000-4000-8000-000000000001").unwrap()
    }

    /// `path` with `data`, locked as a writer holds it.
    fn written_and_locked(path: &Path, data: &[u8]) -> File {
        let mut writer = File::create(path).unwrap();
        writer.write_all(data).unwrap();
        writer.lock().unwrap();
        writer
    }

    fn contents(path: &Path) -> Vec<u8> {
        let mut got = Vec::new();
        File::open(path).unwrap().read_to_end(&mut got).unwrap();
        got
    }

    #[test]
    fn a_stale_incomplete_file_is_taken_over_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("incomplete");
        drop(written_and_locked(&path, b"LEFT BY A DEAD WRITER"));
        let file = claim_incomplete(&id(), &path).unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_file_committed_between_the_open_and_the_lock_is_not_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry) = (dir.path().join("incomplete"), dir.path().join("entry"));
        let writer = written_and_locked(&path, b"VERIFIED IMAGE");
        let (opened, stale) = open_incomplete(&path).unwrap();
        assert!(stale, "the writer's file was there");
        // The writer commits (rename keeps the inode) and lets go of its lock.
        std::fs::rename(&path, &entry).unwrap();
        drop(writer);
        assert!(matches!(
            lock_incomplete(&id(), &path, opened, stale),
            Err(NoFill::Busy)
        ));
        assert_eq!(contents(&entry), b"VERIFIED IMAGE");
    }
}
