//! `glance-cache-proxy serve`: the caching reverse proxy.
//!
//! The library's standard [`Stack`] (request ids, management API, cache,
//! reverse proxy; prefetch workers and maintenance beside it) over the
//! configured upstream, served until SIGTERM/SIGINT, then drained.

use std::time::Duration;

use anyhow::Context;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::CacheStore;
use glance_cache::worker::{MaintenanceOptions, PrefetchOptions};
use glance_cache::{server, GlanceCache, RequestBody, Stack};
use glance_cache_config::Config;
use tokio::net::TcpListener;

/// Opens the cache described by `config` (`None` when caching is off).
pub(crate) async fn open_cache(config: &Config) -> anyhow::Result<Option<GlanceCache>> {
    let Some(dir) = &config.image_cache_dir else {
        return Ok(None);
    };
    let store = CacheStore::builder(dir)
        .with_sqlite_db(config.image_cache_sqlite_db.clone())
        .with_max_size(config.image_cache_max_size)
        .with_min_free_disk(config.proxy.min_free_disk)
        .with_hit_chunk_size(config.proxy.hit_chunk_size)
        .with_buffer_memory(config.proxy.download_buffer_memory)
        .open()
        .await
        .with_context(|| format!("cannot use image_cache_dir {}", dir.display()))?;
    Ok(Some(cache_over(store, config)?))
}

/// The cache over `store` with the configured hit authorization and
/// remote tier.
pub(crate) fn cache_over(store: CacheStore, config: &Config) -> anyhow::Result<GlanceCache> {
    let mut builder = GlanceCache::builder(store)
        .hit_authorization(config.proxy.hit_authorization)
        .authorization_ttl(config.proxy.authorization_cache_ttl)
        .authorization_concurrency(config.proxy.authorization_concurrency)
        .authorization_timeout(config.proxy.authorization_timeout)
        .serve_ranges(config.proxy.serve_ranges)
        .fill_on_range_miss(config.proxy.fill_on_range_miss)
        .range_fill_wait(config.proxy.range_fill_wait);
    if let Some(tier) = crate::remote::tier(config)? {
        // Other nodes are checked like the upstream: one internal PKI.
        builder = builder
            .remote(tier)
            .peer_tls(crate::tls::upstream(&config.proxy)?);
    }
    Ok(builder.build())
}

/// The upstream as configured.
pub(crate) fn upstream(config: &Config) -> anyhow::Result<ReverseProxy<RequestBody>> {
    let p = &config.proxy;
    let proxy = ReverseProxy::try_new(p.upstream_url.clone())
        .context("invalid [proxy] upstream_url")?
        .with_connect_timeout(p.upstream_connect_timeout)
        .with_response_timeout(p.upstream_timeout)
        .with_idle_timeout(p.upstream_idle_timeout);
    if p.upstream_url.scheme() != Some(&http::uri::Scheme::HTTPS) {
        return Ok(proxy);
    }
    proxy
        .with_tls(crate::tls::upstream(p)?)
        .context("cannot use the TLS settings of the https upstream_url")
}

pub(crate) async fn run(config: Config) -> anyhow::Result<()> {
    let auth = config
        .management
        .auth()
        .context("invalid management authorization settings")?;
    let cache = open_cache(&config).await?;
    let addr = (config.bind_host.as_str(), config.bind_port);
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.bind_host, config.bind_port))?;
    let local = listener.local_addr().context("listener address")?;
    let tls = crate::tls::listener(&config.proxy)?;
    let admin_tls = crate::tls::admin_listener(&config.proxy)?;
    if let Some(listen) = &config.proxy.admin_listen {
        crate::admin::spawn(listen, cache.clone(), admin_tls.clone()).await?;
    }
    crate::tls::reload_on_sighup([tls.clone(), admin_tls].into_iter().flatten().collect());
    crate::memory::spawn_trim_after_bursts();
    let stall = Duration::from_secs(config.image_cache_stall_time);
    let builder = match &cache {
        Some(cache) => {
            tracing::info!(listen = %local, upstream = %config.proxy.upstream_url,
                cache_dir = %cache.store().root().display(), management_auth = %auth.mode(),
                remote = ?cache.remote(), "glance-cache-proxy serving");
            let m = &config.maintenance;
            let mut builder = Stack::builder(cache).maintenance(
                MaintenanceOptions::default()
                    .with_auto_prune(m.auto_prune)
                    .with_clean_interval(m.clean_interval)
                    .with_stall_time(stall)
                    .with_scrub_rate(m.scrub_rate)
                    .with_scrub_interval(m.scrub_interval)
                    .with_remote_interval(config.proxy.remote_sync_interval),
            );
            if m.prefetch_enabled {
                builder = builder.prefetch(
                    PrefetchOptions::default()
                        .with_workers(m.prefetch_workers)
                        .with_retries(m.prefetch_retries)
                        .with_retry_delay(m.prefetch_retry_delay),
                );
            } else {
                tracing::warn!("prefetch_enabled = false: queued images are not fetched until prefetching is enabled");
            }
            builder
        }
        None => {
            tracing::warn!(listen = %local, upstream = %config.proxy.upstream_url,
                "image_cache_dir is not set: caching is off and every request is forwarded");
            Stack::uncached()
        }
    };
    let stack = builder
        .management(auth)
        .public_endpoint(config.public_endpoint.clone())
        .stall_time(stall)
        .upstream(upstream(&config)?)
        .build();
    let options = server::ServeOptions::new()
        .with_grace(config.proxy.shutdown_timeout)
        .with_client_idle_timeout(config.proxy.client_idle_timeout)
        .with_tls(tls);
    stack
        .serve_with(listener, server::shutdown_signal(), options)
        .await
        .context("server failed")?;
    tracing::info!("stopped");
    Ok(())
}
