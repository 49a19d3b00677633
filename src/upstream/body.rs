//! [`RequestBody`]: the one request body type the middleware hands on.

use std::any::Any;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::BoxError;

/// The request body every layer of this crate hands to its inner service:
/// the client's own body, or an empty one for the questions the cache asks
/// the upstream itself (authorization probes, image records, resumed
/// downloads).
///
/// One type whatever the nesting: a body that already is a `RequestBody`
/// is taken as it is, hyper's [`Incoming`] is kept without boxing, and any
/// other body is boxed once. So the inner service of a stack of this
/// crate's layers always takes `Request<RequestBody>`.
///
/// ```
/// use bytes::Bytes;
/// use glance_cache::RequestBody;
/// use http_body::Body;
/// use http_body_util::Full;
///
/// let body = RequestBody::new(Full::new(Bytes::from_static(b"x")));
/// assert_eq!(body.size_hint().exact(), Some(1));
/// let again = RequestBody::new(body); // not wrapped twice
/// assert_eq!(again.size_hint().exact(), Some(1));
/// assert!(RequestBody::empty().is_end_stream());
/// ```
pub struct RequestBody {
    kind: Kind,
}

enum Kind {
    Incoming(Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
    Empty,
}

impl RequestBody {
    /// Wraps `body` (see the type's docs: never twice, `Incoming` unboxed).
    pub fn new<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let mut slot = Some(body);
        let any = &mut slot as &mut dyn Any;
        if let Some(body) = any
            .downcast_mut::<Option<RequestBody>>()
            .and_then(Option::take)
        {
            return body;
        }
        if let Some(body) = any
            .downcast_mut::<Option<Incoming>>()
            .and_then(Option::take)
        {
            return RequestBody {
                kind: Kind::Incoming(body),
            };
        }
        match slot {
            Some(body) => RequestBody {
                kind: Kind::Boxed(body.map_err(Into::into).boxed_unsync()),
            },
            None => RequestBody::empty(),
        }
    }

    /// An empty body.
    pub fn empty() -> Self {
        RequestBody { kind: Kind::Empty }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        RequestBody::empty()
    }
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Incoming(_) => "incoming",
            Kind::Boxed(_) => "boxed",
            Kind::Empty => "empty",
        };
        f.debug_struct("RequestBody").field("kind", &kind).finish()
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match &mut self.get_mut().kind {
            Kind::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            Kind::Boxed(body) => Pin::new(body).poll_frame(cx),
            Kind::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Incoming(body) => body.is_end_stream(),
            Kind::Boxed(body) => body.is_end_stream(),
            Kind::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Incoming(body) => body.size_hint(),
            Kind::Boxed(body) => body.size_hint(),
            Kind::Empty => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full};

    use super::*;

    #[tokio::test]
    async fn a_body_is_wrapped_once_and_read_through() {
        let body = RequestBody::new(RequestBody::new(Full::new(Bytes::from_static(b"IMAGE"))));
        assert!(matches!(body.kind, Kind::Boxed(_)), "one box, not two");
        assert_eq!(body.collect().await.unwrap().to_bytes(), "IMAGE");
        let empty = RequestBody::new(RequestBody::empty());
        assert!(matches!(empty.kind, Kind::Empty));
    }
}
