//! Response bodies: small fixed ones, and image data streamed by a producer
//! task that applies the image's [`Behaviour`] (delays, rate, reset, stall,
//! hold at a gate, corruption).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::behaviour::Behaviour;
use super::image::Data;

/// Glance's download chunk size.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The body of every response the fake sends.
#[derive(Debug)]
pub(crate) enum FakeBody {
    /// A complete body (possibly empty).
    Full(Option<Bytes>),
    /// Image data from a producer task; counted into `served` as it goes out.
    Stream {
        rx: mpsc::Receiver<io::Result<Bytes>>,
        served: Arc<AtomicU64>,
    },
}

impl FakeBody {
    pub(crate) fn empty() -> Self {
        FakeBody::Full(None)
    }

    pub(crate) fn full(b: impl Into<Bytes>) -> Self {
        let b = b.into();
        FakeBody::Full((!b.is_empty()).then_some(b))
    }
}

impl Body for FakeBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            FakeBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            FakeBody::Stream { rx, served } => match rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(b))) => {
                    served.fetch_add(b.len() as u64, Ordering::Relaxed);
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, FakeBody::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            FakeBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            // Unknown: with no Content-Length header hyper sends it chunked.
            FakeBody::Stream { .. } => SizeHint::default(),
        }
    }
}

/// What a download sends: `len` bytes of `data` from `offset`.
pub(crate) struct StreamPlan {
    pub(crate) data: Data,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// Total data size (for the corruption point).
    pub(crate) size: u64,
    pub(crate) behaviour: Behaviour,
}

/// Starts the producer and returns the body it feeds.
pub(crate) fn stream(plan: StreamPlan, served: Arc<AtomicU64>) -> FakeBody {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        if let Err(e) = produce(plan, &tx).await {
            // The error ends the body; hyper then aborts the connection.
            let _ = tx.send(Err(e)).await;
        }
    });
    FakeBody::Stream { rx, served }
}

/// Reads from an image's data source.
enum Reader {
    Bytes(Bytes),
    Pattern(super::pattern::Pattern),
    File(tokio::fs::File),
}

impl Reader {
    async fn open(data: &Data, offset: u64) -> io::Result<Reader> {
        Ok(match data {
            Data::None => Reader::Bytes(Bytes::new()),
            Data::Bytes(b) => Reader::Bytes(b.clone()),
            Data::Pattern { pattern, .. } => Reader::Pattern(*pattern),
            Data::File { path, .. } => {
                let mut f = tokio::fs::File::open(path.as_path()).await?;
                f.seek(io::SeekFrom::Start(offset)).await?;
                Reader::File(f)
            }
        })
    }

    /// Up to `n` bytes at `pos` (files are read sequentially from the
    /// offset they were opened at); an empty result means end of data.
    async fn read(&mut self, pos: u64, n: usize) -> io::Result<Bytes> {
        match self {
            Reader::Bytes(b) => {
                let start = usize::try_from(pos).unwrap_or(usize::MAX).min(b.len());
                let end = start.saturating_add(n).min(b.len());
                Ok(b.slice(start..end))
            }
            Reader::Pattern(p) => {
                let mut buf = BytesMut::zeroed(n);
                p.fill(pos, &mut buf);
                Ok(buf.freeze())
            }
            Reader::File(f) => {
                let mut buf = BytesMut::zeroed(n);
                let mut filled = 0;
                while filled < n {
                    let k = f.read(&mut buf[filled..]).await?;
                    if k == 0 {
                        break;
                    }
                    filled += k;
                }
                buf.truncate(filled);
                Ok(buf.freeze())
            }
        }
    }
}

async fn produce(plan: StreamPlan, tx: &mpsc::Sender<io::Result<Bytes>>) -> io::Result<()> {
    let b = &plan.behaviour;
    let data_len = plan.data.len().unwrap_or(0);
    // Never read past the data, even when a Content-Range promised more.
    let end = plan.offset.saturating_add(plan.len).min(data_len);
    let mut chunk = b.chunk_size.unwrap_or(CHUNK);
    if let Some(rate) = b.rate {
        chunk = chunk.min(usize::try_from(rate / 10).unwrap_or(usize::MAX).max(1));
    }
    let corrupt_at = b.corrupt.then_some(plan.size / 2);
    let cut = [b.reset_after, b.stall_after]
        .into_iter()
        .flatten()
        .min()
        .filter(|n| *n < end.saturating_sub(plan.offset));
    let mut hold = b
        .hold_after
        .as_ref()
        .filter(|(n, gate)| *n < end.saturating_sub(plan.offset) && !gate.is_open());
    let started = Instant::now();
    let mut reader = Reader::open(&plan.data, plan.offset).await?;
    let mut pos = plan.offset;
    let mut sent = 0u64;
    loop {
        if Some(sent) == cut {
            if b.reset_after.is_some_and(|r| r <= sent) {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    format!("fake glance: reset after {sent} bytes"),
                ));
            }
            // Stall until the client goes away.
            tx.closed().await;
            return Ok(());
        }
        if pos >= end {
            return Ok(());
        }
        if let Some((_, gate)) = hold.filter(|(n, _)| *n == sent) {
            tokio::select! {
                _ = gate.opened() => hold = None,
                _ = tx.closed() => return Err(gone()),
            }
        }
        if sent > 0 {
            if let Some(d) = b.chunk_delay {
                pause(tx, d).await?;
            }
        }
        let mut n = (end - pos).min(chunk as u64);
        if let Some(cut) = cut {
            n = n.min(cut - sent);
        }
        if let Some((at, _)) = hold {
            n = n.min(at - sent);
        }
        let mut bytes = reader
            .read(pos, usize::try_from(n).unwrap_or(CHUNK))
            .await?;
        if bytes.is_empty() {
            return Ok(()); // the data ended early (a file shrank): end the body short
        }
        if let Some(at) = corrupt_at.filter(|at| (pos..pos + bytes.len() as u64).contains(at)) {
            let mut owned = BytesMut::from(&bytes[..]);
            let i = usize::try_from(at - pos).unwrap_or(0);
            owned[i] ^= 0xff;
            bytes = owned.freeze();
        }
        let k = bytes.len() as u64;
        tx.send(Ok(bytes)).await.map_err(|_| gone())?;
        pos += k;
        sent += k;
        if let Some(rate) = b.rate {
            let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
            pause_until(tx, due).await?;
        }
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "client went away")
}

async fn pause(tx: &mpsc::Sender<io::Result<Bytes>>, d: Duration) -> io::Result<()> {
    pause_until(tx, Instant::now() + d).await
}

/// Sleeps until `due`, or returns early with an error when the client is gone.
async fn pause_until(tx: &mpsc::Sender<io::Result<Bytes>>, due: Instant) -> io::Result<()> {
    tokio::select! {
        _ = tokio::time::sleep_until(due) => Ok(()),
        _ = tx.closed() => Err(gone()),
    }
}
