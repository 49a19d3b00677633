//! A test hook that holds commits open in the commit window.
//!
//! Compiled only for the crate's unit tests and with the `test-hooks`
//! feature (which only this package's dev-dependency enables, for the
//! integration tests); a normal build, the proxy binary's included, has
//! neither the hook nor its check in the store's commit. It lets a test
//! act (a delete, say) while a verified fill is between its fsync and its
//! rename, which no timing can arrange reliably.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::ImageId;

/// The longest a commit stays held when nobody releases it, so that a test
/// that fails before releasing cannot wedge a blocking thread for good.
const HOLD_LIMIT: Duration = Duration::from_secs(60);

/// The store's side: the hold in force, if any.
#[derive(Debug, Default)]
pub(super) struct Slot(Mutex<Option<Arc<Shared>>>);

#[derive(Debug)]
struct Shared {
    released: Mutex<bool>,
    wake: Condvar,
    reached: mpsc::UnboundedSender<ImageId>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    /// Installs a new hold (replacing any earlier one).
    pub(super) fn install(&self) -> CommitHold {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            released: Mutex::new(false),
            wake: Condvar::new(),
            reached: tx,
        });
        *lock(&self.0) = Some(Arc::clone(&shared));
        CommitHold {
            shared,
            reached: rx,
        }
    }

    /// Blocking: the pause point. Returns at once unless a hold is in force
    /// and not yet released.
    pub(super) fn pause(&self, id: &ImageId) {
        let Some(shared) = lock(&self.0).clone() else {
            return;
        };
        let released = lock(&shared.released);
        if *released {
            return;
        }
        let _ = shared.reached.send(id.clone());
        let (released, waited) = shared
            .wake
            .wait_timeout_while(released, HOLD_LIMIT, |released| !*released)
            .unwrap_or_else(|e| e.into_inner());
        drop(released);
        if waited.timed_out() {
            tracing::warn!(image_id = %id, "commit hold never released; committing anyway");
        }
    }
}

/// Holds a store's commits; see [`CacheStore::hold_commits`].
///
/// Every commit that starts while it is in force stops after the file's
/// fsync and before its rename until [`release`](Self::release) is called
/// or the hold is dropped (or a minute has passed).
///
/// [`CacheStore::hold_commits`]: super::CacheStore::hold_commits
#[derive(Debug)]
pub struct CommitHold {
    shared: Arc<Shared>,
    reached: mpsc::UnboundedReceiver<ImageId>,
}

impl CommitHold {
    /// Waits until a commit is held and returns its image id (each held
    /// commit is reported once, in order). Bound it with a timeout.
    pub async fn reached(&mut self) -> ImageId {
        match self.reached.recv().await {
            Some(id) => id,
            // The sender lives in `self.shared`: never closed.
            None => std::future::pending().await,
        }
    }

    /// Lets the held commits (and all later ones) go on.
    pub fn release(&self) {
        *lock(&self.shared.released) = true;
        self.shared.wake.notify_all();
    }
}

impl Drop for CommitHold {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use crate::store::CacheStore;
    use crate::ImageId;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_held_commit_waits_between_fsync_and_rename() {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::builder(dir.path())
            .with_min_free_disk(0)
            .open()
            .await
            .unwrap();
        let id = ImageId::parse("10000000-0000-0000-0000-0000000000aa").unwrap();
        let f = store.begin_fill(&id, Some(5)).await.unwrap();
        (&**f.file()).write_all(b"hello").unwrap();
        let mut hold = store.hold_commits();
        let commit =
            tokio::spawn(f.commit(5, "5d41402abc4b2a76b9719d911017c592".into(), true, None));
        let held = tokio::time::timeout(std::time::Duration::from_secs(10), hold.reached())
            .await
            .expect("the commit reaches the hold");
        assert_eq!(held, id);
        assert!(dir.path().join("incomplete").join(id.as_str()).is_file());
        assert!(!dir.path().join(id.as_str()).exists(), "not renamed yet");
        assert!(!commit.is_finished());
        hold.release();
        commit.await.unwrap().unwrap();
        assert!(dir.path().join(id.as_str()).is_file());

        // Released for good: later commits pass.
        let other = ImageId::parse("10000000-0000-0000-0000-0000000000ab").unwrap();
        let f = store.begin_fill(&other, Some(0)).await.unwrap();
        f.commit(0, "d41d8cd98f00b204e9800998ecf8427e".into(), true, None)
            .await
            .unwrap();
        assert!(dir.path().join(other.as_str()).is_file());
    }
}
