//! [`ResponseFuture`]: waits for the upstream's response headers under the
//! response timeout and turns every failure into an HTTP response.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Method, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::body::{ProxyBody, UploadProgress};
use super::service::Config;
use crate::headers::remove_hop_by_hop;

/// What a pending request needs to finish: for logs, timeouts and errors.
pub(crate) struct RequestInfo {
    method: Method,
    uri: Uri,
    config: Arc<Config>,
    progress: Option<Arc<UploadProgress>>,
    started: Instant,
}

impl RequestInfo {
    pub(crate) fn new(
        method: Method,
        uri: Uri,
        config: Arc<Config>,
        progress: Option<Arc<UploadProgress>>,
    ) -> Self {
        Self {
            method,
            uri,
            config,
            progress,
            started: Instant::now(),
        }
    }

    /// When to give up waiting for response headers: `response_timeout`
    /// after the request was sent, or after its body last moved.
    fn deadline(&self) -> Instant {
        let since = match &self.progress {
            Some(p) => p.last_activity().max(self.started),
            None => self.started,
        };
        since + self.config.response_timeout
    }

    fn response(self, response: Response<Incoming>) -> Response<ProxyBody> {
        let (mut parts, body) = response.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        parts.version = Version::HTTP_11;
        tracing::debug!(
            method = %self.method,
            path = self.uri.path(),
            status = parts.status.as_u16(),
            "upstream answered"
        );
        let body = ProxyBody::upstream(body, self.config.idle_timeout, self.method, self.uri);
        Response::from_parts(parts, body)
    }

    fn failure(self, error: &legacy::Error) -> Response<ProxyBody> {
        let upstream = &self.config.display;
        let cause = describe(error);
        if self.progress.as_ref().is_some_and(|p| p.failed()) {
            tracing::warn!(
                method = %self.method,
                path = self.uri.path(),
                error = %cause,
                "client request body failed; answering 400"
            );
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("The request body could not be read: {cause}"),
            );
        }
        let message = if error.is_connect() {
            tracing::warn!(
                method = %self.method,
                path = self.uri.path(),
                %upstream,
                error = %cause,
                "upstream unreachable; answering 502"
            );
            format!("The upstream image service at {upstream} could not be reached: {cause}")
        } else {
            tracing::warn!(
                method = %self.method,
                path = self.uri.path(),
                %upstream,
                error = %cause,
                "upstream failed before answering; answering 502"
            );
            format!("The upstream image service at {upstream} failed to answer: {cause}")
        };
        error_response(StatusCode::BAD_GATEWAY, &message)
    }

    fn timed_out(self) -> Response<ProxyBody> {
        let upstream = &self.config.display;
        let timeout = self.config.response_timeout;
        tracing::warn!(
            method = %self.method,
            path = self.uri.path(),
            %upstream,
            ?timeout,
            "no response headers from upstream in time; answering 504"
        );
        error_response(
            StatusCode::GATEWAY_TIMEOUT,
            &format!("The upstream image service at {upstream} did not answer within {timeout:?}."),
        )
    }
}

/// A plain-text error response in the style of Glance (WebOb):
/// `"<code> <reason>\n\n<message>\n"`.
pub(crate) fn error_response(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let text = format!(
        "{} {}\n\n{message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(ProxyBody::full(text));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// A short cause for a client error: "connection refused", "connection
/// timed out", or the chain of messages below hyper-util's generic one.
fn describe(error: &legacy::Error) -> String {
    let mut source: Option<&(dyn StdError + 'static)> = error.source();
    let mut chain = Vec::new();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return "connection refused".into(),
                io::ErrorKind::TimedOut => return "connection timed out".into(),
                io::ErrorKind::ConnectionReset => return "connection reset by peer".into(),
                _ => {}
            }
        }
        let text = e.to_string();
        // Wrappers often repeat their source's message; keep it once.
        if !chain
            .last()
            .is_some_and(|last: &String| last.ends_with(&text))
        {
            chain.push(text);
        }
        source = e.source();
    }
    if chain.is_empty() {
        error.to_string()
    } else {
        chain.join(": ")
    }
}

pin_project! {
    /// Response future of [`ReverseProxy`](super::ReverseProxy).
    ///
    /// Resolves to the upstream's response, or to a `502`/`504` (`400` when
    /// the client's own body failed) plain-text response; never to an error.
    /// It is `Unpin`, `Send` and `'static`.
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Ready {
            response: Option<Response<ProxyBody>>,
        },
        Waiting {
            #[pin]
            future: legacy::ResponseFuture,
            timer: Option<Pin<Box<Sleep>>>,
            info: Option<RequestInfo>,
        },
    }
}

impl ResponseFuture {
    pub(crate) fn new(future: legacy::ResponseFuture, info: RequestInfo) -> Self {
        Self {
            state: State::Waiting {
                future,
                timer: None,
                info: Some(info),
            },
        }
    }

    pub(crate) fn ready(response: Response<ProxyBody>) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ProxyBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Ready { response } => {
                let response = response
                    .take()
                    .expect("ResponseFuture polled after completion");
                Poll::Ready(Ok(response))
            }
            StateProj::Waiting {
                future,
                timer,
                info,
            } => {
                if let Poll::Ready(result) = future.poll(cx) {
                    let info = info.take().expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(match result {
                        Ok(response) => info.response(response),
                        Err(error) => info.failure(&error),
                    }));
                }
                let Some(waiting) = info.as_ref() else {
                    return Poll::Pending;
                };
                loop {
                    let deadline = waiting.deadline();
                    let sleep = match timer {
                        Some(sleep) => {
                            if sleep.deadline() != deadline {
                                sleep.as_mut().reset(deadline);
                            }
                            sleep
                        }
                        None => timer.insert(Box::pin(tokio::time::sleep_until(deadline))),
                    };
                    ready!(sleep.as_mut().poll(cx));
                    // The upload moved while we slept: wait for the new
                    // deadline (it only moves forward, and only on progress).
                    if waiting.deadline() <= deadline {
                        break;
                    }
                }
                let info = info.take().expect("checked above");
                Poll::Ready(Ok(info.timed_out()))
            }
        }
    }
}
