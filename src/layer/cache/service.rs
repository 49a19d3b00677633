//! [`Cache`]: the middleware service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::download::{invalidate_after, Download};
use super::matcher::{route, Route};
use super::{CacheLayer, RequestBody, ResponseBody, ResponseFuture};
use crate::BoxError;

/// Serves image downloads from the cache; see [`CacheLayer`].
#[derive(Clone, Debug)]
pub struct Cache<S> {
    pub(crate) inner: S,
    pub(crate) state: CacheLayer,
}

impl<S> Cache<S> {
    /// Wraps `inner` with the cache configured by `layer`.
    pub fn new(inner: S, layer: CacheLayer) -> Self {
        Cache {
            inner,
            state: layer,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for Cache<S>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match route(req.method(), req.uri(), req.headers()) {
            Route::Other => ResponseFuture::passthrough(self.inner.call(req.map(RequestBody::new))),
            Route::Delete(id) => {
                let future = self.inner.call(req.map(RequestBody::new));
                ResponseFuture::handled(Box::pin(invalidate_after(self.state.clone(), future, id)))
            }
            Route::Download(id) => {
                // Take the service that was driven to readiness; leave a clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let download = Download::new(self.state.clone(), inner, id);
                ResponseFuture::handled(Box::pin(download.run(req)))
            }
        }
    }
}
