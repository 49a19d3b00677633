//! [`RemoteTier`] and its builder: the shared second level of the cache.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStoreExt;
use object_store::{GetOptions, ObjectStore};
use tokio::sync::Semaphore;

use super::health::Health;
use super::keys::Keys;
use super::{RemoteError, RemoteImage, S3Options};
use crate::metrics::Metrics;
use crate::ImageId;

/// Default bound on one request to the remote store (its first byte for a
/// download).
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// Default time a fill lease stays valid without renewal.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Default number of uploads to the remote tier at once.
pub const DEFAULT_UPLOAD_CONCURRENCY: usize = 2;

/// The remote tier: image objects shared by every node, the node registry
/// and the fill leases, in one bucket of any [`ObjectStore`] (an
/// S3-compatible one in production, see [`S3Options`]). Cheap to clone.
///
/// ```
/// use std::sync::Arc;
/// use glance_cache::remote::RemoteTier;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), glance_cache::remote::RemoteError> {
/// let store = Arc::new(object_store::memory::InMemory::new());
/// let tier = RemoteTier::builder(store)
///     .node("http://10.0.0.11:9292")
///     .max_size(10 << 30)
///     .build();
/// let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b").unwrap();
/// assert!(tier.head(&id).await?.is_none());
/// assert!(tier.holders(&id).await?.is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RemoteTier {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) store: Arc<dyn ObjectStore>,
    pub(super) keys: Keys,
    pub(super) node: Option<String>,
    pub(super) max_size: u64,
    pub(super) timeout: Duration,
    pub(super) lease_ttl: Duration,
    pub(super) health: Health,
    pub(super) uploads: Semaphore,
    pub(super) metrics: Metrics,
    pub(super) described: String,
}

impl fmt::Debug for RemoteTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteTier")
            .field("store", &self.inner.described)
            .field("node", &self.inner.node)
            .field("max_size", &self.inner.max_size)
            .finish_non_exhaustive()
    }
}

/// Configures a [`RemoteTier`]; see [`RemoteTier::builder`].
#[derive(Debug, Clone)]
pub struct RemoteTierBuilder {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    node: Option<String>,
    max_size: u64,
    timeout: Duration,
    lease_ttl: Duration,
    upload_concurrency: usize,
    failure_pause: Duration,
    metrics: Option<Metrics>,
}

impl RemoteTierBuilder {
    /// Keys live under this prefix of the bucket (default: its root).
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store).prefix("glance/cache").build();
    /// # drop(tier);
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// This node's URL (`worker_self_reference_url`): what the node
    /// registry lists and what other nodes stream an image from while this
    /// node holds its fill lease. Without it the node reads and uploads
    /// images but takes no leases and registers nothing.
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store).node("http://10.0.0.11:9292").build();
    /// assert_eq!(tier.node(), Some("http://10.0.0.11:9292"));
    /// ```
    pub fn node(mut self, url: impl Into<String>) -> Self {
        let url: String = url.into();
        self.node = Some(url.trim_end_matches('/').to_owned());
        self
    }

    /// Bytes the tier's images may take before pruning removes the least
    /// recently used (default 0: never pruned).
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store).max_size(1 << 40).build();
    /// assert_eq!(tier.max_size(), 1 << 40);
    /// ```
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Bound on one request to the store, the first byte of a download
    /// included (default 2 s). Past it the download goes to the upstream.
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store)
    ///     .timeout(std::time::Duration::from_secs(1))
    ///     .build();
    /// # drop(tier);
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a fill lease stays valid unless its holder renews it
    /// (default 30 s; renewed every third of it while the fill runs).
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store)
    ///     .lease_ttl(std::time::Duration::from_secs(10))
    ///     .build();
    /// # drop(tier);
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// Uploads running at once (default 2); each holds at most two 8 MiB
    /// parts in memory.
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store).upload_concurrency(4).build();
    /// # drop(tier);
    /// ```
    pub fn upload_concurrency(mut self, n: usize) -> Self {
        self.upload_concurrency = n.max(1);
        self
    }

    /// How long the store is left alone after a failure (default 10 s):
    /// meanwhile downloads go to the upstream without asking it.
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let tier = glance_cache::remote::RemoteTier::builder(store)
    ///     .failure_pause(std::time::Duration::from_secs(30))
    ///     .build();
    /// # drop(tier);
    /// ```
    pub fn failure_pause(mut self, pause: Duration) -> Self {
        self.failure_pause = pause;
        self
    }

    /// Where the tier counts its events (default: counters of its own; a
    /// [`GlanceCache`](crate::GlanceCache) gives it the cache's).
    ///
    /// ```
    /// # let store = std::sync::Arc::new(object_store::memory::InMemory::new());
    /// let metrics = glance_cache::metrics::Metrics::new();
    /// let tier = glance_cache::remote::RemoteTier::builder(store).metrics(metrics).build();
    /// # drop(tier);
    /// ```
    pub fn metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub(crate) fn has_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    /// The tier.
    pub fn build(self) -> RemoteTier {
        RemoteTier {
            inner: Arc::new(Inner {
                described: self.store.to_string(),
                store: self.store,
                keys: Keys::new(&self.prefix),
                node: self.node,
                max_size: self.max_size,
                timeout: self.timeout,
                lease_ttl: self.lease_ttl,
                health: Health::new(self.failure_pause),
                uploads: Semaphore::new(self.upload_concurrency),
                metrics: self.metrics.unwrap_or_default(),
            }),
        }
    }
}

impl RemoteTier {
    /// Starts configuring a tier over `store` (any [`ObjectStore`]; it must
    /// implement conditional create for leases).
    ///
    /// See [`RemoteTier`] for an example.
    pub fn builder(store: Arc<dyn ObjectStore>) -> RemoteTierBuilder {
        RemoteTierBuilder {
            store,
            prefix: String::new(),
            node: None,
            max_size: 0,
            timeout: DEFAULT_REMOTE_TIMEOUT,
            lease_ttl: DEFAULT_LEASE_TTL,
            upload_concurrency: DEFAULT_UPLOAD_CONCURRENCY,
            failure_pause: Duration::from_secs(10),
            metrics: None,
        }
    }

    /// Starts configuring a tier on an S3-compatible store.
    ///
    /// # Errors
    /// The options cannot make a client (a URL that is not
    /// `s3://bucket[/prefix]`, unreadable TLS files).
    ///
    /// ```
    /// use glance_cache::remote::{RemoteTier, S3Options};
    /// let tier = RemoteTier::s3(
    ///     &S3Options::new("s3://glance-cache/nodes-a").with_endpoint("http://127.0.0.1:9000"),
    /// )
    /// .unwrap()
    /// .build();
    /// # drop(tier);
    /// ```
    pub fn s3(options: &S3Options) -> Result<RemoteTierBuilder, RemoteError> {
        Ok(RemoteTier::builder(options.store()?).prefix(options.prefix()?))
    }

    /// This node's URL, when configured.
    pub fn node(&self) -> Option<&str> {
        self.inner.node.as_deref()
    }

    /// The size limit of the tier (0: none).
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn lease_key(&self, id: &ImageId) -> Path {
        self.inner.keys.lease(id)
    }

    pub(crate) fn lease_ttl(&self) -> Duration {
        self.inner.lease_ttl
    }

    /// Runs one request to the store: not at all while the store is
    /// paused after a failure, bounded by the timeout, its failure
    /// recorded. `NotFound`, `AlreadyExists` and `Precondition` are answers,
    /// not failures.
    pub(super) async fn call<T, F>(
        &self,
        operation: &'static str,
        key: &Path,
        fut: F,
    ) -> Result<T, RemoteError>
    where
        F: Future<Output = object_store::Result<T>>,
    {
        self.call_within(self.inner.timeout, operation, key, fut)
            .await
    }

    /// [`call`](Self::call) with another bound than the timeout.
    async fn call_within<T, F>(
        &self,
        bound: Duration,
        operation: &'static str,
        key: &Path,
        fut: F,
    ) -> Result<T, RemoteError>
    where
        F: Future<Output = object_store::Result<T>>,
    {
        let inner = &self.inner;
        inner.health.gate()?;
        let result = match tokio::time::timeout(bound, fut).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(RemoteError::Store {
                operation,
                key: key.to_string(),
                source,
            }),
            Err(_) => Err(RemoteError::Timeout {
                operation,
                key: key.to_string(),
                timeout: bound,
            }),
        };
        match &result {
            Ok(_) => inner.health.success(),
            Err(RemoteError::Store { source, .. }) if is_answer(source) => inner.health.success(),
            Err(e) => inner.health.failure(e, &inner.metrics),
        }
        result
    }

    /// The image's object, when the tier has it.
    ///
    /// # Errors
    /// The store failed, timed out or is paused after a failure.
    pub async fn head(&self, id: &ImageId) -> Result<Option<RemoteImage>, RemoteError> {
        let key = self.inner.keys.image(id);
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        match self
            .call("head", &key, self.inner.store.get_opts(&key, options))
            .await
        {
            Ok(got) => Ok(Some(RemoteImage::from_object(
                id.clone(),
                got.meta.size,
                epoch(&got.meta.last_modified),
                &got.attributes,
            ))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The image's bytes as a stream, once the store answered (within the
    /// timeout); `Ok(None)` when the object is gone. Each later chunk must
    /// arrive within the timeout too, or the stream ends with an error.
    pub(crate) async fn open(
        &self,
        id: &ImageId,
    ) -> Result<Option<(u64, BoxStream<'static, Result<Bytes, RemoteError>>)>, RemoteError> {
        let key = self.inner.keys.image(id);
        let got = match self.call("get", &key, self.inner.store.get(&key)).await {
            Ok(got) => got,
            Err(e) if is_not_found(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let size = got.meta.size;
        let timeout = self.inner.timeout;
        let name = key.to_string();
        let stream = got.into_stream().map_err(move |source| RemoteError::Store {
            operation: "get",
            key: name.clone(),
            source,
        });
        let stream = idle_bounded(stream.boxed(), timeout, key.to_string());
        Ok(Some((size, stream)))
    }

    /// Deletes the image's object and every node's registry entry for it
    /// (an image deleted upstream).
    ///
    /// # Errors
    /// The store failed.
    pub async fn delete_image(&self, id: &ImageId) -> Result<(), RemoteError> {
        let key = self.inner.keys.image(id);
        self.delete(&key).await?;
        for holding in self.list_keys(&self.inner.keys.holders(id)).await? {
            self.delete(&holding).await?;
        }
        Ok(())
    }

    /// Deletes one object; a missing one is not an error.
    pub(super) async fn delete(&self, key: &Path) -> Result<(), RemoteError> {
        match self.call("delete", key, self.inner.store.delete(key)).await {
            Err(e) if !is_not_found(&e) => Err(e),
            _ => Ok(()),
        }
    }

    /// The keys under `prefix`, with their metadata.
    pub(super) async fn list_meta(
        &self,
        prefix: &Path,
    ) -> Result<Vec<object_store::ObjectMeta>, RemoteError> {
        let listing = self.inner.store.list(Some(prefix)).try_collect::<Vec<_>>();
        // A listing of a large tier takes several requests (1000 keys each).
        self.call_within(self.inner.timeout * 5, "list", prefix, listing)
            .await
    }

    pub(super) async fn list_keys(&self, prefix: &Path) -> Result<Vec<Path>, RemoteError> {
        Ok(self
            .list_meta(prefix)
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect())
    }

    /// Every image in the tier (sizes and upload times; the digests are
    /// not read).
    ///
    /// # Errors
    /// The store failed.
    pub async fn list(&self) -> Result<Vec<RemoteImage>, RemoteError> {
        let keys = &self.inner.keys;
        Ok(self
            .list_meta(&keys.images())
            .await?
            .into_iter()
            .filter_map(|m| {
                let id = keys.image_of(&m.location)?;
                Some(RemoteImage::new(id, m.size, None, None).modified(epoch(&m.last_modified)))
            })
            .collect())
    }
}

impl RemoteImage {
    fn modified(mut self, at: f64) -> Self {
        self.last_modified = at;
        self
    }
}

pub(super) fn epoch(t: &chrono::DateTime<chrono::Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn is_answer(e: &object_store::Error) -> bool {
    matches!(
        e,
        object_store::Error::NotFound { .. }
            | object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. }
            | object_store::Error::NotModified { .. }
    )
}

pub(super) fn is_not_found(e: &RemoteError) -> bool {
    matches!(
        e,
        RemoteError::Store {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

/// Bytes of the store's frames joined into one chunk when they are already
/// there: some stores send 4 KiB frames, and each chunk costs the fill a
/// write, two hash updates and three channel sends.
const COALESCE: usize = 256 << 10;

/// Ends `stream` with an error when no chunk arrives within `timeout`, and
/// joins frames that are ready at once into chunks of up to [`COALESCE`]
/// bytes (an error or the end is delivered after the bytes before it).
fn idle_bounded(
    stream: BoxStream<'static, Result<Bytes, RemoteError>>,
    timeout: Duration,
    key: String,
) -> BoxStream<'static, Result<Bytes, RemoteError>> {
    use futures_util::FutureExt;
    /// The stream, and what it said after the bytes last handed out.
    type State = (
        BoxStream<'static, Result<Bytes, RemoteError>>,
        Option<Option<RemoteError>>,
    );
    futures_util::stream::unfold(Some::<State>((stream, None)), move |state| {
        let key = key.clone();
        async move {
            let (mut stream, pending) = state?;
            match pending {
                Some(Some(e)) => return Some((Err(e), None)),
                Some(None) => return None,
                None => {}
            }
            let first = match tokio::time::timeout(timeout, stream.next()).await {
                Ok(Some(Ok(bytes))) => bytes,
                Ok(Some(Err(e))) => return Some((Err(e), None)),
                Ok(None) => return None,
                Err(_) => {
                    let e = RemoteError::Timeout {
                        operation: "get",
                        key,
                        timeout,
                    };
                    return Some((Err(e), None));
                }
            };
            if first.len() >= COALESCE {
                return Some((Ok(first), Some((stream, None))));
            }
            let mut joined = bytes::BytesMut::from(first.as_ref());
            let mut after = None;
            while joined.len() < COALESCE {
                match stream.next().now_or_never() {
                    Some(Some(Ok(more))) => joined.extend_from_slice(&more),
                    Some(Some(Err(e))) => {
                        after = Some(Some(e));
                        break;
                    }
                    Some(None) => {
                        after = Some(None);
                        break;
                    }
                    None => break,
                }
            }
            Some((Ok(joined.freeze()), Some((stream, after))))
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(
        items: Vec<Result<Bytes, RemoteError>>,
    ) -> BoxStream<'static, Result<Bytes, RemoteError>> {
        futures_util::stream::iter(items).boxed()
    }

    #[tokio::test]
    async fn ready_small_frames_are_joined_and_an_error_comes_after_the_bytes() {
        let small = || Ok(Bytes::from(vec![1u8; 4096]));
        let mut items: Vec<_> = (0..70).map(|_| small()).collect();
        items.push(Err(RemoteError::Config("broken".into())));
        let out: Vec<_> = idle_bounded(chunks(items), Duration::from_secs(1), "k".into())
            .collect()
            .await;
        let sizes: Vec<usize> = out
            .iter()
            .filter_map(|r| r.as_ref().ok().map(Bytes::len))
            .collect();
        assert_eq!(sizes, [COALESCE, 70 * 4096 - COALESCE]);
        assert!(matches!(out.last(), Some(Err(RemoteError::Config(_)))));
        assert_eq!(out.len(), 3);
    }

    #[tokio::test]
    async fn a_silent_store_ends_the_stream_with_a_timeout() {
        let silent = futures_util::stream::pending().boxed();
        let out: Vec<_> = idle_bounded(silent, Duration::from_millis(50), "k".into())
            .collect()
            .await;
        assert!(matches!(out.as_slice(), [Err(RemoteError::Timeout { .. })]));
    }
}
