//! `clean`: remove invalid and stalled incomplete files once.

use std::time::Duration;

use super::config::{open_store, ConfigFiles};

/// Arguments of `clean`.
#[derive(Debug, clap::Args)]
pub(crate) struct CleanArgs {
    #[command(flatten)]
    config: ConfigFiles,
}

/// Cleans once with `image_cache_stall_time` and prints
/// `removed N invalid and M stalled incomplete files`.
pub(crate) async fn run(args: CleanArgs) -> anyhow::Result<()> {
    let config = args.config.load()?;
    let store = open_store(&config, "clean").await?;
    let report = store
        .clean(Duration::from_secs(config.image_cache_stall_time))
        .await?;
    println!("{report}");
    Ok(())
}
