//! Bodies crossing the proxy: [`ProxyBody`] on the way back, `UploadBody`
//! on the way up.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// The error a [`ProxyBody`] ends with when the upstream stops sending.
///
/// The upstream sent its headers (and maybe some data) and then nothing for
/// longer than the idle timeout
/// ([`ReverseProxy::with_idle_timeout`](super::ReverseProxy::with_idle_timeout)).
#[derive(Debug, thiserror::Error)]
#[error("idle timeout: the upstream sent no response body data for {timeout:?}")]
pub struct IdleTimeout {
    timeout: Duration,
}

impl IdleTimeout {
    /// The idle timeout that expired.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

pin_project! {
    /// The response body of a [`ReverseProxy`](super::ReverseProxy).
    ///
    /// It is `Unpin`, `Send` and `'static`.
    /// Either the upstream's body, streamed frame by frame and guarded by an
    /// idle timeout (it ends with an [`IdleTimeout`] error when no frame
    /// arrives in time), or the small text body of one of the proxy's own
    /// error responses.
    ///
    /// See the [module docs](super) for an example.
    pub struct ProxyBody {
        #[pin]
        kind: Kind,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind {
        Upstream {
            #[pin]
            body: Incoming,
            // Armed when the upstream body first returns `Pending` after a
            // frame, so a slow *client* never counts against the upstream.
            idle: Option<Pin<Box<Sleep>>>,
            waiting: bool,
            idle_timeout: Duration,
            method: Method,
            uri: Uri,
        },
        Full {
            #[pin]
            body: Full<Bytes>,
        },
    }
}

impl ProxyBody {
    pub(crate) fn upstream(
        body: Incoming,
        idle_timeout: Duration,
        method: Method,
        uri: Uri,
    ) -> Self {
        Self {
            kind: Kind::Upstream {
                body,
                idle: None,
                waiting: false,
                idle_timeout,
                method,
                uri,
            },
        }
    }

    pub(crate) fn full(text: impl Into<Bytes>) -> Self {
        Self {
            kind: Kind::Full {
                body: Full::new(text.into()),
            },
        }
    }
}

impl fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Upstream { .. } => "Upstream",
            Kind::Full { .. } => "Full",
        };
        f.debug_struct("ProxyBody").field("kind", &kind).finish()
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            KindProj::Full { body } => body.poll_frame(cx).map_err(|never| match never {}),
            KindProj::Upstream {
                body,
                idle,
                waiting,
                idle_timeout,
                method,
                uri,
            } => {
                if let Poll::Ready(frame) = body.poll_frame(cx) {
                    *waiting = false;
                    return Poll::Ready(frame.map(|r| r.map_err(BoxError::from)));
                }
                if !*waiting {
                    *waiting = true;
                    let deadline = Instant::now() + *idle_timeout;
                    match idle {
                        Some(sleep) => sleep.as_mut().reset(deadline),
                        None => *idle = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                }
                let Some(sleep) = idle else {
                    return Poll::Pending;
                };
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        tracing::warn!(
                            %method,
                            path = uri.path(),
                            timeout = ?idle_timeout,
                            "upstream response body stalled; ending it with an error"
                        );
                        Poll::Ready(Some(Err(IdleTimeout {
                            timeout: *idle_timeout,
                        }
                        .into())))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Upstream { body, .. } => body.is_end_stream(),
            Kind::Full { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Upstream { body, .. } => body.size_hint(),
            Kind::Full { body } => body.size_hint(),
        }
    }
}

/// Progress of a request body on its way upstream.
///
/// The response timeout counts from the last moment the upload moved, so a
/// long upload (Glance answers a `PUT .../file` only once it has the whole
/// image) is never cut off while its bytes still flow.
#[derive(Debug)]
pub(crate) struct UploadProgress {
    start: Instant,
    /// Nanoseconds after `start` at which the last frame went upstream.
    last: AtomicU64,
    /// The client's body failed (it disconnected, or sent bad framing).
    failed: AtomicBool,
}

impl UploadProgress {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let nanos = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last.store(nanos, Ordering::Relaxed);
    }

    /// When the upload last made progress.
    pub(crate) fn last_activity(&self) -> Instant {
        self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed))
    }

    /// Whether the client's body ended with an error.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

pin_project! {
    /// The request body as handed to the hyper client: the caller's body,
    /// boxed so it is `Unpin`, with its errors boxed and its progress noted.
    pub(crate) struct UploadBody<B> {
        body: Pin<Box<B>>,
        progress: Option<Arc<UploadProgress>>,
    }
}

impl<B> UploadBody<B> {
    pub(crate) fn new(body: B, progress: Option<Arc<UploadProgress>>) -> Self {
        Self {
            body: Box::pin(body),
            progress,
        }
    }
}

impl<B> Body for UploadBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.body.as_mut().poll_frame(cx);
        if let (Poll::Ready(result), Some(progress)) = (&polled, this.progress.as_ref()) {
            progress.touch();
            if matches!(result, Some(Err(_))) {
                progress.failed.store(true, Ordering::Relaxed);
            }
        }
        polled.map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
