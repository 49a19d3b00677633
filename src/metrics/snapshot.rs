//! [`Snapshot`]: the values at one moment, and their exposition.

use std::fmt;

use super::exposition::{Exposition, Kind};
use super::{FillFailure, IntegrityCheck, RemoteEvent};

/// The metrics of one cache at one moment; see the [module docs](super) for
/// what each value means. `Display` renders the Prometheus text format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Snapshot {
    /// `glance_cache_hits_total`
    pub hits: u64,
    /// `glance_cache_misses_total`
    pub misses: u64,
    /// `glance_cache_range_hits_total`
    pub range_hits: u64,
    /// `glance_cache_range_misses_total`
    pub range_misses: u64,
    /// `glance_cache_hit_authorization_refusals_total`
    pub hit_authorization_refusals: u64,
    /// `glance_cache_hit_bytes_total`
    pub hit_bytes: u64,
    /// `glance_cache_upstream_bytes_total`
    pub upstream_bytes: u64,
    /// `glance_cache_fills_in_flight`
    pub fills_in_flight: u64,
    /// `glance_cache_fills_committed_total`
    pub fills_committed: u64,
    /// `glance_cache_fill_failures_total{reason="upstream"}`
    pub fill_failures_upstream: u64,
    /// `glance_cache_fill_failures_total{reason="verification"}`
    pub fill_failures_verification: u64,
    /// `glance_cache_fill_failures_total{reason="local"}`
    pub fill_failures_local: u64,
    /// `glance_cache_evictions_total`
    pub evictions: u64,
    /// `glance_cache_evicted_bytes_total`
    pub evicted_bytes: u64,
    /// `glance_cache_prefetches_total{result="success"}`
    pub prefetch_successes: u64,
    /// `glance_cache_prefetches_total{result="failure"}`
    pub prefetch_failures: u64,
    /// `glance_cache_integrity_failures_total{found_by="hit"}`
    pub integrity_failures_hit: u64,
    /// `glance_cache_integrity_failures_total{found_by="scrub"}`
    pub integrity_failures_scrub: u64,
    /// `glance_cache_scrubbed_bytes_total`
    pub scrubbed_bytes: u64,
    /// `glance_cache_hit_verifications_total`
    pub hit_verifications: u64,
    /// `glance_cache_remote_events_total`, in the order of
    /// [`RemoteEvent::ALL`] (read them with [`Snapshot::remote`]).
    pub remote_events: Vec<u64>,
    /// `glance_cache_remote_bytes_total`
    pub remote_bytes: u64,
    /// `glance_cache_size_bytes`; `None` when not sampled (or unreadable).
    pub cache_size_bytes: Option<u64>,
    /// `glance_cache_entries`; `None` when not sampled (or unreadable).
    pub cache_entries: Option<u64>,
    /// `glance_cache_max_size_bytes` (`image_cache_max_size`); `None` when
    /// not sampled from a store.
    pub cache_max_size_bytes: Option<u64>,
    /// `glance_cache_authorization_seconds`: how long hit authorizations
    /// that asked the upstream took.
    pub authorization_seconds: Histogram,
}

/// Upper bounds (seconds) of the buckets of
/// [`Snapshot::authorization_seconds`].
pub const AUTHORIZATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A latency histogram: observations per bucket (not cumulative; one slot
/// per bound of [`AUTHORIZATION_BUCKETS`], then `+Inf`) and their sum.
///
/// ```
/// let h = glance_cache::metrics::Histogram::default();
/// assert_eq!(h.count(), 0);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Observations per bucket.
    pub counts: Vec<u64>,
    /// Sum of the observations, in microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    /// Observations in all.
    ///
    /// ```
    /// let h = glance_cache::metrics::Histogram { counts: vec![1, 2], sum_micros: 5 };
    /// assert_eq!(h.count(), 3);
    /// ```
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Snapshot {
    /// The failures of one reason.
    ///
    /// ```
    /// use glance_cache::metrics::{FillFailure, Metrics};
    /// assert_eq!(Metrics::new().snapshot().fill_failures(FillFailure::Local), 0);
    /// ```
    pub fn fill_failures(&self, reason: FillFailure) -> u64 {
        match reason {
            FillFailure::Upstream => self.fill_failures_upstream,
            FillFailure::Verification => self.fill_failures_verification,
            FillFailure::Local => self.fill_failures_local,
        }
    }

    /// The corrupt files one finder found.
    ///
    /// ```
    /// use glance_cache::metrics::{IntegrityCheck, Metrics};
    /// assert_eq!(Metrics::new().snapshot().integrity_failures(IntegrityCheck::Hit), 0);
    /// ```
    pub fn integrity_failures(&self, found_by: IntegrityCheck) -> u64 {
        match found_by {
            IntegrityCheck::Hit => self.integrity_failures_hit,
            IntegrityCheck::Scrub => self.integrity_failures_scrub,
        }
    }
}

impl Snapshot {
    /// How many times `event` happened with the remote tier.
    ///
    /// ```
    /// use glance_cache::metrics::{Metrics, RemoteEvent};
    /// assert_eq!(Metrics::new().snapshot().remote(RemoteEvent::Hit), 0);
    /// ```
    pub fn remote(&self, event: RemoteEvent) -> u64 {
        self.remote_events
            .get(event.index())
            .copied()
            .unwrap_or_default()
    }
}

impl fmt::Display for Snapshot {
    /// The Prometheus text exposition format, one family per metric, with
    /// `# HELP` and `# TYPE` lines; every label value is present (zeros
    /// included) so rates never start from a missing series.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Kind::{Counter, Gauge};
        let mut e = Exposition::new(f);
        e.single(
            "glance_cache_hits_total",
            Counter,
            "Image downloads answered from a cached file.",
            self.hits,
        )?;
        e.single(
            "glance_cache_misses_total",
            Counter,
            "Image downloads answered by the upstream or by a running fill.",
            self.misses,
        )?;
        e.single(
            "glance_cache_range_hits_total",
            Counter,
            "Single-range requests answered from a cached file or a running fill (not counted in hits).",
            self.range_hits,
        )?;
        e.single(
            "glance_cache_range_misses_total",
            Counter,
            "Single-range requests for images not cached, sent to the upstream (not counted in misses).",
            self.range_misses,
        )?;
        e.single(
            "glance_cache_hit_authorization_refusals_total",
            Counter,
            "Downloads of cached or caching images refused because the upstream did not authorize the caller.",
            self.hit_authorization_refusals,
        )?;
        e.single(
            "glance_cache_hit_bytes_total",
            Counter,
            "Image bytes sent to clients from cached files.",
            self.hit_bytes,
        )?;
        e.single(
            "glance_cache_upstream_bytes_total",
            Counter,
            "Image bytes received from the upstream by cache fills.",
            self.upstream_bytes,
        )?;
        e.single(
            "glance_cache_fills_in_flight",
            Gauge,
            "Cache fills running now.",
            self.fills_in_flight,
        )?;
        e.single(
            "glance_cache_fills_committed_total",
            Counter,
            "Cache fills verified and committed.",
            self.fills_committed,
        )?;
        e.family(
            "glance_cache_fill_failures_total",
            Counter,
            "Cache fills that failed, by reason: upstream (the upstream body broke off), \
             verification (size or checksum mismatch), local (disk).",
        )?;
        for reason in FillFailure::ALL {
            e.sample(
                "glance_cache_fill_failures_total",
                &[("reason", reason.as_str())],
                self.fill_failures(reason),
            )?;
        }
        e.single(
            "glance_cache_evictions_total",
            Counter,
            "Cached images removed by pruning.",
            self.evictions,
        )?;
        e.single(
            "glance_cache_evicted_bytes_total",
            Counter,
            "Bytes of the cached images removed by pruning.",
            self.evicted_bytes,
        )?;
        e.family(
            "glance_cache_prefetches_total",
            Counter,
            "Prefetch jobs for queued images, by result.",
        )?;
        e.sample(
            "glance_cache_prefetches_total",
            &[("result", "success")],
            self.prefetch_successes,
        )?;
        e.sample(
            "glance_cache_prefetches_total",
            &[("result", "failure")],
            self.prefetch_failures,
        )?;
        e.family(
            "glance_cache_integrity_failures_total",
            Counter,
            "Cached files found corrupt and quarantined, by what found them: hit (hashed again \
             while served, after a change) or scrub (the background scrubber).",
        )?;
        for found_by in IntegrityCheck::ALL {
            e.sample(
                "glance_cache_integrity_failures_total",
                &[("found_by", found_by.as_str())],
                self.integrity_failures(found_by),
            )?;
        }
        e.single(
            "glance_cache_scrubbed_bytes_total",
            Counter,
            "Bytes of cached files hashed again by the background scrubber.",
            self.scrubbed_bytes,
        )?;
        e.single(
            "glance_cache_hit_verifications_total",
            Counter,
            "Cached files hashed again for their hits (changed since they were verified, or never \
             verified); concurrent hits of one file share one.",
            self.hit_verifications,
        )?;
        e.family(
            "glance_cache_remote_events_total",
            Counter,
            "Remote tier events: hit (a local miss filled from the shared tier), upload, \
             upload_failure, lease_conflict (another node was filling the image), peer_stream \
             (filled from that node), corrupt (a remote object failed verification and was \
             deleted), error (the store failed or refused), pruned.",
        )?;
        for event in RemoteEvent::ALL {
            e.sample(
                "glance_cache_remote_events_total",
                &[("event", event.as_str())],
                self.remote(event),
            )?;
        }
        e.single(
            "glance_cache_remote_bytes_total",
            Counter,
            "Image bytes received from the remote tier by cache fills.",
            self.remote_bytes,
        )?;
        if let Some(size) = self.cache_size_bytes {
            e.single(
                "glance_cache_size_bytes",
                Gauge,
                "The cache size: bytes of the image files in the cache directory.",
                size,
            )?;
        }
        if let Some(entries) = self.cache_entries {
            e.single(
                "glance_cache_entries",
                Gauge,
                "Committed entries in the cache index.",
                entries,
            )?;
        }
        if let Some(max) = self.cache_max_size_bytes {
            e.single(
                "glance_cache_max_size_bytes",
                Gauge,
                "image_cache_max_size: the size above which pruning removes images.",
                max,
            )?;
        }
        const AUTH: &str = "glance_cache_authorization_seconds";
        e.family(
            AUTH,
            Kind::Histogram,
            "Time the upstream took to answer hit authorizations (remembered answers not included).",
        )?;
        let mut cumulative = 0;
        for (i, bound) in AUTHORIZATION_BUCKETS.iter().enumerate() {
            cumulative += self
                .authorization_seconds
                .counts
                .get(i)
                .copied()
                .unwrap_or(0);
            e.sample(
                "glance_cache_authorization_seconds_bucket",
                &[("le", &bound.to_string())],
                cumulative,
            )?;
        }
        let count = self.authorization_seconds.count();
        e.sample(
            "glance_cache_authorization_seconds_bucket",
            &[("le", "+Inf")],
            count,
        )?;
        e.sample_f64(
            "glance_cache_authorization_seconds_sum",
            &[],
            self.authorization_seconds.sum_micros as f64 / 1e6,
        )?;
        e.sample("glance_cache_authorization_seconds_count", &[], count)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_has_help_type_and_samples() {
        let s = Snapshot {
            hits: 2,
            range_hits: 3,
            integrity_failures_scrub: 5,
            hit_verifications: 6,
            fill_failures_local: 4,
            prefetch_failures: 1,
            remote_events: vec![0, 0, 0, 0, 7],
            cache_size_bytes: Some(9),
            cache_entries: Some(1),
            cache_max_size_bytes: Some(100),
            authorization_seconds: Histogram {
                counts: vec![0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                sum_micros: 20_000_000,
            },
            ..Snapshot::default()
        };
        let text = s.to_string();
        assert!(text.ends_with('\n'));
        let mut families = 0;
        let mut lines = text.lines().peekable();
        while let Some(help) = lines.next() {
            let name = help
                .strip_prefix("# HELP ")
                .and_then(|h| h.split(' ').next())
                .unwrap_or_else(|| panic!("expected HELP, got {help:?}"));
            let ty = lines.next().unwrap();
            assert!(
                ty == format!("# TYPE {name} counter")
                    || ty == format!("# TYPE {name} gauge")
                    || ty == format!("# TYPE {name} histogram")
            );
            assert_eq!(name.ends_with("_total"), ty.ends_with("counter"), "{name}");
            assert_eq!(
                name.ends_with("_seconds"),
                ty.ends_with("histogram"),
                "{name}"
            );
            let mut samples = 0;
            while lines.peek().is_some_and(|l| !l.starts_with('#')) {
                let line = lines.next().unwrap();
                assert!(line.starts_with(name), "{line}");
                samples += 1;
            }
            assert!(samples > 0, "{name}");
            families += 1;
        }
        assert_eq!(families, 22);
        assert!(text.contains("\nglance_cache_remote_events_total{event=\"peer_stream\"} 7\n"));
        assert!(text.contains("\nglance_cache_remote_events_total{event=\"pruned\"} 0\n"));
        assert!(text.contains("\nglance_cache_hits_total 2\n"));
        assert!(text.contains("\nglance_cache_range_hits_total 3\n"));
        assert!(text.contains("\nglance_cache_integrity_failures_total{found_by=\"scrub\"} 5\n"));
        assert!(text.contains("\nglance_cache_hit_verifications_total 6\n"));
        assert!(text.contains("\nglance_cache_fill_failures_total{reason=\"local\"} 4\n"));
        assert!(text.contains("\nglance_cache_prefetches_total{result=\"failure\"} 1\n"));
        assert!(text.contains("\nglance_cache_size_bytes 9\n"));
        assert!(text.contains("\nglance_cache_max_size_bytes 100\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_bucket{le=\"0.005\"} 0\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_bucket{le=\"0.01\"} 2\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_bucket{le=\"10\"} 2\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_sum 20\n"));
        assert!(text.contains("\nglance_cache_authorization_seconds_count 3\n"));
    }

    #[test]
    fn store_gauges_are_left_out_when_not_sampled() {
        let text = Snapshot::default().to_string();
        assert!(!text.contains("glance_cache_size_bytes"));
        assert!(!text.contains("glance_cache_entries"));
    }
}
