//! The prefetch queue in memory: what the workers have to do, and what
//! went wrong.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use http::HeaderMap;
use tokio::sync::mpsc;

use crate::ImageId;

/// A queued image and, when an operator queued it, their request headers
/// (to fetch it with when the proxy has no service credentials).
pub(crate) type Job = (ImageId, Option<HeaderMap>);

/// Images handed to the prefetch workers (when they run), deduplicated,
/// and the last error of each image that failed. The on-disk queue
/// (`queue/<id>`) is the store's; this is what the workers of this process
/// know about it.
#[derive(Debug, Default)]
pub(crate) struct PrefetchQueue {
    /// Set when workers are running.
    workers: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    /// Submitted and not finished: repeated submissions are dropped.
    pending: Mutex<HashSet<ImageId>>,
    errors: Mutex<BTreeMap<ImageId, String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update is a single insert or remove: a panic cannot leave a
    // half-made change behind the lock.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PrefetchQueue {
    /// Workers start taking jobs from the returned receiver.
    pub(crate) fn start_workers(&self) -> mpsc::UnboundedReceiver<Job> {
        let (tx, rx) = mpsc::unbounded_channel();
        *lock(&self.workers) = Some(tx);
        rx
    }

    /// Hands `id` to the workers, once (a pending id is not queued twice).
    /// Without workers it only stays queued on disk.
    pub(crate) fn submit(&self, id: ImageId, credentials: Option<HeaderMap>) {
        let workers = lock(&self.workers);
        let Some(tx) = workers.as_ref() else {
            tracing::info!(image_id = %id, "image queued; prefetching is paused");
            return;
        };
        if !lock(&self.pending).insert(id.clone()) {
            return;
        }
        if tx.send((id.clone(), credentials)).is_err() {
            lock(&self.pending).remove(&id);
            tracing::error!(image_id = %id, "prefetch workers are gone; image stays queued on disk");
        }
    }

    /// The job for `id` is over (done, failed for good, or crashed).
    pub(crate) fn finished(&self, id: &ImageId) {
        lock(&self.pending).remove(id);
    }

    /// Images submitted and not finished.
    pub(crate) fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    pub(crate) fn record_error(&self, id: &ImageId, error: String) {
        lock(&self.errors).insert(id.clone(), error);
    }

    pub(crate) fn forget(&self, id: &ImageId) {
        lock(&self.errors).remove(id);
    }

    pub(crate) fn forget_all(&self) {
        lock(&self.errors).clear();
    }

    /// The last error of each image that failed and is still queued.
    pub(crate) fn errors(&self) -> BTreeMap<String, String> {
        lock(&self.errors)
            .iter()
            .map(|(id, e)| (id.to_string(), e.clone()))
            .collect()
    }
}
