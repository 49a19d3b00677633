//! [`Stack`]: the standard service of a caching proxy, built in one place.
//!
//! Outermost first: [`RequestIdLayer`] (Glance's request ids, one log
//! line per request), [`CacheManageLayer`] (Glance's cache API and version
//! discovery), [`CacheLayer`] (hits, fills, invalidation), then the
//! upstream service (normally a [`ReverseProxy`]). Beside it, the prefetch
//! workers and the maintenance task. The `glance-cache-proxy` binary, its
//! demo and offline prefetch, the tests and the benches all build this
//! one stack, so what is tested is what ships.
//!
//! # Example
//!
//! A caching proxy in front of a Glance on port 9191, served with hyper:
//!
//! ```no_run
//! use std::time::Duration;
//! use glance_cache::reverse_proxy::ReverseProxy;
//! use glance_cache::{server, store::CacheStore, GlanceCache, Stack};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let cache = GlanceCache::builder(CacheStore::builder("/var/lib/glance/image-cache").open().await?).build();
//! let stack = Stack::builder(&cache).upstream(ReverseProxy::new("http://127.0.0.1:9191".parse()?)).build();
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:9292").await?;
//! stack.serve(listener, server::shutdown_signal(), Duration::from_secs(30)).await?;
//! # Ok(()) }
//! ```
//!
//! The same stack over an in-memory upstream, called directly:
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use glance_cache::{auth::HitAuthorization, store::CacheStore, GlanceCache, RequestBody, Stack};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let store = CacheStore::builder(dir.path()).with_min_free_disk(0).open().await?;
//! let cache = GlanceCache::builder(store).hit_authorization(HitAuthorization::None).build();
//! let upstream = service_fn(|_req: Request<RequestBody>| async {
//!     let image = Response::builder().header("content-md5", "0fc85dbea99575776296eaaa1d314eb1");
//!     Ok::<_, Infallible>(image.body(Full::new(Bytes::from_static(b"IMAGEDATA"))).unwrap())
//! });
//! let stack = Stack::builder(&cache).upstream(upstream).build();
//!
//! let url = "/v2/images/6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b/file";
//! let resp = stack.oneshot(Request::get(url).body(Full::<Bytes>::default())?).await?;
//! assert!(resp.headers()["x-openstack-request-id"].to_str()?.starts_with("req-"));
//! assert_eq!(resp.into_body().collect().await?.to_bytes(), "IMAGEDATA");
//! # Ok(()) }
//! ```

use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use tokio::net::TcpListener;
use tower::{Layer, Service};

use crate::auth::manage::ManagementAuth;
use crate::cache::GlanceCache;
use crate::layer::cache::{self, Cache};
use crate::layer::manage::{CacheManage, ManageBody};
use crate::layer::request_id::{self, RequestId};
use crate::server;
use crate::tls::ServerTls;
use crate::worker::{MaintenanceOptions, PrefetchOptions, Prefetcher};
use crate::{BoxError, CacheLayer, CacheManageLayer, RequestBody, RequestIdLayer};

#[cfg(doc)]
use crate::reverse_proxy::ReverseProxy;

/// The response body of a [`Stack`] over an upstream answering with `B`.
pub type StackBody<B> = request_id::ResponseBody<ManageBody<cache::ResponseBody<B>>>;

/// The standard service: request ids, the management API, the cache and
/// the upstream. Cheap to clone. See the [module docs](self).
pub struct Stack<S> {
    service: RequestId<CacheManage<Cache<S>>>,
    cache: Option<GlanceCache>,
    prefetcher: Option<Prefetcher<Cache<S>>>,
}

impl<S: Clone> Clone for Stack<S> {
    fn clone(&self) -> Self {
        Stack {
            service: self.service.clone(),
            cache: self.cache.clone(),
            prefetcher: self.prefetcher.clone(),
        }
    }
}

impl<S> fmt::Debug for Stack<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stack")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

/// The upstream is still to be given ([`StackBuilder::upstream`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUpstream;

/// Configures a [`Stack`]; see [`Stack::builder`].
#[derive(Debug)]
pub struct StackBuilder<U> {
    cache: Option<GlanceCache>,
    upstream: U,
    auth: ManagementAuth,
    prefetch: Option<PrefetchOptions>,
    maintenance: Option<MaintenanceOptions>,
    public_endpoint: Option<Uri>,
    stall_time: Duration,
}

impl Stack<NoUpstream> {
    /// Starts configuring the stack of `cache`.
    ///
    /// See the [module docs](self) for an example.
    pub fn builder(cache: &GlanceCache) -> StackBuilder<NoUpstream> {
        StackBuilder::new(Some(cache.clone()))
    }

    /// Starts configuring a stack without a cache: every request goes to
    /// the upstream; the cache API answers Glance's "not supported at this
    /// site" 404 (after the policy check), and version discovery and the
    /// legacy cache routes are the upstream's.
    ///
    /// ```
    /// use glance_cache::reverse_proxy::ReverseProxy;
    /// use glance_cache::Stack;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let stack = Stack::uncached().upstream(ReverseProxy::new("http://127.0.0.1:9191".parse().unwrap())).build();
    /// assert!(stack.cache().is_none());
    /// # }
    /// ```
    pub fn uncached() -> StackBuilder<NoUpstream> {
        StackBuilder::new(None)
    }
}

impl StackBuilder<NoUpstream> {
    fn new(cache: Option<GlanceCache>) -> Self {
        StackBuilder {
            cache,
            upstream: NoUpstream,
            auth: ManagementAuth::deny(),
            prefetch: None,
            maintenance: None,
            public_endpoint: None,
            stall_time: Duration::from_secs(86_400),
        }
    }
}

impl<U> StackBuilder<U> {
    /// The service that reaches the image API: normally a
    /// [`ReverseProxy`], any `Service<Request<RequestBody>>` works.
    pub fn upstream<S>(self, upstream: S) -> StackBuilder<S> {
        StackBuilder {
            cache: self.cache,
            upstream,
            auth: self.auth,
            prefetch: self.prefetch,
            maintenance: self.maintenance,
            public_endpoint: self.public_endpoint,
            stall_time: self.stall_time,
        }
    }

    /// Who may call the management API (default: nobody, every call 401).
    /// In Keystone mode its service user also fetches prefetched images.
    pub fn management(mut self, auth: ManagementAuth) -> Self {
        self.auth = auth;
        self
    }

    /// Run prefetch workers: images queued with `PUT /v2/cache/{id}` (and
    /// the on-disk queue at startup) are cached at once. Without this they
    /// stay queued on disk (Glance's "worker paused").
    pub fn prefetch(mut self, options: PrefetchOptions) -> Self {
        self.prefetch = Some(options);
        self
    }

    /// Run the maintenance task: prune to the size limit after commits,
    /// clean periodically.
    pub fn maintenance(mut self, options: MaintenanceOptions) -> Self {
        self.maintenance = Some(options);
        self
    }

    /// Glance's `public_endpoint`: the base of the links in the version
    /// document (default: from the request's `Host`).
    pub fn public_endpoint(mut self, url: Option<Uri>) -> Self {
        self.public_endpoint = url;
        self
    }

    /// `image_cache_stall_time` for `POST /v2/cache/clean` (default one day).
    pub fn stall_time(mut self, stall: Duration) -> Self {
        self.stall_time = stall;
        self
    }
}

impl<S, B> StackBuilder<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// The stack. Starts the prefetch workers and the maintenance task
    /// when asked for (so it must run inside a Tokio runtime).
    pub fn build(self) -> Stack<S> {
        let cache_layer = match &self.cache {
            Some(cache) => CacheLayer::new(cache.clone()),
            None => CacheLayer::disabled(),
        };
        let cached = cache_layer.layer(self.upstream);
        let manage = match &self.cache {
            Some(cache) => CacheManageLayer::new(cache.clone(), self.auth.clone()),
            None => CacheManageLayer::disabled(self.auth.clone()),
        }
        .with_public_endpoint(self.public_endpoint)
        .with_stall_time(self.stall_time);
        let prefetcher = self
            .cache
            .as_ref()
            .map(|cache| Prefetcher::new(cache.clone(), cached.clone(), Some(self.auth.clone())));
        if let (Some(prefetcher), Some(options)) = (&prefetcher, self.prefetch) {
            prefetcher.clone().spawn_workers(options);
        }
        if let (Some(cache), Some(options)) = (&self.cache, self.maintenance) {
            options.spawn(cache.clone());
        }
        Stack {
            service: RequestIdLayer::new().layer(manage.layer(cached)),
            cache: self.cache,
            prefetcher,
        }
    }
}

impl<S, B> Stack<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// Serves the stack on `listener` with [`server::serve`] until
    /// `shutdown` completes, then gives the fills still in flight (whose
    /// clients may all be gone) up to `grace` to commit.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use glance_cache::{reverse_proxy::ReverseProxy, server, store::CacheStore, GlanceCache, Stack};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # let cache = GlanceCache::builder(CacheStore::builder("/var/lib/glance/image-cache").open().await?).build();
    /// let stack = Stack::builder(&cache).upstream(ReverseProxy::new("http://127.0.0.1:9191".parse()?)).build();
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9292").await?;
    /// stack.serve(listener, server::shutdown_signal(), Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> std::io::Result<()> {
        let options = server::ServeOptions::new().with_grace(grace);
        self.serve_with(listener, shutdown, options).await
    }

    /// [`serve`](Self::serve) over TLS with [`server::serve_tls`]:
    /// [`ServerTls::reload`] (on SIGHUP, say) changes the certificate for
    /// new connections while those open keep theirs.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use glance_cache::{reverse_proxy::ReverseProxy, server, store::CacheStore, tls::ServerTls, GlanceCache, Stack};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # let cache = GlanceCache::builder(CacheStore::builder("/var/lib/glance/image-cache").open().await?).build();
    /// let stack = Stack::builder(&cache).upstream(ReverseProxy::new("https://glance:9292".parse()?)).build();
    /// let tls = ServerTls::builder("/etc/glance/proxy.pem", "/etc/glance/proxy.key").build()?;
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9292").await?;
    /// stack.serve_tls(listener, tls, server::shutdown_signal(), Duration::from_secs(30)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve_tls(
        self,
        listener: TcpListener,
        tls: ServerTls,
        shutdown: impl Future<Output = ()>,
        grace: Duration,
    ) -> std::io::Result<()> {
        let options = server::ServeOptions::new().with_grace(grace).with_tls(tls);
        self.serve_with(listener, shutdown, options).await
    }

    /// [`serve`](Self::serve) with every option of [`server::ServeOptions`]
    /// (the grace period, the client idle timeout, TLS).
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use glance_cache::{reverse_proxy::ReverseProxy, server, store::CacheStore, GlanceCache, Stack};
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    /// # let cache = GlanceCache::builder(CacheStore::builder("/var/lib/glance/image-cache").open().await?).build();
    /// let stack = Stack::builder(&cache).upstream(ReverseProxy::new("http://127.0.0.1:9191".parse()?)).build();
    /// let listener = tokio::net::TcpListener::bind("0.0.0.0:9292").await?;
    /// let options = server::ServeOptions::new().with_client_idle_timeout(Duration::from_secs(120));
    /// stack.serve_with(listener, server::shutdown_signal(), options).await?;
    /// # Ok(()) }
    /// ```
    pub async fn serve_with(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
        options: server::ServeOptions,
    ) -> std::io::Result<()> {
        let cache = self.cache.clone();
        let grace = options.grace();
        server::serve_with(listener, self, shutdown, options).await?;
        drain(cache, grace).await;
        Ok(())
    }
}

/// Gives the fills still in flight up to `grace` to commit.
async fn drain(cache: Option<GlanceCache>, grace: Duration) {
    if let Some(cache) = cache {
        let fills = cache.fills_in_flight();
        if fills > 0 {
            tracing::info!(fills, ?grace, "letting running fills commit");
        }
        if !cache.drain(grace).await {
            tracing::warn!(
                fills = cache.fills_in_flight(),
                "fills still running after the grace period; they are abandoned"
            );
        }
    }
}

impl<S> Stack<S> {
    /// The cache (`None` for [`Stack::uncached`]).
    pub fn cache(&self) -> Option<&GlanceCache> {
        self.cache.as_ref()
    }

    /// Fetches queued images through this stack's cache, for a program that
    /// works through the queue itself (`None` without a cache).
    pub fn prefetcher(&self) -> Option<&Prefetcher<Cache<S>>> {
        self.prefetcher.as_ref()
    }
}

impl<S, ReqB, B> Service<Request<ReqB>> for Stack<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<StackBody<B>>;
    type Error = S::Error;
    type Future = <RequestId<CacheManage<Cache<S>>> as Service<Request<ReqB>>>::Future;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Service::<Request<ReqB>>::poll_ready(&mut self.service, cx)
    }

    #[inline]
    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        self.service.call(req)
    }
}
