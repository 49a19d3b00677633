//! [`ReverseProxy`]: the service, its configuration and its builder.

use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{Authority, Scheme};
use http::{Extensions, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use tower::Service;

use super::body::{ProxyBody, UploadBody, UploadProgress};
use super::future::{error_response, RequestInfo, ResponseFuture};
use super::headers::add_forwarded;
use crate::headers::remove_hop_by_hop;
use crate::server::{ClientAddr, TlsConnection};
use crate::tls::{ClientTls, TlsError};
use crate::versioning::forwarded_path;
use crate::BoxError;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-stream receive window on HTTP/2 upstream connections.
const H2_STREAM_WINDOW: u32 = 1 << 20;
/// Receive window of a whole HTTP/2 upstream connection: 128 streams' worth.
const H2_CONNECTION_WINDOW: u32 = 128 << 20;

/// Why an upstream URI was refused by [`ReverseProxy::try_new`].
#[derive(Debug, thiserror::Error)]
pub enum UpstreamUriError {
    /// The URI is relative (`glance:9292` or `/v2`).
    #[error("upstream URI {uri}: not absolute; expected http://host:port[/prefix]")]
    NotAbsolute {
        /// The URI as given.
        uri: Uri,
    },
    /// The scheme is neither `http` nor `https`.
    #[error("upstream URI {uri}: unsupported scheme {scheme:?}; expected http or https")]
    UnsupportedScheme {
        /// The URI as given.
        uri: Uri,
        /// Its scheme.
        scheme: String,
    },
    /// The authority has no host, or carries `user:password@`.
    #[error("upstream URI {uri}: expected a plain host[:port] authority")]
    BadAuthority {
        /// The URI as given.
        uri: Uri,
    },
    /// The URI has a query string, which would have nowhere to go.
    #[error("upstream URI {uri}: a query string is not allowed")]
    Query {
        /// The URI as given.
        uri: Uri,
    },
}

/// Configuration shared by all clones of a [`ReverseProxy`].
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub(crate) upstream: Uri,
    /// `scheme://authority[/prefix]`, for messages.
    pub(crate) display: String,
    scheme: Scheme,
    authority: Authority,
    /// The upstream URI's path without its trailing `/` ("" for none).
    prefix: String,
    /// `Host` sent when the client sent none.
    host: HeaderValue,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pool_idle_timeout: Duration,
    /// How upstream certificates are checked (`https` upstreams).
    tls: Arc<ClientConfig>,
}

impl Config {
    /// The upstream URI for a request URI: base + (rewritten) path + query.
    fn target(&self, uri: &Uri) -> Option<Uri> {
        let path = uri.path();
        if !path.starts_with('/') {
            return None;
        }
        let path = forwarded_path(path);
        let query = uri.query();
        let mut target = String::with_capacity(
            self.prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        target.push_str(&self.prefix);
        target.push_str(&path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(target)
            .build()
            .ok()
    }
}

/// A [`Service`] that forwards every request to one upstream Glance.
///
/// Bodies stream both ways with backpressure; failures become `502` and
/// `504` responses, so the error type is [`Infallible`]. Cloning is cheap:
/// clones share the connection pool.
///
/// `B` is the request body type; any `Body<Data = Bytes>` that is `Send`
/// works (`hyper::body::Incoming`, `Full<Bytes>`, a middleware's own body).
///
/// See the [module docs](super) for the rules it applies and an example.
pub struct ReverseProxy<B> {
    client: Client<HttpsConnector<HttpConnector>, UploadBody<B>>,
    config: Arc<Config>,
    _body: PhantomData<fn(B)>,
}

impl<B> Clone for ReverseProxy<B> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            config: Arc::clone(&self.config),
            _body: PhantomData,
        }
    }
}

impl<B> fmt::Debug for ReverseProxy<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReverseProxy")
            .field("upstream", &self.config.upstream)
            .field("connect_timeout", &self.config.connect_timeout)
            .field("response_timeout", &self.config.response_timeout)
            .field("idle_timeout", &self.config.idle_timeout)
            .field("pool_idle_timeout", &self.config.pool_idle_timeout)
            .finish()
    }
}

impl<B> ReverseProxy<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// A proxy to `upstream` (`http://host:port[/prefix]`).
    ///
    /// # Panics
    ///
    /// When the URI is not an absolute `http` URI with a host; use
    /// [`try_new`](Self::try_new) for URIs that come from configuration.
    pub fn new(upstream: Uri) -> Self {
        match Self::try_new(upstream) {
            Ok(proxy) => proxy,
            Err(e) => panic!("ReverseProxy::new: {e}"),
        }
    }

    /// A proxy to `upstream`, or why that URI cannot be one.
    pub fn try_new(upstream: Uri) -> Result<Self, UpstreamUriError> {
        Self::try_new_with_tls(upstream, None)
    }

    /// [`try_new`](Self::try_new) with a TLS client configuration built
    /// beforehand (`None`: the system's trust store for an https upstream),
    /// for clients of several nodes that share one, so that none of them
    /// reads certificate files when it is made.
    pub(crate) fn try_new_with_tls(
        upstream: Uri,
        tls: Option<Arc<ClientConfig>>,
    ) -> Result<Self, UpstreamUriError> {
        let (Some(scheme), Some(authority)) = (upstream.scheme(), upstream.authority()) else {
            return Err(UpstreamUriError::NotAbsolute { uri: upstream });
        };
        if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
            let scheme = scheme.to_string();
            return Err(UpstreamUriError::UnsupportedScheme {
                uri: upstream,
                scheme,
            });
        }
        if authority.host().is_empty() || authority.as_str().contains('@') {
            return Err(UpstreamUriError::BadAuthority { uri: upstream });
        }
        if upstream.query().is_some() {
            return Err(UpstreamUriError::Query { uri: upstream });
        }
        let Ok(host) = HeaderValue::from_str(authority.as_str()) else {
            return Err(UpstreamUriError::BadAuthority { uri: upstream });
        };
        let prefix = upstream.path().trim_end_matches('/').to_owned();
        // An https upstream checks certificates against the system's trust
        // store until `with_tls` says otherwise; plain http needs no roots.
        // A machine without a usable system store still starts: `with_tls`
        // may bring a CA bundle, and without one every connection fails its
        // handshake with a 502 that says why.
        let tls = tls.unwrap_or_else(|| {
            Arc::new(if *scheme == Scheme::HTTPS {
                ClientTls::new().build().unwrap_or_else(|e| {
                    tracing::debug!(error = %e, "no system trust store for the https upstream");
                    ClientTls::no_roots()
                })
            } else {
                ClientTls::no_roots()
            })
        });
        let config = Config {
            tls,
            display: format!("{scheme}://{authority}{prefix}"),
            scheme: scheme.clone(),
            authority: authority.clone(),
            prefix,
            host,
            upstream,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            pool_idle_timeout: DEFAULT_POOL_IDLE_TIMEOUT,
        };
        Ok(Self {
            client: build_client(&config),
            config: Arc::new(config),
            _body: PhantomData,
        })
    }

    /// The upstream base URI.
    pub fn upstream(&self) -> &Uri {
        &self.config.upstream
    }

    /// How long to wait for a TCP connection to the upstream before
    /// answering `502` (default 5 s).
    pub fn with_connect_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|c| c.connect_timeout = timeout)
    }

    /// How long to wait for the upstream's response headers before
    /// answering `504` (default 60 s).
    ///
    /// The clock starts when the request body last made progress, so a long
    /// upload is not cut off while its bytes still flow; a body that stalls
    /// for this long ends the request with `504` too.
    pub fn with_response_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).response_timeout = timeout;
        self
    }

    /// How long the upstream may send no response body data before the
    /// body ends with an [`IdleTimeout`](super::IdleTimeout) error
    /// (default 60 s). Time spent waiting for a slow *client* does not count.
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.config).idle_timeout = timeout;
        self
    }

    /// How long an unused pooled upstream connection is kept (default 30 s).
    pub fn with_pool_idle_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|c| c.pool_idle_timeout = timeout)
    }

    /// How an `https` upstream's certificate is checked, and the client
    /// certificate shown to it (default: the system's trust store, none).
    /// HTTP/2 is used when the upstream offers it through ALPN; connections
    /// are pooled either way. An `insecure` setting is logged as a warning.
    ///
    /// A certificate the proxy does not trust ends the request with `502`,
    /// and the reason ("invalid peer certificate: UnknownIssuer") is logged.
    ///
    /// # Errors
    /// The files named by `tls` cannot be used.
    ///
    /// ```no_run
    /// use glance_cache::reverse_proxy::ReverseProxy;
    /// use glance_cache::tls::ClientTls;
    /// use glance_cache::RequestBody;
    ///
    /// let proxy = ReverseProxy::<RequestBody>::new("https://glance.internal:9292".parse().unwrap())
    ///     .with_tls(ClientTls::new().with_ca_file("/etc/glance/ca.pem"))
    ///     .expect("a readable CA bundle");
    /// # drop(proxy);
    /// ```
    pub fn with_tls(self, tls: ClientTls) -> Result<Self, TlsError> {
        let config = Arc::new(tls.build()?);
        if tls.is_insecure() && self.config.scheme == Scheme::HTTPS {
            tracing::warn!(
                upstream = %self.config.display,
                "upstream certificates are NOT checked (insecure): anyone on the path can \
                 read and change image data"
            );
        }
        Ok(self.reconfigure(|c| c.tls = config))
    }

    /// Changes a client setting: the client (and its pool) is rebuilt, so
    /// this clone no longer shares connections with earlier clones.
    fn reconfigure(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(Arc::make_mut(&mut self.config));
        self.client = build_client(&self.config);
        self
    }
}

/// The pooled client: HTTP/1.1, or HTTP/2 when a TLS upstream offers it;
/// no redirects, no decompression.
fn build_client<B>(config: &Config) -> Client<HttpsConnector<HttpConnector>, UploadBody<B>>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    connector.set_keepalive(Some(Duration::from_secs(60)));
    connector.enforce_http(false);
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config((*config.tls).clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(connector);
    Client::builder(TokioExecutor::new())
        // HTTP/2 multiplexes every request on one connection, whose window
        // only refills as responses are read: a client that stops reading a
        // relayed response holds its stream's share. A connection window of
        // many streams' worth (and client_idle_timeout on the listener) keeps
        // a few stalled clients from freezing fills and probes.
        .http2_initial_stream_window_size(H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(H2_CONNECTION_WINDOW)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(config.pool_idle_timeout)
        // hyper reads upstream bodies into an adaptive buffer (8 KiB
        // doubling on every full read); let it grow to 1 MiB so large image
        // bodies move in large frames.
        .http1_max_buf_size(1 << 20)
        .build(connector)
}

impl<B> Service<Request<B>> for ReverseProxy<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    #[inline]
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let Some(target) = self.config.target(&parts.uri) else {
            tracing::warn!(
                method = %parts.method,
                uri = %parts.uri,
                "request target cannot be forwarded; answering 400"
            );
            // A CONNECT (authority-form target) or an absolute URI the
            // proxy will not follow: answered, and the connection closed, so
            // that nothing else is tunnelled or pipelined after it.
            let mut response = error_response(
                StatusCode::BAD_REQUEST,
                "The request target cannot be forwarded to the image service.",
            );
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            return ResponseFuture::ready(response);
        };
        let client = parts.extensions.get::<ClientAddr>().map(|a| a.0);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());

        // The Host the client used: its header, or the authority of an
        // HTTP/2 or absolute-form request.
        let host = parts.headers.get(HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        remove_hop_by_hop(&mut parts.headers);
        let upstream_host = host.clone().unwrap_or_else(|| self.config.host.clone());
        parts.headers.insert(HOST, upstream_host);
        let https = parts.extensions.get::<TlsConnection>().is_some();
        add_forwarded(&mut parts.headers, client, host.as_ref(), https);

        parts.uri = target;
        parts.version = Version::HTTP_11;
        parts.extensions = Extensions::new();

        let progress = (!body.is_end_stream()).then(|| Arc::new(UploadProgress::new()));
        let body = UploadBody::new(body, progress.clone());
        let future = self.client.request(Request::from_parts(parts, body));
        let info = RequestInfo::new(method, uri, Arc::clone(&self.config), progress);
        ResponseFuture::new(future, info)
    }
}
