//! The scrubber: re-hashes cached files in the background, for rot that
//! changes no file metadata.

use std::collections::HashMap;
use std::time::Duration;

use crate::cache::GlanceCache;
use crate::metrics::IntegrityCheck;
use crate::store::{now_epoch, Integrity};
use crate::ImageId;

/// Longest sleep between two looks for entries that are due (when no
/// commit comes first).
const MAX_IDLE: Duration = Duration::from_secs(60);

/// Shortest time between the starts of two passes: a pass of tiny or empty
/// files, with entries due again at once (a zero `scrub_interval`), would
/// otherwise start the next one at once, each entry a thread, index reads
/// and a write, which the pacing in bytes does not bound.
const MIN_PASS: Duration = Duration::from_secs(1);

/// Hashes every verifiable entry again, least recently verified first, at
/// most `rate` bytes per second (less when serving keeps the CPU busy: the
/// hashing runs at the lowest priority), and each at most once per
/// `interval`.
/// A mismatch, or bytes that cannot be read, quarantines the entry (the
/// next request fetches the image again), with a log line and
/// `glance_cache_integrity_failures_total{found_by="scrub"}`. An entry that
/// cannot be checked at all (its file cannot be opened, say) waits an
/// `interval` before it is tried again, as if it had been verified. Passes
/// start at most once a second ([`MIN_PASS`]), however small the files.
pub(crate) async fn run(cache: GlanceCache, rate: u64, interval: Duration) {
    let store = cache.store().clone();
    let interval_s = interval.as_secs_f64();
    let mut commits = cache.fills().commits();
    // When each entry that could not be checked last failed.
    let mut failed: HashMap<ImageId, f64> = HashMap::new();
    loop {
        let started = tokio::time::Instant::now();
        let entries = match store.by_verification_age().await {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(error = %e, "scrubber cannot read the index");
                tokio::time::sleep(MAX_IDLE).await;
                continue;
            }
        };
        let now = now_epoch();
        let mut next_due: Option<f64> = None;
        let mut scrubbed = 0usize;
        for entry in entries {
            // Never verified (adopted): the upstream's checksum decides, at a hit.
            if entry.checksum.is_none() {
                continue;
            }
            if let Some(due) = due(
                entry.verified_at,
                failed.get(&entry.image_id).copied(),
                interval_s,
                now,
            ) {
                if due > now {
                    next_due = Some(next_due.map_or(due, |d: f64| d.min(due)));
                    continue;
                }
            }
            if cache.fills().get(&entry.image_id).is_some() {
                continue;
            }
            let metrics = cache.metrics().clone();
            let id = entry.image_id.clone();
            let outcome = store
                .scrub_entry(&id, rate, move |n| metrics.scrubbed(n))
                .await;
            if outcome.is_err() {
                failed.insert(id.clone(), now_epoch());
            } else {
                failed.remove(&id);
            }
            match outcome {
                Ok(Integrity::Intact) => {
                    tracing::debug!(image_id = %id, "scrubbed: intact");
                    scrubbed += 1;
                }
                Ok(Integrity::Quarantined(why)) => {
                    cache.metrics().integrity_failure(IntegrityCheck::Scrub);
                    tracing::error!(image_id = %id, %why, "scrubber found a corrupt cached file; quarantined");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(image_id = %id, error = %e,
                    "scrubber could not verify; tried again after the interval"),
            }
        }
        if scrubbed > 0 {
            tracing::info!(entries = scrubbed, "scrub pass done");
            // Entries may be due again already (a short interval): look
            // again, a pass's shortest time after this one began.
            tokio::time::sleep_until(started + MIN_PASS).await;
            continue;
        }
        let idle = next_due.map_or(MAX_IDLE, |due| idle_until(due, now_epoch()));
        // A commit brings an entry to schedule.
        tokio::select! {
            _ = tokio::time::sleep(idle) => {}
            _ = commits.changed() => {}
        }
    }
}

/// When an entry is due for its next scrub (epoch seconds), at `now`:
/// `interval_s` after the later of its last verification and its last
/// failed check; `None` (due now) for an entry never checked. A check
/// recorded later than `now` (the clock was stepped back since) counts as
/// made now: the entry waits an interval at most, not until the clock
/// catches up.
fn due(verified_at: Option<f64>, failed_at: Option<f64>, interval_s: f64, now: f64) -> Option<f64> {
    let last = match (verified_at, failed_at) {
        (Some(v), Some(f)) => Some(v.max(f)),
        (v, f) => v.or(f),
    };
    last.map(|at| at.min(now) + interval_s)
}

/// How long to wait, at `now`, for an entry due at `due` (epoch seconds):
/// at least a second, at most [`MAX_IDLE`] (an entry due in centuries, from
/// a huge `scrub_interval`, included).
fn idle_until(due: f64, now: f64) -> Duration {
    // Clamped as a float: no Duration holds u64::MAX seconds and more (and
    // `min` makes a NaN the longest wait).
    Duration::from_secs_f64((due - now).min(MAX_IDLE.as_secs_f64()).max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_entries::{commit_bytes, open_store};

    #[test]
    fn an_entry_that_could_not_be_checked_waits_an_interval_like_a_verified_one() {
        let now = 1000.0;
        assert_eq!(due(None, None, 60.0, now), None, "never checked: due now");
        assert_eq!(due(Some(100.0), None, 60.0, now), Some(160.0));
        assert_eq!(due(Some(100.0), Some(500.0), 60.0, now), Some(560.0));
        assert_eq!(due(None, Some(500.0), 60.0, now), Some(560.0));
        assert_eq!(due(Some(900.0), Some(500.0), 60.0, now), Some(960.0));
    }

    #[test]
    fn a_verification_recorded_in_the_future_counts_as_made_now() {
        // The clock was stepped back a day after the entry was verified.
        let now = 1.8e9;
        let ahead = now + 86_400.0;
        assert_eq!(due(Some(ahead), None, 60.0, now), Some(now + 60.0));
        assert_eq!(due(None, Some(ahead), 60.0, now), Some(now + 60.0));
        assert_eq!(due(Some(ahead), None, 0.0, now), Some(now), "due now");
    }

    #[test]
    fn the_longest_scrub_interval_waits_the_longest_idle_without_panicking() {
        let now = 1.8e9;
        let interval_s = Duration::from_secs(u64::MAX).as_secs_f64();
        let due = due(Some(now), None, interval_s, now).unwrap();
        assert_eq!(idle_until(due, now), MAX_IDLE);
        assert_eq!(idle_until(now + 5.5, now), Duration::from_secs_f64(5.5));
        assert_eq!(
            idle_until(now - 10.0, now),
            Duration::from_secs(1),
            "overdue"
        );
        assert_eq!(idle_until(f64::NAN, now), MAX_IDLE);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tiny_entry_due_at_once_is_scrubbed_about_once_a_second_not_in_a_spin() {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store(dir.path()).await;
        let id = ImageId::parse("70000000-0000-4000-8000-000000000007").unwrap();
        commit_bytes(&store, &id, b"x").await;
        let cache = GlanceCache::builder(store).build();
        // One byte hashed per scrub: the counter counts scrubs.
        let scrubs = || cache.metrics().snapshot().scrubbed_bytes;
        let scrubber = tokio::spawn(run(cache.clone(), 1 << 20, Duration::ZERO));
        let waited = tokio::time::Instant::now();
        while scrubs() == 0 {
            assert!(waited.elapsed() < Duration::from_secs(20), "no scrub");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let first = scrubs();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let more = scrubs() - first;
        scrubber.abort();
        // One pass a second at most: 3 in 2.5 s; a pass begun at once
        // after the last makes thousands.
        assert!(more <= 5, "{more} scrubs of one entry in 2.5 s");
        assert!(more >= 1, "an entry due again is scrubbed again");
    }
}
