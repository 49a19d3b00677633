//! [`Metrics`]: the counters, as shared atomics.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::snapshot::{Histogram, AUTHORIZATION_BUCKETS};
use super::Snapshot;

/// Why a fill failed, the `reason` label of `glance_cache_fill_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FillFailure {
    /// The upstream body broke off, errored or was longer than announced.
    Upstream,
    /// The size or the MD5 checksum did not match what the upstream announced.
    Verification,
    /// The local disk failed (write, commit or space).
    Local,
}

impl FillFailure {
    /// Every reason, in the order they are rendered.
    pub const ALL: [FillFailure; 3] = [
        FillFailure::Upstream,
        FillFailure::Verification,
        FillFailure::Local,
    ];

    /// The label value: `upstream`, `verification` or `local`.
    ///
    /// ```
    /// use glance_cache::metrics::FillFailure;
    /// assert_eq!(FillFailure::Verification.as_str(), "verification");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            FillFailure::Upstream => "upstream",
            FillFailure::Verification => "verification",
            FillFailure::Local => "local",
        }
    }

    fn index(self) -> usize {
        match self {
            FillFailure::Upstream => 0,
            FillFailure::Verification => 1,
            FillFailure::Local => 2,
        }
    }
}

/// What found a corrupt cached file, the `found_by` label of
/// `glance_cache_integrity_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegrityCheck {
    /// A hit that hashed the file again while serving it (the file had
    /// changed since it was verified, or had never been verified).
    Hit,
    /// The background scrubber.
    Scrub,
}

impl IntegrityCheck {
    /// Every finder, in the order they are rendered.
    pub const ALL: [IntegrityCheck; 2] = [IntegrityCheck::Hit, IntegrityCheck::Scrub];

    /// The label value: `hit` or `scrub`.
    ///
    /// ```
    /// use glance_cache::metrics::IntegrityCheck;
    /// assert_eq!(IntegrityCheck::Scrub.as_str(), "scrub");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrityCheck::Hit => "hit",
            IntegrityCheck::Scrub => "scrub",
        }
    }

    fn index(self) -> usize {
        match self {
            IntegrityCheck::Hit => 0,
            IntegrityCheck::Scrub => 1,
        }
    }
}

/// What happened with the remote tier, the `event` label of
/// `glance_cache_remote_events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemoteEvent {
    /// A local miss found the image in the remote tier and filled from it.
    Hit,
    /// A committed image was uploaded to the remote tier.
    Upload,
    /// An upload failed (it is retried on the image's next commit).
    UploadFailure,
    /// A miss found another node's fill lease on the image.
    LeaseConflict,
    /// A fill streamed the image from the lease holder node.
    PeerStream,
    /// A remote object failed verification and was deleted.
    Corrupt,
    /// A request to the remote store failed (down, slow, refused credentials).
    Error,
    /// Pruning the remote tier deleted an object.
    Pruned,
}

impl RemoteEvent {
    /// Every event, in the order they are rendered.
    pub const ALL: [RemoteEvent; 8] = [
        RemoteEvent::Hit,
        RemoteEvent::Upload,
        RemoteEvent::UploadFailure,
        RemoteEvent::LeaseConflict,
        RemoteEvent::PeerStream,
        RemoteEvent::Corrupt,
        RemoteEvent::Error,
        RemoteEvent::Pruned,
    ];

    /// The label value.
    ///
    /// ```
    /// use glance_cache::metrics::RemoteEvent;
    /// assert_eq!(RemoteEvent::PeerStream.as_str(), "peer_stream");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            RemoteEvent::Hit => "hit",
            RemoteEvent::Upload => "upload",
            RemoteEvent::UploadFailure => "upload_failure",
            RemoteEvent::LeaseConflict => "lease_conflict",
            RemoteEvent::PeerStream => "peer_stream",
            RemoteEvent::Corrupt => "corrupt",
            RemoteEvent::Error => "error",
            RemoteEvent::Pruned => "pruned",
        }
    }

    pub(crate) fn index(self) -> usize {
        RemoteEvent::ALL
            .iter()
            .position(|e| *e == self)
            .unwrap_or_default()
    }
}

impl fmt::Display for FillFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counters of one cache (see the [module docs](super)).
///
/// Cheap to clone: clones share the same counters. The cache counts into
/// them itself; read them with [`snapshot`](Metrics::snapshot) or, with the
/// store's size and entry count, [`GlanceCache::metrics_snapshot`](crate::GlanceCache::metrics_snapshot).
///
/// ```
/// use glance_cache::metrics::Metrics;
/// let metrics = Metrics::new();
/// let snapshot = metrics.snapshot();
/// assert_eq!((snapshot.hits, snapshot.misses), (0, 0));
/// assert_eq!(snapshot.cache_size_bytes, None); // not sampled from a store
/// ```
#[derive(Clone, Default)]
pub struct Metrics {
    inner: Arc<Counters>,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    range_hits: AtomicU64,
    range_misses: AtomicU64,
    hit_refusals: AtomicU64,
    hit_bytes: AtomicU64,
    upstream_bytes: AtomicU64,
    fills_in_flight: AtomicU64,
    fills_committed: AtomicU64,
    fill_failures: [AtomicU64; 3],
    evictions: AtomicU64,
    evicted_bytes: AtomicU64,
    prefetch_successes: AtomicU64,
    prefetch_failures: AtomicU64,
    integrity_failures: [AtomicU64; 2],
    scrubbed_bytes: AtomicU64,
    hit_verifications: AtomicU64,
    remote: [AtomicU64; RemoteEvent::ALL.len()],
    remote_bytes: AtomicU64,
    /// Hit authorizations per upper bound of [`AUTHORIZATION_BUCKETS`] (not
    /// cumulative; the last slot is `+Inf`).
    authorization_buckets: [AtomicU64; AUTHORIZATION_BUCKETS.len() + 1],
    authorization_micros: AtomicU64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Metrics {
    /// New counters, all zero.
    pub fn new() -> Self {
        Metrics::default()
    }

    /// The current values of the counters. The store gauges
    /// ([`Snapshot::cache_size_bytes`], [`Snapshot::cache_entries`]) are
    /// `None`; [`GlanceCache::metrics_snapshot`](crate::GlanceCache::metrics_snapshot) fills them in.
    pub fn snapshot(&self) -> Snapshot {
        let c = &*self.inner;
        Snapshot {
            hits: get(&c.hits),
            misses: get(&c.misses),
            range_hits: get(&c.range_hits),
            range_misses: get(&c.range_misses),
            hit_authorization_refusals: get(&c.hit_refusals),
            hit_bytes: get(&c.hit_bytes),
            upstream_bytes: get(&c.upstream_bytes),
            fills_in_flight: get(&c.fills_in_flight),
            fills_committed: get(&c.fills_committed),
            fill_failures_upstream: get(&c.fill_failures[FillFailure::Upstream.index()]),
            fill_failures_verification: get(&c.fill_failures[FillFailure::Verification.index()]),
            fill_failures_local: get(&c.fill_failures[FillFailure::Local.index()]),
            evictions: get(&c.evictions),
            evicted_bytes: get(&c.evicted_bytes),
            prefetch_successes: get(&c.prefetch_successes),
            prefetch_failures: get(&c.prefetch_failures),
            integrity_failures_hit: get(&c.integrity_failures[IntegrityCheck::Hit.index()]),
            integrity_failures_scrub: get(&c.integrity_failures[IntegrityCheck::Scrub.index()]),
            scrubbed_bytes: get(&c.scrubbed_bytes),
            hit_verifications: get(&c.hit_verifications),
            remote_events: c.remote.iter().map(get).collect(),
            remote_bytes: get(&c.remote_bytes),
            cache_size_bytes: None,
            cache_entries: None,
            cache_max_size_bytes: None,
            authorization_seconds: Histogram {
                counts: c.authorization_buckets.iter().map(get).collect(),
                sum_micros: get(&c.authorization_micros),
            },
        }
    }

    /// One hit authorization that asked the upstream, and how long the
    /// round trip took.
    pub(crate) fn authorization(&self, elapsed: std::time::Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = AUTHORIZATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(AUTHORIZATION_BUCKETS.len());
        add(&self.inner.authorization_buckets[slot], 1);
        add(
            &self.inner.authorization_micros,
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
    }

    /// A download answered from a cached file.
    pub(crate) fn hit(&self) {
        add(&self.inner.hits, 1);
    }

    /// A download answered by the upstream or by a running fill.
    pub(crate) fn miss(&self) {
        add(&self.inner.misses, 1);
    }

    /// A single-range request answered from a cached file or a running fill.
    pub(crate) fn range_hit(&self) {
        add(&self.inner.range_hits, 1);
    }

    /// A single-range request for an image not cached: sent upstream.
    pub(crate) fn range_miss(&self) {
        add(&self.inner.range_misses, 1);
    }

    /// A cached file was found corrupt and quarantined.
    pub(crate) fn integrity_failure(&self, found_by: IntegrityCheck) {
        add(&self.inner.integrity_failures[found_by.index()], 1);
    }

    /// The scrubber hashed `n` more bytes.
    pub(crate) fn scrubbed(&self, n: u64) {
        add(&self.inner.scrubbed_bytes, n);
    }

    /// A cached file began to be hashed again for its hits.
    pub(crate) fn hit_verification(&self) {
        add(&self.inner.hit_verifications, 1);
    }

    /// Something happened with the remote tier.
    pub(crate) fn remote(&self, event: RemoteEvent) {
        add(&self.inner.remote[event.index()], 1);
    }

    /// `n` image bytes received from the remote tier by a fill.
    pub(crate) fn remote_bytes(&self, n: u64) {
        add(&self.inner.remote_bytes, n);
    }

    /// A download of a cached or caching image that the upstream refused.
    pub(crate) fn hit_refused(&self) {
        add(&self.inner.hit_refusals, 1);
    }

    /// `n` image bytes read from a cached file for a client.
    pub(crate) fn hit_bytes(&self, n: u64) {
        add(&self.inner.hit_bytes, n);
    }

    /// `n` image bytes received from the upstream by a fill.
    pub(crate) fn upstream_bytes(&self, n: u64) {
        add(&self.inner.upstream_bytes, n);
    }

    /// A fill starts; it counts as in flight until the guard is dropped.
    pub(crate) fn fill_started(&self) -> FillInFlight {
        add(&self.inner.fills_in_flight, 1);
        FillInFlight {
            metrics: self.clone(),
        }
    }

    /// A fill was verified and committed.
    pub(crate) fn fill_committed(&self) {
        add(&self.inner.fills_committed, 1);
    }

    /// A fill failed.
    pub(crate) fn fill_failed(&self, reason: FillFailure) {
        add(&self.inner.fill_failures[reason.index()], 1);
    }

    /// Pruning removed an entry of `bytes` bytes.
    pub(crate) fn evicted(&self, bytes: u64) {
        add(&self.inner.evictions, 1);
        add(&self.inner.evicted_bytes, bytes);
    }

    /// A prefetch job ended.
    pub(crate) fn prefetched(&self, success: bool) {
        if success {
            add(&self.inner.prefetch_successes, 1);
        } else {
            add(&self.inner.prefetch_failures, 1);
        }
    }
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Metrics")
            .field("hits", &s.hits)
            .field("misses", &s.misses)
            .field("fills_in_flight", &s.fills_in_flight)
            .finish_non_exhaustive()
    }
}

/// Counts one fill as in flight while it lives (see [`Metrics::fill_started`]).
#[derive(Debug)]
pub(crate) struct FillInFlight {
    metrics: Metrics,
}

impl Drop for FillInFlight {
    fn drop(&mut self) {
        self.metrics
            .inner
            .fills_in_flight
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_counters() {
        let m = Metrics::new();
        let c = m.clone();
        c.hit();
        c.hit_bytes(9);
        m.miss();
        m.upstream_bytes(10);
        m.hit_refused();
        m.fill_committed();
        m.fill_failed(FillFailure::Verification);
        m.fill_failed(FillFailure::Local);
        m.fill_failed(FillFailure::Local);
        m.evicted(100);
        m.prefetched(true);
        m.prefetched(false);
        m.prefetched(false);
        let s = c.snapshot();
        assert_eq!(
            (s.hits, s.hit_bytes, s.misses, s.upstream_bytes),
            (1, 9, 1, 10)
        );
        assert_eq!(s.hit_authorization_refusals, 1);
        assert_eq!(s.fills_committed, 1);
        assert_eq!(
            (
                s.fill_failures_upstream,
                s.fill_failures_verification,
                s.fill_failures_local
            ),
            (0, 1, 2)
        );
        assert_eq!((s.evictions, s.evicted_bytes), (1, 100));
        assert_eq!((s.prefetch_successes, s.prefetch_failures), (1, 2));
    }

    #[test]
    fn in_flight_follows_the_guards() {
        let m = Metrics::new();
        let a = m.fill_started();
        let b = m.fill_started();
        assert_eq!(m.snapshot().fills_in_flight, 2);
        drop(a);
        assert_eq!(m.snapshot().fills_in_flight, 1);
        drop(b);
        assert_eq!(m.snapshot().fills_in_flight, 0);
    }
}
