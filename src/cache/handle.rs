//! The handle and its builder.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::cluster::Cluster;
use super::prefetch_queue::PrefetchQueue;
use crate::auth::{AuthorizationLimits, HitAuthorization, HitAuthorizer};
use crate::fill::FillRegistry;
use crate::metrics::{Metrics, Snapshot};
use crate::remote::RemoteTierBuilder;
use crate::store::CacheStore;
use crate::tls::ClientTls;

/// Default time a positive hit authorization is remembered per caller.
pub const DEFAULT_AUTHORIZATION_TTL: Duration = Duration::from_secs(10);

/// Default number of hit authorizations asking the upstream at once.
pub const DEFAULT_AUTHORIZATION_CONCURRENCY: usize = 64;

/// Default bound on one hit authorization, its wait for a turn included.
pub const DEFAULT_AUTHORIZATION_TIMEOUT: Duration = Duration::from_secs(10);

/// Default wait of a range for a running fill to bring its first byte.
pub const DEFAULT_RANGE_FILL_WAIT: Duration = Duration::from_secs(2);

/// The cache: store, fills in flight, hit authorization, prefetch queue
/// and metrics. Cheap to clone; clones share everything. See the
/// [module docs](crate::cache).
#[derive(Clone)]
pub struct GlanceCache {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: CacheStore,
    pub(super) fills: Arc<FillRegistry>,
    pub(super) authorizer: HitAuthorizer,
    pub(super) prefetch: PrefetchQueue,
    pub(super) ranges: Ranges,
    pub(super) cluster: Option<Cluster>,
}

/// How single-range downloads are treated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ranges {
    /// Answered from cached files and running fills.
    pub(crate) serve: bool,
    /// A range of an image not cached also starts a fill of the whole image.
    pub(crate) fill_on_miss: bool,
    /// How long a range of an image being filled waits for the fill to
    /// bring its first byte (or, bytes from elsewhere than the upstream,
    /// to be verified) before it goes to the upstream instead.
    pub(crate) fill_wait: Duration,
}

impl fmt::Debug for GlanceCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GlanceCache")
            .field("dir", &self.inner.store.root())
            .field("fills_in_flight", &self.fills_in_flight())
            .finish_non_exhaustive()
    }
}

/// Configures a [`GlanceCache`]; see [`GlanceCache::builder`].
#[derive(Debug)]
pub struct GlanceCacheBuilder {
    store: CacheStore,
    hit_authorization: HitAuthorization,
    authorization_ttl: Duration,
    authorization_limits: AuthorizationLimits,
    ranges: Ranges,
    remote: Option<RemoteTierBuilder>,
    peer_tls: ClientTls,
}

impl GlanceCacheBuilder {
    /// A remote tier shared with the other nodes (see [`crate::remote`]): a
    /// local miss is filled from it when it has the image, else from the
    /// node holding the image's fill lease, else from the upstream; what
    /// this node commits is uploaded to it and registered as held here.
    /// The tier counts its events in this cache's metrics.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use glance_cache::remote::RemoteTier;
    /// let shared = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .remote(RemoteTier::builder(shared).node("http://10.0.0.11:9292"))
    ///     .build();
    /// assert_eq!(cache.remote().unwrap().node(), Some("http://10.0.0.11:9292"));
    /// # Ok(()) }
    /// ```
    pub fn remote(mut self, tier: RemoteTierBuilder) -> Self {
        self.remote = Some(tier);
        self
    }

    /// How the certificates of other nodes are checked when this node
    /// streams an image from the one holding its fill lease (default: the
    /// system's trust store; plain-`http` node URLs need none).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use glance_cache::tls::ClientTls;
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .peer_tls(ClientTls::new().with_ca_file("/etc/glance/ca.pem"))
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn peer_tls(mut self, tls: ClientTls) -> Self {
        self.peer_tls = tls;
        self
    }

    /// Whether a single-range download (`Range: bytes=a-b`, `bytes=a-`,
    /// `bytes=-n`) of a cached image, or of one being filled, is answered
    /// from the cache (default `true`) with Glance's `206`/`416`, after the
    /// same authorization as a whole download. Off, every ranged request
    /// goes to the upstream, as with Glance's own cache. A part is never
    /// stored either way.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).serve_ranges(false).build();
    /// # Ok(()) }
    /// ```
    pub fn serve_ranges(mut self, on: bool) -> Self {
        self.ranges.serve = on;
        self
    }

    /// Whether a range of an image that is not cached, besides going to
    /// the upstream unchanged, starts a fill of the whole image with the
    /// caller's credentials (default `false`), so that the next ranges are
    /// answered from the cache.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).fill_on_range_miss(true).build();
    /// # Ok(()) }
    /// ```
    pub fn fill_on_range_miss(mut self, on: bool) -> Self {
        self.ranges.fill_on_miss = on;
        self
    }

    /// How long a range of an image that is being filled waits for the
    /// fill (default [`DEFAULT_RANGE_FILL_WAIT`]) before it is sent to the
    /// upstream instead, unchanged and never stored. A range waits for its
    /// first byte to be on disk, and then follows the fill to its last
    /// byte. When the fill's bytes do not come from the upstream itself
    /// (the remote tier, a peer node, another process's fill) they are not
    /// verified until the fill ends, and a range waits for the whole fill
    /// to be verified: a part cannot be checked once sent. A fill that
    /// fails before the range could be served sends it upstream too.
    /// `Duration::ZERO` serves only what is already on disk. A range of a
    /// cached file that changed since it was verified waits as long for
    /// the file to be hashed again (the verification goes on without it,
    /// for the next ranges).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use std::time::Duration;
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .range_fill_wait(Duration::from_secs(5))
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn range_fill_wait(mut self, wait: Duration) -> Self {
        self.ranges.fill_wait = wait;
        self
    }

    /// How hits are authorized (default [`HitAuthorization::Probe`]; see
    /// [`crate::auth`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use glance_cache::{auth::HitAuthorization, GlanceCache};
    /// let cache = GlanceCache::builder(store).hit_authorization(HitAuthorization::Metadata).build();
    /// # Ok(()) }
    /// ```
    pub fn hit_authorization(mut self, mode: HitAuthorization) -> Self {
        self.hit_authorization = mode;
        self
    }

    /// How long a positive answer is remembered per caller identity
    /// (default 10 s; zero disables the memory).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use std::time::Duration;
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .authorization_ttl(Duration::ZERO) // ask the upstream on every hit
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn authorization_ttl(mut self, ttl: Duration) -> Self {
        self.authorization_ttl = ttl;
        self
    }

    /// How many hit authorizations may be asking the upstream at once
    /// (default 64); more wait their turn, first come first served.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .authorization_concurrency(16)
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn authorization_concurrency(mut self, n: usize) -> Self {
        self.authorization_limits.concurrency = n.max(1);
        self
    }

    /// How long a hit's authorization may take, its wait for a turn
    /// included (default 10 s). Past it, or when the upstream is
    /// unreachable or says it is overloaded (429, 502, 503, 504), the client
    /// gets `503` with `Retry-After` at once: a cached image's download is
    /// never forwarded to an upstream that cannot even answer the question.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// use std::time::Duration;
    /// let cache = glance_cache::GlanceCache::builder(store)
    ///     .authorization_timeout(Duration::from_secs(5))
    ///     .build();
    /// # Ok(()) }
    /// ```
    pub fn authorization_timeout(mut self, timeout: Duration) -> Self {
        self.authorization_limits.timeout = timeout;
        self
    }

    /// The cache.
    pub fn build(self) -> GlanceCache {
        let metrics = self.store.metrics().clone();
        let cluster = self.remote.map(|tier| {
            let tier = if tier.has_metrics() {
                tier
            } else {
                tier.metrics(metrics.clone())
            };
            Cluster::new(tier.build(), self.peer_tls)
        });
        GlanceCache {
            inner: Arc::new(Inner {
                store: self.store,
                fills: Arc::default(),
                authorizer: HitAuthorizer::new(
                    self.hit_authorization,
                    self.authorization_ttl,
                    metrics,
                    self.authorization_limits,
                ),
                prefetch: PrefetchQueue::default(),
                ranges: self.ranges,
                cluster,
            }),
        }
    }
}

impl GlanceCache {
    /// Starts configuring a cache over `store`.
    ///
    /// See the [module docs](crate::cache) for an example.
    pub fn builder(store: CacheStore) -> GlanceCacheBuilder {
        GlanceCacheBuilder {
            store,
            hit_authorization: HitAuthorization::Probe,
            authorization_ttl: DEFAULT_AUTHORIZATION_TTL,
            authorization_limits: AuthorizationLimits {
                concurrency: DEFAULT_AUTHORIZATION_CONCURRENCY,
                timeout: DEFAULT_AUTHORIZATION_TIMEOUT,
            },
            ranges: Ranges {
                serve: true,
                fill_on_miss: false,
                fill_wait: DEFAULT_RANGE_FILL_WAIT,
            },
            remote: None,
            peer_tls: ClientTls::new(),
        }
    }

    /// The local store.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert!(cache.store().list().await?.is_empty());
    /// # Ok(()) }
    /// ```
    pub fn store(&self) -> &CacheStore {
        &self.inner.store
    }

    /// The counters of this cache (see [`crate::metrics`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert_eq!(cache.metrics().snapshot().hits, 0);
    /// # Ok(()) }
    /// ```
    pub fn metrics(&self) -> &Metrics {
        self.inner.store.metrics()
    }

    /// The counters plus the cache size and entry count, read from the
    /// store (off the async threads). A size or count that cannot be read
    /// is logged and left `None` (and not rendered).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// let snapshot = cache.metrics_snapshot().await;
    /// assert_eq!(snapshot.cache_entries, Some(0));
    /// assert!(snapshot.to_string().contains("glance_cache_entries 0\n"));
    /// # Ok(()) }
    /// ```
    pub async fn metrics_snapshot(&self) -> Snapshot {
        let store = &self.inner.store;
        let mut snapshot = store.metrics().snapshot();
        match store.cache_size().await {
            Ok(size) => snapshot.cache_size_bytes = Some(size),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the cache size"),
        }
        snapshot.cache_max_size_bytes = Some(store.max_size());
        match store.list().await {
            Ok(entries) => snapshot.cache_entries = Some(entries.len() as u64),
            Err(e) => tracing::warn!(error = %e, "metrics: cannot read the cache index"),
        }
        snapshot
    }

    /// Fills running now.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert_eq!(cache.fills_in_flight(), 0);
    /// # Ok(()) }
    /// ```
    pub fn fills_in_flight(&self) -> usize {
        self.inner.fills.len()
    }

    /// The last error of each queued image that the prefetch workers could
    /// not cache (it stays queued), by image id.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert!(cache.prefetch_errors().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn prefetch_errors(&self) -> BTreeMap<String, String> {
        self.inner.prefetch.errors()
    }

    /// Images handed to the prefetch workers and not finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// let cache = glance_cache::GlanceCache::builder(store).build();
    /// assert_eq!(cache.prefetch_pending(), 0);
    /// # Ok(()) }
    /// ```
    pub fn prefetch_pending(&self) -> usize {
        self.inner.prefetch.pending()
    }

    pub(crate) fn fills(&self) -> &Arc<FillRegistry> {
        &self.inner.fills
    }

    pub(crate) fn authorizer(&self) -> &HitAuthorizer {
        &self.inner.authorizer
    }

    pub(crate) fn prefetch(&self) -> &PrefetchQueue {
        &self.inner.prefetch
    }

    pub(crate) fn ranges(&self) -> Ranges {
        self.inner.ranges
    }
}
