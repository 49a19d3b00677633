//! `prune`: one LRU prune down to `image_cache_max_size`, and, with a
//! remote tier, one of the remote tier down to `remote_max_size` (unless a
//! node is pruning it now).

use anyhow::Context;

use super::config::{open_store, ConfigFiles};

/// Arguments of `prune`.
#[derive(Debug, clap::Args)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    config: ConfigFiles,
}

/// Prunes once and prints
/// `pruned N files, B bytes (cache now S of MAX bytes)`; with a remote
/// tier, also `remote tier: pruned N images, B bytes (now S of MAX bytes)`.
pub(crate) async fn run(args: PruneArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let store = open_store(&config, "prune").await?;
    let report = store.prune().await?;
    if report.orphans > 0 {
        tracing::warn!(
            files = report.orphans,
            "image files without an index row count towards the cache size but were not pruned; \
             the serving proxy adopts them at its next start (or when they are requested)"
        );
    }
    let now = store.cache_size().await?;
    println!(
        "pruned {} files, {} bytes (cache now {now} of {} bytes)",
        report.files,
        report.bytes,
        store.max_size()
    );
    if let Some(tier) = crate::remote::tier(&config)? {
        let tier = tier.build();
        if tier.max_size() > 0 {
            let r = tier.prune().await.context("cannot prune the remote tier")?;
            if r.ran {
                println!(
                    "remote tier: pruned {} images, {} bytes (now {} of {} bytes)",
                    r.deleted,
                    r.freed,
                    r.size,
                    tier.max_size()
                );
            } else {
                println!("remote tier: another node is pruning it now");
            }
        }
    }
    Ok(())
}
