//! Followers: every client of a fill reads the growing file at its own pace.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{Failure, Fill, Phase};
use crate::store::read_chunk_at;
use crate::BoxError;

/// The rest of an image fetched from the upstream by a follower.
pub(crate) type ResumeBody = UnsyncBoxBody<Bytes, BoxError>;

/// Fetches the image from a byte offset on; used when the local disk fails.
pub(crate) type Resume =
    Box<dyn FnOnce(u64) -> BoxFuture<'static, Result<ResumeBody, BoxError>> + Send>;

enum Msg {
    Data(Bytes),
    End,
    Error(BoxError),
}

/// The response body of a client following a fill.
///
/// Fed by a small task (one chunk in flight) that reads the fill's file up
/// to what has been written and verified. Dropping the body stops only that
/// task, never the fill.
pub struct FollowBody {
    rx: mpsc::Receiver<Msg>,
    remaining: Option<u64>,
    finished: bool,
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
    let (tx, rx) = mpsc::channel(1);
    tokio::spawn(async move {
        if let Err(msg) = run(fill, &tx, chunk_size, resume).await {
            let _ = tx.send(Msg::Error(msg)).await;
        }
    });
    FollowBody {
        rx,
        remaining: len,
        finished: false,
    }
}

async fn send(tx: &mpsc::Sender<Msg>, msg: Msg) -> Result<(), ()> {
    tx.send(msg).await.map_err(|_| ())
}

/// Returns `Err(reason)` when the client must see a broken body; `Ok` when
/// the body ended properly or the client went away.
async fn run(
    fill: Arc<Fill>,
    tx: &mpsc::Sender<Msg>,
    chunk_size: usize,
    resume: Option<Resume>,
) -> Result<(), BoxError> {
    let file = fill
        .file()
        .cloned()
        .ok_or_else(|| BoxError::from("fill has no file"))?;
    let mut rx = fill.subscribe();
    let mut pos = 0u64;
    loop {
        let status = rx.borrow_and_update().clone();
        match &status.phase {
            Phase::Failed(Failure::Local(why)) => {
                let Some(resume) = resume else {
                    return Err(format!("cache write failed: {why}").into());
                };
                tracing::info!(image_id = %fill.id, offset = pos, "cache write failed; continuing from the upstream");
                return relay_rest(resume(pos).await?, tx).await;
            }
            Phase::Failed(failure) => return Err(failure.to_string().into()),
            Phase::Abandoned | Phase::Waiting => return Err("fill did not start".into()),
            Phase::Streaming | Phase::Verified => {}
        }
        let visible = status.visible();
        if pos < visible {
            let len = (visible - pos).min(chunk_size as u64) as usize;
            let file = Arc::clone(&file);
            let at = pos;
            let chunk = tokio::task::spawn_blocking(move || read_chunk_at(&file, at, len))
                .await
                .map_err(BoxError::from)??;
            pos += chunk.len() as u64;
            if send(tx, Msg::Data(chunk)).await.is_err() {
                return Ok(()); // client gone; the fill goes on without it
            }
            continue;
        }
        if status.phase == Phase::Verified {
            let _ = send(tx, Msg::End).await;
            return Ok(());
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return Err("fill vanished".into()) },
            _ = tx.closed() => return Ok(()),
        }
    }
}

async fn relay_rest(body: ResumeBody, tx: &mpsc::Sender<Msg>) -> Result<(), BoxError> {
    let mut body = body;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            if send(tx, Msg::Data(data)).await.is_err() {
                return Ok(());
            }
        }
    }
    let _ = send(tx, Msg::End).await;
    Ok(())
}

impl Body for FollowBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.finished {
            return Poll::Ready(None);
        }
        match this.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Msg::Data(data))) => {
                if let Some(rem) = this.remaining.as_mut() {
                    *rem = rem.saturating_sub(data.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(Some(Msg::End)) => {
                this.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Msg::Error(e))) => {
                this.finished = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finished = true;
                Poll::Ready(Some(Err("image download stopped unexpectedly".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.finished || self.remaining == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
