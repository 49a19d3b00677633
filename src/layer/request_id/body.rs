//! [`ResponseBody`]: the inner body, counted, logged once at its end.

use std::fmt;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Buf;
use http::{HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tracing::Span;

/// Milliseconds with microsecond precision, for log fields.
pub(super) fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// What the request's log line says, written once.
pub(super) struct Completion {
    start: Instant,
    head: Duration,
    status: StatusCode,
    other_id: Option<HeaderValue>,
    bytes: u64,
}

/// How a response ended.
enum End<'a> {
    Complete,
    Aborted,
    Failed(&'a dyn fmt::Display),
}

impl Completion {
    pub(super) fn new(start: Instant, status: StatusCode, other_id: Option<HeaderValue>) -> Self {
        Completion {
            start,
            head: start.elapsed(),
            status,
            other_id,
            bytes: 0,
        }
    }

    fn log(&self, span: &Span, end: End<'_>) {
        let _entered = span.enter();
        let status = self.status.as_u16();
        let bytes = self.bytes;
        let head_ms = millis(self.head);
        let duration_ms = millis(self.start.elapsed());
        let response_request_id = self.other_id.as_ref().and_then(|v| v.to_str().ok());
        match end {
            End::Complete => tracing::info!(
                status,
                bytes,
                head_ms,
                duration_ms,
                response_request_id,
                "request completed"
            ),
            End::Aborted => tracing::info!(
                status,
                bytes,
                head_ms,
                duration_ms,
                response_request_id,
                "request ended before its response was complete (client gone)"
            ),
            End::Failed(error) => tracing::warn!(
                status,
                bytes,
                head_ms,
                duration_ms,
                response_request_id,
                %error,
                "response body failed"
            ),
        }
    }
}

pin_project! {
    /// Response body of [`RequestId`](super::RequestId): the inner body,
    /// polled inside the request's span; the request's log line is written
    /// when it ends, fails, or is dropped early.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        span: Span,
        pending: Option<Completion>,
    }

    impl<B> PinnedDrop for ResponseBody<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(completion) = this.pending.take() {
                completion.log(this.span, End::Aborted);
            }
        }
    }
}

impl<B> ResponseBody<B> {
    /// `bodiless`: nothing will be polled (HEAD, 204, an empty body); the
    /// line is written now.
    pub(super) fn new(inner: B, span: Span, completion: Completion, bodiless: bool) -> Self {
        let pending = if bodiless {
            completion.log(&span, End::Complete);
            None
        } else {
            Some(completion)
        };
        ResponseBody {
            inner,
            span,
            pending,
        }
    }
}

impl<B> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("logged", &self.pending.is_none())
            .finish_non_exhaustive()
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Error: fmt::Display,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let mut this = self.project();
        let polled = {
            let _entered = this.span.enter();
            ready!(this.inner.as_mut().poll_frame(cx))
        };
        let end = match &polled {
            Some(Ok(frame)) => {
                if let (Some(data), Some(c)) = (frame.data_ref(), this.pending.as_mut()) {
                    c.bytes += data.remaining() as u64;
                }
                // hyper may never poll again once Content-Length is reached.
                this.inner.is_end_stream().then_some(End::Complete)
            }
            Some(Err(error)) => Some(End::Failed(error)),
            None => Some(End::Complete),
        };
        if let Some(end) = end {
            if let Some(completion) = this.pending.take() {
                completion.log(this.span, end);
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
