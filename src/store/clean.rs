//! Removing failed and stalled fills.

use std::fmt;
use std::fs::{File, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::blocking::blocking;
use super::locks::Operation;
use super::CacheStore;
use crate::Error;

/// What [`CacheStore::clean`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// Files removed from `invalid/`.
    pub invalid_removed: usize,
    /// Stalled files removed from `incomplete/`.
    pub incomplete_removed: usize,
    /// When the clean got its lock and began.
    pub started: Instant,
    /// When it finished (before releasing its lock).
    pub finished: Instant,
}

impl fmt::Display for CleanReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {} invalid and {} stalled incomplete files",
            self.invalid_removed, self.incomplete_removed
        )
    }
}

impl CacheStore {
    /// Removes every regular file in `invalid/`, and every regular file in
    /// `incomplete/` whose mtime is strictly older than `now - stall` and
    /// that no writer holds.
    ///
    /// A fill keeps its incomplete file locked (`flock`) for its whole life,
    /// so a locked file is a live fill, however old its mtime, and is never
    /// removed (Glance goes by the mtime alone). A file that cannot be
    /// removed is logged and skipped. `queue/`, the committed entries and
    /// the index are not touched.
    ///
    /// Serialised against other cleans of this store and of any process
    /// sharing the directory, but not against [`prune`](CacheStore::prune).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    /// use glance_cache::store::CacheStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = CacheStore::builder(dir.path()).open().await?;
    /// std::fs::write(dir.path().join("invalid/3f1f7c8e-2b9d-4d6a-9c43-1a2b3c4d5e6f"), b"bad").unwrap();
    /// // image_cache_stall_time defaults to one day
    /// let report = store.clean(Duration::from_secs(86_400)).await?;
    /// assert_eq!((report.invalid_removed, report.incomplete_removed), (1, 0));
    /// # Ok(()) }
    /// ```
    pub async fn clean(&self, stall: Duration) -> Result<CleanReport, Error> {
        let _guard = self.maintenance_lock(Operation::Clean).await?;
        let started = Instant::now();
        let root = self.root().to_owned();
        let (invalid_removed, incomplete_removed) = blocking("clean", self.root(), move || {
            let invalid = remove_invalid(&root.join("invalid"))?;
            let cutoff = SystemTime::now().checked_sub(stall);
            let stalled = match cutoff {
                Some(cutoff) => remove_stalled(&root.join("incomplete"), cutoff)?,
                None => 0,
            };
            Ok((invalid, stalled))
        })
        .await?;
        let report = CleanReport {
            invalid_removed,
            incomplete_removed,
            started,
            finished: Instant::now(),
        };
        tracing::info!(%report, "clean finished");
        Ok(report)
    }
}

/// Blocking: removes every regular file in `dir`.
fn remove_invalid(dir: &Path) -> Result<usize, Error> {
    let mut removed = 0;
    for dirent in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let dirent = dirent.map_err(|e| Error::io("list", dir, e))?;
        let path = dirent.path();
        if !dirent.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove invalid file")
            }
        }
    }
    Ok(removed)
}

/// Blocking: removes the unlocked regular files in `dir` last modified
/// strictly before `cutoff`.
fn remove_stalled(dir: &Path, cutoff: SystemTime) -> Result<usize, Error> {
    let mut removed = 0;
    for dirent in std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))? {
        let dirent = dirent.map_err(|e| Error::io("list", dir, e))?;
        let path = dirent.path();
        match remove_if_stalled(&path, cutoff) {
            Ok(true) => {
                tracing::info!(path = %path.display(), "removed stalled incomplete file");
                removed += 1;
            }
            Ok(false) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %path.display(), error = %e,
                "could not clean incomplete file"),
        }
    }
    Ok(removed)
}

fn is_stalled(meta: &std::fs::Metadata, cutoff: SystemTime) -> bool {
    meta.is_file() && meta.modified().is_ok_and(|m| m < cutoff)
}

/// Removes `path` if it is a regular file older than `cutoff` that nobody
/// holds. The lock is taken before the unlink and the file checked again
/// under it: a writer that took the file over meanwhile keeps it.
fn remove_if_stalled(path: &Path, cutoff: SystemTime) -> io::Result<bool> {
    if !is_stalled(&std::fs::symlink_metadata(path)?, cutoff) {
        return Ok(false);
    }
    let file = File::open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            tracing::debug!(path = %path.display(), "old incomplete file is held by a writer; kept");
            return Ok(false);
        }
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // Under the lock: still the same, still old file at `path`?
    let held = file.metadata()?;
    let now_at_path = std::fs::symlink_metadata(path)?;
    if (held.dev(), held.ino()) != (now_at_path.dev(), now_at_path.ino())
        || !is_stalled(&held, cutoff)
    {
        return Ok(false);
    }
    std::fs::remove_file(path)?;
    Ok(true)
}
