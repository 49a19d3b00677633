//! [`VerifyingBody`]: serves a cached file whose verdict is still to come.
//!
//! A file that changed since it was verified (or was never verified) is
//! served as any hit is, all but its last byte; the last byte waits for the
//! file's verification (shared by every hit of it, see `reverify`). An
//! intact file, still the one that was hashed, sends its last byte and
//! counts the hit; otherwise the response ends short of its
//! `Content-Length` (a corrupt file is quarantined by the verification, so
//! the next request fetches the image again).

use std::fmt;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http_body::{Body, Frame, SizeHint};

use super::file_body::FileBody;
use super::index::CacheEntry;
use super::integrity::OpenedHit;
use super::reverify::{wait_for_verdict, Pending};
use super::CacheStore;

/// The response body of a hit whose file is being verified again.
pub(crate) struct VerifyingBody {
    /// Every byte but the last.
    head: FileBody,
    tail: Tail,
    /// 1, or 0 for an empty file.
    last_len: u64,
}

enum Tail {
    /// The head is still being sent.
    Waiting(Box<Last>),
    /// Waiting for the verdict, then reading the last byte.
    Judging(BoxFuture<'static, io::Result<Bytes>>),
    Done,
}

/// What the last byte needs.
struct Last {
    pending: Pending,
    store: CacheStore,
    entry: CacheEntry,
    opened: OpenedHit,
}

impl fmt::Debug for VerifyingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingBody")
            .field("head", &self.head)
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// A body serving `opened` (the file of `entry`) whole, its last byte
    /// once `pending` finds it intact (see
    /// [`reverification`](Self::reverification)). The hit is recorded when
    /// the last byte is out.
    pub(crate) fn verifying_hit_body(
        &self,
        entry: CacheEntry,
        opened: OpenedHit,
        pending: Pending,
    ) -> VerifyingBody {
        let entry_size = entry.size;
        let before_last = entry_size.saturating_sub(1);
        let head = FileBody::new(
            Arc::clone(&opened.file),
            0,
            before_last,
            self.read_buffers(),
        )
        .counting(self.metrics().clone());
        VerifyingBody {
            head,
            tail: Tail::Waiting(Box::new(Last {
                pending,
                store: self.clone(),
                entry,
                opened,
            })),
            last_len: u64::from(entry_size > 0),
        }
    }
}

impl Last {
    /// The last byte (none for an empty file) once the file is found
    /// intact and is still the file that was hashed.
    async fn read(self) -> io::Result<Bytes> {
        wait_for_verdict(self.pending).await?;
        let Last {
            store,
            entry,
            opened,
            ..
        } = self;
        let size = entry.size;
        let last = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
            // A write since the file was opened may have changed bytes
            // already sent after they were hashed.
            if opened.changed_since_opened() {
                return Err(io::Error::other(
                    "the cached file changed while it was served",
                ));
            }
            if size == 0 {
                return Ok(Bytes::new());
            }
            let mut byte = [0u8; 1];
            opened.file.read_exact_at(&mut byte, size - 1)?;
            Ok(Bytes::copy_from_slice(&byte))
        })
        .await
        .map_err(io::Error::other)??;
        store.metrics().hit_bytes(last.len() as u64);
        store.inner.index.record_access(&entry.image_id, true);
        Ok(last)
    }
}

impl Body for VerifyingBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        loop {
            match &mut this.tail {
                Tail::Done => return Poll::Ready(None),
                Tail::Waiting(_) => match ready!(Pin::new(&mut this.head).poll_frame(cx)) {
                    Some(Err(e)) => {
                        this.tail = Tail::Done;
                        return Poll::Ready(Some(Err(e)));
                    }
                    Some(Ok(frame)) => return Poll::Ready(Some(Ok(frame))),
                    None => {
                        let Tail::Waiting(last) = std::mem::replace(&mut this.tail, Tail::Done)
                        else {
                            unreachable!("matched above")
                        };
                        this.tail = Tail::Judging(last.read().boxed());
                    }
                },
                Tail::Judging(last) => {
                    let last = ready!(last.as_mut().poll(cx));
                    this.tail = Tail::Done;
                    return Poll::Ready(match last {
                        Ok(last) if last.is_empty() => None,
                        Ok(last) => Some(Ok(Frame::data(last))),
                        Err(e) => Some(Err(e)),
                    });
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.tail, Tail::Done)
    }

    fn size_hint(&self) -> SizeHint {
        if matches!(self.tail, Tail::Done) {
            return SizeHint::with_exact(0);
        }
        let head = self.head.size_hint().exact().unwrap_or(0);
        SizeHint::with_exact(head + self.last_len)
    }
}
