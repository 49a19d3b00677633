//! [`Prefetcher`]: caches queued images (`PUT /v2/cache/{id}`).
//!
//! Unlike Glance's single worker thread, which dies on the first error and
//! re-downloads cached images, the workers are a bounded pool that skips
//! images cached already, retries transient failures with capped
//! exponential backoff, keeps a failed image queued with its error
//! (visible in `GET /v2/cache`), survives panics, and replays the on-disk
//! queue at startup. Images are fetched through the cache service itself,
//! so a prefetch and client downloads of the same image share one fill.
//! The offline `prefetch` command runs the same [`Prefetcher::fetch`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, USER_AGENT};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tower::Service;

use crate::auth::manage::ManagementAuth;
use crate::cache::{GlanceCache, Job};
use crate::layer::cache::ResponseBody;
use crate::upstream::{Caller, Reply, RequestBody, Upstream, UpstreamError};
use crate::{BoxError, Error, ImageId};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Longest wait for a downloaded image's fill to finish its commit.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// How the prefetch workers run.
///
/// ```
/// use std::time::Duration;
/// use glance_cache::worker::PrefetchOptions;
/// let options = PrefetchOptions::default().with_workers(4).with_retries(3).with_retry_delay(Duration::from_secs(1));
/// assert_eq!(options.workers(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct PrefetchOptions {
    workers: usize,
    retries: u32,
    retry_delay: Duration,
}

impl Default for PrefetchOptions {
    /// Two workers, five retries, a first backoff of 5 s.
    fn default() -> Self {
        PrefetchOptions {
            workers: 2,
            retries: 5,
            retry_delay: Duration::from_secs(5),
        }
    }
}

impl PrefetchOptions {
    /// Images fetched at once (default 2; at least 1).
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Attempts after the first for transient failures (default 5).
    pub fn with_retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// First backoff delay; doubles per attempt up to 5 minutes (default 5 s).
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Images fetched at once.
    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// Told how a prefetch download advances (a progress bar, say).
pub trait PrefetchProgress: Send + Sync {
    /// The image's size, once known.
    fn total(&self, _bytes: u64) {}
    /// `bytes` more arrived.
    fn advance(&self, _bytes: u64) {}
}

impl PrefetchProgress for () {}

/// What a prefetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Prefetched {
    /// Downloaded, verified and committed.
    Cached {
        /// Image bytes received.
        bytes: u64,
        /// How long the download and commit took.
        elapsed: Duration,
    },
    /// It was cached already; only the queue marker was removed.
    AlreadyCached,
    /// It was no longer queued (deleted from the queue meanwhile).
    NotQueued,
}

/// Why a prefetch did not cache its image (it stays queued).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrefetchError {
    /// Keystone refused or could not issue the proxy's service token.
    #[error("cannot get a service token from Keystone: {0}")]
    ServiceToken(#[source] BoxError),
    /// Another process holds the image's incomplete file.
    #[error(
        "busy: another process is caching it right now (it stays queued; the other \
         process's commit removes it from the queue)"
    )]
    Busy,
    /// The image service refused the lookup or the download.
    #[error("{what}: the image service answered {status}{}", refusal_hint(*.status, *.with_token))]
    Refused {
        /// `image lookup` or `download`.
        what: &'static str,
        /// Its answer.
        status: StatusCode,
        /// Whether a service token was sent.
        with_token: bool,
    },
    /// The image service could not be asked.
    #[error("{what}: {source}")]
    Upstream {
        /// `image lookup` or `download`.
        what: &'static str,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The image has no data to cache.
    #[error("image status is {0:?}, not active")]
    NotActive(String),
    /// The image is larger than `image_cache_max_size`.
    #[error("image of {size} bytes exceeds image_cache_max_size {max}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The download ended early.
    #[error("download broke off after {received} bytes: {source}")]
    BrokeOff {
        /// Bytes received before.
        received: u64,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The download finished but no entry was committed.
    #[error(
        "downloaded but not cached (see the proxy log: space, size limit, verification or \
         another writer)"
    )]
    NotCommitted,
    /// The cache directory failed.
    #[error("cache directory: {0}")]
    Store(#[from] Error),
}

fn refusal_hint(status: StatusCode, with_token: bool) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED if !with_token => {
            " (no service credentials: set [keystone_authtoken] auth_url, username, password \
             and project_name)"
        }
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
            " (is [proxy] upstream_url right and the image service up?)"
        }
        _ => "",
    }
}

impl PrefetchError {
    /// Whether trying again later cannot help (the image is gone, refused,
    /// has no data, or is too large).
    ///
    /// ```
    /// use glance_cache::worker::PrefetchError;
    /// assert!(PrefetchError::NotActive("queued".into()).is_permanent());
    /// assert!(!PrefetchError::Busy.is_permanent());
    /// ```
    pub fn is_permanent(&self) -> bool {
        match self {
            PrefetchError::Refused { status, .. } => matches!(
                *status,
                StatusCode::NOT_FOUND
                    | StatusCode::FORBIDDEN
                    | StatusCode::BAD_REQUEST
                    | StatusCode::NO_CONTENT
            ),
            PrefetchError::NotActive(_) | PrefetchError::TooLarge { .. } => true,
            _ => false,
        }
    }
}

/// Caches queued images through a cache service; cheap to clone.
///
/// A [`Stack`](crate::Stack) with prefetching runs its workers; a program
/// that caches the queue itself (the offline `prefetch` command) gets one
/// from [`Stack::prefetcher`](crate::Stack::prefetcher).
pub struct Prefetcher<S> {
    core: GlanceCache,
    upstream: Upstream<S>,
    auth: Option<ManagementAuth>,
}

impl<S: Clone> Clone for Prefetcher<S> {
    fn clone(&self) -> Self {
        Prefetcher {
            core: self.core.clone(),
            upstream: self.upstream.clone(),
            auth: self.auth.clone(),
        }
    }
}

impl<S> fmt::Debug for Prefetcher<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prefetcher")
            .field("core", &self.core)
            .finish_non_exhaustive()
    }
}

impl<S, B> Prefetcher<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody<B>>>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Fetches through `service` (a cache service of `core`, so that a
    /// prefetch joins or starts the same fill as a client would), as the
    /// service user of `auth` when it has one.
    pub(crate) fn new(core: GlanceCache, service: S, auth: Option<ManagementAuth>) -> Self {
        Prefetcher {
            core,
            upstream: Upstream::new(service),
            auth,
        }
    }

    /// The proxy's own token, when `[keystone_authtoken]` service
    /// credentials are configured.
    ///
    /// # Errors
    ///
    /// [`PrefetchError::ServiceToken`] when Keystone does not issue it.
    pub async fn service_token(&self) -> Result<Option<String>, PrefetchError> {
        match &self.auth {
            Some(auth) => auth
                .service_token()
                .await
                .map_err(PrefetchError::ServiceToken),
            None => Ok(None),
        }
    }

    /// Caches the queued image `id` now: skipped when it is cached already
    /// or no longer queued; refused before any download when another
    /// process is filling it, the upstream does not serve it, it is not
    /// active, or it is larger than `image_cache_max_size`; otherwise
    /// downloaded through the cache (one fill, shared with any client
    /// download), and its commit awaited.
    ///
    /// It is fetched as the proxy's service user when there are service
    /// credentials, else with `operator` (the request headers of whoever
    /// queued it), else anonymously.
    pub async fn fetch(
        &self,
        id: &ImageId,
        operator: Option<&HeaderMap>,
        progress: &dyn PrefetchProgress,
    ) -> Result<Prefetched, PrefetchError> {
        let store = self.core.store();
        if store.is_cached(id).await? {
            // Cached already: no second download.
            store.dequeue(id).await?;
            return Ok(Prefetched::AlreadyCached);
        }
        if !store.is_queued(id).await? {
            return Ok(Prefetched::NotQueued);
        }
        if store.fill_in_progress(id).await && self.core.fills().get(id).is_none() {
            return Err(PrefetchError::Busy);
        }
        let token = self.service_token().await?;
        let with_token = token.is_some();
        let caller = caller(token.as_deref(), operator);

        // The image record: does it exist for us, is it active, will it fit?
        let record = match self.upstream.image_record(&caller, id).await {
            Reply::Ok(record) => record,
            Reply::Refused(resp) => {
                return Err(PrefetchError::Refused {
                    what: "image lookup",
                    status: resp.status(),
                    with_token,
                })
            }
            Reply::Failed(UpstreamError::Status(status)) => {
                return Err(PrefetchError::Refused {
                    what: "image lookup",
                    status,
                    with_token,
                })
            }
            Reply::Failed(e) => {
                return Err(PrefetchError::Upstream {
                    what: "image lookup",
                    source: e.into(),
                })
            }
        };
        if !record.is_active() {
            return Err(PrefetchError::NotActive(record.status));
        }
        let max = store.max_size();
        if let Some(size) = record.size.filter(|size| *size > max) {
            return Err(PrefetchError::TooLarge { size, max });
        }

        // The download, through the cache: a fill, like any first download.
        let started = Instant::now();
        let resp =
            self.upstream
                .download(&caller, id)
                .await
                .map_err(|e| PrefetchError::Upstream {
                    what: "download",
                    source: e.into(),
                })?;
        if resp.status() != StatusCode::OK {
            return Err(PrefetchError::Refused {
                what: "download",
                status: resp.status(),
                with_token,
            });
        }
        if resp.body().is_hit() {
            // Committed by another process since our lookup.
            store.dequeue(id).await?;
            return Ok(Prefetched::AlreadyCached);
        }
        let total = resp
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .or(record.size);
        if let Some(total) = total {
            progress.total(total);
        }
        let mut body = std::pin::pin!(resp.into_body());
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| PrefetchError::BrokeOff { received, source })?;
            if let Some(data) = frame.data_ref() {
                received += data.len() as u64;
                progress.advance(data.len() as u64);
            }
        }
        // The last byte is released once verified; the commit follows.
        if tokio::time::timeout(COMMIT_WAIT, self.core.settled(id))
            .await
            .is_err()
        {
            tracing::debug!(image_id = %id, "fill still running after the commit wait; checking the cache");
        }
        if store.is_cached(id).await? {
            tracing::info!(image_id = %id, "prefetched");
            store.dequeue(id).await?;
            Ok(Prefetched::Cached {
                bytes: received,
                elapsed: started.elapsed(),
            })
        } else {
            Err(PrefetchError::NotCommitted)
        }
    }

    /// Starts `options.workers()` workers taking the images the cache's
    /// queue hands them, and replays the on-disk queue.
    pub(crate) fn spawn_workers(self, options: PrefetchOptions) {
        let rx = Arc::new(tokio::sync::Mutex::new(
            self.core.prefetch().start_workers(),
        ));
        for n in 0..options.workers {
            let (worker, rx, options) = (self.clone(), Arc::clone(&rx), options.clone());
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((id, credentials)) = next else { break };
                    let job = tokio::spawn(
                        worker
                            .clone()
                            .run((id.clone(), credentials), options.clone()),
                    );
                    if let Err(e) = job.await {
                        tracing::error!(image_id = %id, error = %e, "prefetch job crashed; worker continues");
                        worker
                            .core
                            .prefetch()
                            .record_error(&id, format!("prefetch crashed: {e}"));
                    }
                    worker.core.prefetch().finished(&id);
                }
                tracing::debug!(worker = n, "prefetch worker stopped");
            });
        }
        let core = self.core;
        tokio::spawn(async move {
            match core.store().queued().await {
                Ok(ids) => {
                    if !ids.is_empty() {
                        tracing::info!(count = ids.len(), "replaying the prefetch queue");
                    }
                    for id in ids {
                        core.prefetch().submit(id, None);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the prefetch queue"),
            }
        });
    }

    /// One job: fetches with retries, records the outcome.
    async fn run(self, (id, credentials): Job, options: PrefetchOptions) {
        let queue = self.core.prefetch();
        let metrics = self.core.metrics();
        let mut delay = options.retry_delay;
        for attempt in 0..=options.retries {
            match self.fetch(&id, credentials.as_ref(), &()).await {
                Ok(_) => {
                    metrics.prefetched(true);
                    queue.forget(&id);
                    return;
                }
                Err(e) if e.is_permanent() => {
                    tracing::warn!(image_id = %id, error = %e, "prefetch failed; image stays queued");
                    metrics.prefetched(false);
                    queue.record_error(&id, e.to_string());
                    return;
                }
                Err(e) => {
                    let last = attempt == options.retries;
                    tracing::warn!(image_id = %id, attempt = attempt + 1, error = %e, "prefetch attempt failed");
                    if last {
                        queue.record_error(
                            &id,
                            format!("gave up after {} attempts: {e}", attempt + 1),
                        );
                        metrics.prefetched(false);
                        return;
                    }
                    queue.record_error(&id, e.to_string());
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Whom a prefetch fetches as: the service token, else the operator's
/// headers, else nobody.
fn caller(token: Option<&str>, operator: Option<&HeaderMap>) -> Caller {
    let mut headers = match (token, operator) {
        (Some(token), _) => {
            let mut h = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(token) {
                h.insert("x-auth-token", value);
            }
            h
        }
        (None, Some(headers)) => headers.clone(),
        (None, None) => HeaderMap::new(),
    };
    headers
        .entry(USER_AGENT)
        .or_insert(HeaderValue::from_static("glance-cache-proxy prefetch"));
    Caller::from_headers(headers)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use tower::service_fn;

    use super::*;
    use crate::store::CacheStore;
    use crate::Stack;

    const ID: &str = "66666666-6666-4666-8666-666666666666";
    /// md5 of `IMAGEDATA`.
    const MD5: &str = "0fc85dbea99575776296eaaa1d314eb1";

    fn id() -> ImageId {
        ImageId::parse(ID).unwrap()
    }

    async fn cache(dir: &std::path::Path) -> GlanceCache {
        let store = CacheStore::builder(dir)
            .with_min_free_disk(0)
            .open()
            .await
            .unwrap();
        GlanceCache::builder(store).build()
    }

    #[tokio::test]
    async fn a_prefetch_returns_once_its_fill_has_committed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        // An image service answering the record and the file of `ID`.
        let glance = service_fn(|req: Request<RequestBody>| async move {
            let resp = if req.uri().path().ends_with("/file") {
                Response::builder()
                    .header("content-md5", MD5)
                    .header("content-length", "9")
                    .body(Full::new(Bytes::from_static(b"IMAGEDATA")))
            } else {
                Response::builder().body(Full::new(Bytes::from(format!(
                    r#"{{"id": "{ID}", "status": "active", "size": 9, "checksum": "{MD5}"}}"#
                ))))
            };
            Ok::<_, Infallible>(resp.expect("static response"))
        });
        let stack = Stack::builder(&cache).upstream(glance).build();
        cache.queue(&id(), None).await.unwrap();

        let prefetcher = stack.prefetcher().expect("a cache to prefetch into");
        let outcome = prefetcher.fetch(&id(), None, &()).await;
        assert!(
            matches!(outcome, Ok(Prefetched::Cached { bytes: 9, .. })),
            "{outcome:?}"
        );
        assert_eq!(cache.fills_in_flight(), 0, "the fill task is done");
        assert_eq!(
            cache.store().lookup(&id()).await.unwrap().map(|e| e.size),
            Some(9)
        );
        assert!(!cache.store().is_queued(&id()).await.unwrap(), "dequeued");
    }
}
