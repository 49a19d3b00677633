//! [`CacheManageLayer`]: Glance's cache management API, answered by the proxy.
//!
//! Operators manage each node's cache exactly as with Glance, whether or not
//! the upstream Glance has a cache of its own:
//!
//! | request | answer |
//! |---|---|
//! | `GET /v2/cache` | 200 `{"cached_images": [...], "queued_images": [...]}` |
//! | `PUT /v2/cache/{id}` | 202; queued on disk and cached at once by the prefetch workers |
//! | `DELETE /v2/cache/{id}` | 204 |
//! | `DELETE /v2/cache` (`x-image-cache-clear-target`: `cache`, `queue` or none) | 204 |
//! | `POST /v2/cache/clean` | 200 |
//! | `POST /v2/cache/prune` | 200 `{"total_files_pruned": n, "total_bytes_pruned": b}` |
//! | `GET /v2/cache/nodes/{id}` | 409 (no central node registry) |
//! | `/v2/cached_images[/{id}]`, `/v2/queued_images[/{id}]` | the legacy API, 200 JSON |
//! | `GET /versions`, `GET /` | the upstream's document with the cache API versions (v2.14–v2.18) merged in |
//!
//! Wrong methods get 405 with `Allow`; callers are authorized by
//! [`ManagementAuth`](crate::auth::manage::ManagementAuth) with Glance's
//! policy names; a disabled cache answers Glance's 404. Everything else goes
//! to the inner service, normally a [`CacheLayer`](crate::CacheLayer).
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::{BodyExt, Full};
//! use glance_cache::auth::manage::ManagementAuth;
//! use glance_cache::store::CacheStore;
//! use glance_cache::{CacheLayer, CacheManageLayer, GlanceCache, RequestBody};
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let dir = tempfile::tempdir()?;
//! let cache = GlanceCache::builder(CacheStore::builder(dir.path()).open().await?).build();
//! let upstream = service_fn(|_req: Request<RequestBody>| async {
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{}"))))
//! });
//! let auth = ManagementAuth::static_tokens(["s3cret"]);
//! let svc = ServiceBuilder::new()
//!     .layer(CacheManageLayer::new(cache.clone(), auth))
//!     .layer(CacheLayer::new(cache))
//!     .service(upstream);
//! let list = svc
//!     .oneshot(Request::get("/v2/cache").header("x-auth-token", "s3cret").body(Full::default())?)
//!     .await?;
//! assert_eq!(list.status(), 200);
//! let doc = list.into_body().collect().await?.to_bytes();
//! assert_eq!(doc, r#"{"cached_images":[],"queued_images":[]}"#);
//! # Ok(()) }
//! ```

mod body;
mod future;
mod handlers;
mod layer;
mod respond;
mod routes;
mod service;
mod versions;

pub use body::ManageBody;
pub use future::ResponseFuture;
pub use layer::CacheManageLayer;
pub use service::CacheManage;
