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

use super::{Continuation, Expectation, Failure, Fill, Phase, Status};
use crate::checksum::{DigestMismatch, Hashers};
use crate::store::{hash_start, ChunkReader, ReadBuffers};
use crate::BoxError;

/// The rest of an image fetched from the upstream by a follower.
pub(crate) type ResumeBody = UnsyncBoxBody<Bytes, BoxError>;

/// Fetches the image from a byte offset on; used when the fill fails with
/// its bytes so far good (the local disk failed) or checkable (its source
/// broke off).
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
    /// The fill failed: asking the upstream for the rest (after hashing
    /// the bytes already sent, when they must be verified).
    Resuming(BoxFuture<'static, Result<Relay, BoxError>>),
    /// Relaying the upstream's rest of the image.
    Relaying(Relay),
    /// Broken before it began: the error is yielded once.
    Failed(BoxError),
    /// Over (the error, if any, has been yielded).
    Done,
}

/// The fill's progress channel, lent to a future that waits for a change;
/// `false` when the sender is gone.
type Wait = BoxFuture<'static, (watch::Receiver<Status>, bool)>;

/// The upstream's rest of the image, and what it must complete.
struct Relay {
    body: ResumeBody,
    check: Option<Check>,
}

/// The whole image's `Content-MD5`, checked over the bytes a follower
/// sent from the fill and the upstream's rest before the last byte goes.
struct Check {
    hashers: Hashers,
    want: [u8; 16],
    /// Bytes of the rest still to come.
    left: u64,
}

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
    /// The fill failed with its bytes so far good or checkable: continue
    /// from the upstream.
    Resume(BoxFuture<'static, Result<Relay, BoxError>>),
    /// The fill failed for good.
    Fail(BoxError),
}

impl Following {
    fn next(&mut self, rx: &mut watch::Receiver<Status>) -> Next {
        let status = rx.borrow_and_update().clone();
        match &status.phase {
            Phase::Failed(why @ (Failure::Local(_) | Failure::Source(_))) => {
                return match self.resume.take() {
                    Some(resume) => self.go_on(resume, why),
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

    /// Continues from the upstream after the fill failed with `why`, as
    /// the fill's [`Continuation`] allows.
    fn go_on(&self, resume: Resume, why: &Failure) -> Next {
        let (id, pos) = (&self.fill.id, self.pos);
        if self.fill.continuation() == Continuation::Relay {
            tracing::info!(image_id = %id, offset = pos, %why,
                "fill stopped; continuing from the upstream");
            return Next::Resume(Box::pin(async move {
                Ok(Relay {
                    body: resume(pos).await?,
                    check: None,
                })
            }));
        }
        // The bytes sent so far were not verified: the rest may complete
        // them only if the whole then matches the image's Content-MD5.
        let promised = self.fill.head().and_then(|head| {
            let expect = Expectation::from_headers(&head.headers).ok()?;
            Some((expect.md5?, head.content_length?))
        });
        let (Some((want, len)), None, Some(file)) = (promised, self.end, self.fill.file().cloned())
        else {
            tracing::warn!(image_id = %id, offset = pos, %why,
                "fill stopped with unverified bytes sent; response truncated");
            return Next::Fail(format!("{why}; the bytes sent could not be verified").into());
        };
        tracing::info!(image_id = %id, offset = pos, %why,
            "fill stopped; continuing from the upstream, verified before the last byte");
        Next::Resume(Box::pin(async move {
            // The fill's writer has stopped and nothing else writes the file
            // (the writer's lock, or this process's shared lock on another
            // process's file, keeps it from being taken over): these are the
            // bytes the follower read.
            let hashers = tokio::task::spawn_blocking(move || hash_start(&file, pos))
                .await
                .map_err(BoxError::from)??;
            Ok(Relay {
                body: resume(pos).await?,
                check: Some(Check {
                    hashers,
                    want,
                    left: len.saturating_sub(pos),
                }),
            })
        }))
    }
}

impl Relay {
    /// The next bytes of the rest; with a check, the chunk that ends the
    /// image only once the whole matches.
    fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        loop {
            let data = match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => {
                    return Poll::Ready(match &self.check {
                        Some(check) if check.left > 0 => Some(Err(format!(
                            "the upstream's rest of the image ended {} bytes short",
                            check.left
                        )
                        .into())),
                        _ => None,
                    })
                }
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers: nothing to relay
                },
            };
            let Some(check) = self.check.as_mut() else {
                return Poll::Ready(Some(Ok(data)));
            };
            let Some(left) = check.left.checked_sub(data.len() as u64) else {
                return Poll::Ready(Some(Err(
                    "the upstream sent more than the rest of the image".into(),
                )));
            };
            check.hashers.update(&data);
            check.left = left;
            if left > 0 {
                return Poll::Ready(Some(Ok(data)));
            }
            let check = self.check.take().expect("checked above");
            let got = check.hashers.finish().md5;
            if got != check.want {
                let mismatch = DigestMismatch::Md5 {
                    got,
                    want: check.want,
                };
                tracing::error!(%mismatch,
                    "the bytes sent before the fill failed do not make the image; response truncated");
                return Poll::Ready(Some(Err(mismatch.into())));
            }
            return Poll::Ready(Some(Ok(data)));
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
                    Next::Resume(relay) => {
                        self.state = State::Resuming(relay);
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
                State::Relaying(mut relay) => match relay.poll_data(cx) {
                    Poll::Pending => {
                        self.state = State::Relaying(relay);
                        return Poll::Pending;
                    }
                    Poll::Ready(None) => return Poll::Ready(None),
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                    Poll::Ready(Some(Ok(data))) => {
                        self.state = State::Relaying(relay);
                        data
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
        fill_promising(data, data.len() as u64, None, Continuation::Relay)
    }

    /// A fill of `IMAGE` whose file holds `data` so far and whose head
    /// promises `md5`.
    fn fill_of_image(data: &[u8], md5: Option<&str>, continuation: Continuation) -> Arc<Fill> {
        fill_promising(data, IMAGE.len() as u64, md5, continuation)
    }

    /// A fill of `len` bytes whose file holds `data` and whose head
    /// promises `md5`.
    fn fill_promising(
        data: &[u8],
        len: u64,
        md5: Option<&str>,
        continuation: Continuation,
    ) -> Arc<Fill> {
        let fill = Fill::new(ImageId::parse("40000000-0000-4000-8000-000000000001").unwrap());
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        let mut headers = HeaderMap::new();
        if let Some(md5) = md5 {
            headers.insert("content-md5", md5.parse().unwrap());
        }
        let head = Head {
            status: http::StatusCode::OK,
            headers,
            content_length: Some(len),
        };
        fill.start(head, Arc::new(file), continuation);
        fill
    }

    const IMAGE: &[u8] = b"THE WHOLE IMAGE, AS THE UPSTREAM HAS IT";
    /// MD5 of `IMAGE` (md5sum).
    const IMAGE_MD5: &str = "5b337c08e9e4a0f1717b3643d720d98a";
    const WHOLE: Part = Part::Whole {
        len: Some(IMAGE.len() as u64),
    };

    /// What a client following `part` of a fill of `IMAGE` whose file holds
    /// `on_disk` gets when the fill then ends with `failure`: the bytes, and
    /// whether the body broke off; and how often the upstream was asked
    /// for the rest (which it serves right).
    async fn after_failure(
        on_disk: &[u8],
        md5: Option<&str>,
        continuation: Continuation,
        part: Part,
        failure: Failure,
    ) -> (Vec<u8>, bool, usize) {
        let fill = fill_of_image(on_disk, md5, continuation);
        fill.set_written(on_disk.len() as u64);
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let resume: Resume = Box::new(move |offset| {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                let rest = Bytes::from_static(&IMAGE[offset as usize..]);
                Ok(http_body_util::Full::new(rest)
                    .map_err(|never| match never {})
                    .boxed_unsync())
            })
        });
        let mut body = follow(
            Arc::clone(&fill),
            part,
            ReadBuffers::unbounded(8),
            Some(resume),
        );
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
                    Err(_) => return (got, true),
                }
            }
            (got, false)
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        fill.finish(Phase::Failed(failure));
        let (got, broke) = reader.await.unwrap();
        (got, broke, calls.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn source_broke() -> Failure {
        Failure::Source(Arc::new("the peer went away".into()))
    }

    fn disk_full() -> Failure {
        Failure::Local(Arc::new(std::io::Error::other("disk full")))
    }

    #[tokio::test]
    async fn a_broken_fill_from_elsewhere_is_completed_from_the_upstream_when_the_whole_matches() {
        let on_disk = &IMAGE[..20];
        let got = after_failure(
            on_disk,
            Some(IMAGE_MD5),
            Continuation::Verify,
            WHOLE,
            source_broke(),
        )
        .await;
        assert_eq!(got, (IMAGE.to_vec(), false, 1));
    }

    #[tokio::test]
    async fn wrong_bytes_from_a_broken_fill_are_never_completed_by_the_upstream() {
        let mut wrong = IMAGE[..20].to_vec();
        wrong[7] ^= 0x20; // one flipped bit, as a corrupt peer or object sends it
        for failure in [source_broke(), disk_full()] {
            let (got, broke, _) = after_failure(
                &wrong,
                Some(IMAGE_MD5),
                Continuation::Verify,
                WHOLE,
                failure,
            )
            .await;
            assert!(broke, "the response breaks off");
            assert!(
                got.len() < IMAGE.len(),
                "{} of {} bytes sent: never the whole",
                got.len(),
                IMAGE.len()
            );
        }
    }

    #[tokio::test]
    async fn unverifiable_bytes_from_a_broken_fill_end_without_asking_the_upstream() {
        // A range cannot be checked against the whole image's MD5, nor can
        // a download whose head promised none.
        let cases = [
            (Some(IMAGE_MD5), Part::Range { start: 4, end: 30 }, 4),
            (None, WHOLE, 0),
        ];
        for (md5, part, start) in cases {
            let got = after_failure(
                &IMAGE[..20],
                md5,
                Continuation::Verify,
                part,
                source_broke(),
            )
            .await;
            // 20 bytes on disk, the last of them held back.
            assert_eq!(got, (IMAGE[start..19].to_vec(), true, 0), "{part:?}");
        }
    }

    #[tokio::test]
    async fn a_disk_failure_of_an_upstream_fill_goes_on_with_the_upstream_s_rest() {
        let got = after_failure(&IMAGE[..20], None, Continuation::Relay, WHOLE, disk_full()).await;
        assert_eq!(got, (IMAGE.to_vec(), false, 1));
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
