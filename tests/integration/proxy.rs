//! The stack that ships ([`Stack`]), served in-process on 127.0.0.1 in
//! front of a fake (or real) Glance, and a way to serve any service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glance_cache::auth::manage::ManagementAuth;
use glance_cache::auth::HitAuthorization;
use glance_cache::remote::RemoteTierBuilder;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::{CacheEntry, CacheStore};
use glance_cache::tls::{ClientTls, ServerTls};
use glance_cache::worker::{MaintenanceOptions, PrefetchOptions};
use glance_cache::{GlanceCache, Stack};
use hyper::body::Incoming;
use tokio::sync::oneshot;

/// Options of the in-process proxy.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    pub authz: HitAuthorization,
    pub ttl: Duration,
    pub min_free_disk: u64,
    pub max_size: u64,
    pub response_timeout: Duration,
    pub idle_timeout: Duration,
    /// Who may call the management API (default: the static token `ADMIN`).
    pub auth: ManagementAuth,
    /// `false`: "worker paused", PUT /v2/cache/{id} only queues on disk.
    pub prefetch: bool,
    pub auto_prune: bool,
    /// `false`: the proxy runs without a cache directory.
    pub caching: bool,
    /// Ranges answered from the cache (the default).
    pub serve_ranges: bool,
    /// A range miss also starts a fill of the whole image.
    pub fill_on_range_miss: bool,
    /// How long a range waits for a running fill.
    pub range_fill_wait: Duration,
    /// `Some((rate, interval))`: the scrubber runs (with the maintenance task).
    pub scrub: Option<(u64, Duration)>,
    /// How an https upstream is checked (default: the system's trust store).
    pub upstream_tls: Option<ClientTls>,
    /// TLS on the proxy's listener (default: plain HTTP).
    pub listener_tls: Option<ServerTls>,
    /// How long a client may take no bytes (default: the server's 60 s).
    pub client_idle_timeout: Option<Duration>,
    /// Hit authorizations: (how many at once, how long each may take).
    pub authorization_limits: Option<(usize, Duration)>,
    /// A remote tier; its node URL is this proxy's own URL.
    pub remote: Option<RemoteTierBuilder>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            authz: HitAuthorization::Probe,
            ttl: Duration::ZERO,
            min_free_disk: 0,
            max_size: 10 << 30,
            response_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(20),
            auth: ManagementAuth::static_tokens(vec!["ADMIN".to_string()]),
            prefetch: true,
            auto_prune: false,
            caching: true,
            serve_ranges: true,
            fill_on_range_miss: false,
            range_fill_wait: glance_cache::cache::DEFAULT_RANGE_FILL_WAIT,
            scrub: None,
            upstream_tls: None,
            listener_tls: None,
            client_idle_timeout: None,
            authorization_limits: None,
            remote: None,
        }
    }
}

/// The proxy's stack served on 127.0.0.1:0.
pub struct Proxy {
    pub addr: SocketAddr,
    pub url: String,
    /// The cache (a proxy without caching has one it does not use).
    pub cache: GlanceCache,
    pub dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    pub async fn start(upstream: &str, dir: &Path, opts: ProxyOptions) -> Proxy {
        let store = CacheStore::builder(dir)
            .with_min_free_disk(opts.min_free_disk)
            .with_max_size(opts.max_size)
            .open()
            .await
            .expect("open cache store");
        let mut cache = GlanceCache::builder(store);
        if let Some((concurrency, timeout)) = opts.authorization_limits {
            cache = cache
                .authorization_concurrency(concurrency)
                .authorization_timeout(timeout);
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        if let Some(tier) = opts.remote.clone() {
            cache = cache.remote(tier.node(format!("http://{addr}")));
        }
        let cache = cache
            .hit_authorization(opts.authz)
            .authorization_ttl(opts.ttl)
            .serve_ranges(opts.serve_ranges)
            .fill_on_range_miss(opts.fill_on_range_miss)
            .range_fill_wait(opts.range_fill_wait)
            .build();
        let mut upstream = ReverseProxy::new(upstream.parse().unwrap())
            .with_response_timeout(opts.response_timeout)
            .with_idle_timeout(opts.idle_timeout);
        if let Some(tls) = opts.upstream_tls.clone() {
            upstream = upstream.with_tls(tls).expect("upstream TLS settings");
        }
        let mut builder = if opts.caching {
            Stack::builder(&cache)
        } else {
            Stack::uncached()
        }
        .management(opts.auth.clone());
        if opts.prefetch {
            builder = builder.prefetch(
                PrefetchOptions::default()
                    .with_retry_delay(Duration::from_millis(100))
                    .with_retries(2),
            );
        }
        if opts.auto_prune || opts.scrub.is_some() {
            let (rate, interval) = opts.scrub.unwrap_or((0, Duration::ZERO));
            builder = builder.maintenance(
                MaintenanceOptions::default()
                    .with_auto_prune(opts.auto_prune)
                    .with_scrub_rate(rate)
                    .with_scrub_interval(interval),
            );
        }
        let stack = builder.upstream(upstream).build();
        let (stop, stopped) = oneshot::channel::<()>();
        let scheme = if opts.listener_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            let mut options = glance_cache::server::ServeOptions::new()
                .with_grace(Duration::from_secs(2))
                .with_tls(opts.listener_tls);
            if let Some(timeout) = opts.client_idle_timeout {
                options = options.with_client_idle_timeout(timeout);
            }
            let _ = stack.serve_with(listener, shutdown, options).await;
        });
        Proxy {
            addr,
            url: format!("{scheme}://{addr}"),
            cache,
            dir: dir.to_owned(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn file_url(&self, id: &str) -> String {
        format!("{}/v2/images/{id}/file", self.url)
    }

    pub fn store(&self) -> &CacheStore {
        self.cache.store()
    }

    pub fn cached_path(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    pub fn incomplete_path(&self, id: &str) -> PathBuf {
        self.dir.join("incomplete").join(id)
    }

    pub fn invalid_path(&self, id: &str) -> PathBuf {
        self.dir.join("invalid").join(id)
    }

    /// Waits (bounded) until no fill is in flight (committed or not).
    pub async fn settle(&self) {
        assert!(
            self.cache.drain(Duration::from_secs(30)).await,
            "fills still running after 30 s"
        );
    }

    pub async fn entry(&self, id: &str) -> Option<CacheEntry> {
        self.store().lookup(&id.parse().unwrap()).await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Any service served on 127.0.0.1:0 until dropped.
pub struct Served {
    pub url: String,
    _stop: oneshot::Sender<()>,
}

pub async fn serve_service<S, B>(service: S) -> Served
where
    S: tower::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<glance_cache::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<glance_cache::BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(glance_cache::server::serve(
        listener,
        service,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    Served {
        url: format!("http://{addr}"),
        _stop: stop,
    }
}
