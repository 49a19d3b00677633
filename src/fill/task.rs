//! The fill task: pulls one upstream body into the fill's file, verifies
//! it, and commits it.
//!
//! Four workers share the bytes: this task pulls the body, one blocking
//! thread writes, one hashes MD5 and one SHA-512 (Glance's default
//! multihash), so neither digest slows the fill while a core is free. The
//! image record, fetched alongside the download, says which multihash the
//! bytes must have (and, for bytes from the remote tier or a peer node,
//! which MD5: their `Content-MD5` is not the upstream's word); a record
//! naming another algorithm has it computed from the file once the body is
//! in.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::{Expectation, Failure, Fill, FillRegistry, Mismatch, PendingRecord, Phase, Source};
use crate::checksum::{md5_bytes, DigestMismatch, Engine, HashAlgorithm, MultiHasher, Multihash};
use crate::metrics::{FillFailure, Metrics};
use crate::store::{CacheStore, FillFile};
use crate::BoxError;

/// Longest wait for the image record once the body is in (it was asked
/// for when the download started, so it is normally long there).
pub(crate) const RECORD_WAIT: Duration = Duration::from_secs(30);

/// Chunks queued towards the writer and each hasher. A chunk is a
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
    Broken(BoxError),
    /// The writer stopped taking chunks (its error tells why).
    WriterGone,
}

/// What a fill's bytes must match: the response's length and MD5, and the
/// digests of the image record (when one arrives).
pub(crate) struct Expected {
    pub(crate) response: Expectation,
    pub(crate) record: Option<PendingRecord>,
    /// Whether the response's `Content-MD5` is the upstream's word (its
    /// own response, or its answer to the caller's authorization), rather
    /// than what the bytes' source says of them.
    pub(crate) upstream_md5: bool,
}

/// How a fill ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A new entry was committed: its size and verified digests.
    Committed {
        size: u64,
        md5: String,
        multihash: Option<Multihash>,
    },
    /// The fill failed.
    Failed(Failure),
    /// The bytes were served but not kept (the image was deleted meanwhile,
    /// or the commit failed).
    NotCommitted,
}

/// Spawns the task that fills `fill` from `body`, whose bytes come from
/// `source`, into `file`. `fill` must have been started (head and file
/// published); the task unregisters it from `fills` when it is over, and
/// its handle tells how it ended.
pub(crate) fn spawn_fill<B>(
    fill: Arc<Fill>,
    body: B,
    source: Source,
    expect: Expected,
    file: FillFile,
    store: CacheStore,
    fills: Arc<FillRegistry>,
) -> tokio::task::JoinHandle<Outcome>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let in_flight = store.metrics().fill_started();
    tokio::spawn(async move {
        let outcome = run(&fill, body, source, expect, file, &store).await;
        // Counted out before it is seen as over (settled, drained).
        drop(in_flight);
        fills.remove(&fill);
        if matches!(outcome, Outcome::Committed { .. }) {
            fills.notify_commit();
        }
        outcome
    })
}

async fn run<B>(
    fill: &Arc<Fill>,
    body: B,
    source: Source,
    expected: Expected,
    file: FillFile,
    store: &CacheStore,
) -> Outcome
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let id = fill.id.clone();
    let metrics = store.metrics();
    let Expected {
        response: expect,
        record,
        upstream_md5,
    } = expected;
    let (wtx, wrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (htx, hrx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let (stx, srx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
    let writer = {
        let fill = Arc::clone(fill);
        file.spawn_writer(wrx, move |written| fill.set_written(written))
    };
    let hasher = tokio::task::spawn_blocking(move || hash_loop(hrx));
    let sha512 = tokio::task::spawn_blocking(move || multihash_loop(srx, HashAlgorithm::Sha512));
    let pumped = pump(body, [&wtx, &htx, &stx], expect.len, source, metrics).await;
    drop((wtx, htx, stx));
    let written = match writer.await {
        Ok(result) => result,
        Err(e) => Err(io::Error::other(e)),
    };
    // `None`: the MD5 thread died (a panic); nothing proves the bytes.
    let md5 = hasher.await.ok();
    let sha512 = sha512.await.ok();

    let outcome = match judge(pumped, written, source, &expect, md5.as_ref()) {
        Ok((received, md5)) => check_record(&id, record, (source, &md5), sha512, &file, received)
            .await
            .map(|(multihash, vouched)| (received, md5, multihash, vouched)),
        Err(failure) => Err(failure),
    };
    let (size, md5, multihash, vouched) = match outcome {
        Ok(done) => done,
        Err(failure) => {
            metrics.fill_failed(match failure {
                // Its source failed (`Foreign`: the other process's fill
                // this one followed).
                Failure::Upstream(_) | Failure::Source(_) | Failure::Foreign(_) => {
                    FillFailure::Upstream
                }
                Failure::Verification(_) => FillFailure::Verification,
                Failure::Local(_) => FillFailure::Local,
            });
            fill.finish(Phase::Failed(failure.clone()));
            if matches!(failure, Failure::Local(_) | Failure::Source(_)) {
                // No check failed (the disk or the source did): the partial
                // file says nothing worth keeping for `clean` to look at.
                tracing::warn!(image_id = %id, %failure, "fill stopped; partial file removed");
                file.discard().await;
            } else {
                tracing::warn!(image_id = %id, %failure, "fill failed; partial file moved to invalid/");
                file.quarantine().await;
            }
            return Outcome::Failed(failure);
        }
    };

    fill.finish(Phase::Verified);
    if !expect.verifiable() {
        tracing::warn!(image_id = %id, size, "no Content-MD5 from the upstream; cached without checksum verification");
    }
    if fill.commit_cancelled() {
        tracing::info!(image_id = %id, "image was deleted during its fill; not committed");
        file.discard().await;
        return Outcome::NotCommitted;
    }
    // The MD5 recorded as the upstream's only when the upstream said so.
    let verified = (expect.verifiable() && upstream_md5) || vouched;
    if source != Source::Upstream && !verified {
        tracing::warn!(image_id = %id, ?source,
            "no checksum from the upstream (no answer, no record): checked against its source's own digests only");
    }
    if let Err(e) = file
        .commit(size, hex::encode(md5), verified, multihash.clone())
        .await
    {
        metrics.fill_failed(FillFailure::Local);
        tracing::error!(image_id = %id, error = %e, "commit failed; entry discarded");
        return Outcome::NotCommitted;
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
        return Outcome::NotCommitted;
    }
    Outcome::Committed {
        size,
        md5: hex::encode(md5),
        multihash,
    }
}

/// How the body's pull and the writer ended, judged: the bytes received
/// (all on disk and of the announced length and MD5) and their MD5, or why
/// the fill failed. A whole body that does not match is a verification failure even
/// when the disk failed too: followers must then be truncated, not
/// continued from the upstream after bytes known to be wrong. Without an
/// MD5 (`None`: its thread died), nothing proves the bytes: a local
/// failure, as the disk's would be.
fn judge(
    pumped: PumpEnd,
    written: io::Result<u64>,
    source: Source,
    expect: &Expectation,
    md5: Option<&[u8; 16]>,
) -> Result<(u64, [u8; 16]), Failure> {
    let received = match pumped {
        PumpEnd::Broken(e) if source == Source::Upstream => {
            return Err(Failure::Upstream(Arc::new(e)))
        }
        PumpEnd::Broken(e) => return Err(Failure::Source(Arc::new(e))),
        PumpEnd::WriterGone => {
            let e = written
                .err()
                .unwrap_or_else(|| io::Error::other("cache writer stopped"));
            return Err(Failure::Local(Arc::new(e)));
        }
        PumpEnd::Done(received) => received,
    };
    let Some(md5) = md5 else {
        return Err(Failure::Local(Arc::new(io::Error::other(
            "the MD5 thread stopped",
        ))));
    };
    expect.check(received, md5).map_err(Failure::Verification)?;
    match written {
        Err(e) => Err(Failure::Local(Arc::new(e))),
        Ok(written) if written != received => Err(Failure::Local(Arc::new(io::Error::other(
            format!("wrote {written} of {received} bytes"),
        )))),
        Ok(_) => Ok((received, *md5)),
    }
}

/// Checks the fill's bytes (`len` of them, all on disk and of the
/// response's MD5, `md5`, from `source`) against the image record: its
/// multihash when it names one and, for bytes from elsewhere than the
/// upstream, its checksum; returns the multihash to record (the record's
/// when it matched, else the SHA-512 computed) and whether the record's
/// checksum vouched for the MD5.
async fn check_record(
    id: &crate::ImageId,
    record: Option<PendingRecord>,
    (source, md5): (Source, &[u8; 16]),
    sha512: Option<Multihash>,
    file: &FillFile,
    len: u64,
) -> Result<(Option<Multihash>, bool), Failure> {
    let want = match record {
        Some(record) => match tokio::time::timeout(RECORD_WAIT, record).await {
            Ok(want) => want,
            Err(_) => {
                tracing::warn!(image_id = %id, "no image record in time; verified with MD5 only");
                None
            }
        },
        None => None,
    };
    let Some(want) = want else {
        return Ok((sha512, false));
    };
    // Bytes from elsewhere came with a Content-MD5 that may not be the
    // upstream's (a remote copy's own metadata, a peer's header): the
    // record's checksum decides too. The upstream's own response is its
    // word on its bytes, as a pass-through proxy would relay it.
    let judged = source != Source::Upstream;
    if let Some(want) = want.md5.filter(|want| judged && want != md5) {
        return Err(Failure::Verification(Mismatch::Digest(
            DigestMismatch::Md5 { got: *md5, want },
        )));
    }
    let vouched = judged && want.md5.is_some();
    let Some(want) = want.multihash else {
        return Ok((sha512, vouched));
    };
    let got = if sha512
        .as_ref()
        .is_some_and(|s| s.algorithm == want.algorithm)
    {
        sha512
    } else {
        match file.multihash(want.algorithm, len).await {
            Ok(got) => Some(got),
            Err(e) => return Err(Failure::Local(Arc::new(io::Error::other(e)))),
        }
    };
    match got {
        Some(got) if got.value == want.value => Ok((Some(want), vouched)),
        Some(got) => Err(Failure::Verification(Mismatch::Digest(
            DigestMismatch::Multihash {
                algorithm: want.algorithm,
                got: got.value,
                want: want.value,
            },
        ))),
        // The hashing thread died: nothing proves the bytes either way.
        None => Err(Failure::Local(Arc::new(io::Error::other(
            "the multihash thread stopped",
        )))),
    }
}

async fn pump<B>(
    body: B,
    txs: [&mpsc::Sender<Bytes>; 3],
    max_len: Option<u64>,
    source: Source,
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
            Some(Err(e)) => return PumpEnd::Broken(e.into()),
            Some(Ok(frame)) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers carry nothing we cache
        };
        if !data.is_empty() {
            total += data.len() as u64;
            match source {
                Source::Upstream => metrics.upstream_bytes(data.len() as u64),
                Source::Remote | Source::Peer => metrics.remote_bytes(data.len() as u64),
            }
            if let Some(max) = max_len.filter(|max| total > *max) {
                return PumpEnd::Broken(
                    format!("the source sent more than its Content-Length of {max} bytes").into(),
                );
            }
            for tx in txs {
                if tx.send(data.clone()).await.is_err() {
                    return PumpEnd::WriterGone;
                }
            }
        }
        // hyper may never be polled again once Content-Length is reached.
        if body.is_end_stream() {
            return PumpEnd::Done(total);
        }
    }
}

fn hash_loop(mut rx: mpsc::Receiver<Bytes>) -> [u8; 16] {
    let mut md5 = Engine::new(HashAlgorithm::Md5);
    while let Some(chunk) = rx.blocking_recv() {
        md5.update(&chunk);
    }
    md5_bytes(md5.finish())
}

fn multihash_loop(mut rx: mpsc::Receiver<Bytes>, algorithm: HashAlgorithm) -> Multihash {
    let mut hasher = MultiHasher::new(algorithm);
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The MD5 of `hello`.
    const HELLO: [u8; 16] = [
        0x5d, 0x41, 0x40, 0x2a, 0xbc, 0x4b, 0x2a, 0x76, 0xb9, 0x71, 0x9d, 0x91, 0x10, 0x17, 0xc5,
        0x92,
    ];

    /// `judge` of a fill of `hello` (5 bytes, its MD5 announced) whose
    /// bytes hashed to `md5`.
    fn judge_hello(
        pumped: PumpEnd,
        written: io::Result<u64>,
        source: Source,
        md5: &[u8; 16],
    ) -> Result<(u64, [u8; 16]), Failure> {
        let hello = Expectation {
            len: Some(5),
            md5: Some(HELLO),
        };
        judge(pumped, written, source, &hello, Some(md5))
    }

    fn disk_full() -> io::Result<u64> {
        Err(io::Error::other("no space left on device"))
    }

    #[test]
    fn a_whole_body_that_does_not_match_fails_verification_even_when_the_disk_failed_too() {
        let wrong = [0u8; 16];
        for written in [disk_full(), Ok(5)] {
            let judged = judge_hello(PumpEnd::Done(5), written, Source::Upstream, &wrong);
            assert!(
                matches!(judged, Err(Failure::Verification(_))),
                "{judged:?}"
            );
        }
    }

    #[test]
    fn a_right_body_the_disk_did_not_take_is_a_local_failure() {
        for (pumped, written) in [
            (PumpEnd::Done(5), disk_full()),
            (PumpEnd::Done(5), Ok(3)),
            (PumpEnd::WriterGone, disk_full()),
        ] {
            let judged = judge_hello(pumped, written, Source::Upstream, &HELLO);
            assert!(matches!(judged, Err(Failure::Local(_))), "{judged:?}");
        }
    }

    #[test]
    fn a_broken_body_is_its_source_s_failure() {
        let broken = || PumpEnd::Broken("reset".into());
        let judged = judge_hello(broken(), disk_full(), Source::Upstream, &HELLO);
        assert!(matches!(judged, Err(Failure::Upstream(_))), "{judged:?}");
        let judged = judge_hello(broken(), Ok(2), Source::Remote, &HELLO);
        assert!(matches!(judged, Err(Failure::Source(_))), "{judged:?}");
    }

    #[test]
    fn a_body_whose_md5_was_never_computed_is_not_passed() {
        let hello = Expectation {
            len: Some(5),
            md5: Some(HELLO),
        };
        let unhashed = Expectation { md5: None, ..hello };
        for expect in [hello, unhashed] {
            let judged = judge(PumpEnd::Done(5), Ok(5), Source::Upstream, &expect, None);
            assert!(matches!(judged, Err(Failure::Local(_))), "{judged:?}");
        }
    }

    #[test]
    fn a_whole_right_body_on_disk_passes() {
        let judged = judge_hello(PumpEnd::Done(5), Ok(5), Source::Upstream, &HELLO);
        assert_eq!(judged.ok(), Some((5, HELLO)));
    }
}
