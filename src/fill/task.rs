//! The fill task: pulls one upstream body into the fill's file, verifies
//! it, and commits it.

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::{Expectation, Failure, Fill, FillRegistry, Phase};
use crate::metrics::{FillFailure, Metrics};
use crate::store::{CacheStore, FillFile};
use crate::BoxError;

/// Chunks queued towards the writer and the hasher (each). A chunk is a
/// slice of hyper's read buffer (up to 1 MiB with the reverse proxy's client)
/// and keeps that buffer alive, so the depth bounds a fill's memory: with 16,
/// a proxy serving one 1 GiB miss peaked at 43–72 MiB RSS; with 4, at 27 MiB,
/// and the fill was no slower (BENCHMARKS.md).
const CHANNEL_DEPTH: usize = 4;

/// How the upstream body ended.
enum PumpEnd {
    /// Every byte arrived (this many).
    Done(u64),
    /// The body broke off or sent more than it announced.
    Upstream(BoxError),
    /// The writer stopped taking chunks (its error tells why).
    WriterGone,
}

/// Spawns the task that fills `fill` from `body` into `file`. `fill` must
/// have been started (head and file published); the task unregisters it
/// from `fills` when it is over.
pub(crate) fn spawn_fill<B>(
    fill: Arc<Fill>,
    body: B,
    expect: Expectation,
    file: FillFile,
    store: CacheStore,
    fills: Arc<FillRegistry>,
) where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let in_flight = store.metrics().fill_started();
    tokio::spawn(async move {
        let committed = run(&fill, body, expect, file, &store).await;
        // Counted out before it is seen as over (settled, drained).
        drop(in_flight);
        fills.remove(&fill);
        if committed {
            fills.notify_commit();
        }
    });
}

/// Returns whether a new entry was committed.
async fn run<B>(
    fill: &Arc<Fill>,
    body: B,
    expect: Expectation,
    file: FillFile,
    store: &CacheStore,
) -> bool
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let id = fill.id.clone();
    let metrics = store.metrics();
    let (wtx, wrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (htx, hrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = {
        let fill = Arc::clone(fill);
        file.spawn_writer(wrx, move |written| fill.set_written(written))
    };
    let hasher = tokio::task::spawn_blocking(move || hash_loop(hrx));
    let pumped = pump(body, &wtx, &htx, expect.len, metrics).await;
    drop(wtx);
    drop(htx);
    let written = match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(e)),
    };
    let md5 = hasher.await.unwrap_or_default();

    let outcome = match (pumped, written) {
        (PumpEnd::Upstream(e), _) => Err(Failure::Upstream(Arc::new(e))),
        (_, Err(e)) => Err(Failure::Local(Arc::new(e))),
        (PumpEnd::WriterGone, Ok(_)) => Err(Failure::Local(Arc::new(io::Error::other(
            "cache writer stopped",
        )))),
        (PumpEnd::Done(received), Ok(written)) if received != written => {
            Err(Failure::Local(Arc::new(io::Error::other(format!(
                "wrote {written} of {received} bytes"
            )))))
        }
        (PumpEnd::Done(received), Ok(_)) => expect
            .check(received, &md5)
            .map(|()| received)
            .map_err(Failure::Verification),
    };
    let size = match outcome {
        Ok(size) => size,
        Err(failure) => {
            metrics.fill_failed(match failure {
                Failure::Upstream(_) => FillFailure::Upstream,
                Failure::Verification(_) => FillFailure::Verification,
                Failure::Local(_) => FillFailure::Local,
            });
            let local = matches!(failure, Failure::Local(_));
            fill.finish(Phase::Failed(failure.clone()));
            if local {
                // The bytes were fine, the disk was not: keeping them would
                // only keep the disk full.
                tracing::warn!(image_id = %id, %failure, "fill stopped; partial file removed");
                file.discard().await;
            } else {
                tracing::warn!(image_id = %id, %failure, "fill failed; partial file moved to invalid/");
                file.quarantine().await;
            }
            return false;
        }
    };

    fill.finish(Phase::Verified);
    if !expect.verifiable() {
        tracing::warn!(image_id = %id, size, "no Content-MD5 from the upstream; cached without checksum verification");
    }
    if fill.commit_cancelled() {
        tracing::info!(image_id = %id, "image was deleted during its fill; not committed");
        file.discard().await;
        return false;
    }
    let verified = expect.verifiable();
    if let Err(e) = file.commit(size, hex::encode(md5), verified).await {
        metrics.fill_failed(FillFailure::Local);
        tracing::error!(image_id = %id, error = %e, "commit failed; entry discarded");
        return false;
    }
    metrics.fill_committed();
    tracing::info!(image_id = %id, size, verified, "image cached");
    // An invalidation (a delete of the image or of the entry, a clear) may
    // have arrived during the fsync and rename: the fill is still
    // registered, so it set the flag; honour it now that the entry exists.
    if fill.commit_cancelled() {
        tracing::info!(image_id = %id, "deleted while committing; entry removed");
        if let Err(e) = store.invalidate(&id).await {
            tracing::warn!(image_id = %id, error = %e, "could not remove cache entry");
        }
        return false;
    }
    true
}

async fn pump<B>(
    body: B,
    wtx: &mpsc::Sender<Bytes>,
    htx: &mpsc::Sender<Bytes>,
    max_len: Option<u64>,
    metrics: &Metrics,
) -> PumpEnd
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let mut body = std::pin::pin!(body);
    let mut total = 0u64;
    loop {
        let frame = match body.frame().await {
            None => return PumpEnd::Done(total),
            Some(Err(e)) => return PumpEnd::Upstream(e.into()),
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we cache
        };
        if !data.is_empty() {
            total += data.len() as u64;
            metrics.upstream_bytes(data.len() as u64);
            if let Some(max) = max_len.filter(|max| total > *max) {
                return PumpEnd::Upstream(
                    format!("upstream sent more than its Content-Length of {max} bytes").into(),
                );
            }
            if wtx.send(data.clone()).await.is_err() || htx.send(data).await.is_err() {
                return PumpEnd::WriterGone;
            }
        }
        // hyper may never be polled again once Content-Length is reached.
        if body.is_end_stream() {
            return PumpEnd::Done(total);
        }
    }
}

fn hash_loop(mut rx: mpsc::Receiver<Bytes>) -> [u8; 16] {
    let mut md5 = Md5::new();
    while let Some(chunk) = rx.blocking_recv() {
        md5.update(&chunk);
    }
    let mut out = [0u8; 16];
    out.copy_from_slice(&md5.finalize());
    out
}
