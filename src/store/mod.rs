//! The cache directory: image files through `object_store`, the index in SQLite.
//!
//! [`CacheStore`] owns one cache directory laid out exactly like Glance's
//! (`<id>`, `incomplete/`, `invalid/`, `queue/`, `cache.db`), so an existing
//! Glance cache directory is adopted as it is and Glance's tools keep working
//! on ours.
//!
//! * Committed entries are read, listed and deleted through an
//!   [`object_store::ObjectStore`] (a [`LocalFileSystem`] rooted at the
//!   directory); hits take the `std::fs::File` that it opens and stream it in
//!   large chunks.
//! * A fill writes `incomplete/<id>` itself: the file is created exclusively
//!   and locked (`flock`) for the whole fill, so two processes sharing the
//!   directory never write the same entry, and readers follow it while it
//!   grows — those of the other process too, which learn of its commit
//!   from the lock's release and the rename. A commit is `fsync` + `rename`
//!   + directory `fsync`.
//! * The index is Glance's `cached_images` table, served by one thread.
//! * Maintenance (the queue markers, [`CacheStore::prune`],
//!   [`CacheStore::clean`], clearing) follows Glance
//!   but only ever touches files named by an image id, and
//!   prune and clean are serialised across processes by lock files whose
//!   names can never be an image id.
//!
//! # Example
//!
//! ```
//! use glance_cache::store::CacheStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), glance_cache::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = CacheStore::builder(dir.path())
//!     .with_max_size(10 << 30)
//!     .open()
//!     .await?;
//! assert!(store.list().await?.is_empty());
//! assert!(dir.path().join("incomplete").is_dir());
//! # Ok(()) }
//! ```

mod blocking;
mod chunk_reader;
mod clean;
mod clear;
#[cfg(any(test, feature = "test-hooks"))]
mod commit_hold;
mod disk;
mod file_body;
mod fill_file;
mod foreign_fill;
mod health;
mod index;
mod integrity;
mod layout;
mod locks;
mod prune;
mod queue;
mod read_buffers;
mod reconcile;
mod reverify;
mod size;
mod stamp;
mod verifying_body;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::{GetOptions, GetResultPayload, ObjectStore, ObjectStoreExt};

pub(crate) use chunk_reader::ChunkReader;
pub use clean::CleanReport;
#[cfg(any(test, feature = "test-hooks"))]
pub use commit_hold::CommitHold;
pub(crate) use file_body::FileBody;
pub(crate) use fill_file::FillFile;
pub(crate) use fill_file::NoFill;
pub(crate) use foreign_fill::ForeignFill;
pub(crate) use index::now_epoch;
pub use index::CacheEntry;
pub(crate) use integrity::{hash_start, recorded, OpenedHit};
pub use integrity::{Integrity, IntegrityFailure};
pub use prune::PruneReport;
pub(crate) use read_buffers::ReadBuffers;
pub use reconcile::ReconcileReport;
pub(crate) use reverify::{wait_for_verdict, Joined as VerificationJoined, Verdict};
pub(crate) use verifying_body::VerifyingBody;

use crate::metrics::Metrics;
use crate::{Error, ImageId};
use blocking::blocking;
use index::Index;
use layout::Layout;

/// Default bytes per read when serving a hit.
pub const DEFAULT_HIT_CHUNK_SIZE: usize = 256 * 1024;

/// Default memory the full-size read buffers of every download share.
pub const DEFAULT_BUFFER_MEMORY: usize = 64 << 20;

/// A Glance-compatible cache directory with its index.
///
/// Cheap to clone. See the [module docs](crate::store) for an example.
#[derive(Clone, Debug)]
pub struct CacheStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    layout: Layout,
    objects: Arc<dyn ObjectStore>,
    index: Index,
    max_size: u64,
    min_free_disk: u64,
    /// The chunk size and the memory every download's read buffers share.
    read_buffers: ReadBuffers,
    /// Serialise prune and clean within this store (see `locks`).
    locks: locks::MaintenanceLocks,
    /// One fill reserves its disk space at a time: concurrent `fallocate`s
    /// can each take part of what is left and all fail.
    reservations: std::sync::Mutex<()>,
    /// What the cache, its fills, pruning and prefetching count.
    metrics: Metrics,
    /// Files being hashed again for their hits.
    reverifications: reverify::Reverifications,
    /// Test hook: see [`CacheStore::hold_commits`].
    #[cfg(any(test, feature = "test-hooks"))]
    commit_hold: commit_hold::Slot,
}

/// Builds a [`CacheStore`]; see [`CacheStore::builder`].
#[derive(Debug, Clone)]
pub struct CacheStoreBuilder {
    dir: PathBuf,
    sqlite_db: String,
    max_size: u64,
    min_free_disk: u64,
    hit_chunk_size: usize,
    buffer_memory: usize,
    reconcile: bool,
}

impl CacheStoreBuilder {
    /// The index file, relative to the cache directory unless absolute
    /// (Glance's `image_cache_sqlite_db`, default `cache.db`).
    pub fn with_sqlite_db(mut self, name: impl Into<String>) -> Self {
        self.sqlite_db = name.into();
        self
    }

    /// `image_cache_max_size`: images larger than this are never admitted.
    pub fn with_max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Bytes that must remain free on the filesystem for a fill to start.
    pub fn with_min_free_disk(mut self, bytes: u64) -> Self {
        self.min_free_disk = bytes;
        self
    }

    /// Bytes per read when serving hits (clamped to at least 4 KiB).
    pub fn with_hit_chunk_size(mut self, bytes: usize) -> Self {
        self.hit_chunk_size = bytes.max(4096);
        self
    }

    /// Bytes of memory the full-size read buffers of every download share
    /// (default [`DEFAULT_BUFFER_MEMORY`]); while they are spent, a
    /// download reads in 16 KiB pieces, so that memory stays bounded
    /// whatever the number of clients.
    ///
    /// ```
    /// # async fn f(dir: &std::path::Path) -> Result<(), glance_cache::Error> {
    /// let store = glance_cache::store::CacheStore::builder(dir)
    ///     .with_buffer_memory(32 << 20)
    ///     .open()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn with_buffer_memory(mut self, bytes: usize) -> Self {
        self.buffer_memory = bytes;
        self
    }

    /// Whether [`open`](Self::open) reconciles files with rows (default
    /// `true`, right for a serving proxy at startup). One-shot maintenance
    /// commands that run beside a serving proxy turn it off: reconciling
    /// removes every unlocked `incomplete/` file whatever its age, which
    /// would pre-empt [`CacheStore::clean`]'s stall time.
    pub fn with_reconcile(mut self, reconcile: bool) -> Self {
        self.reconcile = reconcile;
        self
    }

    /// Creates the directory layout, opens the index and, unless turned
    /// off with [`with_reconcile`](Self::with_reconcile), reconciles files
    /// with rows (see [`CacheStore::reconcile`]).
    pub async fn open(self) -> Result<CacheStore, Error> {
        let dir = self.dir.clone();
        let sqlite_db = self.sqlite_db.clone();
        let (root, index) = tokio::task::spawn_blocking(move || prepare(&dir, &sqlite_db))
            .await
            .map_err(|e| Error::io("prepare", &self.dir, io::Error::other(e)))??;
        let objects: Arc<dyn ObjectStore> = Arc::new(LocalFileSystem::new_with_prefix(&root)?);
        let store = CacheStore {
            inner: Arc::new(Inner {
                layout: Layout::new(root),
                objects,
                index,
                max_size: self.max_size,
                min_free_disk: self.min_free_disk,
                read_buffers: ReadBuffers::new(self.hit_chunk_size, self.buffer_memory),
                locks: locks::MaintenanceLocks::default(),
                reservations: std::sync::Mutex::new(()),
                metrics: Metrics::new(),
                reverifications: reverify::Reverifications::default(),
                #[cfg(any(test, feature = "test-hooks"))]
                commit_hold: commit_hold::Slot::default(),
            }),
        };
        if self.reconcile {
            let report = store.reconcile().await?;
            tracing::info!(dir = %store.root().display(), %report, "cache directory ready");
        } else {
            tracing::debug!(dir = %store.root().display(), "cache directory opened without reconciling");
        }
        Ok(store)
    }
}

/// Blocking part of opening: directories, a write probe, the index.
fn prepare(dir: &Path, sqlite_db: &str) -> Result<(PathBuf, Index), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create cache directory", dir, e))?;
    let root = dir
        .canonicalize()
        .map_err(|e| Error::io("resolve cache directory", dir, e))?;
    if !root.is_dir() {
        return Err(Error::io(
            "use cache directory",
            &root,
            io::Error::new(io::ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    for sub in layout::SUBDIRS {
        let path = root.join(sub);
        std::fs::create_dir_all(&path).map_err(|e| Error::io("create", &path, e))?;
    }
    // Fail at startup, not on the first fill, when the directory is read-only.
    let probe = root
        .join("incomplete")
        .join(format!(".write-probe-{}", std::process::id()));
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(|e| Error::io("write to cache directory (probe file)", &probe, e))?;
    let _ = std::fs::remove_file(&probe);
    let db = root.join(sqlite_db);
    let index = Index::open(&db)?;
    Ok((root, index))
}

impl CacheStore {
    /// Starts building a store for the cache directory `dir`.
    ///
    /// ```
    /// use glance_cache::store::CacheStore;
    /// let builder = CacheStore::builder("/var/lib/glance/image-cache").with_sqlite_db("cache.db");
    /// ```
    pub fn builder(dir: impl Into<PathBuf>) -> CacheStoreBuilder {
        CacheStoreBuilder {
            dir: dir.into(),
            sqlite_db: "cache.db".into(),
            max_size: 10 * 1024 * 1024 * 1024,
            min_free_disk: 256 * 1024 * 1024,
            hit_chunk_size: DEFAULT_HIT_CHUNK_SIZE,
            buffer_memory: DEFAULT_BUFFER_MEMORY,
            reconcile: true,
        }
    }

    /// The (canonical) cache directory.
    pub fn root(&self) -> &Path {
        self.inner.layout.root()
    }

    /// Bytes per read when serving hits.
    pub fn hit_chunk_size(&self) -> usize {
        self.inner.read_buffers.chunk_size()
    }

    /// The chunk size and the memory budget downloads read with.
    pub(crate) fn read_buffers(&self) -> ReadBuffers {
        self.inner.read_buffers.clone()
    }

    /// The [`Metrics`] of this cache: every layer, fill, prune and prefetch
    /// working on this store counts into them (see [`crate::metrics`]).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The committed entry for `id`, if any. A file without a row (committed
    /// by another process, or left by Glance) is adopted.
    pub async fn lookup(&self, id: &ImageId) -> Result<Option<CacheEntry>, Error> {
        if let Some(entry) = self.inner.index.get(id).await? {
            return Ok(Some(entry));
        }
        let path = self.inner.layout.entry(id);
        let meta = tokio::task::spawn_blocking(move || std::fs::metadata(path))
            .await
            .map_err(|e| Error::io("stat", self.inner.layout.entry(id), io::Error::other(e)))?;
        match meta {
            Ok(m) if m.is_file() => {
                let at = reconcile::mtime_epoch(&m);
                if self.inner.index.adopt(id, m.len(), at).await? {
                    tracing::info!(image_id = %id, size = m.len(), "adopted cached file without index row");
                }
                self.inner.index.get(id).await
            }
            _ => Ok(None),
        }
    }

    /// Whether `id` is cached: it has an index row and its file is there
    /// (a row whose file was removed behind the index's back does not count).
    pub async fn is_cached(&self, id: &ImageId) -> Result<bool, Error> {
        if self.lookup(id).await?.is_none() {
            return Ok(false);
        }
        let path = self.inner.layout.entry(id);
        blocking("stat", &path.clone(), move || Ok(path.is_file())).await
    }

    /// Every committed entry, ordered by image id.
    pub async fn list(&self) -> Result<Vec<CacheEntry>, Error> {
        self.inner.index.list().await
    }

    /// Opens a committed entry for reading through the object store and
    /// checks its size against the index. A missing file drops the row; a
    /// file of the wrong size is quarantined to `invalid/`. Both give `None`.
    /// The file's identity is taken at opening, to tell whether it changed
    /// since it was verified.
    pub(crate) async fn open_hit(&self, entry: &CacheEntry) -> Result<Option<OpenedHit>, Error> {
        let id = &entry.image_id;
        let got = self
            .inner
            .objects
            .get_opts(&Layout::entry_object(id), GetOptions::default())
            .await;
        match got {
            Ok(res) => {
                let size = res.meta.size;
                match res.payload {
                    GetResultPayload::File(file, _) if size == entry.size => {
                        // fstat of an open file: no disk wait.
                        let meta = file
                            .metadata()
                            .map_err(|e| Error::io("stat", self.inner.layout.entry(id), e))?;
                        Ok(Some(OpenedHit {
                            file: Arc::new(file),
                            stamp: stamp::FileStamp::of(&meta),
                        }))
                    }
                    GetResultPayload::File(file, _) => {
                        tracing::warn!(image_id = %id, expected = entry.size, found = size,
                            "cached file has the wrong size; quarantined");
                        // This very file: one committed anew since is kept.
                        self.quarantine_file(entry, Arc::new(file)).await?;
                        Ok(None)
                    }
                    GetResultPayload::Stream(_) => Err(Error::io(
                        "open",
                        self.inner.layout.entry(id),
                        io::Error::other("the local tier returned a stream"),
                    )),
                }
            }
            Err(object_store::Error::NotFound { .. }) => {
                tracing::warn!(image_id = %id, "index row without cached file; dropped");
                self.inner.index.delete(id).await?;
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A body streaming bytes `[start, end)` of `file` with this store's
    /// chunk size. When the last byte has been handed over, the access is
    /// recorded: as a hit for a `whole` download, as an access only for a
    /// range (even one that spans the image).
    pub(crate) fn hit_body(
        &self,
        id: &ImageId,
        file: Arc<File>,
        (start, end): (u64, u64),
        whole: bool,
    ) -> FileBody {
        let index = self.inner.index.clone();
        let id = id.clone();
        FileBody::new(file, start, end, self.inner.read_buffers.clone())
            .counting(self.inner.metrics.clone())
            .on_complete(Box::new(move || index.record_access(&id, whole)))
    }

    /// Every entry, least recently verified first (never verified first).
    pub(crate) async fn by_verification_age(&self) -> Result<Vec<CacheEntry>, Error> {
        self.inner.index.by_verification_age().await
    }

    /// Moves a committed entry to `invalid/` and drops its row.
    pub(crate) async fn quarantine_entry(&self, id: &ImageId) -> Result<(), Error> {
        let from = self.inner.layout.entry(id);
        let to = self.inner.layout.invalid(id);
        let moved = tokio::task::spawn_blocking(move || std::fs::rename(&from, &to))
            .await
            .map_err(|e| {
                Error::io(
                    "quarantine",
                    self.inner.layout.entry(id),
                    io::Error::other(e),
                )
            })?;
        if let Err(e) = moved {
            if e.kind() != io::ErrorKind::NotFound {
                return Err(Error::io("quarantine", self.inner.layout.entry(id), e));
            }
        }
        self.inner.index.delete(id).await?;
        Ok(())
    }

    /// Removes a committed entry and its row. Returns whether a
    /// file was there. Queue, incomplete and invalid files are not touched.
    pub(crate) async fn invalidate(&self, id: &ImageId) -> Result<bool, Error> {
        let existed = match self.inner.objects.delete(&Layout::entry_object(id)).await {
            Ok(()) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        let had_row = self.inner.index.delete(id).await?;
        Ok(existed || had_row)
    }

    /// Test hook, compiled only for unit tests and with the `test-hooks`
    /// feature: from now on every commit of this store stops in its commit
    /// window (after the file's fsync, before its rename) until the
    /// returned [`CommitHold`] is released or dropped. A new hold replaces
    /// the previous one.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let hold = store.hold_commits();
    /// // ... start a fill, `hold.reached().await`, act, then:
    /// hold.release();
    /// # Ok(()) }
    /// ```
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn hold_commits(&self) -> CommitHold {
        self.inner.commit_hold.install()
    }

    /// Brings files and rows into agreement (run at startup):
    /// unlocked `incomplete/` files (left by a killed process) are removed,
    /// rows without a file are dropped, and image files without a row are
    /// adopted. Only verified files ever sit at `<id>`, so adoption is safe.
    pub async fn reconcile(&self) -> Result<ReconcileReport, Error> {
        reconcile::run(self).await
    }
}

#[cfg(test)]
mod maintenance_tests;
#[cfg(test)]
mod reverify_tests;
#[cfg(test)]
pub(crate) mod test_entries;
#[cfg(test)]
mod tests;
