//! `prefetch`: cache every queued image, a bounded number at a time, with
//! the library's own prefetcher (the one the serving proxy's workers run),
//! through the standard stack over the configured upstream.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use glance_cache::auth::manage::ManagementAuth;
use glance_cache::worker::{PrefetchError, Prefetched};
use glance_cache::{ImageId, Stack};
use glance_cache_config::Config;
use tokio::task::JoinSet;

use super::config::{open_store, ConfigFiles};
use super::progress::Progress;
use crate::serve::{cache_over, upstream};

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
    let cache = cache_over(store.clone(), &config)?;
    let stack = Stack::builder(&cache)
        .management(service_auth(&config)?)
        .upstream(upstream(&config)?)
        .build();
    let Some(prefetcher) = stack.prefetcher().cloned() else {
        anyhow::bail!("the stack has no cache to prefetch into");
    };

    let queued = store.queued().await?;
    let total = queued.len();
    if total > 0 {
        // Fail early, with one clear message, when Keystone says no.
        prefetcher.service_token().await?;
    }
    let next = Arc::new(Mutex::new(queued.into_iter()));
    let results = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let progress = Progress::new();
    let mut jobs = JoinSet::new();
    for _ in 0..usize::from(args.jobs).min(total) {
        let (next, results) = (Arc::clone(&next), Arc::clone(&results));
        let (prefetcher, progress) = (prefetcher.clone(), progress.clone());
        jobs.spawn(async move {
            loop {
                let id = next.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some(id) = id else { break };
                let bar = progress.image(id.as_str());
                let outcome = prefetcher.fetch(&id, None, &bar).await;
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
        .filter(|o| matches!(o, Ok(Prefetched::Cached { .. } | Prefetched::AlreadyCached)))
        .count();
    let skipped = results
        .iter()
        .filter(|o| matches!(o, Ok(Prefetched::NotQueued)))
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

/// The service credentials of `[keystone_authtoken]`, when configured
/// (fetches are then made as that user), else nobody's.
///
/// Only the service token is needed here, so this is
/// [`ManagementAuth::keystone`] rather than the management settings, which
/// would also warn about how the management API (not served here) is
/// protected.
fn service_auth(config: &Config) -> anyhow::Result<ManagementAuth> {
    match config.management.keystone.clone() {
        Some(options) => {
            ManagementAuth::keystone(options).context("invalid [keystone_authtoken] settings")
        }
        None => Ok(ManagementAuth::deny()),
    }
}

/// The one-line result of one image.
fn describe(id: &ImageId, outcome: &Result<Prefetched, PrefetchError>) -> String {
    match outcome {
        Ok(Prefetched::Cached { bytes, elapsed }) => {
            format!(
                "{id}: cached {bytes} bytes in {:.1} s",
                elapsed.as_secs_f64()
            )
        }
        Ok(Prefetched::AlreadyCached) => format!("{id}: already cached"),
        Ok(Prefetched::NotQueued) => format!("{id}: no longer queued; skipped"),
        Ok(_) => format!("{id}: done"),
        Err(why) => format!("{id}: failed: {why}"),
    }
}
