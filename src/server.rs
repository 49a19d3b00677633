//! Run a tower service as an HTTP server, with graceful shutdown.
//!
//! [`serve`] accepts connections on a [`TcpListener`], speaks HTTP/1.1 and
//! HTTP/2 over cleartext (h2c, detected from the connection preface) or,
//! with [`serve_tls`], over TLS (ALPN), and
//! hands every request to a clone of the service with the peer's
//! [`ClientAddr`] in its extensions. When the `shutdown` future completes it
//! closes the listener, lets in-flight requests and their bodies finish for
//! at most `grace`, then drops whatever is left and returns.
//!
//! # Example
//!
//! ```no_run
//! use std::convert::Infallible;
//! use std::time::Duration;
//!
//! use bytes::Bytes;
//! use glance_cache::server::{serve, shutdown_signal, ClientAddr};
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use hyper::body::Incoming;
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let hello = tower::service_fn(|req: Request<Incoming>| async move {
//!     let peer = req.extensions().get::<ClientAddr>().map(|a| a.0.to_string());
//!     let text = format!("hello {}\n", peer.unwrap_or_default());
//!     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! serve(listener, hello, shutdown_signal(), Duration::from_secs(30)).await
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::{Service, ServiceExt};

use crate::tls::ServerTls;
use crate::BoxError;

mod send_timeout;

use send_timeout::SendTimeout;

/// The address of the peer that sent a request.
///
/// [`serve`] inserts it into every request's extensions;
/// the reverse proxy appends it to `X-Forwarded-For`.
/// Requests without it are forwarded without an `X-Forwarded-For` entry of
/// their own.
///
/// ```
/// use glance_cache::server::ClientAddr;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut()
///     .insert(ClientAddr("192.0.2.7:40000".parse().unwrap()));
/// assert_eq!(req.extensions().get::<ClientAddr>().unwrap().0.port(), 40000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// Marks a request that arrived over TLS.
///
/// [`serve_tls`] inserts it into every request's extensions; the reverse
/// proxy then sends `X-Forwarded-Proto: https`, and the versions document's
/// links use `https`.
///
/// ```
/// use glance_cache::server::TlsConnection;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(TlsConnection);
/// assert!(req.extensions().get::<TlsConnection>().is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsConnection;

/// Pause after a failed `accept` (EMFILE and friends) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `service` on `listener` until `shutdown` completes.
///
/// * Each connection gets TCP_NODELAY and is served as HTTP/1.1 or h2c.
/// * Each request carries [`ClientAddr`] in its extensions.
/// * Accept errors (for example running out of file descriptors) are logged
///   and retried after a short pause; they never end the server.
/// * A service error closes its connection (hyper's behaviour) and is
///   logged; prefer services that answer with an HTTP error response.
/// * When `shutdown` completes, the listener is closed at once (new
///   connections are refused), idle keep-alive connections are closed, and
///   in-flight requests may finish, bodies included, for at most `grace`.
///   Connections still busy after that are dropped.
///
/// Returns `Ok(())` after shutdown; the `Result` leaves room for setup
/// errors.
///
/// See the [module docs](self) for an example.
pub async fn serve<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let options = ServeOptions::new().with_grace(grace);
    serve_with(listener, service, shutdown, options).await
}

/// [`serve`] over TLS: each connection's handshake (with at most
/// [`HANDSHAKE_TIMEOUT`]) uses the configuration `tls` holds when it is
/// accepted, so [`ServerTls::reload`] applies to new connections while those
/// already open keep theirs. ALPN picks HTTP/2 or HTTP/1.1; a failed
/// handshake (an untrusted client certificate, plain HTTP on a TLS port) is
/// logged at debug level and closes only that connection.
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use glance_cache::server::{serve_tls, shutdown_signal};
/// use glance_cache::tls::ServerTls;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use hyper::body::Incoming;
///
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let hello = tower::service_fn(|_req: Request<Incoming>| async move {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello over TLS\n"))))
/// });
/// let tls = ServerTls::builder("proxy.pem", "proxy.key").build()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// serve_tls(listener, tls, hello, shutdown_signal(), Duration::from_secs(30)).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_tls<S, B>(
    listener: TcpListener,
    tls: ServerTls,
    service: S,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let options = ServeOptions::new().with_grace(grace).with_tls(tls);
    serve_with(listener, service, shutdown, options).await
}

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve_with`] serves: the shutdown grace period, how long a client
/// may take no bytes of a response before its connection is closed, and
/// TLS.
///
/// ```
/// use std::time::Duration;
/// use glance_cache::server::ServeOptions;
///
/// let options = ServeOptions::new()
///     .with_grace(Duration::from_secs(30))
///     .with_client_idle_timeout(Duration::from_secs(120));
/// assert_eq!(options.client_idle_timeout(), Some(Duration::from_secs(120)));
/// ```
#[derive(Clone, Debug)]
pub struct ServeOptions {
    grace: Duration,
    client_idle_timeout: Option<Duration>,
    tls: Option<ServerTls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            grace: Duration::from_secs(30),
            client_idle_timeout: Some(DEFAULT_CLIENT_IDLE_TIMEOUT),
            tls: None,
        }
    }
}

/// The default of [`ServeOptions::with_client_idle_timeout`].
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

impl ServeOptions {
    /// A 30 s grace period, a 60 s client idle timeout, plain HTTP.
    ///
    /// ```
    /// assert!(glance_cache::server::ServeOptions::new().client_idle_timeout().is_some());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// How long in-flight requests may finish after shutdown.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = glance_cache::server::ServeOptions::new().with_grace(Duration::ZERO);
    /// # drop(o);
    /// ```
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// A response the client takes no bytes of for this long (it stopped
    /// reading) closes the connection, with a log line; a slow reader that
    /// keeps reading is never cut. Zero turns it off.
    ///
    /// ```
    /// # use std::time::Duration;
    /// let o = glance_cache::server::ServeOptions::new().with_client_idle_timeout(Duration::ZERO);
    /// assert_eq!(o.client_idle_timeout(), None);
    /// ```
    pub fn with_client_idle_timeout(mut self, timeout: Duration) -> Self {
        self.client_idle_timeout = (!timeout.is_zero()).then_some(timeout);
        self
    }

    /// The shutdown grace period.
    ///
    /// ```
    /// # use std::time::Duration;
    /// assert_eq!(glance_cache::server::ServeOptions::new().grace(), Duration::from_secs(30));
    /// ```
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The client idle timeout (`None`: off).
    ///
    /// ```
    /// assert!(glance_cache::server::ServeOptions::new().client_idle_timeout().is_some());
    /// ```
    pub fn client_idle_timeout(&self) -> Option<Duration> {
        self.client_idle_timeout
    }

    /// Serve TLS (see [`serve_tls`]); `None`: plain HTTP.
    ///
    /// ```no_run
    /// # let tls = glance_cache::tls::ServerTls::builder("c.pem", "k.pem").build().unwrap();
    /// let o = glance_cache::server::ServeOptions::new().with_tls(tls);
    /// # drop(o);
    /// ```
    pub fn with_tls(mut self, tls: impl Into<Option<ServerTls>>) -> Self {
        self.tls = tls.into();
        self
    }
}

/// [`serve`] or [`serve_tls`] with every option: see [`ServeOptions`].
///
/// ```no_run
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use bytes::Bytes;
/// use glance_cache::server::{serve_with, shutdown_signal, ServeOptions};
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use hyper::body::Incoming;
///
/// # #[tokio::main]
/// # async fn main() -> std::io::Result<()> {
/// let hello = tower::service_fn(|_req: Request<Incoming>| async move {
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello\n"))))
/// });
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
/// let options = ServeOptions::new().with_client_idle_timeout(Duration::from_secs(120));
/// serve_with(listener, hello, shutdown_signal(), options).await
/// # }
/// ```
pub async fn serve_with<S, B>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
    options: ServeOptions,
) -> std::io::Result<()>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let ServeOptions {
        grace,
        client_idle_timeout,
        tls,
    } = options;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .adaptive_window(true);

    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "serving");

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, backoff = ?ACCEPT_BACKOFF, "accept failed; retrying");
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                        }
                    }
                };
                if let Err(error) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
                }
                let stream = SendTimeout::new(stream, client_idle_timeout, peer);
                let service = service.clone();
                let secure = tls.is_some();
                let handler = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    if secure {
                        req.extensions_mut().insert(TlsConnection);
                    }
                    let method = req.method().clone();
                    let uri = req.uri().clone();
                    let call = service.clone().oneshot(req);
                    async move {
                        call.await.map_err(|e| {
                            let error = ServiceError(e.into());
                            tracing::warn!(
                                %peer,
                                %method,
                                path = uri.path(),
                                %error,
                                "service failed; closing the connection"
                            );
                            error
                        })
                    }
                });
                match &tls {
                    None => {
                        let connection = builder
                            .serve_connection(TokioIo::new(stream), handler)
                            .into_owned();
                        let connection = graceful.watch(connection);
                        connections.spawn(async move {
                            if let Err(error) = connection.await {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
                        });
                    }
                    Some(tls) => {
                        let (acceptor, builder, watcher) =
                            (tls.acceptor(), builder.clone(), graceful.watcher());
                        connections.spawn(async move {
                            let stream = match tokio::time::timeout(
                                HANDSHAKE_TIMEOUT,
                                acceptor.accept(stream),
                            )
                            .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%peer, %error, "TLS handshake failed");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake timed out");
                                    return;
                                }
                            };
                            let connection = builder
                                .serve_connection(TokioIo::new(stream), handler)
                                .into_owned();
                            if let Err(error) = watcher.watch(connection).await {
                                tracing::debug!(%peer, %error, "connection ended with an error");
                            }
                        });
                    }
                }
            }
        }
    }

    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        ?grace,
        "shutting down: listener closed, letting requests finish"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections finished"),
        Err(_) => tracing::warn!(
            connections = connections.len(),
            ?grace,
            "grace period over; dropping the remaining connections"
        ),
    }
    connections.shutdown().await;
    Ok(())
}

/// A service error on its way to hyper.
///
/// A named type rather than `BoxError`: with a `Box<dyn Error>` as the
/// service's error, rustc cannot prove the connection future `Send`
/// ("implementation of `From` is not general enough").
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
struct ServiceError(BoxError);

/// Resolves when the process receives SIGTERM or SIGINT (Ctrl-C elsewhere).
///
/// Meant as the `shutdown` argument of [`serve`]. If a handler cannot be
/// installed the problem is logged and that signal is not watched.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, Signal, SignalKind};

        fn install(kind: SignalKind, name: &str) -> Option<Signal> {
            match signal(kind) {
                Ok(s) => Some(s),
                Err(error) => {
                    tracing::error!(%error, "cannot install a {name} handler");
                    None
                }
            }
        }
        async fn recv(signal: &mut Option<Signal>) {
            match signal {
                Some(s) => {
                    if s.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        }

        let mut term = install(SignalKind::terminate(), "SIGTERM");
        let mut int = install(SignalKind::interrupt(), "SIGINT");
        let name = tokio::select! {
            () = recv(&mut term) => "SIGTERM",
            () = recv(&mut int) => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
    }
    #[cfg(not(unix))]
    {
        match tokio::signal::ctrl_c().await {
            Ok(()) => tracing::info!(signal = "ctrl-c", "shutdown requested"),
            Err(error) => {
                tracing::error!(%error, "cannot install a Ctrl-C handler");
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::SocketAddr;

    use bytes::Bytes;
    use futures_util::stream::{self, StreamExt};
    use http::{Request, Response, StatusCode};
    use http_body::Frame;
    use http_body_util::{BodyExt, Empty, Full, StreamBody};
    use hyper::body::Incoming;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;
    use tokio::time::{timeout, Duration, Instant};

    use super::*;

    const STEP: Duration = Duration::from_secs(10);

    type TestBody = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

    /// `/slow`: "start", 500 ms, "end". `/stuck`: "start", then nothing.
    /// `/fail`: a service error. Anything else: the peer address.
    async fn handler(req: Request<Incoming>) -> Result<Response<TestBody>, std::io::Error> {
        let chunk =
            |s: &'static str| Ok::<_, Infallible>(Frame::data(Bytes::from_static(s.as_bytes())));
        let body = match req.uri().path() {
            "/slow" => {
                let later = stream::once(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    chunk("end")
                });
                BodyExt::boxed_unsync(StreamBody::new(stream::iter([chunk("start")]).chain(later)))
            }
            "/stuck" => BodyExt::boxed_unsync(StreamBody::new(
                stream::iter([chunk("start")]).chain(stream::pending()),
            )),
            "/fail" => return Err(std::io::Error::other("handler failed")),
            _ => {
                let peer = req
                    .extensions()
                    .get::<ClientAddr>()
                    .map(|a| a.0.to_string());
                Full::new(Bytes::from(peer.unwrap_or_default())).boxed_unsync()
            }
        };
        Ok(Response::new(body))
    }

    async fn start(
        grace: Duration,
    ) -> (
        SocketAddr,
        oneshot::Sender<()>,
        JoinHandle<std::io::Result<()>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = rx.await;
        };
        let server = tokio::spawn(serve(listener, tower::service_fn(handler), shutdown, grace));
        (addr, tx, server)
    }

    /// Sends `GET path` and reads until the end of the response head.
    async fn get(addr: SocketAddr, path: &str) -> (TcpStream, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = timeout(STEP, stream.read(&mut byte))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1, "eof in head: {:?}", String::from_utf8_lossy(&head));
            head.push(byte[0]);
        }
        (stream, String::from_utf8(head).unwrap())
    }

    async fn read_rest(stream: &mut TcpStream) -> String {
        let mut rest = Vec::new();
        timeout(STEP, stream.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&rest).into_owned()
    }

    /// Waits (bounded) until connecting to `addr` is refused.
    async fn until_refused(addr: SocketAddr) {
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{addr} still accepts connections");
    }

    #[tokio::test]
    async fn requests_carry_the_client_address() {
        let (addr, _tx, _server) = start(STEP).await;
        let (mut stream, head) = get(addr, "/").await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        let local = stream.local_addr().unwrap();
        let mut body = vec![0u8; local.to_string().len()];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(String::from_utf8(body).unwrap(), local.to_string());
    }

    #[tokio::test]
    async fn speaks_h2c() {
        let (addr, _tx, _server) = start(STEP).await;
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Empty<Bytes>>();
        let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
        let response = timeout(STEP, client.get(uri)).await.unwrap().unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.status(), StatusCode::OK);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"127.0.0.1:"), "{body:?}");
    }

    #[tokio::test]
    async fn a_service_error_closes_only_its_connection() {
        let (addr, _tx, _server) = start(STEP).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /fail HTTP/1.1\r\nHost: test\r\n\r\n")
            .await
            .unwrap();
        let rest = read_rest(&mut stream).await;
        assert!(!rest.contains("200 OK"), "{rest}");
        let (_stream, head) = get(addr, "/").await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    }

    #[tokio::test]
    async fn shutdown_lets_in_flight_responses_finish_and_refuses_new_connections() {
        let (addr, tx, server) = start(STEP).await;
        // An idle keep-alive connection is closed at shutdown, not waited for.
        let (_idle, _) = get(addr, "/").await;
        let (mut slow, head) = get(addr, "/slow").await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");

        let started = Instant::now();
        tx.send(()).unwrap();
        until_refused(addr).await;

        let rest = read_rest(&mut slow).await;
        assert!(rest.contains("start") && rest.contains("end"), "{rest:?}");
        assert!(rest.ends_with("0\r\n\r\n"), "{rest:?}");
        timeout(STEP, server).await.unwrap().unwrap().unwrap();
        // Returned because the connections finished, not because the grace
        // period (10 s) ran out.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn shutdown_returns_after_grace_when_a_response_never_finishes() {
        let grace = Duration::from_millis(300);
        let (addr, tx, server) = start(grace).await;
        let (mut stuck, head) = get(addr, "/stuck").await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");

        let started = Instant::now();
        tx.send(()).unwrap();
        timeout(STEP, server).await.unwrap().unwrap().unwrap();
        let elapsed = started.elapsed();
        assert!(elapsed >= grace, "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        // The stuck connection was dropped: the client sees the end.
        let rest = read_rest(&mut stuck).await;
        assert!(
            rest.contains("start") && !rest.ends_with("0\r\n\r\n"),
            "{rest:?}"
        );
        until_refused(addr).await;
    }
}
