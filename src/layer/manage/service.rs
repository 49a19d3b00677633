//! [`CacheManage`]: the management middleware service.

use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, VIA};
use http::{Request, Response, StatusCode};
use http_body::Body;
use tower::Service;

use super::handlers::Handler;
use super::respond::Responder;
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
        let mut req = req.map(RequestBody::new);
        if came_back(req.headers(), &self.state.via) {
            tracing::error!(
                method = %req.method(),
                path = req.uri().path(),
                via = ?req.headers().get_all(VIA).iter().collect::<Vec<_>>(),
                "this request already passed through this proxy: the upstream leads back \
                 here (check [proxy] upstream_url); answering 508"
            );
            let response = Responder::new(req.headers()).error(
                StatusCode::LOOP_DETECTED,
                "The request came back to the caching proxy it passed through: its upstream \
                 leads back to itself.",
            );
            return ResponseFuture::handled(Box::pin(async move { Ok(response) }));
        }
        req.headers_mut().append(VIA, self.state.via.clone());
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

/// Whether one of the request's `Via` entries is `ours`.
fn came_back(headers: &HeaderMap, ours: &HeaderValue) -> bool {
    let Ok(ours) = ours.to_str() else {
        return false;
    };
    headers
        .get_all(VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|entry| entry.trim() == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_via_entry_means_the_request_came_back() {
        let ours = HeaderValue::from_static("1.1 glance-cache-0123456789ab");
        let mut h = HeaderMap::new();
        assert!(!came_back(&h, &ours));
        h.append(
            VIA,
            HeaderValue::from_static("1.1 haproxy, 1.1 glance-cache-ffffffffffff"),
        );
        assert!(!came_back(&h, &ours), "another proxy's entry");
        h.append(
            VIA,
            HeaderValue::from_static("1.0 lb, 1.1 glance-cache-0123456789ab"),
        );
        assert!(came_back(&h, &ours));
    }
}
