//! Prometheus metrics of a cache: hits, misses, bytes, fills, evictions.
//!
//! Every [`CacheStore`](crate::store::CacheStore) carries one [`Metrics`]
//! ([`CacheStore::metrics`](crate::store::CacheStore::metrics)): the cache
//! middleware, its fills, pruning and the prefetch workers count into the
//! metrics of the store they work on, so a layer used in a custom stack is
//! measured without any wiring, and two stores (or two tests) never mix
//! their numbers. Counting is a few relaxed atomic additions.
//!
//! [`sample`] takes a [`Snapshot`] of the counters plus the cache size and
//! entry count read from the store; its [`Display`](std::fmt::Display) is
//! the Prometheus text exposition format (version 0.0.4, served with
//! [`CONTENT_TYPE`]):
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `glance_cache_hits_total` | counter | image downloads answered from a cached file |
//! | `glance_cache_misses_total` | counter | image downloads answered by the upstream or by a running fill |
//! | `glance_cache_hit_authorization_refusals_total` | counter | downloads of cached or caching images the upstream did not authorize |
//! | `glance_cache_hit_bytes_total` | counter | image bytes sent from cached files |
//! | `glance_cache_upstream_bytes_total` | counter | image bytes received from the upstream by fills |
//! | `glance_cache_fills_in_flight` | gauge | fills running now |
//! | `glance_cache_fills_committed_total` | counter | fills verified and committed to the cache |
//! | `glance_cache_fill_failures_total{reason}` | counter | failed fills; `reason` is `upstream`, `verification` or `local` |
//! | `glance_cache_evictions_total` | counter | cached images removed by pruning |
//! | `glance_cache_evicted_bytes_total` | counter | bytes those images held |
//! | `glance_cache_prefetches_total{result}` | counter | prefetch jobs; `result` is `success` or `failure` |
//! | `glance_cache_size_bytes` | gauge | the cache size (image files in the cache directory) |
//! | `glance_cache_entries` | gauge | committed entries in the index |
//!
//! # Example
//!
//! One miss, then one hit, through a [`CacheLayer`](crate::CacheLayer) in
//! front of an in-memory "upstream":
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use glance_cache::auth::HitAuthorization;
//! use glance_cache::layer::cache::{CacheLayer, RequestBody};
//! use glance_cache::metrics;
//! use glance_cache::store::CacheStore;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let store = CacheStore::builder(dir.path()).with_min_free_disk(0).open().await?;
//! let upstream = service_fn(|_req: Request<RequestBody<Full<Bytes>>>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("content-md5", "0fc85dbea99575776296eaaa1d314eb1")
//!             .body(Full::new(Bytes::from_static(b"IMAGEDATA")))
//!             .unwrap(),
//!     )
//! });
//! let cache = ServiceBuilder::new()
//!     .layer(CacheLayer::new(store.clone()).with_hit_authorization(HitAuthorization::None))
//!     .service(upstream);
//!
//! let url = "/v2/images/6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b/file";
//! let miss = cache.clone().oneshot(Request::get(url).body(Full::default())?).await?;
//! miss.into_body().collect().await?;
//! // Wait (bounded) for the fill to finish; a request meanwhile would follow it.
//! for _ in 0..500 {
//!     if store.metrics().snapshot().fills_in_flight == 0 { break }
//!     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! }
//! let hit = cache.oneshot(Request::get(url).body(Full::default())?).await?;
//! hit.into_body().collect().await?;
//!
//! let snapshot = metrics::sample(&store).await;
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

pub use counters::{FillFailure, Metrics};
pub use exposition::CONTENT_TYPE;
pub use snapshot::{sample, Snapshot};
