//! The admin endpoint on `[proxy] admin_listen` (`host:port`; unset = off):
//!
//! * `GET /metrics`: the cache's metrics in the Prometheus text format
//!   (see `glance_cache::metrics`); without a cache directory, a comment
//!   saying so and no samples.
//! * `GET /healthz`: `200 ok` while the process serves.
//!
//! It has no authentication: bind it to a loopback or management address.
//! It keeps serving until the process exits, so the metrics stay readable
//! while running downloads drain after SIGTERM.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use glance_cache::metrics;
use glance_cache::server;
use glance_cache::tls::ServerTls;
use glance_cache::GlanceCache;
use http::header::{ALLOW, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

/// Unused: the endpoint is never shut down before the process exits.
const GRACE: Duration = Duration::from_secs(1);

/// Binds `listen` (`host:port`, `[v6]:port`; a name is resolved and its
/// first address used) and serves the admin endpoint there in a task of its
/// own. Returns the bound address.
pub(crate) async fn spawn(
    listen: &str,
    cache: Option<GlanceCache>,
    tls: Option<ServerTls>,
) -> anyhow::Result<SocketAddr> {
    let addr = tokio::net::lookup_host(listen)
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .with_context(|| {
            format!("[proxy] admin_listen = {listen:?}: expected host:port, e.g. 127.0.0.1:9293")
        })?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on admin_listen {addr}"))?;
    let local = listener.local_addr().context("admin listener address")?;
    tracing::info!(listen = %local, tls = tls.is_some(), "admin endpoint: GET /metrics, GET /healthz");
    let service = tower::service_fn(move |req: Request<Incoming>| {
        let cache = cache.clone();
        async move { Ok::<_, Infallible>(handle(&req, cache.as_ref()).await) }
    });
    tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        let served = match tls {
            Some(tls) => server::serve_tls(listener, tls, service, forever, GRACE).await,
            None => server::serve(listener, service, forever, GRACE).await,
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "admin endpoint failed");
        }
    });
    Ok(local)
}

async fn handle<B>(req: &Request<B>, cache: Option<&GlanceCache>) -> Response<Full<Bytes>> {
    let readable = req.method() == Method::GET || req.method() == Method::HEAD;
    match req.uri().path() {
        "/metrics" if readable => {
            let text = match cache {
                Some(cache) => cache.metrics_snapshot().await.to_string(),
                None => "# caching is off (image_cache_dir is not set): no cache metrics\n".into(),
            };
            respond(StatusCode::OK, metrics::CONTENT_TYPE, text)
        }
        "/healthz" if readable => respond(StatusCode::OK, "text/plain; charset=utf-8", "ok\n"),
        "/metrics" | "/healthz" => {
            let mut resp = respond(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                "405 Method Not Allowed\n",
            );
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 Not Found\n\nThe admin endpoint serves /metrics and /healthz.\n",
        ),
    }
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use glance_cache_config::Config;
    use http_body_util::BodyExt;

    async fn call(method: Method, path: &str, cache: Option<&GlanceCache>) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        let resp = handle(&req, cache).await;
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn routes() {
        let dir = tempfile::tempdir().unwrap();
        let store = glance_cache::store::CacheStore::builder(dir.path())
            .open()
            .await
            .unwrap();
        let cache = GlanceCache::builder(store).build();
        let (status, text) = call(Method::GET, "/metrics", Some(&cache)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.contains("\nglance_cache_hits_total 0\n"), "{text}");
        assert!(text.contains("\nglance_cache_entries 0\n"), "{text}");
        assert_eq!(
            call(Method::GET, "/healthz", None).await,
            (StatusCode::OK, "ok\n".into())
        );
        let (status, text) = call(Method::GET, "/metrics", None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(text.starts_with("# caching is off"));
        assert_eq!(
            call(Method::POST, "/metrics", None).await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(call(Method::GET, "/", None).await.0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn listen_option_is_optional() {
        let listen = |text: &str| {
            Config::from_sources(&[("a.conf", text)])
                .unwrap()
                .config
                .proxy
                .admin_listen
        };
        assert_eq!(listen("[proxy]\n"), None);
        assert_eq!(listen("[proxy]\nadmin_listen =\n"), None);
        assert_eq!(
            listen("[proxy]\nadmin_listen = 127.0.0.1:9293\n").as_deref(),
            Some("127.0.0.1:9293")
        );
    }

    #[tokio::test]
    async fn a_bad_address_is_a_clear_error() {
        let err = spawn("no-port-here", None, None).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "[proxy] admin_listen = \"no-port-here\": expected host:port, e.g. 127.0.0.1:9293"
        );
    }
}
