//! Prometheus metrics of a cache: hits, misses, bytes, fills, evictions.
//!
//! Every cache ([`GlanceCache`](crate::GlanceCache)) carries one
//! [`Metrics`]: its layers, fills, pruning and prefetch workers count into
//! them, so a layer used in a custom stack is measured without any wiring,
//! and two caches (or two tests) never mix their numbers. Counting is a few
//! relaxed atomic additions.
//!
//! [`GlanceCache::metrics_snapshot`](crate::GlanceCache::metrics_snapshot)
//! takes a [`Snapshot`] of the counters plus the cache size and entry count;
//! its [`Display`](std::fmt::Display) is the Prometheus text exposition
//! format (version 0.0.4, served with [`CONTENT_TYPE`]):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `glance_cache_hits_total` | counter | image downloads answered from a cached file |
//! | `glance_cache_misses_total` | counter | image downloads answered by the upstream or by a running fill |
//! | `glance_cache_range_hits_total` | counter | single-range requests answered from a cached file or a running fill (not in `hits`) |
//! | `glance_cache_range_misses_total` | counter | single-range requests for images not cached, sent upstream (not in `misses`) |
//! | `glance_cache_hit_authorization_refusals_total` | counter | downloads of cached or caching images the upstream did not authorize |
//! | `glance_cache_hit_bytes_total` | counter | image bytes sent from cached files |
//! | `glance_cache_upstream_bytes_total` | counter | image bytes received from the upstream by fills |
//! | `glance_cache_fills_in_flight` | gauge | fills running now |
//! | `glance_cache_fills_committed_total` | counter | fills verified and committed to the cache |
//! | `glance_cache_fill_failures_total{reason}` | counter | failed fills; `reason` is `upstream`, `verification` or `local` |
//! | `glance_cache_evictions_total` | counter | cached images removed by pruning |
//! | `glance_cache_evicted_bytes_total` | counter | bytes those images held |
//! | `glance_cache_prefetches_total{result}` | counter | prefetch jobs; `result` is `success` or `failure` |
//! | `glance_cache_integrity_failures_total{found_by}` | counter | cached files found corrupt and quarantined; `found_by` is `hit` or `scrub` |
//! | `glance_cache_scrubbed_bytes_total` | counter | bytes hashed again by the background scrubber |
//! | `glance_cache_hit_verifications_total` | counter | cached files hashed again for their hits (changed since verified, or never verified); concurrent hits of one file share one |
//! | `glance_cache_size_bytes` | gauge | the cache size (image files in the cache directory) |
//! | `glance_cache_entries` | gauge | committed entries in the index |
//!
//! # Example
//!
//! One miss, then one hit, through a [`Stack`](crate::Stack) in front of an
//! in-memory "upstream":
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use glance_cache::{auth::HitAuthorization, store::CacheStore, GlanceCache, RequestBody, Stack};
//! use tower::{service_fn, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let store = CacheStore::builder(dir.path()).with_min_free_disk(0).open().await?;
//! let cache = GlanceCache::builder(store).hit_authorization(HitAuthorization::None).build();
//! let upstream = service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("content-md5", "0fc85dbea99575776296eaaa1d314eb1")
//!             .body(Full::new(Bytes::from_static(b"IMAGEDATA")))
//!             .unwrap(),
//!     )
//! });
//! let stack = Stack::builder(&cache).upstream(upstream).build();
//!
//! let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b")?;
//! let url = format!("/v2/images/{id}/file");
//! let miss = stack.clone().oneshot(Request::get(&url).body(Full::<Bytes>::default())?).await?;
//! miss.into_body().collect().await?;
//! cache.settled(&id).await; // the fill has committed
//! let hit = stack.oneshot(Request::get(&url).body(Full::<Bytes>::default())?).await?;
//! hit.into_body().collect().await?;
//!
//! let snapshot = cache.metrics_snapshot().await;
//! assert_eq!((snapshot.hits, snapshot.misses, snapshot.hit_bytes), (1, 1, 9));
//! let text = snapshot.to_string();
//! assert!(text.contains("# TYPE glance_cache_hits_total counter\nglance_cache_hits_total 1\n"));
//! assert!(text.contains("glance_cache_fill_failures_total{reason=\"upstream\"} 0\n"));
//! assert!(text.contains("glance_cache_entries 1\n"));
//! # Ok(()) }
//! ```

mod counters;
mod exposition;
mod snapshot;

pub use counters::{FillFailure, IntegrityCheck, Metrics, RemoteEvent};
pub use exposition::CONTENT_TYPE;
pub use snapshot::{Histogram, Snapshot, AUTHORIZATION_BUCKETS};
