//! Maintenance: the size limit, cleaning without cron, and scrubbing.

use std::time::Duration;

use crate::cache::GlanceCache;

/// Keeps the cache under `image_cache_max_size` and cleans it periodically.
///
/// * After every commit (and at every clean tick) the cache size is checked
///   and the least recently accessed entries are pruned while it is over
///   the limit (Glance's stop rule).
/// * Every `clean_interval`, `invalid/` and stalled `incomplete/` files are
///   removed (a live fill's file is never touched).
/// * The scrubber hashes cached files again at `scrub_rate` bytes per
///   second, least recently verified first and each at most once per
///   `scrub_interval`, and quarantines those that no longer match their
///   digests (silent rot changes no file metadata, so only reading finds it).
///
/// ```
/// use std::time::Duration;
/// use glance_cache::worker::MaintenanceOptions;
/// let options = MaintenanceOptions::default()
///     .with_auto_prune(true)
///     .with_clean_interval(Duration::from_secs(600))
///     .with_stall_time(Duration::from_secs(86_400))
///     .with_scrub_rate(8 << 20)
///     .with_scrub_interval(Duration::from_secs(86_400));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    auto_prune: bool,
    clean_interval: Duration,
    stall_time: Duration,
    scrub_rate: u64,
    scrub_interval: Duration,
    remote_interval: Duration,
}

/// Default bytes per second the scrubber reads: 8 MiB/s, about 1% of one
/// core for MD5 and SHA-512, a 1 TB cache once every 36 hours.
pub const DEFAULT_SCRUB_RATE: u64 = 8 << 20;

impl Default for MaintenanceOptions {
    /// Auto-prune on, a clean every hour, Glance's one-day stall time, a
    /// scrub at [`DEFAULT_SCRUB_RATE`] with each entry at most once a day.
    fn default() -> Self {
        MaintenanceOptions {
            auto_prune: true,
            clean_interval: Duration::from_secs(3600),
            stall_time: Duration::from_secs(86_400),
            scrub_rate: DEFAULT_SCRUB_RATE,
            scrub_interval: Duration::from_secs(86_400),
            remote_interval: Duration::from_secs(60),
        }
    }
}

impl MaintenanceOptions {
    /// Prune after commits when over the limit (default true).
    pub fn with_auto_prune(mut self, on: bool) -> Self {
        self.auto_prune = on;
        self
    }

    /// Period of the clean (zero disables it).
    pub fn with_clean_interval(mut self, every: Duration) -> Self {
        self.clean_interval = every;
        self
    }

    /// `image_cache_stall_time` for the clean.
    pub fn with_stall_time(mut self, stall: Duration) -> Self {
        self.stall_time = stall;
        self
    }

    /// Bytes per second the scrubber reads (zero turns it off).
    pub fn with_scrub_rate(mut self, bytes_per_second: u64) -> Self {
        self.scrub_rate = bytes_per_second;
        self
    }

    /// Shortest time between two scrubs of the same entry.
    pub fn with_scrub_interval(mut self, every: Duration) -> Self {
        self.scrub_interval = every;
        self
    }

    /// Keeps `cache` maintained until the runtime shuts down.
    /// How often, with a remote tier, this node's registry entries are
    /// reconciled with its local entries and the remote tier is pruned to
    /// its size limit (default 60 s; zero: never).
    ///
    /// ```
    /// use std::time::Duration;
    /// use glance_cache::worker::MaintenanceOptions;
    /// let options = MaintenanceOptions::default().with_remote_interval(Duration::from_secs(300));
    /// # drop(options);
    /// ```
    pub fn with_remote_interval(mut self, every: Duration) -> Self {
        self.remote_interval = every;
        self
    }

    pub(crate) fn spawn(self, cache: GlanceCache) -> tokio::task::JoinHandle<()> {
        if cache.remote().is_some() && !self.remote_interval.is_zero() {
            tokio::spawn(remote_upkeep(cache.clone(), self.remote_interval));
        }
        if self.scrub_rate > 0 {
            tokio::spawn(super::scrub::run(
                cache.clone(),
                self.scrub_rate,
                self.scrub_interval,
            ));
        }
        tokio::spawn(async move {
            Maintenance {
                cache,
                options: self,
            }
            .run()
            .await
        })
    }
}

/// The maintenance task.
struct Maintenance {
    cache: GlanceCache,
    options: MaintenanceOptions,
}

impl Maintenance {
    async fn prune_if_over(&self) {
        let store = self.cache.store();
        match store.cache_size().await {
            Ok(size) if size > store.max_size() => match store.prune().await {
                Ok(r) => tracing::info!(
                    files = r.files,
                    bytes = r.bytes,
                    orphans = r.orphans,
                    "cache over image_cache_max_size; pruned"
                ),
                Err(e) => tracing::warn!(error = %e, "auto-prune failed"),
            },
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot measure the cache"),
        }
    }

    async fn run(self) {
        let mut commits = self.cache.fills().commits();
        let options = &self.options;
        let mut clean = (!options.clean_interval.is_zero()).then(|| {
            let mut t = tokio::time::interval(options.clean_interval);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        if options.auto_prune {
            self.prune_if_over().await;
        }
        loop {
            tokio::select! {
                // The sender lives in the cache this task holds: never closed.
                Ok(()) = commits.changed(), if options.auto_prune => self.prune_if_over().await,
                _ = tick(&mut clean) => {
                    match self.cache.store().clean(options.stall_time).await {
                        Ok(r) if r.invalid_removed + r.incomplete_removed > 0 => tracing::info!(
                            invalid = r.invalid_removed, incomplete = r.incomplete_removed, "cache cleaned"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = %e, "periodic clean failed"),
                    }
                    if options.auto_prune {
                        self.prune_if_over().await;
                    }
                }
            }
        }
    }
}

/// Every `every`: this node's registry entries made to match its local
/// entries (an eviction, an offline prune, a killed process), and the
/// remote tier pruned to its size limit (by one node at a time).
async fn remote_upkeep(cache: GlanceCache, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(tier) = cache.remote() else { return };
        match cache.store().list().await {
            Ok(entries) => {
                let local = entries.into_iter().map(|e| e.image_id).collect();
                match tier.reconcile_holdings(&local).await {
                    Ok(r) if r.added + r.removed > 0 => tracing::info!(
                        added = r.added,
                        removed = r.removed,
                        "node registry reconciled"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "node registry not reconciled"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the cache index"),
        }
        match tier.prune().await {
            Ok(r) if r.deleted > 0 => tracing::info!(
                deleted = r.deleted,
                freed = r.freed,
                size = r.size,
                "remote tier over remote_max_size; pruned"
            ),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "remote tier not pruned"),
        }
    }
}

/// The next tick of `clean`; never, when cleaning is off.
async fn tick(clean: &mut Option<tokio::time::Interval>) {
    match clean {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
