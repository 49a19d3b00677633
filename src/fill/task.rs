//! The fill task: pulls one upstream body into `incomplete/<id>`.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use md5::{Digest, Md5};
use tokio::sync::mpsc;

use super::{Expectation, Failure, Fill, FillRegistry, Phase};
use crate::metrics::{FillFailure, Metrics};
use crate::store::CacheStore;
use crate::BoxError;

/// Chunks queued towards the writer and the hasher (each). A chunk is a
/// slice of hyper's read buffer (up to 1 MiB with the reverse proxy's client)
/// and keeps that buffer alive, so the depth bounds a fill's memory: with 16,
/// a proxy serving one 1 GiB miss peaked at 43–72 MiB RSS; with 4, at 27 MiB,
/// and the fill was no slower (BENCHMARKS.md).
const CHANNEL_DEPTH: usize = 4;

/// Publish progress at least this often while draining queued chunks.
const PUBLISH_EVERY: u64 = 1 << 20;

enum PumpEnd {
    Done(u64),
    Upstream(String),
    WriterGone,
}

/// Spawns the task that fills `fill` from `body`. `fill` must have been
/// started (head and file published); the task unregisters it when done.
pub(crate) fn spawn_fill<B>(
    fill: Arc<Fill>,
    body: B,
    expect: Expectation,
    store: CacheStore,
    registry: Arc<FillRegistry>,
) where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let in_flight = store.metrics().fill_started();
    tokio::spawn(async move {
        let committed = run(&fill, body, expect, &store).await;
        registry.remove(&fill);
        drop(in_flight);
        if committed {
            registry.notify_commit();
        }
    });
}

/// Returns whether a new entry was committed.
async fn run<B>(fill: &Arc<Fill>, body: B, expect: Expectation, store: &CacheStore) -> bool
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let id = fill.id.clone();
    let Some(file) = fill.file().cloned() else {
        fill.finish(Phase::Failed(Failure::Local(
            "fill started without a file".into(),
        )));
        return false;
    };
    let (wtx, wrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (htx, hrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = {
        let file = Arc::clone(&file);
        let fill = Arc::clone(fill);
        tokio::task::spawn_blocking(move || write_loop(&file, wrx, &fill))
    };
    let hasher = tokio::task::spawn_blocking(move || hash_loop(hrx));
    let pumped = pump(body, &wtx, &htx, expect.len, store.metrics()).await;
    drop(wtx);
    drop(htx);
    let written = match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(e)),
    };
    let md5 = hasher.await.unwrap_or_default();

    let outcome = match (pumped, written) {
        (PumpEnd::Upstream(msg), _) => Err(Failure::Upstream(msg.into())),
        (_, Err(e)) => Err(Failure::Local(e.to_string().into())),
        (PumpEnd::WriterGone, Ok(_)) => Err(Failure::Local("cache writer stopped".into())),
        (PumpEnd::Done(received), Ok(written)) if received != written => Err(Failure::Local(
            format!("wrote {written} of {received} bytes").into(),
        )),
        (PumpEnd::Done(received), Ok(_)) => expect
            .check(received, &md5)
            .map(|()| received)
            .map_err(|m| Failure::Verification(m.into())),
    };

    match outcome {
        Ok(size) => {
            fill.finish(Phase::Verified);
            if !expect.verifiable() {
                tracing::warn!(image_id = %id, size, "no Content-MD5 from the upstream; cached without checksum verification");
            }
            if fill.commit_cancelled() {
                tracing::info!(image_id = %id, "image was deleted during its fill; not committed");
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.discard_incomplete(&id)).await;
                return false;
            }
            let committed = {
                let store = store.clone();
                let id = id.clone();
                let file = Arc::clone(&file);
                tokio::task::spawn_blocking(move || store.commit_blocking(&id, &file)).await
            };
            let ok = matches!(committed, Ok(Ok(())));
            match committed {
                Ok(Ok(())) => {
                    store.metrics().fill_committed();
                    let verified = expect.verifiable();
                    match store
                        .record_commit(&id, size, hex::encode(md5), verified)
                        .await
                    {
                        Ok(()) => tracing::info!(image_id = %id, size, verified, "image cached"),
                        Err(e) => tracing::warn!(image_id = %id, error = %e,
                            "image cached but not indexed; it will be adopted at the next lookup"),
                    }
                    // A delete (image or cache entry) may have arrived during
                    // the fsync and rename: the fill is still registered, so
                    // it set the flag; honour it now that the entry exists.
                    if fill.commit_cancelled() {
                        tracing::info!(image_id = %id, "deleted while committing; entry removed");
                        if let Err(e) = store.invalidate(&id).await {
                            tracing::warn!(image_id = %id, error = %e, "could not remove cache entry");
                        }
                        return false;
                    }
                }
                Ok(Err(e)) => {
                    store.metrics().fill_failed(FillFailure::Local);
                    tracing::error!(image_id = %id, error = %e, "commit failed; entry discarded");
                    let store = store.clone();
                    let _ =
                        tokio::task::spawn_blocking(move || store.discard_incomplete(&id)).await;
                }
                Err(e) => {
                    store.metrics().fill_failed(FillFailure::Local);
                    tracing::error!(image_id = %id, error = %e, "commit task failed");
                }
            }
            ok
        }
        Err(failure) => {
            let local = matches!(failure, Failure::Local(_));
            store.metrics().fill_failed(match failure {
                Failure::Upstream(_) => FillFailure::Upstream,
                Failure::Verification(_) => FillFailure::Verification,
                Failure::Local(_) => FillFailure::Local,
            });
            fill.finish(Phase::Failed(failure.clone()));
            let store = store.clone();
            if local {
                // The bytes were fine, the disk was not: keeping them would
                // only keep the disk full.
                tracing::warn!(image_id = %id, %failure, "fill stopped; partial file removed");
                let _ = tokio::task::spawn_blocking(move || store.discard_incomplete(&id)).await;
            } else {
                tracing::warn!(image_id = %id, %failure, "fill failed; partial file moved to invalid/");
                let _ = tokio::task::spawn_blocking(move || store.quarantine_incomplete(&id)).await;
            }
            false
        }
    }
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
            Some(Err(e)) => return PumpEnd::Upstream(e.into().to_string()),
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we cache
        };
        if !data.is_empty() {
            total += data.len() as u64;
            metrics.upstream_bytes(data.len() as u64);
            if let Some(max) = max_len.filter(|max| total > *max) {
                return PumpEnd::Upstream(format!(
                    "upstream sent more than its Content-Length of {max} bytes"
                ));
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

fn write_loop(file: &File, mut rx: mpsc::Receiver<Bytes>, fill: &Fill) -> io::Result<u64> {
    let mut out = file;
    let mut written = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
        let mut unpublished = chunk.len() as u64;
        while unpublished < PUBLISH_EVERY {
            let Ok(more) = rx.try_recv() else { break };
            out.write_all(&more)?;
            written += more.len() as u64;
            unpublished += more.len() as u64;
        }
        fill.set_written(written);
    }
    Ok(written)
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
