//! Configuration and the cache directory, shared by the offline commands.

use anyhow::Context;
use glance_cache::store::CacheStore;
use glance_cache_config::Config;

/// The configuration sources of an offline command.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConfigFiles {
    #[command(flatten)]
    pub(crate) sources: crate::config_cmd::ConfigArgs,
}

impl ConfigFiles {
    /// Loads the configuration; warnings go to the log.
    pub(crate) fn load(&self) -> anyhow::Result<Config> {
        self.sources.load_config()
    }
}

/// Opens `image_cache_dir` as the proxy does, but without reconciling it:
/// a proxy serving the same directory owns that (an offline command only
/// does what it says; reconciling would also remove every unlocked
/// incomplete file, whatever its age, before `clean` could apply the stall
/// time).
pub(crate) async fn open_store(config: &Config, command: &str) -> anyhow::Result<CacheStore> {
    let Some(dir) = &config.image_cache_dir else {
        anyhow::bail!(
            "image_cache_dir is not set in the configuration: there is no cache directory to {command} \
             (pass the files that configure the proxy with --config-file)"
        );
    };
    CacheStore::builder(dir)
        .with_sqlite_db(config.image_cache_sqlite_db.clone())
        .with_max_size(config.image_cache_max_size)
        .with_min_free_disk(config.proxy.min_free_disk)
        .with_hit_chunk_size(config.proxy.hit_chunk_size)
        .with_buffer_memory(config.proxy.download_buffer_memory)
        .with_reconcile(false)
        .open()
        .await
        .with_context(|| format!("cannot use image_cache_dir {}", dir.display()))
}
