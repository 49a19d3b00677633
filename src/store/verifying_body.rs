//! [`VerifyingBody`]: serves a cached file while hashing it again.
//!
//! A file that changed since it was verified (or was never verified) is
//! served this way: one blocking thread reads it in order, hashes every
//! chunk and hands it to the body through a short channel (so the client's
//! pace paces the reads), and keeps the file's last byte back until the
//! digests are known. A match sends the last byte and records the file as
//! verified; a mismatch ends the response short of its `Content-Length`
//! and quarantines the file, so the next request fetches the image again.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use super::index::CacheEntry;
use super::integrity::OpenedHit;
use super::CacheStore;
use crate::checksum::{Digests, Expected, HashAlgorithm, Hashers};
use crate::metrics::IntegrityCheck;

/// Chunks read ahead of the client.
const DEPTH: usize = 4;

/// What the reading thread sends.
enum Read {
    Data(Bytes),
    /// Every byte but the last has been sent; the digests of all of them.
    Hashed {
        digests: Digests,
        last: Bytes,
    },
}

/// What to do with the digests, and with whom.
struct Verdict {
    store: CacheStore,
    entry: CacheEntry,
    opened: OpenedHit,
    expected: Expected,
    verified_upstream: bool,
}

/// The response body of a hit whose file is hashed again while it is served.
pub(crate) struct VerifyingBody {
    rx: mpsc::Receiver<io::Result<Read>>,
    verdict: Option<Verdict>,
    remaining: u64,
    done: bool,
}

impl fmt::Debug for VerifyingBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingBody")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl CacheStore {
    /// A body serving `opened` (the file of `entry`) whole while hashing it
    /// against `expected`; `verified_upstream` says whether `expected`
    /// comes from the upstream. The hit is counted when the last byte is
    /// out.
    pub(crate) fn verifying_hit_body(
        &self,
        entry: CacheEntry,
        opened: OpenedHit,
        expected: Expected,
        verified_upstream: bool,
    ) -> VerifyingBody {
        let size = entry.size;
        // With no multihash to compare, SHA-512 is recorded for later checks.
        let multi = expected
            .multihash_algorithm()
            .or(Some(HashAlgorithm::Sha512));
        let (tx, rx) = mpsc::channel(DEPTH);
        let file = Arc::clone(&opened.file);
        let chunk = self.hit_chunk_size();
        tokio::task::spawn_blocking(move || read_and_hash(&file, size, multi, chunk, &tx));
        VerifyingBody {
            rx,
            verdict: Some(Verdict {
                store: self.clone(),
                entry,
                opened,
                expected,
                verified_upstream,
            }),
            remaining: size,
            done: false,
        }
    }
}

/// Reads `len` bytes of `file` in order, hashing them, and sends all but
/// the last, then the digests with the last byte. Stops when the body is
/// dropped.
fn read_and_hash(
    file: &File,
    len: u64,
    multi: Option<HashAlgorithm>,
    chunk: usize,
    tx: &mpsc::Sender<io::Result<Read>>,
) {
    let mut hashers = Hashers::new(multi);
    let mut pos = 0u64;
    let mut last = Bytes::new();
    while pos < len {
        let want = (len - pos).min(chunk as u64) as usize;
        let mut buf = vec![0u8; want];
        let n = match file.read_at(&mut buf, pos) {
            Ok(0) => {
                let e = io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the cached file ends at byte {pos} of {len}"),
                );
                let _ = tx.blocking_send(Err(e));
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        buf.truncate(n);
        hashers.update(&buf);
        pos += n as u64;
        let mut data = Bytes::from(buf);
        if pos == len {
            last = data.split_off(data.len() - 1);
        }
        if !data.is_empty() && tx.blocking_send(Ok(Read::Data(data))).is_err() {
            return; // the client went away
        }
    }
    let _ = tx.blocking_send(Ok(Read::Hashed {
        digests: hashers.finish(),
        last,
    }));
}

impl Verdict {
    /// Judges the digests: the last byte when they match, an error (and the
    /// file quarantined) when they do not.
    fn judge(self, digests: Digests, last: Bytes) -> io::Result<Bytes> {
        let Verdict {
            store,
            entry,
            opened,
            expected,
            verified_upstream,
        } = self;
        let id = entry.image_id.clone();
        match expected.check(&digests) {
            Ok(()) => {
                store.metrics().hit_bytes(last.len() as u64);
                store.inner.index.record_access(&id, true);
                tracing::info!(image_id = %id, "cached file verified again while served");
                tokio::spawn(async move {
                    if let Err(e) = store
                        .record_verified(&entry, opened.stamp, digests, verified_upstream)
                        .await
                    {
                        tracing::warn!(image_id = %id, error = %e, "could not record the verification");
                    }
                });
                Ok(last)
            }
            Err(mismatch) => {
                store.metrics().integrity_failure(IntegrityCheck::Hit);
                tracing::error!(image_id = %id, %mismatch,
                    "cached file is corrupt; response truncated, file quarantined");
                tokio::spawn(async move {
                    if let Err(e) = store.quarantine_file(&entry, opened.file).await {
                        tracing::warn!(image_id = %id, error = %e, "quarantine failed");
                    }
                });
                Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("cached file is corrupt: {mismatch}"),
                ))
            }
        }
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
        if this.done {
            return Poll::Ready(None);
        }
        let read = match this.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(read) => read,
        };
        let data = match read {
            Some(Ok(Read::Data(data))) => {
                if let Some(v) = &this.verdict {
                    v.store.metrics().hit_bytes(data.len() as u64);
                }
                data
            }
            Some(Ok(Read::Hashed { digests, last })) => {
                this.done = true;
                let Some(verdict) = this.verdict.take() else {
                    return Poll::Ready(None);
                };
                match verdict.judge(digests, last) {
                    Ok(last) if last.is_empty() => return Poll::Ready(None),
                    Ok(last) => last,
                    Err(e) => return Poll::Ready(Some(Err(e))),
                }
            }
            Some(Err(e)) => {
                this.done = true;
                return Poll::Ready(Some(Err(e)));
            }
            None => {
                this.done = true;
                return Poll::Ready(Some(Err(io::Error::other(
                    "the cached file's reader stopped",
                ))));
            }
        };
        this.remaining = this.remaining.saturating_sub(data.len() as u64);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
