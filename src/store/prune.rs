//! LRU pruning down to `image_cache_max_size`.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::time::Instant;

use super::blocking::blocking;
use super::locks::Operation;
use super::size::image_files;
use super::CacheStore;
use crate::Error;

/// What [`CacheStore::prune`] removed.
///
/// `files` and `bytes` are Glance's `total_files_pruned` and
/// `total_bytes_pruned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// Image files removed.
    pub files: usize,
    /// Bytes those files held.
    pub bytes: u64,
    /// Image files found without an index row. They count towards the cache
    /// size but are not pruned: such a file is either being committed right
    /// now by another process or waits to be adopted by a lookup or the next
    /// reconcile.
    pub orphans: usize,
    /// When the prune got its lock and began.
    pub started: Instant,
    /// When it finished (before releasing its lock).
    pub finished: Instant,
}

impl fmt::Display for PruneReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pruned {} files ({} bytes); {} files without index row",
            self.files, self.bytes, self.orphans
        )
    }
}

impl CacheStore {
    /// Removes least recently accessed entries (file and row) while the
    /// [cache size](CacheStore::cache_size) is **strictly greater** than
    /// [`max_size`](CacheStore::max_size); a cache exactly at the limit is
    /// left alone, and a limit of 0 removes every entry holding bytes.
    ///
    /// The order is fixed when the prune starts (smallest `last_accessed`
    /// first, ties by id), and every entry is visited at most once, so the
    /// prune always ends, even when files without rows keep the size above
    /// the limit (they are reported in [`PruneReport::orphans`], never
    /// looped on).
    ///
    /// Serialised against other prunes of this store and of any process
    /// sharing the directory, but not against [`clean`](CacheStore::clean).
    /// Safe while fills and hits run: `incomplete/` is never touched, and a
    /// hit streaming a pruned file finishes from its open handle.
    ///
    /// # Example
    ///
    /// ```
    /// use glance_cache::store::CacheStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// let dir = tempfile::tempdir().unwrap();
    /// let store = CacheStore::builder(dir.path()).with_max_size(0).open().await?;
    /// let report = store.prune().await?;
    /// // Glance's answer: {"total_files_pruned": 0, "total_bytes_pruned": 0}
    /// assert_eq!((report.files, report.bytes), (0, 0));
    /// # Ok(()) }
    /// ```
    pub async fn prune(&self) -> Result<PruneReport, Error> {
        let _guard = self.maintenance_lock(Operation::Prune).await?;
        let started = Instant::now();
        let max = self.inner.max_size;

        // Rows before files: an entry committed in between is then an
        // "orphan" of this run, never a row pointing nowhere.
        let order = self.inner.index.lru().await?;
        let root = self.root().to_owned();
        let files = blocking("list", self.root(), move || image_files(&root)).await?;
        let mut current: u64 = files.iter().map(|(_, size)| size).sum();
        let with_row: HashSet<_> = order.iter().collect();
        let orphans = files
            .iter()
            .filter(|(id, _)| !with_row.contains(id))
            .count();

        let mut report = PruneReport {
            files: 0,
            bytes: 0,
            orphans,
            started,
            finished: started,
        };
        if current > max {
            tracing::info!(size = current, max, "pruning the cache");
        }
        for id in order {
            if current <= max {
                break;
            }
            let path = self.inner.layout.entry(&id);
            let removed = blocking("prune", &path.clone(), move || {
                let size = match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.is_file() => meta.len(),
                    Ok(_) => return Ok(None),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(Error::io("stat", &path, e)),
                };
                match std::fs::remove_file(&path) {
                    Ok(()) => Ok(Some(size)),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(Error::io("remove", &path, e)),
                }
            })
            .await?;
            self.inner.index.delete(&id).await?;
            if let Some(size) = removed {
                tracing::debug!(image_id = %id, size, "pruned");
                self.inner.metrics.evicted(size);
                report.files += 1;
                report.bytes += size;
                current = current.saturating_sub(size);
            }
        }
        if current > max {
            tracing::warn!(
                size = current,
                max,
                orphans = report.orphans,
                "cache still above image_cache_max_size after pruning every indexed entry"
            );
        }
        report.finished = Instant::now();
        if report.files > 0 {
            tracing::info!(%report, "prune finished");
        }
        Ok(report)
    }
}
