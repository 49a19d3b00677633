//! [`ResponseFuture`] of the [`RequestId`](super::RequestId) service.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use http::{HeaderValue, Response, StatusCode};
use http_body::Body;
use pin_project_lite::pin_project;
use tracing::Span;

use super::body::{millis, Completion};
use super::ResponseBody;
use crate::headers::REQUEST_ID;

pin_project! {
    /// Response future of [`RequestId`](super::RequestId): the inner
    /// future, run inside the request's span; the response gets the
    /// request id if it has none.
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        id: HeaderValue,
        span: Span,
        start: Instant,
        head_only: bool,
    }
}

impl<F> ResponseFuture<F> {
    pub(super) fn new(inner: F, id: HeaderValue, span: Span, head_only: bool) -> Self {
        ResponseFuture {
            inner,
            id,
            span,
            start: Instant::now(),
            head_only,
        }
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _entered = this.span.enter();
            ready!(this.inner.poll(cx))
        };
        let mut resp = match result {
            Ok(resp) => resp,
            Err(e) => {
                this.span.in_scope(|| {
                    tracing::warn!(
                        duration_ms = millis(this.start.elapsed()),
                        "request failed without a response"
                    )
                });
                return Poll::Ready(Err(e));
            }
        };
        let other_id = match resp.headers().get(REQUEST_ID) {
            Some(theirs) if theirs != this.id => Some(theirs.clone()),
            Some(_) => None,
            None => {
                resp.headers_mut().insert(REQUEST_ID, this.id.clone());
                None
            }
        };
        let status = resp.status();
        let completion = Completion::new(*this.start, status, other_id);
        let (parts, body) = resp.into_parts();
        // No body will be polled: log now.
        let bodiless = *this.head_only
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED
            || status.is_informational()
            || body.is_end_stream();
        let body = ResponseBody::new(body, this.span.clone(), completion, bodiless);
        Poll::Ready(Ok(Response::from_parts(parts, body)))
    }
}
