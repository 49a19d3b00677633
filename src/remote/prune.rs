//! Pruning the remote tier to its size limit, least recently used first,
//! by one node at a time (the `leases/prune` lease).
//!
//! An image's last use is the newest of its upload and its registry
//! entries: a node writes its entry whenever it caches the image, from
//! the remote tier or otherwise.

use std::collections::HashMap;

use super::lease::LeaseOutcome;
use super::tier::epoch;
use super::{RemoteError, RemoteTier};
use crate::metrics::RemoteEvent;

/// What one pruning of the remote tier did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemotePruneReport {
    /// Whether this node pruned (another may hold the prune lease; a tier
    /// without a size limit is never pruned).
    pub ran: bool,
    /// Objects deleted.
    pub deleted: usize,
    /// Bytes freed.
    pub freed: u64,
    /// Bytes in the tier afterwards.
    pub size: u64,
}

impl RemoteTier {
    /// Deletes the least recently used images until the tier is within
    /// its size limit, if no other node is pruning it now.
    ///
    /// # Errors
    /// The store failed.
    pub async fn prune(&self) -> Result<RemotePruneReport, RemoteError> {
        if self.max_size() == 0 {
            return Ok(RemotePruneReport::default());
        }
        let lease = match self.try_lease(self.inner.keys.prune_lease()).await {
            LeaseOutcome::Acquired(lease) => Some(lease),
            LeaseOutcome::Held(held) => {
                tracing::debug!(holder = %held.holder, "another node prunes the remote tier");
                return Ok(RemotePruneReport::default());
            }
            // Without a node URL (an operator command) prune anyway.
            LeaseOutcome::Unavailable if self.node().is_none() => None,
            LeaseOutcome::Unavailable => return Ok(RemotePruneReport::default()),
        };
        let result = self.prune_locked().await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        result
    }

    async fn prune_locked(&self) -> Result<RemotePruneReport, RemoteError> {
        let keys = &self.inner.keys;
        let mut used: HashMap<crate::ImageId, f64> = HashMap::new();
        for meta in self.list_meta(&keys.nodes()).await? {
            if let Some((id, _)) = keys.holding_of(&meta.location) {
                let at = epoch(&meta.last_modified);
                let e = used.entry(id).or_insert(at);
                *e = e.max(at);
            }
        }
        let mut images = self.list().await?;
        for image in &mut images {
            if let Some(at) = used.get(&image.image_id) {
                image.last_modified = image.last_modified.max(*at);
            }
        }
        images.sort_by(|a, b| a.last_modified.total_cmp(&b.last_modified));
        let mut report = RemotePruneReport {
            ran: true,
            size: images.iter().map(|i| i.size).sum(),
            ..RemotePruneReport::default()
        };
        for image in images {
            if report.size <= self.max_size() {
                break;
            }
            self.delete(&keys.image(&image.image_id)).await?;
            self.metrics().remote(RemoteEvent::Pruned);
            tracing::info!(image_id = %image.image_id, size = image.size,
                "pruned from the remote tier");
            report.deleted += 1;
            report.freed += image.size;
            report.size -= image.size;
        }
        Ok(report)
    }
}
