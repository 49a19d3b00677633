//! [`GlanceCache`]: the cache, as one handle.
//!
//! The handle owns everything a cache is made of — the local store, the
//! registry of fills in flight, the hit authorizer, the prefetch queue and
//! the metrics — and every state change an entry goes through:
//!
//! | change | by |
//! |---|---|
//! | a miss starts a fill (one per image) | [`CacheLayer`](crate::CacheLayer) |
//! | a verified fill is committed | the fill's own task |
//! | an entry is invalidated: its fill (running or committing) cancelled, the entry deleted | [`GlanceCache::invalidate`]: `DELETE /v2/images/{id}` accepted upstream, `DELETE /v2/cache/{id}` (which also dequeues), `DELETE /v2/cached_images/{id}` |
//! | every entry is removed, fills in flight cancelled | [`GlanceCache::clear_cache`]: `DELETE /v2/cache`, `DELETE /v2/cached_images` |
//! | an image is queued for prefetching | [`GlanceCache::queue`] |
//!
//! Layers, workers and programs hold the handle (it is cheap to clone) and
//! never each other.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use glance_cache::auth::HitAuthorization;
//! use glance_cache::store::CacheStore;
//! use glance_cache::GlanceCache;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), glance_cache::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let store = CacheStore::builder(dir.path()).open().await?;
//! let cache = GlanceCache::builder(store)
//!     .hit_authorization(HitAuthorization::Probe)
//!     .authorization_ttl(Duration::from_secs(10))
//!     .build();
//! assert_eq!(cache.fills_in_flight(), 0);
//! let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
//! assert!(!cache.invalidate(&id).await?, "nothing was cached");
//! assert!(cache.drain(Duration::from_secs(1)).await, "no fill to wait for");
//! # Ok(()) }
//! ```

mod cluster;
mod entry;
mod fill_start;
mod handle;
mod prefetch_queue;

pub(crate) use cluster::PEER_HEADER;
pub(crate) use fill_start::{FillFrom, Started};
pub use handle::{
    GlanceCache, GlanceCacheBuilder, DEFAULT_AUTHORIZATION_CONCURRENCY,
    DEFAULT_AUTHORIZATION_TIMEOUT, DEFAULT_AUTHORIZATION_TTL, DEFAULT_RANGE_FILL_WAIT,
};
pub(crate) use prefetch_queue::Job;
