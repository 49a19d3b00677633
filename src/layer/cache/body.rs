//! Request and response bodies of the [`Cache`](super::Cache) service.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use crate::fill::FollowBody;
use crate::store::FileBody;
use crate::BoxError;

pin_project! {
    /// The request body the cache hands to its inner service: the client's
    /// own body, or an empty one for the questions the cache asks the
    /// upstream itself (authorization probes, resumed downloads).
    #[derive(Debug)]
    pub struct RequestBody<B> {
        #[pin]
        kind: RequestKind<B>,
    }
}

pin_project! {
    #[project = RequestKindProj]
    #[derive(Debug)]
    enum RequestKind<B> {
        Client { #[pin] body: B },
        Empty,
    }
}

impl<B> RequestBody<B> {
    /// Wraps the client's body.
    ///
    /// ```
    /// use glance_cache::layer::cache::RequestBody;
    /// use http_body::Body;
    /// let body = RequestBody::new(http_body_util::Full::new(bytes::Bytes::from_static(b"x")));
    /// assert_eq!(body.size_hint().exact(), Some(1));
    /// ```
    pub fn new(body: B) -> Self {
        RequestBody {
            kind: RequestKind::Client { body },
        }
    }

    /// An empty body.
    ///
    /// ```
    /// use glance_cache::layer::cache::RequestBody;
    /// use http_body::Body;
    /// assert!(RequestBody::<hyper::body::Incoming>::empty().is_end_stream());
    /// ```
    pub fn empty() -> Self {
        RequestBody {
            kind: RequestKind::Empty,
        }
    }
}

impl<B: Body> Body for RequestBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        match self.project().kind.project() {
            RequestKindProj::Client { body } => body.poll_frame(cx),
            RequestKindProj::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            RequestKind::Client { body } => body.is_end_stream(),
            RequestKind::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            RequestKind::Client { body } => body.size_hint(),
            RequestKind::Empty => SizeHint::with_exact(0),
        }
    }
}

pin_project! {
    /// The response body of the [`Cache`](super::Cache) service: the
    /// upstream's own body, a cached file, a running fill, or a short
    /// message the cache wrote itself.
    pub struct ResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Upstream { #[pin] body: B },
        Hit { #[pin] body: FileBody },
        Follow { #[pin] body: FollowBody },
        Message { data: Option<Bytes> },
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            ResponseKind::Upstream { .. } => "upstream",
            ResponseKind::Hit { .. } => "hit",
            ResponseKind::Follow { .. } => "follow",
            ResponseKind::Message { .. } => "message",
        };
        f.debug_struct("ResponseBody").field("kind", &kind).finish()
    }
}

impl<B> From<B> for ResponseBody<B> {
    fn from(body: B) -> Self {
        ResponseBody::upstream(body)
    }
}

impl<B> ResponseBody<B> {
    pub(crate) fn upstream(body: B) -> Self {
        ResponseBody {
            kind: ResponseKind::Upstream { body },
        }
    }

    pub(crate) fn hit(body: FileBody) -> Self {
        ResponseBody {
            kind: ResponseKind::Hit { body },
        }
    }

    pub(crate) fn follow(body: FollowBody) -> Self {
        ResponseBody {
            kind: ResponseKind::Follow { body },
        }
    }

    pub(crate) fn message(text: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: ResponseKind::Message {
                data: Some(text.into()),
            },
        }
    }

    /// Whether the bytes come from the cache (a hit) rather than from the
    /// upstream or a fill.
    ///
    /// ```
    /// # use glance_cache::layer::cache::ResponseBody;
    /// # fn f(b: &ResponseBody<hyper::body::Incoming>) -> bool {
    /// b.is_hit()
    /// # }
    /// ```
    pub fn is_hit(&self) -> bool {
        matches!(self.kind, ResponseKind::Hit { .. })
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project().kind.project() {
            ResponseKindProj::Upstream { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Hit { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Follow { body } => body.poll_frame(cx),
            ResponseKindProj::Message { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            ResponseKind::Upstream { body } => body.is_end_stream(),
            ResponseKind::Hit { body } => body.is_end_stream(),
            ResponseKind::Follow { body } => body.is_end_stream(),
            ResponseKind::Message { data } => data.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Upstream { body } => body.size_hint(),
            ResponseKind::Hit { body } => body.size_hint(),
            ResponseKind::Follow { body } => body.size_hint(),
            ResponseKind::Message { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
        }
    }
}
