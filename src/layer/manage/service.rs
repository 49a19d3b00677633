//! [`CacheManage`]: the management middleware service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower::Service;

use super::handlers::Handler;
use super::routes::{route, Endpoint};
use super::{CacheManageLayer, ManageBody, ResponseFuture};
use crate::upstream::RequestBody;
use crate::BoxError;

/// Answers the cache management API; see [`CacheManageLayer`].
#[derive(Clone, Debug)]
pub struct CacheManage<S> {
    pub(crate) inner: S,
    pub(crate) state: CacheManageLayer,
}

impl<S> CacheManage<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for CacheManage<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    type Response = Response<ManageBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResB, S::Error>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let req = req.map(RequestBody::new);
        let endpoint = route(req.method(), req.uri().path(), req.headers());
        let ours = match &endpoint {
            None => false,
            // Without a cache, version discovery and the legacy API are the
            // upstream's business.
            Some(e) if self.state.core.is_none() => {
                !e.is_legacy() && !matches!(e, Endpoint::Versions { .. })
            }
            Some(_) => true,
        };
        match endpoint {
            Some(endpoint) if ours => {
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let handler = Handler::new(self.state.clone(), inner);
                ResponseFuture::handled(Box::pin(handler.run(endpoint, req)))
            }
            _ => ResponseFuture::passthrough(self.inner.call(req)),
        }
    }
}
