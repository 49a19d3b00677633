//! Request and response bodies of the [`Cache`](super::Cache) service.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use pin_project_lite::pin_project;

use crate::fill::FollowBody;
use crate::store::{FileBody, VerifyingBody};
use crate::BoxError;

pin_project! {
    /// The response body of the [`Cache`](super::Cache) service: the
    /// upstream's own body, a cached file, a running fill, or a short
    /// message the cache wrote itself.
    ///
    /// Reading ahead is bounded: a body from a cached file or a running
    /// fill hands out at most two chunks at a time and reads the next one
    /// when the consumer drops one (hyper drops a chunk once the socket has
    /// taken it), so a slow client never makes the proxy buffer more for
    /// it. A consumer that keeps every chunk, such as
    /// `http_body_util::BodyExt::collect`, gets the first two chunks
    /// (2 × `hit_chunk_size`) and then waits for one to come back: copy the
    /// data out of each frame and drop the frame instead.
    ///
    /// A body error is always preceded by one `Pending`: hyper's HTTP/1
    /// connection flushes what it has buffered (the response head, the last
    /// chunks) when the body is pending, and an error at any other moment
    /// closes the connection with them unsent. So a download that breaks
    /// reaches the client as the head plus what the socket took before the
    /// break (all of it unless the client is slower than the sender), not as
    /// a connection closed without a response.
    pub struct ResponseBody<B> {
        #[pin]
        kind: ResponseKind<B>,
        last_pending: bool,
        deferred: Option<BoxError>,
    }
}

pin_project! {
    #[project = ResponseKindProj]
    enum ResponseKind<B> {
        Upstream { #[pin] body: B },
        Hit { #[pin] body: FileBody },
        Verify { body: VerifyingBody },
        Follow { #[pin] body: FollowBody },
        Message { data: Option<Bytes> },
        Peer { #[pin] body: UnsyncBoxBody<Bytes, BoxError> },
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            ResponseKind::Upstream { .. } => "upstream",
            ResponseKind::Hit { .. } => "hit",
            ResponseKind::Verify { .. } => "verifying hit",
            ResponseKind::Follow { .. } => "follow",
            ResponseKind::Message { .. } => "message",
            ResponseKind::Peer { .. } => "peer",
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
            last_pending: false,
            deferred: None,
        }
    }

    pub(crate) fn hit(body: FileBody) -> Self {
        ResponseBody {
            kind: ResponseKind::Hit { body },
            last_pending: false,
            deferred: None,
        }
    }

    pub(crate) fn verifying(body: VerifyingBody) -> Self {
        ResponseBody {
            kind: ResponseKind::Verify { body },
            last_pending: false,
            deferred: None,
        }
    }

    pub(crate) fn follow(body: FollowBody) -> Self {
        ResponseBody {
            kind: ResponseKind::Follow { body },
            last_pending: false,
            deferred: None,
        }
    }

    pub(crate) fn message(text: impl Into<Bytes>) -> Self {
        ResponseBody {
            kind: ResponseKind::Message {
                data: Some(text.into()),
            },
            last_pending: false,
            deferred: None,
        }
    }

    /// Another node's answer, relayed as it is.
    pub(crate) fn peer(body: UnsyncBoxBody<Bytes, BoxError>) -> Self {
        ResponseBody {
            kind: ResponseKind::Peer { body },
            last_pending: false,
            deferred: None,
        }
    }

    /// Whether the bytes come from a cached file (a hit, or a range of
    /// one) rather than from the upstream or a fill.
    ///
    /// ```
    /// # use glance_cache::layer::cache::ResponseBody;
    /// # fn f(b: &ResponseBody<hyper::body::Incoming>) -> bool {
    /// b.is_hit()
    /// # }
    /// ```
    pub fn is_hit(&self) -> bool {
        matches!(
            self.kind,
            ResponseKind::Hit { .. } | ResponseKind::Verify { .. }
        )
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
        let this = self.project();
        if let Some(e) = this.deferred.take() {
            return Poll::Ready(Some(Err(e)));
        }
        let poll = match this.kind.project() {
            ResponseKindProj::Upstream { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Hit { body } => body.poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Verify { body } => Pin::new(body).poll_frame(cx).map_err(Into::into),
            ResponseKindProj::Follow { body } => body.poll_frame(cx),
            ResponseKindProj::Message { data } => {
                Poll::Ready(data.take().map(|d| Ok(Frame::data(d))))
            }
            ResponseKindProj::Peer { body } => body.poll_frame(cx),
        };
        match poll {
            Poll::Ready(Some(Err(e))) if !*this.last_pending => {
                *this.last_pending = true;
                *this.deferred = Some(e);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            poll => {
                *this.last_pending = poll.is_pending();
                poll
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        if self.deferred.is_some() {
            return false;
        }
        match &self.kind {
            ResponseKind::Upstream { body } => body.is_end_stream(),
            ResponseKind::Hit { body } => body.is_end_stream(),
            ResponseKind::Verify { body } => body.is_end_stream(),
            ResponseKind::Follow { body } => body.is_end_stream(),
            ResponseKind::Message { data } => data.is_none(),
            ResponseKind::Peer { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            ResponseKind::Upstream { body } => body.size_hint(),
            ResponseKind::Hit { body } => body.size_hint(),
            ResponseKind::Verify { body } => body.size_hint(),
            ResponseKind::Follow { body } => body.size_hint(),
            ResponseKind::Message { data } => {
                SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64))
            }
            ResponseKind::Peer { body } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::io::Write;
    use std::sync::Arc;

    use http_body_util::BodyExt;

    use super::*;
    use crate::store::ReadBuffers;

    /// Polls once; whether the body answered `Pending`.
    async fn pends<B>(body: &mut ResponseBody<B>) -> bool
    where
        B: Body<Data = Bytes> + Unpin,
        B::Error: Into<BoxError>,
    {
        poll_fn(|cx| Poll::Ready(Pin::new(&mut *body).poll_frame(cx).is_pending())).await
    }

    #[tokio::test]
    async fn an_error_comes_after_one_pending_so_that_hyper_flushes() {
        // A cached file shorter than its entry: 8 bytes, then a read error.
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"IMAGEDAT").unwrap();
        let file = FileBody::new(Arc::new(f), 0, 9, ReadBuffers::unbounded(4096));
        let mut body = ResponseBody::<http_body_util::Empty<Bytes>>::hit(file);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"IMAGEDAT");
        assert!(pends(&mut body).await, "Pending before the error");
        assert!(body.frame().await.unwrap().is_err());

        // A body failing at its first poll: Pending first, so the head goes out.
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"").unwrap();
        let file = FileBody::new(Arc::new(f), 0, 9, ReadBuffers::unbounded(4096));
        let mut body = ResponseBody::<http_body_util::Empty<Bytes>>::hit(file);
        assert!(!body.is_end_stream());
        assert!(pends(&mut body).await);
        assert!(!body.is_end_stream(), "the error is still to come");
        assert!(body.frame().await.unwrap().is_err());
    }

    /// An upstream body that breaks at once, or after one chunk.
    struct Breaks(Option<Bytes>);

    impl Body for Breaks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Ready(Some(match self.0.take() {
                Some(data) => Ok(Frame::data(data)),
                None => Err(std::io::Error::other("connection reset")),
            }))
        }
    }

    #[tokio::test]
    async fn a_body_that_breaks_at_once_lets_the_head_out_first() {
        let mut body = ResponseBody::upstream(Breaks(None));
        assert!(
            pends(&mut body).await,
            "Pending first, so hyper sends the head"
        );
        assert!(!body.is_end_stream(), "the error is still to come");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("reset"), "{err}");

        let mut body = ResponseBody::upstream(Breaks(Some(Bytes::from_static(b"IMAGE"))));
        assert!(body.frame().await.unwrap().is_ok());
        assert!(
            pends(&mut body).await,
            "Pending before the error: the chunk is flushed"
        );
        assert!(body.frame().await.unwrap().is_err());
    }

    #[tokio::test]
    async fn data_and_the_end_are_not_delayed() {
        let mut body = ResponseBody::<http_body_util::Empty<Bytes>>::message("hello");
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"hello");
        assert!(body.frame().await.is_none());
    }
}
