//! A generic reverse proxy to one upstream Glance, as a [`tower::Service`].
//!
//! [`ReverseProxy`] forwards every request to one upstream base URI
//! (`http://host:port[/prefix]` or `https://...`) over a pooled client
//! (HTTP/1.1, or HTTP/2 when a TLS upstream offers it through ALPN; see
//! [`ReverseProxy::with_tls`]) and streams
//! both bodies frame by frame, with backpressure: memory per request is a
//! few frames, whatever the image size. It never follows redirects and never
//! decompresses.
//!
//! # What it changes on the way
//!
//! * **Path:** the upstream prefix, then the request's path as received (no
//!   decoding or normalisation of `%2e` or `..`), then its query string byte
//!   for byte. A leading `/v2.N` segment (N = 0..=18) is forwarded as `/v2`:
//!   a non-caching upstream answers `300` for `v2.14`, `v2.16` and `v2.18`.
//!   `/v2/...`, `/v1/...`, `/versions`, `/` and paths with a version token
//!   Glance does not know (`/v2.05/...`) are unchanged.
//! * **Headers:** hop-by-hop headers (`Connection`, `Keep-Alive`,
//!   `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`,
//!   `Proxy-Authenticate`, `Proxy-Authorization`, and every header named in
//!   `Connection`) are removed in both directions, as is `Expect` (our own
//!   server answers `100 Continue`). The client's **`Host` is kept**, because
//!   Glance builds the links of its versions document from it; without one,
//!   the upstream's authority is sent. The client's address
//!   ([`ClientAddr`](crate::server::ClientAddr), inserted by [`crate::server::serve`]) is appended to
//!   `X-Forwarded-For`; `X-Forwarded-Proto: http` and `X-Forwarded-Host`
//!   (the original `Host`) are set unless present. `Content-Length` is kept,
//!   so a sized upload stays sized and a chunked one stays chunked.
//!
//! # Failures are responses
//!
//! The service never fails (`Error = Infallible`). A refused or timed out
//! connection, a DNS failure, or an upstream certificate that is not
//! trusted becomes `502 Bad Gateway`; no response
//! headers within the response timeout becomes `504 Gateway Timeout`. Both
//! have a plain-text body in the style of Glance, for example:
//!
//! ```text
//! 502 Bad Gateway
//!
//! The upstream image service at http://127.0.0.1:9292 could not be reached: connection refused
//! ```
//!
//! Once the headers are through, a response body that stalls for longer than
//! the idle timeout ends with an [`IdleTimeout`] error, so the client sees a
//! truncated response rather than a hang. Each failure is logged at `warn`
//! with the method, path and cause.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use glance_cache::reverse_proxy::{ReverseProxy, UpstreamUriError};
//! use http::Request;
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let proxy = ReverseProxy::<Full<Bytes>>::new("http://127.0.0.1:9292".parse().unwrap())
//!     .with_connect_timeout(Duration::from_secs(2))
//!     .with_response_timeout(Duration::from_secs(30))
//!     .with_idle_timeout(Duration::from_secs(30));
//! assert_eq!(proxy.upstream().port_u16(), Some(9292));
//!
//! // Other layers (a cache, a trace layer, ...) go in front of it.
//! let service = ServiceBuilder::new()
//!     .map_request(|req: Request<Full<Bytes>>| req)
//!     .service(proxy);
//! # let _ = service;
//!
//! // URIs from configuration are checked without panicking.
//! let err = ReverseProxy::<Full<Bytes>>::try_new("ftp://glance:9292".parse().unwrap());
//! assert!(matches!(err, Err(UpstreamUriError::UnsupportedScheme { .. })));
//! # }
//! ```
//!
//! Serving it (this part needs a network, so it is only compiled):
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use glance_cache::reverse_proxy::ReverseProxy;
//! use glance_cache::server::{serve, shutdown_signal};
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let proxy = ReverseProxy::new("http://127.0.0.1:9292".parse().unwrap());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9293").await?;
//! serve(listener, proxy, shutdown_signal(), Duration::from_secs(30)).await
//! # }
//! ```

mod body;
mod future;
mod headers;
mod service;

#[cfg(test)]
mod tests;

pub use body::{IdleTimeout, ProxyBody};
pub use future::ResponseFuture;
pub use service::{ReverseProxy, UpstreamUriError};
