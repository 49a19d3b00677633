//! [`RequestIdLayer`]: Glance's `x-openstack-request-id` on every response,
//! and one log line per request.
//!
//! Glance adds `x-openstack-request-id` to every response. In
//! front of it, the proxy must too, also on the answers the upstream never
//! saw (a `502` for a dead upstream, a management `401`, a hit). For each
//! request the layer picks an id with Glance's rules
//! (`crate::headers::request_id`):
//!
//! * the client's `X-Openstack-Request-ID`, with `req-` prepended if it
//!   lacks it, when the result is at most 64 printable ASCII characters;
//! * otherwise a new `req-<uuid4>`.
//!
//! A request without the header gets this id added before it goes on, so
//! the upstream Glance (which adopts a client's id), the cache and the
//! logs all use the same one. A client's header is passed on untouched.
//!
//! On the way back, an id the inner service set (the upstream's, or the
//! cache's own on a hit) is kept; a response without one gets the chosen id.
//!
//! # Logs
//!
//! Everything logged while the request is handled, its response body
//! included, is inside a `request` span with the fields `request_id`,
//! `method`, `path` and `client` (the peer address, when
//! [`ClientAddr`](crate::server::ClientAddr) is in the request's
//! extensions). When the response body has been sent, or the client went
//! away, one line is logged at `info` (`warn` if the body failed) with
//! `status`, `bytes` (body bytes sent), `head_ms` (time to the response
//! head), `duration_ms` and, if the inner service chose another id,
//! `response_request_id`.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use glance_cache::RequestIdLayer;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! let service = ServiceBuilder::new()
//!     .layer(RequestIdLayer::new())
//!     .service(service_fn(|req: Request<Full<Bytes>>| async move {
//!         // The inner service sees the id the response will carry.
//!         assert!(req.headers().contains_key("x-openstack-request-id"));
//!         let mut resp = Response::new(Full::<Bytes>::default());
//!         *resp.status_mut() = StatusCode::BAD_GATEWAY; // e.g. a dead upstream
//!         Ok::<_, Infallible>(resp)
//!     }));
//!
//! // A client's id is echoed, with Glance's prefix.
//! let req = Request::get("/v2/images")
//!     .header("x-openstack-request-id", "abc-123")
//!     .body(Full::default())?;
//! let resp = service.clone().oneshot(req).await?;
//! assert_eq!(resp.headers()["x-openstack-request-id"], "req-abc-123");
//!
//! // Otherwise a new one.
//! let resp = service.oneshot(Request::get("/v2/images").body(Full::default())?).await?;
//! let id = resp.headers()["x-openstack-request-id"].to_str()?;
//! assert!(id.starts_with("req-") && id.len() == 40);
//! # Ok(()) }
//! ```

mod body;
mod future;
mod layer;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::RequestIdLayer;
pub use service::RequestId;

#[cfg(test)]
mod tests;
