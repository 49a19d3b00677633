//! Serialising maintenance: one prune and one clean at a time.
//!
//! Each operation has its own lock, so a prune and a clean may run side by
//! side (as in Glance), but two prunes, or two cleans, never overlap:
//!
//! * within one [`CacheStore`] an async mutex queues callers without tying
//!   up threads;
//! * across stores and processes sharing the directory, the holder also
//!   keeps an exclusive `flock` on a lock file in the cache directory.
//!
//! The lock files are named so that they can never be a valid
//! [`ImageId`](crate::ImageId) (they start with a dot), so they are never
//! served, counted in the cache size, pruned or removed by a clear (unlike
//! Glance's lock files). They are never deleted:
//! removing a `flock` file while someone waits on it would split the lock.

use std::fs::{File, OpenOptions};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use super::blocking::blocking;
use super::CacheStore;
use crate::Error;

/// Lock file serialising [`CacheStore::prune`], relative to the cache directory.
pub(crate) const PRUNE_LOCK_FILE: &str = ".glance-cache-prune.lock";
/// Lock file serialising [`CacheStore::clean`], relative to the cache directory.
pub(crate) const CLEAN_LOCK_FILE: &str = ".glance-cache-clean.lock";

/// A maintenance operation that must not run twice at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    /// [`CacheStore::prune`].
    Prune,
    /// [`CacheStore::clean`].
    Clean,
}

impl Operation {
    fn lock_file(self) -> &'static str {
        match self {
            Operation::Prune => PRUNE_LOCK_FILE,
            Operation::Clean => CLEAN_LOCK_FILE,
        }
    }
}

/// The in-process half of the maintenance locks (one per [`CacheStore`]).
#[derive(Debug, Default)]
pub(crate) struct MaintenanceLocks {
    prune: Arc<Mutex<()>>,
    clean: Arc<Mutex<()>>,
}

impl MaintenanceLocks {
    fn mutex(&self, op: Operation) -> Arc<Mutex<()>> {
        match op {
            Operation::Prune => Arc::clone(&self.prune),
            Operation::Clean => Arc::clone(&self.clean),
        }
    }
}

/// Held while a maintenance operation runs; dropping it releases both the
/// `flock` and the in-process mutex.
#[derive(Debug)]
pub(crate) struct MaintenanceGuard {
    // Declared first so that the flock goes before the mutex.
    _file: File,
    _local: OwnedMutexGuard<()>,
}

impl CacheStore {
    /// Waits for the lock of `op`: first the in-process mutex, then the
    /// `flock` (on the blocking pool, as another process may hold it for
    /// the length of its own run).
    pub(crate) async fn maintenance_lock(&self, op: Operation) -> Result<MaintenanceGuard, Error> {
        let local = self.inner.locks.mutex(op).lock_owned().await;
        let path = self.root().join(op.lock_file());
        let file = blocking("lock", &path.clone(), move || {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(|e| Error::io("open lock file", &path, e))?;
            file.lock().map_err(|e| Error::io("lock", &path, e))?;
            Ok(file)
        })
        .await?;
        tracing::debug!(operation = ?op, "maintenance lock taken");
        Ok(MaintenanceGuard {
            _file: file,
            _local: local,
        })
    }
}
