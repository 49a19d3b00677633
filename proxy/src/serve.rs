//! `glance-cache-proxy serve`: the caching reverse proxy.
//!
//! The stack, outermost first:
//! `CacheManageLayer` (management API, version discovery) →
//! `CacheLayer` (hits, fills, invalidation) → `ReverseProxy` (the upstream),
//! plus the prefetch workers and the maintenance task beside it.

use std::time::Duration;

use anyhow::Context;
use glance_cache::layer::cache::{CacheLayer, RequestBody};
use glance_cache::layer::manage::CacheManageLayer;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::server;
use glance_cache::store::CacheStore;
use glance_cache::worker::{Maintenance, Prefetcher};
use glance_cache::RequestIdLayer;
use glance_cache_config::Config;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

/// Opens the cache store described by `config`, if caching is enabled.
pub(crate) async fn cache_layer(config: &Config) -> anyhow::Result<Option<CacheLayer>> {
    let Some(dir) = &config.image_cache_dir else {
        return Ok(None);
    };
    let store = CacheStore::builder(dir)
        .with_sqlite_db(config.image_cache_sqlite_db.clone())
        .with_max_size(config.image_cache_max_size)
        .with_min_free_disk(config.proxy.min_free_disk)
        .with_hit_chunk_size(config.proxy.hit_chunk_size)
        .open()
        .await
        .with_context(|| format!("cannot use image_cache_dir {}", dir.display()))?;
    Ok(Some(
        CacheLayer::new(store)
            .with_hit_authorization(config.proxy.hit_authorization)
            .with_authorization_ttl(config.proxy.authorization_cache_ttl),
    ))
}

fn upstream<B>(config: &Config) -> ReverseProxy<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<glance_cache::BoxError>,
{
    ReverseProxy::new(config.proxy.upstream_url.clone())
        .with_connect_timeout(config.proxy.upstream_connect_timeout)
        .with_response_timeout(config.proxy.upstream_timeout)
        .with_idle_timeout(config.proxy.upstream_idle_timeout)
}

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let auth = config
        .management
        .auth()
        .context("invalid management authorization settings")?;
    let cache = cache_layer(&config).await?;
    let addr = (config.bind_host.as_str(), config.bind_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.bind_host, config.bind_port))?;
    let local = listener.local_addr().context("listener address")?;
    let grace = config.proxy.shutdown_timeout;
    let stall = Duration::from_secs(config.image_cache_stall_time);
    if let Some(listen) = &config.proxy.admin_listen {
        let store = cache.as_ref().map(|layer| layer.store().clone());
        crate::admin::spawn(listen, store).await?;
    }
    match cache {
        Some(layer) => {
            tracing::info!(listen = %local, upstream = %config.proxy.upstream_url,
                cache_dir = %layer.store().root().display(), management_auth = ?auth.mode(),
                "glance-cache-proxy serving");
            let stack = ServiceBuilder::new()
                .layer(layer.clone())
                .service(upstream::<RequestBody<RequestBody<Incoming>>>(&config));
            let m = &config.maintenance;
            let mut manage = CacheManageLayer::new(Some(layer.clone()), auth.clone())
                .with_stall_time(stall)
                .with_public_endpoint(config.public_endpoint.clone());
            if m.prefetch_enabled {
                let prefetcher = Prefetcher::builder(layer.clone(), auth.clone())
                    .with_workers(m.prefetch_workers)
                    .with_retries(m.prefetch_retries)
                    .with_retry_delay(m.prefetch_retry_delay)
                    .spawn(stack.clone());
                manage = manage.with_prefetcher(prefetcher);
            } else {
                tracing::warn!("prefetch_enabled = false: queued images are not fetched until prefetching is enabled");
            }
            Maintenance::new(layer.clone())
                .with_auto_prune(m.auto_prune)
                .with_clean_interval(m.clean_interval)
                .with_stall_time(stall)
                .spawn();
            let service = ServiceBuilder::new()
                .layer(RequestIdLayer::new())
                .layer(manage)
                .service(stack);
            let served = server::serve(listener, service, server::shutdown_signal(), grace).await;
            // The last client may be gone while its fill still commits:
            // give running fills up to another grace period.
            let drained = std::time::Instant::now();
            while layer.fills_in_flight() > 0 && drained.elapsed() < grace {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            served
        }
        None => {
            tracing::warn!(listen = %local, upstream = %config.proxy.upstream_url,
                "image_cache_dir is not set: caching is off and every request is forwarded");
            let service = ServiceBuilder::new()
                .layer(RequestIdLayer::new())
                .layer(CacheManageLayer::new(None, auth))
                .service(upstream::<RequestBody<Incoming>>(&config));
            server::serve(listener, service, server::shutdown_signal(), grace).await
        }
    }
    .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}
