//! Followers: every client of a fill reads the growing file at its own pace.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::watch;

use super::{Failure, Fill, Phase, Status};
use crate::store::{ChunkReader, ReadBuffers};
use crate::BoxError;

/// The rest of an image fetched from the upstream by a follower.
pub(crate) type ResumeBody = UnsyncBoxBody<Bytes, BoxError>;

/// Fetches the image from a byte offset on; used when the local disk fails.
pub(crate) type Resume =
    Box<dyn FnOnce(u64) -> BoxFuture<'static, Result<ResumeBody, BoxError>> + Send>;

/// The response body of a client following a fill.
///
/// It reads the fill's file up to what has been written (and, for the last
/// byte, verified), at the client's pace, and sleeps on the fill's progress
/// channel when it has caught up. Dropping the body never stops the fill.
pub(crate) struct FollowBody {
    state: State,
    remaining: Option<u64>,
}

enum State {
    /// Reading what the fill has made visible.
    Reading(Box<Following>, watch::Receiver<Status>),
    /// Caught up: waiting for the fill to publish progress.
    Waiting(Box<Following>, Wait),
    /// The local disk failed: asking the upstream for the rest.
    Resuming(BoxFuture<'static, Result<ResumeBody, BoxError>>),
    /// Relaying the upstream's rest of the image.
    Relaying(ResumeBody),
    /// Broken before it began: the error is yielded once.
    Failed(BoxError),
    /// Over (the error, if any, has been yielded).
    Done,
}

/// The fill's progress channel, lent to a future that waits for a change;
/// `false` when the sender is gone.
type Wait = BoxFuture<'static, (watch::Receiver<Status>, bool)>;

/// What a follower needs besides the progress channel.
struct Following {
    fill: Arc<Fill>,
    reader: ChunkReader,
    pos: u64,
    /// Where a range ends (exclusive); `None` for the whole image.
    end: Option<u64>,
    resume: Option<Resume>,
}

/// Which bytes of the image a follower sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// All of them; `len` is the announced length.
    Whole { len: Option<u64> },
    /// Bytes `start..end`.
    Range { start: u64, end: u64 },
}

impl fmt::Debug for FollowBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// Starts following `part` of `fill`. `resume` fetches the rest of the
/// part from the upstream if the local disk fails.
pub(crate) fn follow(
    fill: Arc<Fill>,
    part: Part,
    buffers: ReadBuffers,
    resume: Option<Resume>,
) -> FollowBody {
    let (pos, end, len) = match part {
        Part::Whole { len } => (0, None, len),
        Part::Range { start, end } => (start, Some(end), Some(end.saturating_sub(start))),
    };
    let state = match fill.file().cloned() {
        Some(file) => {
            let rx = fill.subscribe();
            let following = Box::new(Following {
                reader: ChunkReader::new(file, buffers),
                fill,
                pos,
                end,
                resume,
            });
            State::Reading(following, rx)
        }
        None => State::Failed("fill has no file".into()),
    };
    FollowBody {
        state,
        remaining: len,
    }
}

/// What one look at the fill's status says to do next.
enum Next {
    /// Read up to this offset.
    Read(u64),
    /// Everything is out.
    End,
    /// Nothing new: wait for a change.
    Wait,
    /// The local disk failed: continue from the upstream at this offset.
    Resume(Resume, u64),
    /// The fill failed for good.
    Fail(BoxError),
}

impl Following {
    fn next(&mut self, rx: &mut watch::Receiver<Status>) -> Next {
        let status = rx.borrow_and_update().clone();
        match &status.phase {
            Phase::Failed(why @ (Failure::Local(_) | Failure::Source(_))) => {
                return match self.resume.take() {
                    Some(resume) => {
                        tracing::info!(image_id = %self.fill.id, offset = self.pos, %why,
                            "fill stopped; continuing from the upstream");
                        Next::Resume(resume, self.pos)
                    }
                    None => Next::Fail(why.to_string().into()),
                };
            }
            Phase::Failed(failure) => return Next::Fail(failure.to_string().into()),
            Phase::Abandoned | Phase::Waiting => return Next::Fail("fill did not start".into()),
            Phase::Streaming | Phase::Verified => {}
        }
        let visible = match self.end {
            Some(end) if self.pos >= end => return Next::End,
            Some(end) => status.visible().min(end),
            None => status.visible(),
        };
        if self.pos < visible {
            Next::Read(visible)
        } else if matches!(status.phase, Phase::Verified) {
            Next::End
        } else {
            Next::Wait
        }
    }
}

fn wait_for_change(mut rx: watch::Receiver<Status>) -> Wait {
    Box::pin(async move {
        let alive = rx.changed().await.is_ok();
        (rx, alive)
    })
}

impl FollowBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let data = match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Failed(e) => return Poll::Ready(Some(Err(e))),
                State::Waiting(following, mut wait) => {
                    let Poll::Ready((rx, alive)) = wait.as_mut().poll(cx) else {
                        self.state = State::Waiting(following, wait);
                        return Poll::Pending;
                    };
                    // The sender lives in the `Fill` this body holds: never
                    // closed while we wait. Checked anyway rather than assumed.
                    if !alive {
                        return Poll::Ready(Some(Err("fill vanished".into())));
                    }
                    self.state = State::Reading(following, rx);
                    continue;
                }
                State::Reading(mut following, mut rx) => match following.next(&mut rx) {
                    Next::Read(visible) => {
                        let pos = following.pos;
                        match following.reader.poll_read(cx, pos, visible - pos) {
                            Poll::Pending => {
                                self.state = State::Reading(following, rx);
                                return Poll::Pending;
                            }
                            Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                            Poll::Ready(Ok(chunk)) => {
                                following.pos += chunk.len() as u64;
                                self.state = State::Reading(following, rx);
                                chunk
                            }
                        }
                    }
                    Next::End => return Poll::Ready(None),
                    Next::Wait => {
                        self.state = State::Waiting(following, wait_for_change(rx));
                        continue;
                    }
                    Next::Resume(resume, pos) => {
                        self.state = State::Resuming(resume(pos));
                        continue;
                    }
                    Next::Fail(e) => return Poll::Ready(Some(Err(e))),
                },
                State::Resuming(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Resuming(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready(Ok(body)) => {
                        self.state = State::Relaying(body);
                        continue;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(e))),
                },
                State::Relaying(mut body) => match Pin::new(&mut body).poll_frame(cx) {
                    Poll::Pending => {
                        self.state = State::Relaying(body);
                        return Poll::Pending;
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(frame))) => {
                        self.state = State::Relaying(body);
                        match frame.into_data() {
                            Ok(data) => data,
                            Err(_) => continue, // trailers: nothing to relay
                        }
                    }
                },
            };
            if let Some(rem) = self.remaining.as_mut() {
                *rem = rem.saturating_sub(data.len() as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
    }
}

impl Body for FollowBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.get_mut().poll_next(cx)
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) || self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;
    use crate::fill::Head;
    use crate::ImageId;

    fn started_fill(data: &[u8]) -> Arc<Fill> {
        let fill = Fill::new(ImageId::parse("40000000-0000-4000-8000-000000000001").unwrap());
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let head = Head {
            status: http::StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: Some(data.len() as u64),
        };
        fill.start(head, Arc::new(file));
        fill
    }

    #[tokio::test]
    async fn reads_what_is_written_and_wakes_up_for_more() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        let fill = started_fill(&data);
        fill.set_written(100_000);
        let body = follow(
            Arc::clone(&fill),
            Part::Whole { len: Some(300_000) },
            ReadBuffers::unbounded(65536),
            None,
        );
        // A real task with a real waker: a lost wakeup would hang it.
        let reader = tokio::spawn(async move {
            let mut body = body;
            let mut got = Vec::new();
            while let Some(frame) = body.frame().await {
                got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            }
            got
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!reader.is_finished(), "waits for the rest of the fill");
        fill.set_written(200_000);
        tokio::task::yield_now().await;
        fill.set_written(300_000);
        fill.finish(Phase::Verified);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("the follower woke up and ended")
            .unwrap();
        assert_eq!(got, data);
    }

    #[tokio::test]
    async fn the_last_byte_waits_for_verification() {
        let fill = started_fill(b"IMAGEDATA");
        fill.set_written(9);
        let mut body = follow(
            Arc::clone(&fill),
            Part::Whole { len: Some(9) },
            ReadBuffers::unbounded(65536),
            None,
        );
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"IMAGEDAT", "the last byte is held back");
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        fill.finish(Phase::Failed(Failure::Verification(
            crate::checksum::DigestMismatch::Md5 {
                got: [1; 16],
                want: [2; 16],
            }
            .into(),
        )));
        assert!(body.frame().await.unwrap().is_err(), "never the last byte");
    }

    async fn collect(body: FollowBody) -> Vec<u8> {
        let mut body = body;
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        got
    }

    #[tokio::test]
    async fn a_range_is_read_as_it_lands_and_its_image_s_last_byte_waits() {
        let fill = started_fill(b"IMAGEDATA");
        fill.set_written(6);
        // On disk already: answered at once.
        let middle = follow(
            Arc::clone(&fill),
            Part::Range { start: 2, end: 5 },
            ReadBuffers::unbounded(4096),
            None,
        );
        assert_eq!(middle.size_hint().exact(), Some(3));
        assert_eq!(collect(middle).await, b"AGE");
        // Not on disk yet: waits for the fill.
        let tail = follow(
            Arc::clone(&fill),
            Part::Range { start: 4, end: 9 },
            ReadBuffers::unbounded(4096),
            None,
        );
        let reader = tokio::spawn(collect(tail));
        fill.set_written(9);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            !reader.is_finished(),
            "the image's last byte waits for verification"
        );
        fill.finish(Phase::Verified);
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), reader)
            .await
            .expect("the range ended once verified")
            .unwrap();
        assert_eq!(got, b"EDATA");
    }
}
