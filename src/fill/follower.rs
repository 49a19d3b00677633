//! Followers: every client of a fill reads the growing file at its own pace.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use tokio::sync::watch;

use super::{Failure, Fill, Phase, Status};
use crate::store::ChunkReader;
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
pub struct FollowBody {
    state: State,
    remaining: Option<u64>,
}

enum State {
    /// Reading the growing file.
    Following(Box<Following>),
    /// The local disk failed: asking the upstream for the rest.
    Resuming(BoxFuture<'static, Result<ResumeBody, BoxError>>),
    /// Relaying the upstream's rest of the image.
    Relaying(ResumeBody),
    /// A broken body: the error is yielded once, then the body ends.
    Broken(Option<BoxError>),
    Done,
}

type Wait = BoxFuture<'static, (watch::Receiver<Status>, bool)>;

struct Following {
    fill: Arc<Fill>,
    reader: ChunkReader,
    /// `None` while `wait` owns the receiver.
    status: Option<watch::Receiver<Status>>,
    wait: Option<Wait>,
    pos: u64,
    resume: Option<Resume>,
}

impl fmt::Debug for FollowBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FollowBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

/// Starts following `fill` from byte 0; `len` is the announced length.
pub(crate) fn follow(
    fill: Arc<Fill>,
    len: Option<u64>,
    chunk_size: usize,
    resume: Option<Resume>,
) -> FollowBody {
    let state = match fill.file().cloned() {
        Some(file) => State::Following(Box::new(Following {
            reader: ChunkReader::new(file, chunk_size),
            status: Some(fill.subscribe()),
            fill,
            wait: None,
            pos: 0,
            resume,
        })),
        None => State::Broken(Some("fill has no file".into())),
    };
    FollowBody {
        state,
        remaining: len,
    }
}

/// What one step of following produced.
enum Step {
    Data(Bytes),
    End,
    Resume(Resume, u64),
}

impl Following {
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<Result<Step, BoxError>> {
        loop {
            if let Some(wait) = self.wait.as_mut() {
                let (rx, alive) = ready!(wait.as_mut().poll(cx));
                self.wait = None;
                self.status = Some(rx);
                // The sender lives in the `Fill` this body holds: never closed
                // while we wait. Checked anyway rather than assumed.
                if !alive {
                    return Poll::Ready(Err("fill vanished".into()));
                }
            }
            let rx = self.status.as_mut().expect("status is back after a wait");
            let status = rx.borrow_and_update().clone();
            match &status.phase {
                Phase::Failed(Failure::Local(why)) => {
                    return Poll::Ready(match self.resume.take() {
                        Some(resume) => {
                            tracing::info!(image_id = %self.fill.id, offset = self.pos, "cache write failed; continuing from the upstream");
                            Ok(Step::Resume(resume, self.pos))
                        }
                        None => Err(format!("cache write failed: {why}").into()),
                    });
                }
                Phase::Failed(failure) => return Poll::Ready(Err(failure.to_string().into())),
                Phase::Abandoned | Phase::Waiting => {
                    return Poll::Ready(Err("fill did not start".into()))
                }
                Phase::Streaming | Phase::Verified => {}
            }
            let visible = status.visible();
            if self.pos < visible {
                let chunk = ready!(self.reader.poll_read(cx, self.pos, visible - self.pos))?;
                self.pos += chunk.len() as u64;
                return Poll::Ready(Ok(Step::Data(chunk)));
            }
            if status.phase == Phase::Verified {
                return Poll::Ready(Ok(Step::End));
            }
            let mut rx = self.status.take().expect("checked above");
            self.wait = Some(Box::pin(async move {
                let alive = rx.changed().await.is_ok();
                (rx, alive)
            }));
        }
    }
}

impl FollowBody {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self;
        loop {
            let data = match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Broken(e) => {
                    let e = e.take();
                    this.state = State::Done;
                    return Poll::Ready(e.map(Err));
                }
                State::Following(f) => match ready!(f.poll_step(cx)) {
                    Ok(Step::Data(data)) => data,
                    Ok(Step::End) => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(Step::Resume(resume, pos)) => {
                        this.state = State::Resuming(resume(pos));
                        continue;
                    }
                    Err(e) => {
                        this.state = State::Broken(Some(e));
                        continue;
                    }
                },
                State::Resuming(fut) => {
                    this.state = match ready!(fut.as_mut().poll(cx)) {
                        Ok(body) => State::Relaying(body),
                        Err(e) => State::Broken(Some(e)),
                    };
                    continue;
                }
                State::Relaying(body) => match ready!(Pin::new(body).poll_frame(cx)) {
                    None => {
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Some(Err(e)) => {
                        this.state = State::Broken(Some(e));
                        continue;
                    }
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) => data,
                        Err(_) => continue, // trailers: nothing to relay
                    },
                },
            };
            if let Some(rem) = this.remaining.as_mut() {
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
        let body = follow(Arc::clone(&fill), Some(300_000), 65536, None);
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
        let mut body = follow(Arc::clone(&fill), Some(9), 65536, None);
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"IMAGEDAT", "the last byte is held back");
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        fill.finish(Phase::Failed(Failure::Verification("md5".into())));
        assert!(body.frame().await.unwrap().is_err(), "never the last byte");
    }
}
