//! A small HTTP client for the proxy's legacy cache-management API
//! (`/v2/cached_images`, `/v2/queued_images`), as `glance-cache-manage`
//! uses it: plain http to `--host`/`--port`, `X-Auth-Token` when there is a
//! token, never a body.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glance_cache::tls::ClientTls;
use http::header::{self, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

/// Bound on connecting to the proxy.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on one whole exchange (deleting a large cache takes a while).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest answer read (a list of 100 000 cached images is about 15 MiB).
const BODY_LIMIT: usize = 64 << 20;
/// Longest error text shown from an answer (all of it with `--debug`).
const ERROR_TEXT_LIMIT: usize = 300;

/// Why a call to the management API failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// 404: the proxy has no cache (or the address is not a proxy).
    NotFound,
    /// 401: no valid token.
    Unauthorized,
    /// 403: a valid token without the required role.
    Forbidden,
    /// Nothing accepts connections at the address.
    Connect {
        /// `host:port` as given.
        address: String,
        /// The system's reason (e.g. "Connection refused").
        reason: String,
    },
    /// Any other status, with the text of the answer.
    Status {
        /// The status.
        status: StatusCode,
        /// The answer's message.
        message: String,
    },
    /// The exchange failed or timed out, or the answer is not the JSON
    /// expected.
    Other(String),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotFound => f.write_str("404 Not Found"),
            CallError::Unauthorized => f.write_str("401 Unauthorized"),
            CallError::Forbidden => f.write_str("403 Forbidden"),
            CallError::Connect { address, reason } => {
                write!(f, "cannot connect to {address}: {reason}")
            }
            CallError::Status { status, message } if message.is_empty() => {
                write!(f, "HTTP {status}")
            }
            CallError::Status { status, message } => write!(f, "HTTP {status}: {message}"),
            CallError::Other(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for CallError {}

/// A successful answer: the raw JSON text and its parsed value.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The body exactly as received.
    pub(crate) raw: Bytes,
    /// The body parsed.
    pub(crate) json: Value,
}

/// Talks to one proxy.
pub(crate) struct ManageClient {
    base: String,
    address: String,
    token: Option<HeaderValue>,
    debug: bool,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl fmt::Debug for ManageClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManageClient")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

impl ManageClient {
    /// A client of `http://host:port`, or `https://host:port` when `host`
    /// starts with `https://` (checked with `tls`). `host` may be a name,
    /// an IPv4 address or an IPv6 address (with or without brackets).
    pub(crate) fn new(host: &str, port: u16, tls: &ClientTls) -> Result<Self, CallError> {
        let host = host.trim();
        let (scheme, host) = match host.get(..8) {
            Some(p) if p.eq_ignore_ascii_case("https://") => ("https", &host[8..]),
            _ => match host.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("http://") => ("http", &host[7..]),
                _ => ("http", host),
            },
        };
        let host = host.trim_end_matches('/');
        let bracketed = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        let address = format!("{bracketed}:{port}");
        let base = format!("{scheme}://{address}");
        let exact = base.parse::<Uri>().is_ok_and(|uri| {
            uri.authority().map(|a| a.as_str()) == Some(address.as_str())
                && matches!(uri.path(), "" | "/")
                && uri.query().is_none()
        });
        if host.is_empty() || host.contains('@') || !exact {
            return Err(CallError::Other(format!(
                "--host {host:?} is not a host name or address"
            )));
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let config = if scheme == "https" {
            tls.build()
                .map_err(|e| CallError::Other(format!("TLS settings: {e}")))?
        } else {
            ClientTls::no_roots()
        };
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(ManageClient {
            base,
            address,
            token: None,
            debug: false,
            client,
        })
    }

    /// Sends `token` as `X-Auth-Token`.
    pub(crate) fn with_token(mut self, token: Option<&str>) -> Result<Self, CallError> {
        self.token = match token {
            Some(t) => {
                let mut value = HeaderValue::from_str(t).map_err(|_| {
                    CallError::Other("the token contains characters a header cannot hold".into())
                })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Ok(self)
    }

    /// Prints each request and answer on stderr.
    pub(crate) fn with_debug(mut self, debug: bool) -> Self {
        self.debug = debug;
        self
    }

    /// `host:port` as connected to.
    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    /// `method path`; the answer must be 200 with a JSON body.
    pub(crate) async fn call(&self, method: Method, path: &str) -> Result<Answer, CallError> {
        let url = format!("{}{path}", self.base);
        let uri: Uri = url
            .parse()
            .map_err(|e| CallError::Other(format!("invalid URL {url}: {e}")))?;
        let mut req = Request::new(Empty::<Bytes>::new());
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("glance-cache-proxy/", env!("CARGO_PKG_VERSION"))),
        );
        if let Some(token) = &self.token {
            h.insert("x-auth-token", token.clone());
        }
        if self.debug {
            let auth = if self.token.is_some() {
                " (X-Auth-Token: <redacted>)"
            } else {
                " (no token)"
            };
            eprintln!("DEBUG: {method} {url}{auth}");
        }
        let started = Instant::now();
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.failed(&e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| CallError::Other(format!("reading the answer failed: {e}")))?
                .to_bytes();
            Ok::<_, CallError>((parts, body))
        };
        let (parts, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                CallError::Other(format!(
                    "no answer from {} within {} s",
                    self.address,
                    REQUEST_TIMEOUT.as_secs()
                ))
            })??;
        if self.debug {
            eprintln!(
                "DEBUG: {} ({} bytes) in {:.4} s: {}",
                parts.status,
                body.len(),
                started.elapsed().as_secs_f64(),
                String::from_utf8_lossy(&body)
            );
        }
        match parts.status {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Err(CallError::NotFound),
            StatusCode::UNAUTHORIZED => return Err(CallError::Unauthorized),
            StatusCode::FORBIDDEN => return Err(CallError::Forbidden),
            status => {
                return Err(CallError::Status {
                    status,
                    message: error_text(&body, self.debug),
                })
            }
        }
        let json = serde_json::from_slice(&body).map_err(|e| {
            CallError::Other(format!(
                "the answer is not JSON ({e}): {}",
                error_text(&body, self.debug)
            ))
        })?;
        Ok(Answer { raw: body, json })
    }

    fn failed(&self, e: &hyper_util::client::legacy::Error) -> CallError {
        let reason = innermost(e);
        if e.is_connect() {
            CallError::Connect {
                address: self.address.clone(),
                reason,
            }
        } else {
            CallError::Other(format!("the request to {} failed: {reason}", self.address))
        }
    }
}

/// The most specific message in an error's chain ("Connection refused
/// (os error 111)" rather than "client error (Connect)").
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(inner) = last.source() {
        last = inner;
    }
    last.to_string()
}

/// The message of an error answer on one line: the `message` of a JSON
/// error document, else the text without HTML tags; shortened unless
/// `full`.
fn error_text(body: &[u8], full: bool) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    // Glance's nested shape: {"error": {"message": ...}}.
                    v.get("error")
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                })
        })
        .unwrap_or_else(|| strip_tags(&text));
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    if full || one_line.chars().count() <= ERROR_TEXT_LIMIT {
        one_line
    } else {
        let short: String = one_line.chars().take(ERROR_TEXT_LIMIT).collect();
        format!("{short}...")
    }
}

fn strip_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_are_one_short_line() {
        assert_eq!(
            error_text(
                br#"{"message": "cannot read the cache", "code": "500 Internal Server Error"}"#,
                false
            ),
            "cannot read the cache"
        );
        assert_eq!(
            error_text(
                b"503 Service Unavailable\n\nThe identity service could not be reached.\n\n   ",
                false
            ),
            "503 Service Unavailable The identity service could not be reached."
        );
        assert_eq!(
            error_text(
                b"<html>\n <head>\n  <title>502 Bad Gateway</title>\n </head>\n <body>oops<br /></body></html>",
                false
            ),
            "502 Bad Gateway oops"
        );
        let long = "x".repeat(1000);
        assert_eq!(
            error_text(long.as_bytes(), false).len(),
            ERROR_TEXT_LIMIT + 3
        );
        assert_eq!(error_text(long.as_bytes(), true).len(), 1000);
    }

    #[test]
    fn hosts_are_bracketed_and_checked() {
        let c = ManageClient::new("::1", 9292, &ClientTls::new()).expect("ipv6");
        assert_eq!(c.address(), "[::1]:9292");
        assert_eq!(
            ManageClient::new("[::1]", 1, &ClientTls::new())
                .expect("ok")
                .address(),
            "[::1]:1"
        );
        assert_eq!(
            ManageClient::new("0.0.0.0", 9292, &ClientTls::new())
                .expect("ok")
                .address(),
            "0.0.0.0:9292"
        );
        for bad in ["", "a b", "host/path", "h?q", "user@h"] {
            assert!(
                ManageClient::new(bad, 9292, &ClientTls::new()).is_err(),
                "{bad:?}"
            );
        }
    }
}
