//! [`RequestId`]: the middleware service.

use std::task::{Context, Poll};

use http::{Method, Request, Response};
use http_body::Body;
use tower::Service;

use super::ResponseFuture;
use crate::headers::{request_id, REQUEST_ID};
use crate::server::ClientAddr;

/// Gives every response an `x-openstack-request-id`; see [`RequestIdLayer`](super::RequestIdLayer).
#[derive(Clone, Debug)]
pub struct RequestId<S> {
    inner: S,
}

impl<S> RequestId<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        RequestId { inner }
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

impl<S, ReqB, ResB> Service<Request<ReqB>> for RequestId<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<super::ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let id = request_id(req.headers());
        if !req.headers().contains_key(REQUEST_ID) {
            req.headers_mut().insert(REQUEST_ID, id.clone());
        }
        let span = tracing::info_span!(
            "request",
            request_id = id.to_str().unwrap_or_default(),
            method = %req.method(),
            path = req.uri().path(),
            client = tracing::field::Empty,
        );
        if let Some(ClientAddr(addr)) = req.extensions().get::<ClientAddr>() {
            span.record("client", tracing::field::display(addr));
        }
        let head_only = req.method() == Method::HEAD;
        let future = span.in_scope(|| self.inner.call(req));
        ResponseFuture::new(future, id, span, head_only)
    }
}
