//! [`SendTimeout`]: a connection whose client stops reading is closed.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pin_project_lite::pin_project! {
    /// Wraps a client connection: a write that cannot make progress for
    /// `timeout` (the client's receive window stays full: it stopped
    /// reading) fails with [`io::ErrorKind::TimedOut`], which ends the
    /// connection and releases what its response held (a cache file, a
    /// place in a fill). A slow reader that keeps taking bytes is never
    /// cut: every write that goes through starts the clock again. Reads are
    /// untouched (idle keep-alive connections are hyper's business).
    pub(crate) struct SendTimeout<T> {
        #[pin]
        inner: T,
        timeout: Option<Duration>,
        peer: SocketAddr,
        stalled: Option<Pin<Box<Sleep>>>,
    }
}

impl<T> SendTimeout<T> {
    /// `timeout` `None`: never.
    pub(crate) fn new(inner: T, timeout: Option<Duration>, peer: SocketAddr) -> Self {
        SendTimeout {
            inner,
            timeout,
            peer,
            stalled: None,
        }
    }
}

impl<T: AsyncRead> AsyncRead for SendTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().inner.poll_read(cx, buf)
    }
}

/// What a write that returned `pending` means for the clock.
fn stalled(
    pending: Poll<io::Result<usize>>,
    clock: &mut Option<Pin<Box<Sleep>>>,
    timeout: Option<Duration>,
    peer: SocketAddr,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    match (pending, timeout) {
        (Poll::Ready(done), _) => {
            *clock = None;
            Poll::Ready(done)
        }
        (Poll::Pending, None) => Poll::Pending,
        (Poll::Pending, Some(timeout)) => {
            let sleep = clock.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
            match sleep.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => {
                    tracing::info!(%peer, ?timeout, "the client stopped reading; closing the connection");
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client took no bytes for {timeout:?}"),
                    )))
                }
            }
        }
    }
}

use std::future::Future as _;

impl<T: AsyncWrite> AsyncWrite for SendTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.inner.poll_write(cx, buf);
        stalled(written, this.stalled, *this.timeout, *this.peer, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let written = this.inner.poll_write_vectored(cx, bufs);
        stalled(written, this.stalled, *this.timeout, *this.peer, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let flushed = this.inner.poll_flush(cx).map_ok(|()| 0);
        stalled(flushed, this.stalled, *this.timeout, *this.peer, cx).map_ok(|_| ())
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
