//! `prefetch`: cache every queued image, a bounded number at a time
//! (spec §4.3, without §10.2 item 16's unbounded pool and exit status 0).

use std::sync::{Arc, Mutex};

use anyhow::Context;
use glance_cache::auth::manage::ManagementAuth;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::{CacheLayer, ImageId};
use glance_cache_config::Config;
use tokio::task::JoinSet;

use super::config::{open_store, ConfigFiles};
use super::fetch::{Fetcher, Outcome};
use super::progress::Progress;

/// Arguments of `prefetch`.
#[derive(Debug, clap::Args)]
pub(crate) struct PrefetchArgs {
    #[command(flatten)]
    config: ConfigFiles,
    /// Images downloaded at the same time.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 2,
        value_parser = clap::value_parser!(u16).range(1..=64)
    )]
    jobs: u16,
}

/// Caches the queue, oldest first, `--jobs` images at a time; prints one
/// line per image and `cached N of M queued images (K failed)`. Fails
/// (exit status 1) when any image was not cached; those stay queued.
pub(crate) async fn run(args: PrefetchArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let store = open_store(&config, "prefetch").await?;
    let cache = CacheLayer::new(store.clone())
        .with_hit_authorization(config.proxy.hit_authorization)
        .with_authorization_ttl(config.proxy.authorization_cache_ttl);
    let fetcher = Fetcher::new(cache, upstream(&config)?, service_auth(&config)?);

    let queued = store.queued().await?;
    let total = queued.len();
    if total > 0 {
        // Fail early, with one clear message, when Keystone says no.
        fetcher.token().await.map_err(anyhow::Error::msg)?;
    }
    let next = Arc::new(Mutex::new(queued.into_iter()));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let progress = Progress::new();
    let mut jobs = JoinSet::new();
    for _ in 0..usize::from(args.jobs).min(total) {
        let (next, results) = (Arc::clone(&next), Arc::clone(&results));
        let (fetcher, progress) = (fetcher.clone(), progress.clone());
        jobs.spawn(async move {
            loop {
                let id = next.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(id) = id else { break };
                let bar = progress.image(id.as_str());
                let outcome = fetcher.fetch(&id, &bar).await;
                bar.finish(&describe(&id, &outcome));
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(outcome);
            }
        });
    }
    while let Some(joined) = jobs.join_next().await {
        if let Err(e) = joined {
            tracing::error!(error = %e, "a prefetch job crashed");
        }
    }
    let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
    let cached = results
        .iter()
        .filter(|o| matches!(o, Outcome::Cached { .. } | Outcome::AlreadyCached))
        .count();
    let skipped = results
        .iter()
        .filter(|o| matches!(o, Outcome::NoLongerQueued))
        .count();
    // Anything else failed, including images of a crashed job.
    let failed = total - cached - skipped;
    println!("cached {cached} of {total} queued images ({failed} failed)");
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {total} queued images could not be cached; they stay queued for the next run"
        );
    }
    Ok(())
}

/// The upstream as `serve` reaches it.
fn upstream<B>(config: &Config) -> anyhow::Result<ReverseProxy<B>>
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<glance_cache::BoxError>,
{
    Ok(ReverseProxy::try_new(config.proxy.upstream_url.clone())
        .context("invalid [proxy] upstream_url")?
        .with_connect_timeout(config.proxy.upstream_connect_timeout)
        .with_response_timeout(config.proxy.upstream_timeout)
        .with_idle_timeout(config.proxy.upstream_idle_timeout))
}

/// The service credentials of `[keystone_authtoken]`, when configured.
///
/// Only the service token is needed here, so this is
/// [`ManagementAuth::keystone`] rather than `from_config`, which would
/// also warn about how the management API (not served here) is protected.
fn service_auth(config: &Config) -> anyhow::Result<Option<ManagementAuth>> {
    config
        .management
        .keystone
        .clone()
        .map(|options| {
            ManagementAuth::keystone(options).context("invalid [keystone_authtoken] settings")
        })
        .transpose()
}

/// The one-line result of one image.
fn describe(id: &ImageId, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Cached { bytes, elapsed } => {
            format!(
                "{id}: cached {bytes} bytes in {:.1} s",
                elapsed.as_secs_f64()
            )
        }
        Outcome::AlreadyCached => format!("{id}: already cached"),
        Outcome::NoLongerQueued => format!("{id}: no longer queued; skipped"),
        Outcome::Failed(why) => format!("{id}: failed: {why}"),
    }
}
