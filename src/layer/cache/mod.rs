//! [`CacheLayer`]: serve Glance image downloads from a local cache.
//!
//! Wraps a service that reaches the image API (normally
//! [`ReverseProxy`](crate::reverse_proxy::ReverseProxy)) and handles
//! `GET /v2/images/{id}/file` (also under `/v2.N/` prefixes and media-type
//! versioning) the way Glance's own cache does, and better:
//!
//! * **Hit**: the upstream is asked whether this caller may download the
//!   image ([`crate::auth`]); then the cached file streams with Glance's
//!   hit headers (`Content-Type`, `Content-MD5`, `Content-Length`,
//!   `x-openstack-request-id`). A hit is counted when the last byte is out.
//!   A file that changed since it was verified (or was never verified) is
//!   hashed again while it streams; its last byte waits for the verdict.
//! * **Miss**: the first request goes upstream; a cacheable answer (2xx
//!   other than 204 and 206) starts a fill that streams into the cache
//!   with size, MD5 and multihash (SHA-512) verification, and every
//!   concurrent request for the image follows that one download.
//! * **Range**: a single `bytes=a-b`, `bytes=a-` or `bytes=-n` range of a
//!   cached image, or of one being filled, is answered from the cache with
//!   Glance's `206` or `416` after the same authorization as a hit
//!   ([`GlanceCacheBuilder::serve_ranges`](crate::cache::GlanceCacheBuilder::serve_ranges));
//!   a range of a running fill waits a bounded time for its bytes
//!   ([`GlanceCacheBuilder::range_fill_wait`](crate::cache::GlanceCacheBuilder::range_fill_wait)),
//!   and a range of a file that changed since it was verified (or was
//!   adopted without digests) waits as long for the file's verification
//!   (started then, or under way),
//!   else the upstream answers it; a range with `If-Range` is ignored (the
//!   whole image is sent). Ranges are never stored.
//! * Other ranged requests (several ranges, malformed ones,
//!   `Content-Range`), `HEAD`, other paths and ids that are not canonical
//!   UUIDs pass through untouched and never reach the filesystem.
//! * `DELETE /v2/images/{id}` that the upstream accepts invalidates the
//!   entry ([`GlanceCache::invalidate`](crate::GlanceCache::invalidate)).
//!
//! The inner service takes `Request<`[`RequestBody`](crate::RequestBody)`>`
//! whatever the client's body type. Most programs use the whole
//! [`Stack`](crate::Stack) rather than this layer alone.
//!
//! # Example
//!
//! The layer composes over any service; here an in-memory "upstream":
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use glance_cache::auth::HitAuthorization;
//! use glance_cache::store::CacheStore;
//! use glance_cache::{CacheLayer, GlanceCache, RequestBody};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let store = CacheStore::builder(dir.path()).with_min_free_disk(0).open().await?;
//! let cache = GlanceCache::builder(store)
//!     .hit_authorization(HitAuthorization::None)
//!     .build();
//! let upstream = service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(
//!         Response::builder()
//!             .header("content-md5", "0fc85dbea99575776296eaaa1d314eb1")
//!             .body(Full::new(Bytes::from_static(b"IMAGEDATA")))
//!             .unwrap(),
//!     )
//! });
//! let service = ServiceBuilder::new()
//!     .layer(CacheLayer::new(cache.clone()))
//!     .service(upstream);
//!
//! let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b")?;
//! let url = format!("/v2/images/{id}/file");
//! let miss = service.clone().oneshot(Request::get(&url).body(Full::default())?).await?;
//! assert_eq!(miss.into_body().collect().await?.to_bytes(), "IMAGEDATA");
//! cache.settled(&id).await; // the fill has committed
//! let hit = service.oneshot(Request::get(&url).body(Full::default())?).await?;
//! assert!(hit.body().is_hit());
//! assert_eq!(hit.headers()["content-length"], "9");
//! # Ok(()) }
//! ```

mod body;
mod cluster;
mod download;
mod future;
mod headers;
mod hit;
mod layer;
mod matcher;
mod range;
mod ranged;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::CacheLayer;
pub use service::Cache;
