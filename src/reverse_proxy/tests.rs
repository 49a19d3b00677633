//! End-to-end tests of [`ReverseProxy`]: stub upstreams on 127.0.0.1:0,
//! the proxy served by [`crate::server::serve`], raw TCP or hyper clients.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};
use tower::ServiceExt;

use super::*;
use crate::BoxError;

/// Upper bound for any single test step.
const STEP: Duration = Duration::from_secs(30);

fn uri_of(addr: SocketAddr) -> http::Uri {
    format!("http://{addr}").parse().unwrap()
}

/// Serves `service` on 127.0.0.1:0 until the test's runtime ends.
async fn spawn_server<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(crate::server::serve(
        listener,
        service,
        std::future::pending(),
        Duration::from_secs(1),
    ));
    addr
}

/// The proxy in front of `upstream`, served on 127.0.0.1:0.
async fn spawn_proxy(upstream: SocketAddr) -> SocketAddr {
    spawn_server(ReverseProxy::<Incoming>::new(uri_of(upstream))).await
}

/// Reads an HTTP head (up to the blank line) from a raw stream.
async fn read_head(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert!(buf.len() < 64 * 1024, "head too long");
        let n = stream.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "eof inside a head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    String::from_utf8(buf).unwrap()
}

/// A raw upstream: for every connection, reads one request head, reports it
/// and writes `response` verbatim, then closes.
async fn raw_upstream(response: &'static str) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let head = read_head(&mut stream).await;
                let _ = tx.send(head);
                stream.write_all(response.as_bytes()).await.unwrap();
                stream.shutdown().await.ok();
            });
        }
    });
    (addr, rx)
}

/// Header lines of a raw head, lower-cased names.
fn header_lines(head: &str) -> Vec<(String, String)> {
    head.split("\r\n")
        .skip(1)
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect()
}

fn header<'a>(lines: &'a [(String, String)], name: &str) -> Option<&'a str> {
    lines
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn body_text(response: Response<ProxyBody>) -> String {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn closed_port_gives_502_naming_the_upstream() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(addr));
    let req = Request::get("/v2/images").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(
        response.headers()[http::header::CONTENT_TYPE],
        "text/plain; charset=UTF-8"
    );
    let text = body_text(response).await;
    assert_eq!(
        text,
        format!(
            "502 Bad Gateway\n\nThe upstream image service at http://{addr} \
             could not be reached: connection refused\n"
        )
    );
}

#[tokio::test]
async fn connect_timeout_gives_502() {
    // A listener with a full accept queue: Linux drops further SYNs, so a
    // connect attempt hangs until the connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(Ok(s)) = timeout(Duration::from_millis(100), TcpStream::connect(addr)).await {
            fillers.push(s);
        }
    }
    if timeout(Duration::from_millis(200), TcpStream::connect(addr))
        .await
        .is_ok()
    {
        eprintln!("accept queue did not fill on this kernel; skipping");
        return;
    }

    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(addr))
        .with_connect_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let req = Request::get("/v2/images").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let text = body_text(response).await;
    assert!(
        text.ends_with("could not be reached: connection timed out\n"),
        "{text}"
    );
    drop((listener, fillers));
}

#[tokio::test]
async fn upstream_hangup_gives_502() {
    let (upstream, _heads) = raw_upstream("").await;
    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(upstream));
    let req = Request::get("/v2/images").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let text = body_text(response).await;
    assert!(
        text.contains(&format!("http://{upstream} failed to answer: ")),
        "{text}"
    );
}

#[tokio::test]
async fn head_keeps_the_upstream_content_length() {
    let (upstream, mut heads) =
        raw_upstream("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n").await;
    let proxy = spawn_proxy(upstream).await;
    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(b"HEAD /v2/images/x/file HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let seen = timeout(STEP, heads.recv()).await.unwrap().unwrap();
    assert!(
        seen.starts_with("HEAD /v2/images/x/file HTTP/1.1\r\n"),
        "{seen}"
    );
    let head = timeout(STEP, read_head(&mut client)).await.unwrap();
    assert_eq!(
        header(&header_lines(&head), "content-length"),
        Some("1234"),
        "{head}"
    );
}

#[tokio::test]
async fn silent_upstream_gives_504() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections, never answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });

    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(addr))
        .with_response_timeout(Duration::from_millis(300));
    let started = Instant::now();
    let req = Request::get("/v2/images/x/file")
        .body(Empty::new())
        .unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    let text = body_text(response).await;
    assert!(text.starts_with("504 Gateway Timeout\n\n"), "{text}");
    assert!(
        text.contains(&format!("http://{addr} did not answer within 300ms")),
        "{text}"
    );
}

#[tokio::test]
async fn response_timeout_counts_from_the_last_upload_progress() {
    // The upstream answers only after reading a body that trickles in for
    // longer than the response timeout: no 504.
    let upstream = spawn_server(tower::service_fn(|req: Request<Incoming>| async move {
        let n = req.into_body().collect().await?.to_bytes().len();
        Ok::<_, hyper::Error>(Response::new(http_body_util::Full::new(Bytes::from(
            n.to_string(),
        ))))
    }))
    .await;
    let proxy =
        ReverseProxy::new(uri_of(upstream)).with_response_timeout(Duration::from_millis(300));
    let chunks = futures_util::stream::unfold(0u32, |i| async move {
        if i == 8 {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"0123456789"))),
            i + 1,
        ))
    });
    let body = http_body_util::StreamBody::new(chunks);
    let req = Request::put("/v2/images/x/file").body(body).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(body_text(response).await, "80");
}

#[tokio::test]
async fn stalled_body_ends_with_idle_timeout_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        // Stall, holding the connection open.
        tokio::time::sleep(STEP).await;
        drop(stream);
    });

    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(addr))
        .with_idle_timeout(Duration::from_millis(300));
    let req = Request::get("/v2/images/x/file")
        .body(Empty::new())
        .unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.body().size_hint().exact(), Some(100));
    let mut body = response.into_body();
    let mut received = 0;
    let started = Instant::now();
    let error = loop {
        match timeout(STEP, body.frame()).await.unwrap() {
            Some(Ok(frame)) => received += frame.into_data().map_or(0, |d| d.len()),
            Some(Err(e)) => break e,
            None => panic!("body ended without an error"),
        }
    };
    assert_eq!(received, 10);
    assert!(started.elapsed() < Duration::from_secs(5));
    let idle = error.downcast_ref::<IdleTimeout>().expect("an IdleTimeout");
    assert_eq!(idle.timeout(), Duration::from_millis(300));
    assert!(error.to_string().contains("idle timeout"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_client_does_not_trip_the_idle_timeout() {
    // The upstream is held back by TCP backpressure while the client pauses
    // for longer than the idle timeout between reads; when the client comes
    // back the upstream resumes at once, so the body must arrive whole.
    const LEN: u64 = 8 << 20;
    let upstream = spawn_server(tower::service_fn(|_req: Request<Incoming>| async {
        Ok::<_, Infallible>(Response::new(GenBody::new(LEN, true)))
    }))
    .await;
    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(upstream))
        .with_idle_timeout(Duration::from_millis(200));
    let req = Request::get("/x").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    let mut body = response.into_body();
    let mut len = 0u64;
    let mut pauses = 0;
    while let Some(frame) = timeout(STEP, body.frame()).await.unwrap() {
        len += frame.unwrap().into_data().map_or(0, |d| d.len() as u64);
        if pauses < 3 && len > (pauses + 1) * (1 << 20) {
            pauses += 1;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    assert_eq!(pauses, 3);
    assert_eq!(len, LEN);
}

#[tokio::test]
async fn headers_are_rewritten_both_ways() {
    let (upstream, mut heads) = raw_upstream(
        "HTTP/1.1 200 OK\r\n\
         Content-Length: 2\r\n\
         Connection: close, X-Hop\r\n\
         X-Hop: secret\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Authenticate: Basic\r\n\
         Trailer: X-Sum\r\n\
         Upgrade: h2c\r\n\
         X-Image-Meta-Checksum: abc\r\n\
         \r\n\
         ok",
    )
    .await;
    let proxy = spawn_proxy(upstream).await;

    let mut client = TcpStream::connect(proxy).await.unwrap();
    client
        .write_all(
            b"GET /v2/images?limit=2&marker=a%2Fb HTTP/1.1\r\n\
              Host: glance.example:9292\r\n\
              Connection: keep-alive, X-Drop-Me\r\n\
              X-Drop-Me: 1\r\n\
              Keep-Alive: timeout=5\r\n\
              Proxy-Connection: keep-alive\r\n\
              TE: trailers\r\n\
              Proxy-Authorization: Basic Zm9v\r\n\
              Upgrade: websocket\r\n\
              X-Forwarded-For: 198.51.100.1\r\n\
              X-Auth-Token: tok\r\n\
              \r\n",
        )
        .await
        .unwrap();

    let seen = timeout(STEP, heads.recv()).await.unwrap().unwrap();
    let request_line = seen.lines().next().unwrap();
    assert_eq!(request_line, "GET /v2/images?limit=2&marker=a%2Fb HTTP/1.1");
    let lines = header_lines(&seen);
    for gone in [
        "connection",
        "x-drop-me",
        "keep-alive",
        "proxy-connection",
        "te",
        "proxy-authorization",
        "upgrade",
    ] {
        assert_eq!(header(&lines, gone), None, "{gone} forwarded: {seen}");
    }
    assert_eq!(header(&lines, "host"), Some("glance.example:9292"));
    assert_eq!(header(&lines, "x-auth-token"), Some("tok"));
    assert_eq!(
        header(&lines, "x-forwarded-for"),
        Some("198.51.100.1, 127.0.0.1")
    );
    assert_eq!(header(&lines, "x-forwarded-proto"), Some("http"));
    assert_eq!(
        header(&lines, "x-forwarded-host"),
        Some("glance.example:9292")
    );

    let head = timeout(STEP, read_head(&mut client)).await.unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let lines = header_lines(&head);
    for gone in [
        "x-hop",
        "keep-alive",
        "proxy-authenticate",
        "trailer",
        "upgrade",
    ] {
        assert_eq!(header(&lines, gone), None, "{gone} returned: {head}");
    }
    // The upstream's `Connection: close` is not ours to pass on.
    assert_eq!(header(&lines, "connection"), None, "{head}");
    assert_eq!(header(&lines, "x-image-meta-checksum"), Some("abc"));
    assert_eq!(header(&lines, "content-length"), Some("2"));
    let mut body = [0u8; 2];
    client.read_exact(&mut body).await.unwrap();
    assert_eq!(&body, b"ok");
}

#[tokio::test]
async fn missing_host_gets_the_upstream_authority() {
    let (upstream, mut heads) = raw_upstream("HTTP/1.1 204 No Content\r\n\r\n").await;
    let proxy = ReverseProxy::<Empty<Bytes>>::new(uri_of(upstream));
    let req = Request::get("/versions").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let seen = heads.recv().await.unwrap();
    let lines = header_lines(&seen);
    assert_eq!(header(&lines, "host"), Some(upstream.to_string().as_str()));
    assert_eq!(header(&lines, "x-forwarded-host"), None);
    assert_eq!(header(&lines, "x-forwarded-for"), None);
}

#[tokio::test]
async fn version_prefixes_are_rewritten_and_paths_kept() {
    let (upstream, mut heads) = raw_upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    let proxy = spawn_proxy(upstream).await;
    for (sent, expected) in [
        ("/v2.18/cache", "/v2/cache"),
        ("/v2.14/images/x/file?a=b", "/v2/images/x/file?a=b"),
        ("/v2/..%2e/x", "/v2/..%2e/x"),
        ("/v2/../x", "/v2/../x"),
        ("/v1/images/x", "/v1/images/x"),
        ("/versions", "/versions"),
        ("/", "/"),
        ("/v2/images?q=%20a&&b=", "/v2/images?q=%20a&&b="),
    ] {
        let mut client = TcpStream::connect(proxy).await.unwrap();
        let request = format!("GET {sent} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        client.write_all(request.as_bytes()).await.unwrap();
        let seen = timeout(STEP, heads.recv()).await.unwrap().unwrap();
        assert_eq!(
            seen.lines().next().unwrap(),
            format!("GET {expected} HTTP/1.1"),
            "sent {sent}"
        );
        let head = timeout(STEP, read_head(&mut client)).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    }
}

#[tokio::test]
async fn upstream_prefix_is_prepended() {
    let (upstream, mut heads) = raw_upstream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").await;
    let base: http::Uri = format!("http://{upstream}/image/").parse().unwrap();
    let proxy = ReverseProxy::<Empty<Bytes>>::new(base);
    let req = Request::get("/v2.1/images?x=1").body(Empty::new()).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let seen = heads.recv().await.unwrap();
    assert!(
        seen.starts_with("GET /image/v2/images?x=1 HTTP/1.1\r\n"),
        "{seen}"
    );
}

#[test]
fn upstream_uris_are_validated() {
    type P = ReverseProxy<Empty<Bytes>>;
    let check = |s: &str| P::try_new(s.parse().unwrap()).map(|_| ());
    assert!(matches!(
        check("glance:9292"),
        Err(UpstreamUriError::NotAbsolute { .. })
    ));
    assert!(matches!(
        check("/v2"),
        Err(UpstreamUriError::NotAbsolute { .. })
    ));
    assert!(matches!(
        check("ftp://glance:9292"),
        Err(UpstreamUriError::UnsupportedScheme { .. })
    ));
    assert!(check("https://glance:9292").is_ok(), "https upstreams");
    assert!(matches!(
        check("http://user:pw@glance:9292"),
        Err(UpstreamUriError::BadAuthority { .. })
    ));
    assert!(matches!(
        check("http://glance:9292/?a=b"),
        Err(UpstreamUriError::Query { .. })
    ));
    let err = check("ftp://glance").unwrap_err().to_string();
    assert!(
        err.contains("ftp://glance") && err.contains("expected http or https"),
        "{err}"
    );
    // `new` and `try_new` need a runtime only to send, not to build.
    let proxy = P::try_new("http://glance:9292/prefix/".parse().unwrap()).unwrap();
    assert_eq!(proxy.upstream().path(), "/prefix/");
}

#[test]
#[should_panic(expected = "ReverseProxy::new: upstream URI")]
fn new_panics_with_a_clear_message() {
    let _ = ReverseProxy::<Empty<Bytes>>::new("glance:9292".parse().unwrap());
}

// ---------------------------------------------------------------------------
// Streaming: 64 MiB each way, generated on the fly, hashed while streaming.

const BIG: u64 = 64 << 20;
const CHUNK: usize = 64 << 10;

/// A body of `len` bytes generated chunk by chunk; chunk `k` starts with `k`
/// so reordered or repeated chunks change the digest.
struct GenBody {
    remaining: u64,
    index: u64,
    sized: bool,
    pattern: Bytes,
}

impl GenBody {
    fn new(len: u64, sized: bool) -> Self {
        let pattern: Vec<u8> = (0..CHUNK).map(|i| (i * 31 % 251) as u8).collect();
        Self {
            remaining: len,
            index: 0,
            sized,
            pattern: Bytes::from(pattern),
        }
    }

    fn next_chunk(&mut self) -> Option<Bytes> {
        if self.remaining == 0 {
            return None;
        }
        let n = self.remaining.min(CHUNK as u64) as usize;
        let mut chunk = BytesMut::from(&self.pattern[..n]);
        let tag = self.index.to_le_bytes();
        let t = tag.len().min(n);
        chunk[..t].copy_from_slice(&tag[..t]);
        self.index += 1;
        self.remaining -= n as u64;
        Some(chunk.freeze())
    }

    fn md5(len: u64) -> String {
        let mut body = GenBody::new(len, false);
        let mut md5 = Md5::new();
        while let Some(chunk) = body.next_chunk() {
            md5.update(&chunk);
        }
        hex::encode(md5.finalize())
    }
}

impl Body for GenBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.next_chunk().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        if self.sized {
            SizeHint::with_exact(self.remaining)
        } else {
            SizeHint::default()
        }
    }
}

/// What the upload sink saw.
#[derive(Debug, Default, Clone)]
struct Received {
    len: u64,
    md5: String,
    content_length: Option<String>,
    chunked: bool,
    frames: u64,
    largest_frame: usize,
}

/// An upstream that hashes request bodies as they stream in.
async fn spawn_sink() -> (SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = Arc::clone(&log);
    let addr = spawn_server(tower::service_fn(move |req: Request<Incoming>| {
        let log = Arc::clone(&log2);
        async move {
            let mut got = Received {
                content_length: req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .map(|v| v.to_str().unwrap().to_owned()),
                chunked: req
                    .headers()
                    .get(http::header::TRANSFER_ENCODING)
                    .is_some_and(|v| v == "chunked"),
                ..Received::default()
            };
            let mut body = req.into_body();
            let mut md5 = Md5::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame?.into_data() {
                    got.len += data.len() as u64;
                    got.frames += 1;
                    got.largest_frame = got.largest_frame.max(data.len());
                    md5.update(&data);
                }
            }
            got.md5 = hex::encode(md5.finalize());
            log.lock().unwrap().push(got);
            Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
        }
    }))
    .await;
    (addr, log)
}

async fn upload(sized: bool) -> Received {
    let (sink, log) = spawn_sink().await;
    let proxy = spawn_proxy(sink).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<GenBody>();
    let mut req = Request::builder()
        .method(Method::PUT)
        .uri(format!("http://{proxy}/v2/images/abc/file"))
        .header(http::header::CONTENT_TYPE, "application/octet-stream");
    if sized {
        req = req.header(http::header::CONTENT_LENGTH, BIG.to_string());
    }
    let req = req.body(GenBody::new(BIG, sized)).unwrap();
    let response = timeout(Duration::from_secs(120), client.request(req))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let got = log.lock().unwrap().pop().expect("the sink saw the upload");
    assert_eq!(got.len, BIG);
    assert_eq!(got.md5, GenBody::md5(BIG));
    // Streamed, not buffered: many frames, none anywhere near the whole.
    assert!(got.frames > 16, "{got:?}");
    assert!(got.largest_frame <= 4 << 20, "{got:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_sized_upload() {
    let got = upload(true).await;
    assert_eq!(got.content_length.as_deref(), Some("67108864"));
    assert!(!got.chunked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_chunked_upload() {
    let got = upload(false).await;
    assert_eq!(got.content_length, None);
    assert!(got.chunked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_a_64_mib_download() {
    let upstream = spawn_server(tower::service_fn(|_req: Request<Incoming>| async {
        let mut response = Response::new(GenBody::new(BIG, true));
        response
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, BIG.into());
        Ok::<_, Infallible>(response)
    }))
    .await;
    let proxy = spawn_proxy(upstream).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri: http::Uri = format!("http://{proxy}/v2/images/abc/file")
        .parse()
        .unwrap();
    let response = timeout(STEP, client.get(uri)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[http::header::CONTENT_LENGTH], "67108864");
    let mut body = response.into_body();
    let mut md5 = Md5::new();
    let mut len = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while let Some(frame) = tokio::time::timeout_at(deadline, body.frame())
        .await
        .unwrap()
    {
        if let Ok(data) = frame.unwrap().into_data() {
            len += data.len() as u64;
            md5.update(&data);
        }
    }
    assert_eq!(len, BIG);
    assert_eq!(hex::encode(md5.finalize()), GenBody::md5(BIG));
}

#[tokio::test]
async fn client_body_failure_is_not_blamed_on_the_upstream() {
    let (sink, _log) = spawn_sink().await;
    let proxy = ReverseProxy::new(uri_of(sink));
    let chunks = futures_util::stream::iter(vec![
        Ok(Frame::data(Bytes::from_static(b"abc"))),
        Err(std::io::Error::other("client went away")),
    ]);
    let body = http_body_util::StreamBody::new(chunks);
    let req = Request::put("/v2/images/x/file").body(body).unwrap();
    let response = timeout(STEP, proxy.oneshot(req)).await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = body_text(response).await;
    assert!(text.contains("client went away"), "{text}");
}

/// The response future and body are `Send + 'static`; the service is `Clone`.
#[allow(dead_code)]
fn assert_traits() {
    fn send_static<T: Send + 'static>() {}
    fn unpin<T: Unpin>() {}
    fn clone<T: Clone>() {}
    send_static::<ResponseFuture>();
    send_static::<ProxyBody>();
    unpin::<ResponseFuture>();
    unpin::<ProxyBody>();
    send_static::<ReverseProxy<Incoming>>();
    clone::<ReverseProxy<Incoming>>();
}
