//! Fills: one upstream download per image, followed by every waiting client.
//!
//! A miss starts a fill. Its task alone pulls the upstream body into
//! `incomplete/<id>` (writing on one blocking thread, hashing MD5 and SHA-512 on two others)
//! and publishes how many bytes are on disk through a `watch` channel. Every
//! client, the first one included, is a *follower*: it reads the growing
//! file at its own pace with positional reads, so a slow client never slows
//! the fill and a client that leaves never stops it.
//!
//! The last byte is held back until the size, the MD5 and the image
//! record's multihash (SHA-512 by default) have been verified: a corrupt download ends in a truncated response, never in a
//! complete wrong one. Only then is the file committed (fsync + rename).
//! When the local disk fails (full, I/O error), followers continue from the
//! upstream with a ranged request at the offset they reached: caching stops,
//! serving continues. Bytes that did not come from this process's own
//! upstream download (a peer node, the remote tier, another process's fill)
//! are continued that way only when they can be checked: a whole-image
//! follower hashes what it sent and the upstream's rest, and its last byte
//! goes only if the whole matches the `Content-MD5` its response promised
//! (see [`Continuation`]).
//!
//! A second process sharing the cache directory follows the first one's
//! fill of an image the same way: the bytes in the shared incomplete file
//! are published to its followers, and the writer's commit (or failure),
//! learnt from the file's lock and its rename, ends the fill there too.

mod follower;
mod foreign;
mod registry;
mod task;
mod verify;

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::{HeaderMap, StatusCode};
use tokio::sync::watch;

use crate::{BoxError, ImageId};

/// The digests of the image record a fill's bytes must match (its
/// checksum, and its multihash when this crate can compute it), on its way
/// from the upstream (`None`: no record).
pub(crate) type PendingRecord =
    futures_util::future::BoxFuture<'static, Option<crate::checksum::Expected>>;

pub(crate) use follower::FollowBody;
pub(crate) use follower::{follow, Part, Resume};
pub(crate) use foreign::spawn_foreign_follow;
pub(crate) use registry::{FillRegistry, Joined, LeaderGuard};
pub(crate) use task::{spawn_fill, Expected, Outcome, RECORD_WAIT};
pub(crate) use verify::{Expectation, Mismatch};

/// Bytes of a fill that followers may not read before verification passed.
pub(crate) const HOLD_BACK: u64 = 1;

/// The upstream response head replayed to every follower.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) status: StatusCode,
    /// End-to-end headers of the upstream response (no hop-by-hop headers),
    /// without its request id (each follower gets its own).
    pub(crate) headers: HeaderMap,
    pub(crate) content_length: Option<u64>,
}

impl Head {
    /// The head to replay from the upstream's `status` and `headers`.
    pub(crate) fn replayed(
        status: StatusCode,
        headers: &HeaderMap,
        content_length: Option<u64>,
    ) -> Self {
        let mut headers = headers.clone();
        crate::headers::remove_hop_by_hop(&mut headers);
        headers.remove(crate::headers::REQUEST_ID);
        Head {
            status,
            headers,
            content_length,
        }
    }
}

/// Why a fill failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// The upstream body broke off, or sent more than it announced:
    /// followers are truncated.
    Upstream(Arc<BoxError>),
    /// The bytes are not the image the upstream announced: followers are
    /// truncated.
    Verification(Mismatch),
    /// The local disk failed: followers resume from the upstream.
    Local(Arc<io::Error>),
    /// The remote tier, the peer node or the other process the bytes came
    /// from broke off: followers resume from the upstream.
    Source(Arc<BoxError>),
    /// Another process's fill that this one followed left its file in a
    /// state that no longer shows the bytes followers read (taken over,
    /// longer than the image, committed at another size): followers are
    /// truncated.
    Foreign(Arc<BoxError>),
}

/// How a follower may go on from the upstream when its fill fails with
/// bytes of the image already sent (see [`Failure::Local`] and
/// [`Failure::Source`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Continuation {
    /// The bytes so far came from this process's own download from the
    /// upstream, as a pass-through proxy would have relayed them: the
    /// upstream's rest follows them as it comes.
    Relay,
    /// The bytes so far came from elsewhere (the remote tier, a peer node,
    /// another process's fill) and were not verified: the upstream's rest
    /// follows only for a whole-image download whose head promised a
    /// `Content-MD5`, and its last byte only once every byte sent matches
    /// it. Other downloads end truncated.
    Verify,
}

impl Continuation {
    /// How followers of a fill whose bytes come from `source` go on.
    pub(crate) fn after(source: Source) -> Self {
        match source {
            Source::Upstream => Continuation::Relay,
            Source::Remote | Source::Peer => Continuation::Verify,
        }
    }
}

/// Where a fill's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The upstream image service.
    Upstream,
    /// The remote tier.
    Remote,
    /// The node holding the image's fill lease.
    Peer,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Upstream(e) => write!(f, "upstream failed: {e}"),
            Failure::Verification(m) => write!(f, "verification failed: {m}"),
            Failure::Local(e) => write!(f, "cache write failed: {e}"),
            Failure::Source(e) => write!(f, "the source of the bytes broke off: {e}"),
            Failure::Foreign(e) => write!(f, "the other process's fill is unusable: {e}"),
        }
    }
}

/// Where a fill stands.
#[derive(Debug, Clone)]
pub(crate) enum Phase {
    /// The leader is waiting for the upstream response head.
    Waiting,
    /// Bytes are arriving.
    Streaming,
    /// Every byte is on disk and verified (the commit may still be running).
    Verified,
    /// The fill failed.
    Failed(Failure),
    /// The upstream response was not cacheable; followers forward their own request.
    Abandoned,
}

#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) written: u64,
    pub(crate) phase: Phase,
    /// The fill is over and unregistered: committed (or not) and forgotten.
    pub(crate) settled: bool,
}

impl Status {
    /// Bytes followers may read now.
    pub(crate) fn visible(&self) -> u64 {
        match self.phase {
            Phase::Verified => self.written,
            _ => self.written.saturating_sub(HOLD_BACK),
        }
    }
}

/// One in-flight fill, shared by its task and its followers.
#[derive(Debug)]
pub(crate) struct Fill {
    pub(crate) id: ImageId,
    status: watch::Sender<Status>,
    head: OnceLock<Head>,
    file: OnceLock<Arc<File>>,
    continuation: OnceLock<Continuation>,
    /// The credentials of the request that started the fill: the upstream
    /// answered that request with the image, so a follower presenting the
    /// very same credentials needs no separate authorization.
    leader: OnceLock<Vec<u8>>,
    /// Set when the image was deleted upstream during the fill: verify, serve, but never commit.
    cancelled: AtomicBool,
}

impl Fill {
    pub(crate) fn new(id: ImageId) -> Arc<Fill> {
        let (status, _) = watch::channel(Status {
            written: 0,
            phase: Phase::Waiting,
            settled: false,
        });
        Arc::new(Fill {
            id,
            status,
            head: OnceLock::new(),
            file: OnceLock::new(),
            continuation: OnceLock::new(),
            leader: OnceLock::new(),
            cancelled: AtomicBool::new(false),
        })
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Status> {
        self.status.subscribe()
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    pub(crate) fn head(&self) -> Option<&Head> {
        self.head.get()
    }

    pub(crate) fn file(&self) -> Option<&Arc<File>> {
        self.file.get()
    }

    /// Records the identity key of the request that leads the fill.
    pub(crate) fn set_leader_identity(&self, identity: Vec<u8>) {
        let _ = self.leader.set(identity);
    }

    /// Whether `identity` is that of the request that leads the fill.
    pub(crate) fn led_by(&self, identity: &[u8]) -> bool {
        self.leader.get().is_some_and(|l| l.as_slice() == identity)
    }

    /// How followers go on from the upstream if the fill fails.
    pub(crate) fn continuation(&self) -> Continuation {
        self.continuation
            .get()
            .copied()
            .unwrap_or(Continuation::Verify)
    }

    /// Publishes the head and the file and moves to `Streaming`;
    /// `continuation` says how followers may go on should the fill fail.
    pub(crate) fn start(&self, head: Head, file: Arc<File>, continuation: Continuation) {
        let _ = self.head.set(head);
        let _ = self.file.set(file);
        let _ = self.continuation.set(continuation);
        self.status.send_modify(|s| s.phase = Phase::Streaming);
    }

    pub(crate) fn set_written(&self, written: u64) {
        self.status.send_modify(|s| s.written = written);
    }

    pub(crate) fn finish(&self, phase: Phase) {
        self.status.send_modify(|s| s.phase = phase);
    }

    /// Marks the fill as over; called when it leaves the registry.
    pub(crate) fn settle(&self) {
        self.status.send_modify(|s| s.settled = true);
    }

    /// Waits until the fill is over: its task has committed the entry (or
    /// failed, or the fill was abandoned) and unregistered it. Clients still
    /// reading the file do not delay this.
    pub(crate) async fn settled(&self) {
        let mut rx = self.subscribe();
        // The sender lives in `self`: the channel cannot close while we wait.
        let _ = rx.wait_for(|s| s.settled).await;
    }

    /// The entry must not survive this fill: verify and serve, but do not
    /// commit (or remove the entry right after a commit already under way).
    pub(crate) fn cancel_commit(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
    }

    pub(crate) fn commit_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Waits at most `within` until followers can read byte `offset`
    /// (with `verified`, until every byte is verified); `false` when the
    /// wait ran out or the fill failed or was abandoned first.
    pub(crate) async fn reaches(&self, offset: u64, verified: bool, within: Duration) -> bool {
        let mut rx = self.subscribe();
        let ready = |s: &Status| match s.phase {
            Phase::Waiting => false,
            Phase::Streaming => !verified && s.visible() > offset,
            Phase::Verified | Phase::Failed(_) | Phase::Abandoned => true,
        };
        // The sender lives in `self`: the channel cannot close while we wait.
        let served = match tokio::time::timeout(within, rx.wait_for(ready)).await {
            Ok(Ok(status)) => matches!(status.phase, Phase::Streaming | Phase::Verified),
            _ => false,
        };
        served
    }

    /// Waits until the head is known; `None` when the fill was abandoned
    /// or has already failed (the joiner must forward its own request).
    pub(crate) async fn wait_head(&self) -> Option<Head> {
        let mut rx = self.subscribe();
        // The sender lives in `self`: the channel cannot close while we wait.
        let status = rx
            .wait_for(|s| !matches!(s.phase, Phase::Waiting))
            .await
            .ok()?;
        match status.phase {
            Phase::Streaming | Phase::Verified => self.head.get().cloned(),
            _ => None,
        }
    }
}
