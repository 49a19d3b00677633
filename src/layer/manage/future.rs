//! [`ResponseFuture`] of the [`CacheManage`](super::CacheManage) service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

use super::ManageBody;

type Handled<B, E> = BoxFuture<'static, Result<Response<ManageBody<B>>, E>>;

pin_project! {
    /// Response future of [`CacheManage`](super::CacheManage): a zero-cost
    /// pass-through, or a management request answered by the proxy.
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Passthrough { #[pin] future: F },
        Handled { future: Handled<B, E> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { future },
        }
    }

    pub(crate) fn handled(future: Handled<B, E>) -> Self {
        ResponseFuture {
            kind: Kind::Handled { future },
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
    type Output = Result<Response<ManageBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let resp = ready!(future.poll(cx))?;
                Poll::Ready(Ok(resp.map(ManageBody::inner)))
            }
            KindProj::Handled { future } => future.as_mut().poll(cx),
        }
    }
}
