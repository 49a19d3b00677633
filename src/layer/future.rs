//! The response future shared by this crate's middleware.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use futures_util::future::BoxFuture;
use http::Response;
use pin_project_lite::pin_project;

type Handled<W, E> = BoxFuture<'static, Result<Response<W>, E>>;

pin_project! {
    /// Response future of the middleware in [`crate::layer`]: a zero-cost
    /// pass-through of the inner service's future (its body `B` wrapped into
    /// the layer's body `W`), or a request the layer answers itself, which
    /// takes several asynchronous steps (index, authorization, upstream
    /// questions) and runs as one boxed future.
    pub struct ResponseFuture<F, B, W, E> {
        #[pin]
        kind: Kind<F, W, E>,
        _body: PhantomData<fn() -> B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, W, E> {
        Passthrough { #[pin] future: F },
        Handled { future: Handled<W, E> },
    }
}

impl<F, B, W, E> ResponseFuture<F, B, W, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { future },
            _body: PhantomData,
        }
    }

    pub(crate) fn handled(future: Handled<W, E>) -> Self {
        ResponseFuture {
            kind: Kind::Handled { future },
            _body: PhantomData,
        }
    }
}

impl<F, B, W, E> fmt::Debug for ResponseFuture<F, B, W, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Passthrough { .. } => "passthrough",
            Kind::Handled { .. } => "handled",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}

impl<F, B, W, E> Future for ResponseFuture<F, B, W, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    W: From<B>,
{
    type Output = Result<Response<W>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future } => {
                let resp = ready!(future.poll(cx))?;
                Poll::Ready(Ok(resp.map(W::from)))
            }
            KindProj::Handled { future } => future.as_mut().poll(cx),
        }
    }
}
