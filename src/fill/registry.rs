//! Single-flight: at most one fill per image id in this process.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Fill, Phase};
use crate::ImageId;

/// In-flight fills by image id.
#[derive(Debug)]
pub(crate) struct FillRegistry {
    fills: Mutex<HashMap<ImageId, Arc<Fill>>>,
    /// How many fills are registered, for [`FillRegistry::drain`].
    count: watch::Sender<usize>,
    /// How many fills have committed: watchers see every new commit, even
    /// one made while they were busy.
    commits: watch::Sender<u64>,
}

impl Default for FillRegistry {
    fn default() -> Self {
        FillRegistry {
            fills: Mutex::default(),
            count: watch::channel(0).0,
            commits: watch::channel(0).0,
        }
    }
}

/// The outcome of [`FillRegistry::join_or_lead`].
pub(crate) enum Joined {
    /// Nobody is filling this image: the caller must start the fill.
    Leader(LeaderGuard),
    /// A fill is running (or about to): follow it.
    Follower(Arc<Fill>),
}

/// The right and the duty to start a fill. Dropping it without calling
/// [`LeaderGuard::started`] abandons the fill, so that waiting followers
/// forward their own requests instead of waiting forever.
pub(crate) struct LeaderGuard {
    fill: Arc<Fill>,
    registry: Arc<FillRegistry>,
    armed: bool,
}

impl LeaderGuard {
    pub(crate) fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// The fill task has taken over; it will unregister the fill when done.
    pub(crate) fn started(mut self) -> Arc<Fill> {
        self.armed = false;
        Arc::clone(&self.fill)
    }
}

impl Drop for LeaderGuard {
    fn drop(&mut self) {
        if self.armed {
            self.fill.finish(Phase::Abandoned);
            self.registry.remove(&self.fill);
        }
    }
}

impl FillRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ImageId, Arc<Fill>>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.fills.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn get(&self, id: &ImageId) -> Option<Arc<Fill>> {
        self.lock().get(id).cloned()
    }

    pub(crate) fn join_or_lead(self: &Arc<Self>, id: &ImageId) -> Joined {
        let mut fills = self.lock();
        if let Some(fill) = fills.get(id) {
            return Joined::Follower(Arc::clone(fill));
        }
        let fill = Fill::new(id.clone());
        fills.insert(id.clone(), Arc::clone(&fill));
        self.count.send_replace(fills.len());
        Joined::Leader(LeaderGuard {
            fill,
            registry: Arc::clone(self),
            armed: true,
        })
    }

    /// Unregisters `fill` (and only that fill: a newer one for the same id stays).
    pub(crate) fn remove(&self, fill: &Arc<Fill>) {
        {
            let mut fills = self.lock();
            if fills.get(&fill.id).is_some_and(|f| Arc::ptr_eq(f, fill)) {
                fills.remove(&fill.id);
            }
            self.count.send_replace(fills.len());
        }
        fill.settle();
    }

    /// Marks every fill in flight as not to be committed (see
    /// [`Fill::cancel_commit`]).
    pub(crate) fn cancel_all(&self) {
        for fill in self.lock().values() {
            fill.cancel_commit();
        }
    }

    /// Waits until no fill is in flight, at most `limit`. Returns whether
    /// none is.
    pub(crate) async fn drain(&self, limit: Duration) -> bool {
        let mut count = self.count.subscribe();
        // The sender lives in `self`: the channel cannot close while we wait.
        tokio::time::timeout(limit, count.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|waited| waited.is_ok())
    }

    /// Changes after every commit (wakes the maintenance task and the
    /// scrubber).
    pub(crate) fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    pub(crate) fn notify_commit(&self) {
        self.commits.send_modify(|n| *n += 1);
    }

    /// Number of fills in flight.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_leader_then_followers_and_abandon_on_drop() {
        let reg = Arc::new(FillRegistry::default());
        let id = ImageId::parse("20000000-0000-0000-0000-000000000001").unwrap();
        let Joined::Leader(guard) = reg.join_or_lead(&id) else {
            panic!("first caller must lead")
        };
        let Joined::Follower(f) = reg.join_or_lead(&id) else {
            panic!("second caller must follow")
        };
        assert!(Arc::ptr_eq(&f, guard.fill()));
        assert!(!f.status().settled);
        drop(guard);
        assert!(matches!(f.status().phase, Phase::Abandoned));
        assert!(f.status().settled, "an abandoned fill is over");
        assert_eq!(reg.len(), 0);
        assert!(matches!(reg.join_or_lead(&id), Joined::Leader(_)));
    }
}
