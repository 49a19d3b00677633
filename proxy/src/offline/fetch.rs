//! Caching one queued image through an in-process cache stack.
//!
//! The image goes through [`CacheLayer`] over [`ReverseProxy`], exactly as a
//! client download through the proxy: the fill creates `incomplete/<id>`
//! exclusively and locks it, verifies size and MD5 while the bytes stream,
//! and commits with `fsync` + `rename` (which also removes the queue
//! marker). What this module adds is the prefetcher's bookkeeping: skip what
//! is cached already, refuse what cannot work (unknown, not active, too
//! large, another process filling it) before downloading, and explain every
//! failure in one line.

use std::fs::{File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use glance_cache::auth::manage::ManagementAuth;
use glance_cache::layer::cache::{Cache, RequestBody, ResponseBody};
use glance_cache::reverse_proxy::{ProxyBody, ReverseProxy};
use glance_cache::store::CacheStore;
use glance_cache::{CacheLayer, ImageId};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use tower::ServiceExt;

use super::progress::ImageProgress;

/// The request body the stack is called with.
type ReqBody = Empty<Bytes>;

/// The cache stack: the proxy's own layers, in this process.
type Stack = Cache<ReverseProxy<RequestBody<ReqBody>>>;

/// The response body of the stack.
type RespBody = ResponseBody<ProxyBody>;

/// How long a finished download may take to show up as committed.
const COMMIT_WAIT: Duration = Duration::from_secs(120);

/// What became of one queued image.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Downloaded, verified and committed.
    Cached { bytes: u64, elapsed: Duration },
    /// It was in the cache already; only the queue marker was removed.
    AlreadyCached,
    /// Its queue marker disappeared before its turn (deleted from the queue).
    NoLongerQueued,
    /// Not cached; it stays queued.
    Failed(String),
}

/// Fetches queued images into the cache.
#[derive(Clone)]
pub(crate) struct Fetcher {
    store: CacheStore,
    stack: Stack,
    /// `Some` when `[keystone_authtoken]` service credentials are configured.
    auth: Option<ManagementAuth>,
}

impl Fetcher {
    /// Fetches through `cache` over `upstream`, as `auth`'s service user
    /// (anonymously without one).
    pub(crate) fn new(
        cache: CacheLayer,
        upstream: ReverseProxy<RequestBody<ReqBody>>,
        auth: Option<ManagementAuth>,
    ) -> Self {
        Fetcher {
            store: cache.store().clone(),
            stack: Cache::new(upstream, cache),
            auth,
        }
    }

    /// The service token to send, if service credentials are configured.
    pub(crate) async fn token(&self) -> Result<Option<String>, String> {
        match &self.auth {
            Some(auth) => auth
                .service_token()
                .await
                .map_err(|e| format!("cannot get a service token from Keystone: {e}")),
            None => Ok(None),
        }
    }

    /// Caches `id`, showing its download on `progress`.
    pub(crate) async fn fetch(&self, id: &ImageId, progress: &ImageProgress) -> Outcome {
        match self.try_fetch(id, progress).await {
            Ok(outcome) => outcome,
            Err(why) => Outcome::Failed(why),
        }
    }

    async fn try_fetch(&self, id: &ImageId, progress: &ImageProgress) -> Result<Outcome, String> {
        let store = &self.store;
        let cache_err = |e: glance_cache::Error| format!("cache directory: {e}");
        if self.is_cached(id).await.map_err(cache_err)? {
            store.dequeue(id).await.map_err(cache_err)?;
            return Ok(Outcome::AlreadyCached);
        }
        if !store.is_queued(id).await.map_err(cache_err)? {
            return Ok(Outcome::NoLongerQueued);
        }
        let incomplete = self.incomplete(id);
        if held_by_writer(incomplete.clone()).await {
            return Err(busy());
        }
        let token = self.token().await?;

        // The image record: does it exist for us, is it active, will it fit?
        let mut lookup = request(&format!("/v2/images/{id}"), token.as_deref());
        lookup
            .headers_mut()
            .insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let record = self.call(lookup).await;
        if record.status() != StatusCode::OK {
            return Err(refused("image lookup", record.status(), token.is_some()));
        }
        let doc = Limited::new(record.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| format!("image lookup: {e}"))?
            .to_bytes();
        let doc: serde_json::Value =
            serde_json::from_slice(&doc).map_err(|e| format!("image lookup: not JSON: {e}"))?;
        let status = doc.get("status").and_then(|s| s.as_str()).unwrap_or("");
        if status != "active" {
            return Err(format!("image status is {status:?}, not active"));
        }
        let size = doc.get("size").and_then(|s| s.as_u64());
        if let Some(size) = size {
            if size > store.max_size() {
                return Err(format!(
                    "image of {size} bytes exceeds image_cache_max_size {}",
                    store.max_size()
                ));
            }
        }

        // The download, through the cache: a fill, like any first download.
        let started = Instant::now();
        let resp = self
            .call(request(&format!("/v2/images/{id}/file"), token.as_deref()))
            .await;
        if resp.status() != StatusCode::OK {
            return Err(refused("download", resp.status(), token.is_some()));
        }
        if resp.body().is_hit() {
            // Committed by another process since our lookup.
            store.dequeue(id).await.map_err(cache_err)?;
            return Ok(Outcome::AlreadyCached);
        }
        if let Some(total) = content_length(&resp).or(size) {
            progress.set_total(total);
        }
        let mut body = std::pin::pin!(resp.into_body());
        let mut received = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        received += data.len() as u64;
                        progress.advance(data.len() as u64);
                    }
                }
                Err(e) => {
                    return Err(format!("download broke off after {received} bytes: {e}"));
                }
            }
        }
        let elapsed = started.elapsed();

        // The last byte is released once verified; the commit follows.
        let committed = self.wait_for_commit(id).await;
        if committed && self.is_cached(id).await.map_err(cache_err)? {
            let _ = store.dequeue(id).await;
            return Ok(Outcome::Cached {
                bytes: received,
                elapsed,
            });
        }
        if held_by_writer(incomplete).await {
            return Err(busy());
        }
        Err(
            "downloaded but not cached (not enough free disk space, or the size limit; \
             see the log)"
                .into(),
        )
    }

    async fn call(&self, req: Request<ReqBody>) -> Response<RespBody> {
        match self.stack.clone().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }

    /// Whether `id` has an index row and its file (a row whose file was
    /// removed behind the index's back is not a cached image).
    async fn is_cached(&self, id: &ImageId) -> Result<bool, glance_cache::Error> {
        if self.store.lookup(id).await?.is_none() {
            return Ok(false);
        }
        let entry = self.store.root().join(id.as_str());
        Ok(tokio::fs::try_exists(&entry).await.unwrap_or(false))
    }

    fn incomplete(&self, id: &ImageId) -> PathBuf {
        self.store.root().join("incomplete").join(id.as_str())
    }

    /// Waits (bounded) until `<id>` exists or `incomplete/<id>` is gone.
    async fn wait_for_commit(&self, id: &ImageId) -> bool {
        let entry = self.store.root().join(id.as_str());
        let incomplete = self.incomplete(id);
        let deadline = Instant::now() + COMMIT_WAIT;
        loop {
            if entry.exists() {
                return true;
            }
            if !incomplete.exists() || Instant::now() > deadline {
                return entry.exists();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn busy() -> String {
    "busy: another process is caching it right now (it stays queued; the other \
     process's commit removes it from the queue)"
        .into()
}

fn refused(what: &str, status: StatusCode, with_token: bool) -> String {
    let hint = match status {
        StatusCode::UNAUTHORIZED if !with_token => {
            " (no service credentials: set [keystone_authtoken] auth_url, username, password \
             and project_name)"
        }
        StatusCode::BAD_GATEWAY | StatusCode::GATEWAY_TIMEOUT => {
            " (is [proxy] upstream_url right and the image service up?)"
        }
        _ => "",
    };
    format!("{what}: the image service answered {status}{hint}")
}

fn content_length<B>(resp: &Response<B>) -> Option<u64> {
    resp.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn request(path: &str, token: Option<&str>) -> Request<ReqBody> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = path.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    req.headers_mut().insert(
        header::USER_AGENT,
        HeaderValue::from_static("glance-cache-proxy prefetch"),
    );
    if let Some(token) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
        req.headers_mut().insert("x-auth-token", token);
    }
    req
}

/// Whether a writer (a fill in any process) holds `incomplete/<id>`.
///
/// Probes with a shared lock, released at once. A fill that tries to claim
/// the file in that instant finds it busy and serves its client without
/// caching; nothing is ever corrupted.
async fn held_by_writer(path: PathBuf) -> bool {
    tokio::task::spawn_blocking(move || probe_lock(&path))
        .await
        .unwrap_or(Ok(false))
        .unwrap_or_else(|e| {
            tracing::debug!(error = %e, "cannot probe incomplete file");
            false
        })
}

fn probe_lock(path: &Path) -> io::Result<bool> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(false),
        Err(TryLockError::WouldBlock) => Ok(true),
        Err(TryLockError::Error(e)) => Err(e),
    }
}
