//! State changes of entries: invalidation, clearing, queueing, and waiting
//! for fills to be over.

use std::time::Duration;

use http::HeaderMap;

use super::GlanceCache;
use crate::{Error, ImageId};

impl GlanceCache {
    /// Removes the entry of `id`: a fill in flight is cancelled (it still
    /// serves its clients, but never commits; if its commit is already
    /// under way, the entry it commits is removed right after), and the
    /// entry and its index row are deleted. Returns whether an entry was
    /// there. The prefetch queue is not touched (as in Glance, a queued
    /// image stays queued when the image is deleted; `DELETE
    /// /v2/cache/{id}` also [dequeues](Self::dequeue) it).
    ///
    /// Every delete goes through here: `DELETE /v2/images/{id}` accepted
    /// upstream, `DELETE /v2/cache/{id}` and `DELETE /v2/cached_images/{id}`
    /// (and [`clear_cache`](Self::clear_cache) for every entry at once).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// cache.queue(&id, None).await?;
    /// assert!(!cache.invalidate(&id).await?, "nothing was cached");
    /// assert!(cache.store().is_queued(&id).await?, "still queued");
    /// # Ok(()) }
    /// ```
    pub async fn invalidate(&self, id: &ImageId) -> Result<bool, Error> {
        if let Some(fill) = self.inner.fills.get(id) {
            fill.cancel_commit();
        }
        let removed = self.inner.store.invalidate(id).await?;
        if let Some(tier) = self.remote() {
            if let Err(e) = tier.remove_holding(id).await {
                tracing::debug!(image_id = %id, error = %e,
                    "registry entry not removed; the next reconciliation removes it");
            }
        }
        Ok(removed)
    }

    /// The image was deleted upstream (`DELETE /v2/images/{id}` accepted):
    /// the local entry is [invalidated](Self::invalidate), and the remote
    /// tier's copy and every node's registry entry are deleted. Returns
    /// whether a local entry was there.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// assert!(!cache.image_deleted(&id).await?, "nothing was cached");
    /// # Ok(()) }
    /// ```
    pub async fn image_deleted(&self, id: &ImageId) -> Result<bool, Error> {
        let removed = self.invalidate(id).await?;
        if let Some(tier) = self.remote() {
            match tier.delete_image(id).await {
                Ok(()) => {
                    tracing::info!(image_id = %id, "image deleted upstream; remote copy removed")
                }
                Err(e) => tracing::warn!(image_id = %id, error = %e,
                    "image deleted upstream, but its remote copy could not be removed"),
            }
        }
        Ok(removed)
    }

    /// Removes every entry: every image file and index row (only files
    /// named by an image id; `incomplete/`, `invalid/` and `queue/` stay);
    /// fills in flight are cancelled like [`invalidate`](Self::invalidate)
    /// cancels one, so that none brings an entry back. The queue is not
    /// touched. Returns the number of image files removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert_eq!(cache.clear_cache().await?, 0);
    /// # Ok(()) }
    /// ```
    pub async fn clear_cache(&self) -> Result<usize, Error> {
        self.inner.fills.cancel_all();
        self.inner.store.clear_cache().await
    }

    /// Queues `id` for prefetching on disk only (the legacy
    /// `PUT /v2/queued_images/{id}`): the workers fetch it when they next
    /// replay the queue (at startup), the offline `prefetch` command at its
    /// next run. Returns whether a marker was created.
    pub(crate) async fn queue_for_later(&self, id: &ImageId) -> Result<bool, Error> {
        self.inner.store.queue_image(id).await
    }

    /// Takes `id` off the prefetch queue and forgets its recorded error.
    /// Returns whether it was queued.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// cache.queue(&id, None).await?;
    /// assert!(cache.dequeue(&id).await?);
    /// # Ok(()) }
    /// ```
    pub async fn dequeue(&self, id: &ImageId) -> Result<bool, Error> {
        let removed = self.inner.store.dequeue(id).await?;
        self.inner.prefetch.forget(id);
        Ok(removed)
    }

    /// Empties the prefetch queue, and forgets the recorded errors. Returns
    /// the number of queued images removed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// cache.queue(&id, None).await?;
    /// assert_eq!(cache.clear_queue().await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn clear_queue(&self) -> Result<usize, Error> {
        let removed = self.inner.store.clear_queue().await?;
        self.inner.prefetch.forget_all();
        Ok(removed)
    }

    /// Queues `id` for prefetching: a marker in `queue/` (unless it is
    /// cached or being cached already), then, when prefetch workers run, a
    /// job for them (also when it was queued already: queueing a failed
    /// image again retries it). `credentials` are the request headers of
    /// the operator who queued it, used to fetch the image when the proxy
    /// has no service credentials of its own. Returns whether a marker was
    /// created.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// assert!(cache.queue(&id, None).await?);
    /// assert_eq!(cache.store().queued().await?, [id]);
    /// # Ok(()) }
    /// ```
    pub async fn queue(&self, id: &ImageId, credentials: Option<HeaderMap>) -> Result<bool, Error> {
        let queued = self.inner.store.queue_image(id).await?;
        self.inner.prefetch.submit(id.clone(), credentials);
        Ok(queued)
    }

    /// Waits until the fill of `id` in flight now (if any) is over: its
    /// task has committed the entry (or failed) and let go of it. Clients
    /// still reading the file do not delay this.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
    /// cache.settled(&id).await; // no fill: returns at once
    /// # Ok(()) }
    /// ```
    pub async fn settled(&self, id: &ImageId) {
        if let Some(fill) = self.inner.fills.get(id) {
            fill.settled().await;
        }
    }

    /// Waits until no fill is in flight, at most `limit` (a fill whose
    /// last client left still commits; a server shutting down gives it
    /// that long). Returns whether every fill is over.
    ///
    /// See the [module docs](crate::cache) for an example.
    pub async fn drain(&self, limit: Duration) -> bool {
        self.inner.fills.drain(limit).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fill::{Joined, Phase};
    use crate::store::CacheStore;

    const ID: &str = "66666666-6666-4666-8666-666666666666";

    async fn cache(dir: &std::path::Path) -> GlanceCache {
        let store = CacheStore::builder(dir)
            .with_min_free_disk(0)
            .open()
            .await
            .unwrap();
        GlanceCache::builder(store).build()
    }

    fn id() -> ImageId {
        ImageId::parse(ID).unwrap()
    }

    /// Registers a fill of [`ID`] the way a download starts one.
    fn start_fill(cache: &GlanceCache) -> std::sync::Arc<crate::fill::Fill> {
        let Joined::Leader(guard) = cache.fills().join_or_lead(&id()) else {
            panic!("no fill yet")
        };
        guard.started()
    }

    // The clock is paused: it moves only when every task waits for a timer,
    // and then straight to that timer. A sleep loop would show as elapsed
    // time; waiting for the fill to settle does not.
    #[tokio::test(start_paused = true)]
    async fn settled_ends_when_the_fill_task_lets_go_without_polling() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        let start = tokio::time::Instant::now();
        cache.settled(&id()).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no fill: no wait");

        // The order of the fill task: Verified, commit, unregister.
        let fill = start_fill(&cache);
        fill.finish(Phase::Verified);
        let waiter = tokio::spawn({
            let cache = cache.clone();
            async move { cache.settled(&id()).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "still committing");
        cache.fills().remove(&fill);
        waiter.await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "no timer fired");
    }

    #[tokio::test(start_paused = true)]
    async fn drain_waits_for_every_fill_at_most_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        let fill = start_fill(&cache);
        let start = tokio::time::Instant::now();
        let limit = Duration::from_secs(7);
        assert!(!cache.drain(limit).await, "a fill that never ends");
        assert_eq!(start.elapsed(), limit);

        let draining = tokio::spawn({
            let cache = cache.clone();
            async move { cache.drain(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        cache.fills().remove(&fill);
        assert!(draining.await.unwrap(), "over once the fill let go");
        assert_eq!(start.elapsed(), limit, "no polling");
    }
}
