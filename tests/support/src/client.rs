//! A small HTTP/1.1 client for tests that keeps partial bodies and errors.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response with whatever part of the body arrived.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// Set when the body ended with an error (a truncated response).
    pub error: Option<String>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn complete(&self) -> bool {
        self.error.is_none()
    }
}

#[derive(Clone)]
pub struct Client {
    inner: hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    pub fn new() -> Self {
        let inner = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        Client { inner }
    }

    pub async fn request(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body)).unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(60), self.inner.request(req))
            .await
            .expect("request timed out")
            .expect("request failed");
        let (parts, mut body) = resp.into_parts();
        let mut out = Vec::new();
        let mut error = None;
        loop {
            match tokio::time::timeout(Duration::from_secs(60), body.frame()).await {
                Err(_) => {
                    error = Some("body timed out".into());
                    break;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    error = Some(e.to_string());
                    break;
                }
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        out.extend_from_slice(&data);
                    }
                }
            }
        }
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: out,
            error,
        }
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::GET, url, headers, Bytes::new()).await
    }

    pub async fn delete(&self, url: &str, headers: &[(&str, &str)]) -> Reply {
        self.request(Method::DELETE, url, headers, Bytes::new())
            .await
    }

    /// Reads the head and `n` body bytes of a GET, then drops the connection.
    pub async fn get_and_abort(&self, url: &str, headers: &[(&str, &str)], n: usize) -> StatusCode {
        let mut req = Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .inner
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let mut body = resp.into_body();
        let mut got = 0;
        while got < n {
            match body.frame().await {
                Some(Ok(f)) => got += f.into_data().map(|d| d.len()).unwrap_or(0),
                _ => break,
            }
        }
        status
    }
}

/// Sends `raw` bytes on a fresh connection and returns the response head
/// (status line and headers) as text; the body is not read.
pub async fn raw_request(addr: std::net::SocketAddr, raw: &str) -> String {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(raw.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout_at(deadline, sock.read(&mut buf))
            .await
            .expect("raw response timed out")
            .unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}
