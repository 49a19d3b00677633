//! Background maintenance of the cache: the prefetch worker, pruning,
//! cleaning and scrubbing (`[proxy]` options).

use std::time::Duration;

/// Longest delay between two prefetch attempts of one image.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// How the prefetch worker, pruning and cleaning run. `Default` gives every
/// option its default.
///
/// ```
/// use std::time::Duration;
/// use glance_cache_config::MaintenanceOptions;
///
/// let m = MaintenanceOptions::default();
/// assert_eq!(m.retry_delay(0), Duration::from_secs(5));
/// assert_eq!(m.retry_delay(1), Duration::from_secs(10));
/// assert_eq!(m.retry_delay(20), Duration::from_secs(300));
/// assert_eq!(m.clean_every(), Some(Duration::from_secs(3600)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceOptions {
    /// `prefetch_enabled`: whether queued images are cached; `false` pauses
    /// the worker (`PUT /v2/cache/{id}` still queues on disk). Default true.
    pub prefetch_enabled: bool,
    /// `prefetch_workers`: images prefetched at the same time, 1 to 16.
    /// Default 2.
    pub prefetch_workers: usize,
    /// `prefetch_retries`: retries of a failed prefetch, 0 to 100.
    /// Default 5.
    pub prefetch_retries: u32,
    /// `prefetch_retry_delay`: delay before the first retry; it doubles
    /// with every retry, up to 300 s. Default 5 s.
    pub prefetch_retry_delay: Duration,
    /// `auto_prune`: prune when the cache grows past
    /// `image_cache_max_size`. Default true.
    pub auto_prune: bool,
    /// `clean_interval`: time between cleanings; zero turns periodic
    /// cleaning off. Default 3600 s.
    pub clean_interval: Duration,
    /// `scrub_rate`: bytes per second the scrubber reads; zero turns it
    /// off. Default 8 MiB/s.
    pub scrub_rate: u64,
    /// `scrub_interval`: shortest time between two scrubs of a file.
    /// Default one day.
    pub scrub_interval: Duration,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        MaintenanceOptions {
            prefetch_enabled: true,
            prefetch_workers: 2,
            prefetch_retries: 5,
            prefetch_retry_delay: Duration::from_secs(5),
            auto_prune: true,
            clean_interval: Duration::from_secs(3600),
            scrub_rate: 8 << 20,
            scrub_interval: Duration::from_secs(86_400),
        }
    }
}

impl MaintenanceOptions {
    /// The delay before retry number `retry` (0 = the first retry):
    /// `prefetch_retry_delay` doubled `retry` times, at most 300 s.
    pub fn retry_delay(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry).unwrap_or(u32::MAX);
        self.prefetch_retry_delay
            .checked_mul(factor)
            .unwrap_or(MAX_RETRY_DELAY)
            .min(MAX_RETRY_DELAY)
    }

    /// The cleaning period, or `None` when periodic cleaning is off.
    pub fn clean_every(&self) -> Option<Duration> {
        (!self.clean_interval.is_zero()).then_some(self.clean_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let m = MaintenanceOptions {
            prefetch_retry_delay: Duration::from_secs(7),
            ..MaintenanceOptions::default()
        };
        assert_eq!(m.retry_delay(0), Duration::from_secs(7));
        assert_eq!(m.retry_delay(2), Duration::from_secs(28));
        assert_eq!(m.retry_delay(6), Duration::from_secs(300));
        assert_eq!(m.retry_delay(31), Duration::from_secs(300));
        assert_eq!(m.retry_delay(32), Duration::from_secs(300));
        assert_eq!(m.retry_delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn clean_interval_zero_is_off() {
        let m = MaintenanceOptions {
            clean_interval: Duration::ZERO,
            ..MaintenanceOptions::default()
        };
        assert_eq!(m.clean_every(), None);
    }
}
