//! [`Cache`]: the middleware service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::download::{invalidate_after, Download};
use super::matcher::{route, Route};
use super::{ResponseBody, ResponseFuture};
use crate::cache::GlanceCache;
use crate::upstream::RequestBody;
use crate::BoxError;

/// Serves image downloads from the cache; see [`CacheLayer`](super::CacheLayer).
#[derive(Clone, Debug)]
pub struct Cache<S> {
    pub(super) inner: S,
    pub(super) core: Option<GlanceCache>,
}

impl<S> Cache<S> {
    /// Wraps `inner` with `cache`.
    pub fn new(inner: S, cache: GlanceCache) -> Self {
        Cache {
            inner,
            core: Some(cache),
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
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
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
        let req = req.map(RequestBody::new);
        let Some(core) = &self.core else {
            return ResponseFuture::passthrough(self.inner.call(req));
        };
        let serve_ranges = core.ranges().serve;
        match route(req.method(), req.uri(), req.headers(), serve_ranges) {
            Route::Other => ResponseFuture::passthrough(self.inner.call(req)),
            Route::Delete(id) => {
                let future = self.inner.call(req);
                ResponseFuture::handled(Box::pin(invalidate_after(core.clone(), future, id)))
            }
            Route::Download(id, ranged) => {
                // Take the service that was driven to readiness; leave a clone.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let download = Download::new(core.clone(), inner, id);
                ResponseFuture::handled(Box::pin(download.run(req, ranged)))
            }
        }
    }
}
