//! [`ResponseFuture`] of the [`Cache`](super::Cache) service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

use super::ResponseBody;

type CacheFuture<B, E> = BoxFuture<'static, Result<Response<ResponseBody<B>>, E>>;

pin_project! {
    /// Response future of [`Cache`](super::Cache).
    ///
    /// Requests the cache does not handle are a zero-cost pass-through of
    /// the inner future. Cache requests (hits, fills, invalidation) take
    /// several asynchronous steps (index, authorization, upstream) and run
    /// as one boxed future.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Passthrough { #[pin] future: F },
        Cache { future: CacheFuture<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { future },
        }
    }

    pub(crate) fn cache(future: CacheFuture<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Cache { future },
        }
    }
}

impl<F, B, E> fmt::Debug for ResponseFuture<F, B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let resp = ready!(future.poll(cx))?;
                Poll::Ready(Ok(resp.map(ResponseBody::upstream)))
            }
            KindProj::Cache { future } => future.as_mut().poll(cx),
        }
    }
}
