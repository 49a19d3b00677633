//! Shared helpers of the integration tests: an in-process proxy stack in
//! front of a fake (or real) Glance, an HTTP client that keeps partial
//! bodies, and bounded waiting.
#![allow(dead_code)]

pub mod client;
pub mod fixture;
pub mod harness_process;
pub mod real_glance;
pub mod real_keystone;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use glance_cache::auth::manage::ManagementAuth;
use glance_cache::auth::HitAuthorization;
use glance_cache::layer::cache::{CacheLayer, RequestBody};
use glance_cache::layer::manage::CacheManageLayer;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::CacheStore;
use glance_cache::worker::{Maintenance, Prefetcher};
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tower::ServiceBuilder;

pub use client::Client;

pub const PUB: &str = "11111111-1111-4111-8111-111111111111";
pub const PRIV: &str = "22222222-2222-4222-8222-222222222222";
pub const QUEUED: &str = "33333333-3333-4333-8333-333333333333";
pub const DEACT: &str = "44444444-4444-4444-8444-444444444444";
pub const BIG: &str = "55555555-5555-4555-8555-555555555555";

/// md5 of `IMAGEDATA`.
pub const PUB_MD5: &str = "0fc85dbea99575776296eaaa1d314eb1";

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
        }
    }
}

/// The proxy stack (CacheLayer over ReverseProxy) served on 127.0.0.1:0.
pub struct Proxy {
    pub addr: SocketAddr,
    pub url: String,
    pub layer: CacheLayer,
    pub dir: PathBuf,
    pub prefetcher: Option<Prefetcher>,
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
        let layer = CacheLayer::new(store)
            .with_hit_authorization(opts.authz)
            .with_authorization_ttl(opts.ttl);
        let proxy =
            ReverseProxy::<RequestBody<RequestBody<Incoming>>>::new(upstream.parse().unwrap())
                .with_response_timeout(opts.response_timeout)
                .with_idle_timeout(opts.idle_timeout);
        let stack = ServiceBuilder::new().layer(layer.clone()).service(proxy);
        let prefetcher = opts.prefetch.then(|| {
            Prefetcher::builder(layer.clone(), opts.auth.clone())
                .with_retry_delay(Duration::from_millis(100))
                .with_retries(2)
                .spawn(stack.clone())
        });
        if opts.auto_prune {
            Maintenance::new(layer.clone()).spawn();
        }
        let mut manage =
            CacheManageLayer::new(opts.caching.then(|| layer.clone()), opts.auth.clone());
        if let Some(p) = &prefetcher {
            manage = manage.with_prefetcher(p.clone());
        }
        let service = ServiceBuilder::new().layer(manage).service(stack);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = glance_cache::server::serve(
                listener,
                service,
                async {
                    let _ = stopped.await;
                },
                Duration::from_secs(2),
            )
            .await;
        });
        Proxy {
            addr,
            url: format!("http://{addr}"),
            layer,
            dir: dir.to_owned(),
            prefetcher,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn file_url(&self, id: &str) -> String {
        format!("{}/v2/images/{id}/file", self.url)
    }

    pub fn store(&self) -> &CacheStore {
        self.layer.store()
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

    /// Waits (bounded) until the fill of `id` has finished (committed or not).
    pub async fn settle(&self) {
        wait_for("fills to finish", Duration::from_secs(30), || async {
            self.layer.fills_in_flight() == 0
        })
        .await;
    }

    pub async fn entry(&self, id: &str) -> Option<glance_cache::store::CacheEntry> {
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

/// Polls `cond` every 20 ms until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// Files directly in `dir` (names), sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Any service served on 127.0.0.1:0 until dropped.
pub struct Served {
    pub addr: SocketAddr,
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
        addr,
        url: format!("http://{addr}"),
        _stop: stop,
    }
}
