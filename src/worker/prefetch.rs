//! [`Prefetcher`]: the worker behind `PUT /v2/cache/{id}` (spec §4.2, §10.3).
//!
//! Unlike Glance's single worker thread, which dies on the first error and
//! re-downloads cached images, this one runs a bounded number of workers,
//! skips images that are cached already, retries transient failures with
//! capped exponential backoff, keeps a failed image queued with its error
//! (visible in `GET /v2/cache`), survives panics, and replays the on-disk
//! queue at startup. Images are fetched through the cache stack itself, so a
//! prefetch and client downloads of the same image share one fill.

use std::collections::{BTreeMap, HashSet};
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::sync::mpsc;
use tower::{Service, ServiceExt};

use crate::auth::manage::ManagementAuth;
use crate::layer::cache::{CacheLayer, RequestBody};
use crate::{BoxError, ImageId};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Longest wait for a downloaded image's fill to finish its commit.
const COMMIT_WAIT: Duration = Duration::from_secs(60);

/// Handle to the prefetch workers. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Prefetcher {
    shared: Arc<Shared>,
}

/// A queued image and, when an operator queued it, their request headers.
type Job = (ImageId, Option<HeaderMap>);

#[derive(Debug)]
struct Shared {
    tx: mpsc::UnboundedSender<Job>,
    /// Submitted and not finished: deduplicates repeated submissions.
    pending: Mutex<HashSet<ImageId>>,
    errors: Mutex<BTreeMap<ImageId, String>>,
}

/// Configures and starts a [`Prefetcher`].
#[derive(Debug, Clone)]
pub struct PrefetcherBuilder {
    cache: CacheLayer,
    auth: ManagementAuth,
    workers: usize,
    retries: u32,
    retry_delay: Duration,
}

enum Failure {
    /// Retrying cannot help (image gone, not active, refused).
    Permanent(String),
    /// Worth another attempt later.
    Transient(String),
}

impl Shared {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashSet<ImageId>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_errors(&self) -> std::sync::MutexGuard<'_, BTreeMap<ImageId, String>> {
        self.errors.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Prefetcher {
    /// Starts configuring workers that cache into `cache`, fetching with the
    /// service credentials of `auth` (no token when it has none).
    pub fn builder(cache: CacheLayer, auth: ManagementAuth) -> PrefetcherBuilder {
        PrefetcherBuilder {
            cache,
            auth,
            workers: 2,
            retries: 5,
            retry_delay: Duration::from_secs(5),
        }
    }

    /// Hands `id` to the workers (once: a pending id is not queued twice).
    /// It is fetched with the proxy's service token, or anonymously when
    /// there is none.
    pub fn submit(&self, id: ImageId) {
        self.submit_with(id, None);
    }

    /// Like [`submit`](Self::submit), but without a service token the image
    /// is fetched with `credentials`: the request headers of the operator
    /// who queued it (their token, cookies, ...).
    pub fn submit_with(&self, id: ImageId, credentials: Option<HeaderMap>) {
        if !self.shared.lock_pending().insert(id.clone()) {
            return;
        }
        if self.shared.tx.send((id.clone(), credentials)).is_err() {
            self.shared.lock_pending().remove(&id);
            tracing::error!(image_id = %id, "prefetch workers are gone; image stays queued on disk");
        }
    }

    /// Forgets the recorded error of `id` (it was deleted from the queue).
    pub fn forget(&self, id: &ImageId) {
        self.shared.lock_errors().remove(id);
    }

    /// Forgets every recorded error (the queue was cleared).
    pub fn forget_all(&self) {
        self.shared.lock_errors().clear();
    }

    /// The last error of each image that failed (and is still queued).
    pub fn errors(&self) -> BTreeMap<String, String> {
        self.shared
            .lock_errors()
            .iter()
            .map(|(id, e)| (id.to_string(), e.clone()))
            .collect()
    }

    /// Images submitted and not finished yet.
    pub fn pending(&self) -> usize {
        self.shared.lock_pending().len()
    }
}

impl PrefetcherBuilder {
    /// Images fetched at once (default 2).
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

    /// Spawns the workers over `service` (the cache stack: requests made
    /// through it join or start fills) and replays the on-disk queue.
    pub fn spawn<S, ReqB, ResB>(self, service: S) -> Prefetcher
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError> + Send + 'static,
        ReqB: Send + 'static,
        ResB: Body<Data = Bytes> + Send + 'static,
        ResB::Error: Into<BoxError>,
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            tx,
            pending: Mutex::new(HashSet::new()),
            errors: Mutex::new(BTreeMap::new()),
        });
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let worker = Worker {
            cache: self.cache.clone(),
            auth: self.auth,
            service,
            retries: self.retries,
            retry_delay: self.retry_delay,
            shared: Arc::clone(&shared),
            _body: PhantomData,
        };
        for n in 0..self.workers {
            let (worker, rx) = (worker.clone(), Arc::clone(&rx));
            tokio::spawn(async move {
                loop {
                    let next = rx.lock().await.recv().await;
                    let Some((id, credentials)) = next else { break };
                    let job = tokio::spawn(worker.clone().run(id.clone(), credentials));
                    if let Err(e) = job.await {
                        tracing::error!(image_id = %id, error = %e, "prefetch job crashed; worker continues");
                        worker
                            .shared
                            .lock_errors()
                            .insert(id.clone(), format!("prefetch crashed: {e}"));
                    }
                    worker.shared.lock_pending().remove(&id);
                }
                tracing::debug!(worker = n, "prefetch worker stopped");
            });
        }
        let prefetcher = Prefetcher { shared };
        let replay = prefetcher.clone();
        let store = self.cache.store().clone();
        tokio::spawn(async move {
            match store.queued().await {
                Ok(ids) => {
                    if !ids.is_empty() {
                        tracing::info!(count = ids.len(), "replaying the prefetch queue");
                    }
                    for id in ids {
                        replay.submit(id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not read the prefetch queue"),
            }
        });
        prefetcher
    }
}

/// One worker's view; cheap to clone (the service and handles are shared).
struct Worker<S, ReqB> {
    cache: CacheLayer,
    auth: ManagementAuth,
    service: S,
    retries: u32,
    retry_delay: Duration,
    shared: Arc<Shared>,
    _body: PhantomData<fn(ReqB)>,
}

impl<S: Clone, ReqB> Clone for Worker<S, ReqB> {
    fn clone(&self) -> Self {
        Worker {
            cache: self.cache.clone(),
            auth: self.auth.clone(),
            service: self.service.clone(),
            retries: self.retries,
            retry_delay: self.retry_delay,
            shared: Arc::clone(&self.shared),
            _body: PhantomData,
        }
    }
}

impl<S, ReqB, ResB> Worker<S, ReqB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    async fn run(self, id: ImageId, credentials: Option<HeaderMap>) {
        let mut delay = self.retry_delay;
        for attempt in 0..=self.retries {
            let service = self.service.clone();
            match fetch(&self.cache, &self.auth, service, &id, credentials.as_ref()).await {
                Ok(()) => {
                    self.cache.store().metrics().prefetched(true);
                    self.shared.lock_errors().remove(&id);
                    return;
                }
                Err(Failure::Permanent(e)) => {
                    tracing::warn!(image_id = %id, error = %e, "prefetch failed; image stays queued");
                    self.cache.store().metrics().prefetched(false);
                    self.shared.lock_errors().insert(id.clone(), e);
                    return;
                }
                Err(Failure::Transient(e)) => {
                    let last = attempt == self.retries;
                    let shown = if last {
                        format!("gave up after {} attempts: {e}", attempt + 1)
                    } else {
                        e.clone()
                    };
                    tracing::warn!(image_id = %id, attempt = attempt + 1, error = %e, "prefetch attempt failed");
                    self.shared.lock_errors().insert(id.clone(), shown);
                    if last {
                        self.cache.store().metrics().prefetched(false);
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Who the worker is towards the upstream.
enum Credentials<'a> {
    Service(String),
    Operator(&'a HeaderMap),
    Anonymous,
}

fn request<B>(path: String, who: &Credentials<'_>) -> Request<RequestBody<B>> {
    let mut req = Request::new(RequestBody::empty());
    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    match who {
        Credentials::Service(token) => {
            if let Ok(value) = HeaderValue::from_str(token) {
                req.headers_mut().insert("x-auth-token", value);
            }
        }
        Credentials::Operator(headers) => *req.headers_mut() = (*headers).clone(),
        Credentials::Anonymous => {}
    }
    req.headers_mut().insert(
        "x-openstack-request-id",
        crate::layer::cache::headers::request_id(&http::HeaderMap::new()),
    );
    req
}

fn classify(status: StatusCode, what: &str) -> Failure {
    let msg = format!("{what}: the image service answered {status}");
    match status {
        StatusCode::NOT_FOUND
        | StatusCode::FORBIDDEN
        | StatusCode::BAD_REQUEST
        | StatusCode::NO_CONTENT => Failure::Permanent(msg),
        _ => Failure::Transient(msg),
    }
}

async fn fetch<S, ReqB, ResB>(
    cache: &CacheLayer,
    auth: &ManagementAuth,
    service: S,
    id: &ImageId,
    operator: Option<&HeaderMap>,
) -> Result<(), Failure>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    let store = cache.store();
    let io = |e: crate::Error| Failure::Transient(format!("cache: {e}"));
    if !store.is_queued(id).await.map_err(io)? {
        return Ok(()); // deleted from the queue meanwhile
    }
    if store.lookup(id).await.map_err(io)?.is_some() {
        // Cached already: no second download (spec scenario 39).
        store.dequeue(id).await.map_err(io)?;
        return Ok(());
    }
    let token = auth
        .service_token()
        .await
        .map_err(|e| Failure::Transient(format!("cannot get a service token: {e}")))?;
    let who = match (token, operator) {
        (Some(token), _) => Credentials::Service(token),
        (None, Some(headers)) => Credentials::Operator(headers),
        (None, None) => Credentials::Anonymous,
    };

    let mut meta_req = request(format!("/v2/images/{id}"), &who);
    meta_req
        .headers_mut()
        .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let meta = service
        .clone()
        .oneshot(meta_req)
        .await
        .map_err(|e| Failure::Transient(format!("image lookup: {}", e.into())))?;
    if meta.status() != StatusCode::OK {
        return Err(classify(meta.status(), "image lookup"));
    }
    let doc = Limited::new(meta.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| Failure::Transient(format!("image lookup: {e}")))?
        .to_bytes();
    let status = serde_json::from_slice::<Value>(&doc)
        .ok()
        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    if status != "active" {
        return Err(Failure::Permanent(format!(
            "image status is {status:?}, not active"
        )));
    }

    let resp = service
        .oneshot(request(format!("/v2/images/{id}/file"), &who))
        .await
        .map_err(|e| Failure::Transient(format!("download: {}", e.into())))?;
    if resp.status() != StatusCode::OK {
        return Err(classify(resp.status(), "download"));
    }
    {
        let mut body = std::pin::pin!(resp.into_body());
        while let Some(frame) = body.frame().await {
            if let Err(e) = frame {
                return Err(Failure::Transient(format!(
                    "download broke off: {}",
                    e.into()
                )));
            }
        }
    }
    // The fill commits right after its last byte was released.
    fill_finished(cache, id, COMMIT_WAIT).await;
    if store.lookup(id).await.map_err(io)?.is_some() {
        tracing::info!(image_id = %id, "prefetched");
        let _ = store.dequeue(id).await;
        Ok(())
    } else {
        Err(Failure::Transient(
            "downloaded but not cached (see the proxy log: space, size limit or another writer)"
                .into(),
        ))
    }
}

/// Waits, at most `limit`, until the fill of `id` in flight now (if any)
/// has finished.
///
/// The fill settles when its task has committed (or failed) and unregistered
/// it; clients still reading it do not matter. No polling: the wait ends on
/// that event, and the caller's lookup decides what happened.
async fn fill_finished(cache: &CacheLayer, id: &ImageId, limit: Duration) {
    let Some(fill) = cache.fills.get(id) else {
        return;
    };
    if tokio::time::timeout(limit, fill.settled()).await.is_err() {
        tracing::debug!(image_id = %id, "fill still running after the commit wait; checking the cache");
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::Full;
    use tower::{service_fn, ServiceBuilder};

    use super::*;
    use crate::fill::{Joined, Phase};
    use crate::store::CacheStore;

    const ID: &str = "66666666-6666-4666-8666-666666666666";
    /// md5 of `IMAGEDATA`.
    const MD5: &str = "0fc85dbea99575776296eaaa1d314eb1";

    async fn cache(dir: &std::path::Path) -> CacheLayer {
        let store = CacheStore::builder(dir)
            .with_min_free_disk(0)
            .open()
            .await
            .unwrap();
        CacheLayer::new(store)
    }

    /// Registers a fill of [`ID`] the way a download starts one.
    fn start_fill(cache: &CacheLayer) -> Arc<crate::fill::Fill> {
        let Joined::Leader(guard) = cache.fills.join_or_lead(&ImageId::parse(ID).unwrap()) else {
            panic!("no fill yet")
        };
        guard.started()
    }

    // The clock is paused: it moves only when every task waits for a timer,
    // and then straight to that timer. A sleep loop would show as elapsed
    // time; waiting for the fill to settle does not.
    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_when_the_fill_task_lets_go_without_polling() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        let id = ImageId::parse(ID).unwrap();
        let start = tokio::time::Instant::now();
        fill_finished(&cache, &id, COMMIT_WAIT).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "no fill: no wait");

        // The order of the fill task: Verified, commit, unregister, drop.
        let fill = start_fill(&cache);
        fill.finish(Phase::Verified);
        let waiter = tokio::spawn({
            let (cache, id) = (cache.clone(), id.clone());
            async move { fill_finished(&cache, &id, COMMIT_WAIT).await }
        });
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!waiter.is_finished(), "still committing");
        cache.fills.remove(&fill);
        waiter.await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO, "no timer fired");
        drop(fill);
    }

    #[tokio::test(start_paused = true)]
    async fn a_fill_that_never_ends_is_waited_for_at_most_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        let id = ImageId::parse(ID).unwrap();
        let _fill = start_fill(&cache);
        let limit = Duration::from_secs(7);
        let start = tokio::time::Instant::now();
        fill_finished(&cache, &id, limit).await;
        assert_eq!(start.elapsed(), limit);
    }

    type Upstream = Request<RequestBody<RequestBody<Full<Bytes>>>>;

    /// An image service answering the metadata and the file of [`ID`].
    async fn glance(req: Upstream) -> Result<Response<Full<Bytes>>, Infallible> {
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
        Ok(resp.expect("static response"))
    }

    #[tokio::test]
    async fn a_prefetch_returns_once_its_fill_has_committed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = cache(dir.path()).await;
        let stack = ServiceBuilder::new()
            .layer(cache.clone())
            .service(service_fn(glance));
        let auth = ManagementAuth::static_tokens(["ADMIN"]);
        let id = ImageId::parse(ID).unwrap();
        let store = cache.store().clone();
        store.queue_image(&id).await.unwrap();

        let outcome = fetch(&cache, &auth, stack, &id, None).await;
        assert!(outcome.is_ok(), "the prefetch succeeds");
        assert_eq!(cache.fills_in_flight(), 0, "the fill task is done");
        assert_eq!(store.lookup(&id).await.unwrap().map(|e| e.size), Some(9));
        assert!(!store.is_queued(&id).await.unwrap(), "dequeued");
    }
}
