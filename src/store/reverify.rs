//! One hashing of a cached file for every request that waits on it.
//!
//! A hit of a file that must be hashed again (changed since it was
//! verified, or never verified) needs the file's verdict before it may send
//! the last byte, and a range of it before its first. The hashing is
//! shared: the first such request starts it on one blocking thread, which
//! reads the file at the disk's pace (not a client's), then records the
//! file as verified or quarantines it; a request for the same file (same
//! identity, same expected digests) arriving meanwhile waits for that
//! verdict instead of hashing the file again. A burst of hits of a changed
//! file hashes it once, a slow client holds no thread, and the verification
//! finishes (and is recorded) even when every client has gone.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::blocking::blocking;
use super::index::CacheEntry;
use super::integrity::{hash_file, Hashed, OpenedHit, Pace};
use super::stamp::FileStamp;
use super::CacheStore;
use crate::checksum::Expected;
use crate::metrics::IntegrityCheck;
use crate::{Error, ImageId};

/// What hashing a file for its hits found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The file holds the expected bytes (and is recorded as verified).
    Intact,
    /// It does not, or its bytes cannot be read: quarantined.
    Corrupt(Arc<str>),
    /// No verdict (the file changed while it was hashed, or the hashing
    /// stopped): nothing recorded or quarantined; the next hit hashes the
    /// file again.
    Undecided(Arc<str>),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Intact => f.write_str("intact"),
            Verdict::Corrupt(why) => write!(f, "the cached file is corrupt: {why}"),
            Verdict::Undecided(why) => write!(f, "the cached file could not be verified: {why}"),
        }
    }
}

/// Where a shared verification stands: `None` while it runs.
pub(crate) type Pending = watch::Receiver<Option<Verdict>>;

/// The verifications running for hits, by image.
#[derive(Debug, Default)]
pub(super) struct Reverifications {
    running: Mutex<HashMap<ImageId, Arc<Running>>>,
}

impl Reverifications {
    fn lock(&self) -> MutexGuard<'_, HashMap<ImageId, Arc<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One verification that hits may join.
#[derive(Debug)]
struct Running {
    stamp: FileStamp,
    expected: Expected,
    verdict: watch::Sender<Option<Verdict>>,
}

/// A verification's place in the registry, given up when its task ends
/// however it ends: a task that stopped without a verdict (a panic, a
/// runtime shutting down) leaves its hits an `Undecided` one, never a wait
/// without end, and later hits start anew.
struct Registered {
    store: CacheStore,
    id: ImageId,
    running: Arc<Running>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.running.verdict.send_if_modified(|verdict| {
            let unset = verdict.is_none();
            if unset {
                *verdict = Some(Verdict::Undecided(
                    "the verification stopped before its verdict".into(),
                ));
            }
            unset
        });
        let mut running = self.store.inner.reverifications.lock();
        if running
            .get(&self.id)
            .is_some_and(|r| Arc::ptr_eq(r, &self.running))
        {
            running.remove(&self.id);
        }
    }
}

/// Whether a hit found a verification to join or started one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Joined {
    /// It waits for a verification another hit started.
    Existing,
    /// It started one.
    Started,
}

impl CacheStore {
    /// The verdict on `opened` (the file of `entry`) against `expected`,
    /// to come: the verification running for the same file and
    /// expectation, or a new one. `verified_upstream` says whether
    /// `expected` comes from the upstream (recorded with the verification).
    pub(crate) fn reverification(
        &self,
        entry: &CacheEntry,
        opened: &OpenedHit,
        expected: Expected,
        verified_upstream: bool,
    ) -> (Pending, Joined) {
        let id = &entry.image_id;
        let mut running = self.inner.reverifications.lock();
        if let Some(r) = running.get(id) {
            if r.stamp == opened.stamp && r.expected == expected {
                return (r.verdict.subscribe(), Joined::Existing);
            }
        }
        let (verdict, pending) = watch::channel(None);
        let this = Arc::new(Running {
            stamp: opened.stamp,
            expected: expected.clone(),
            verdict,
        });
        // A verification of an older file (or against other digests) runs
        // on to its end unregistered; hits of this file join this one.
        running.insert(id.clone(), Arc::clone(&this));
        drop(running);
        self.metrics().hit_verification();
        let registered = Registered {
            store: self.clone(),
            id: id.clone(),
            running: this,
        };
        let (entry, opened) = (entry.clone(), opened.clone());
        tokio::spawn(async move {
            let verdict = registered
                .store
                .judge_for_hits(&entry, &opened, &expected, verified_upstream)
                .await;
            registered.running.verdict.send_replace(Some(verdict));
        });
        (pending, Joined::Started)
    }

    /// Hashes `opened` whole and acts on the result: records it as
    /// verified, or quarantines it.
    async fn judge_for_hits(
        &self,
        entry: &CacheEntry,
        opened: &OpenedHit,
        expected: &Expected,
        verified_upstream: bool,
    ) -> Verdict {
        let id = &entry.image_id;
        let multi = Some(expected.multihash_to_record());
        let file = Arc::clone(&opened.file);
        let size = entry.size;
        let path = self.inner.layout.entry(id);
        let hashed = blocking("verify", &path, move || {
            let hashed = Hashed::read(hash_file(
                &file,
                size,
                multi,
                &mut Pace::new(None),
                &mut |_| {},
            ));
            let after = file.metadata().map(|m| FileStamp::of(&m));
            Ok::<_, Error>((hashed, after))
        })
        .await;
        let hashed = match hashed {
            Err(e) => return Verdict::Undecided(e.to_string().into()),
            Ok((_, Err(e))) => return Verdict::Undecided(e.to_string().into()),
            Ok((_, Ok(after))) if after != opened.stamp => {
                tracing::info!(image_id = %id, "cached file changed while it was hashed; not judged");
                return Verdict::Undecided("the file changed while it was hashed".into());
            }
            Ok((hashed, Ok(_))) => hashed,
        };
        let failure = match hashed.judged(expected, size) {
            Ok(digests) => {
                tracing::info!(image_id = %id, "cached file verified again for its hits");
                if let Err(e) = self
                    .record_verified(entry, opened.stamp, digests, verified_upstream)
                    .await
                {
                    tracing::warn!(image_id = %id, error = %e, "could not record the verification");
                }
                return Verdict::Intact;
            }
            Err(failure) => failure.to_string(),
        };
        self.metrics().integrity_failure(IntegrityCheck::Hit);
        tracing::error!(image_id = %id, failure,
            "cached file is corrupt; its hits are truncated, the file quarantined");
        if let Err(e) = self.quarantine_file(entry, Arc::clone(&opened.file)).await {
            tracing::warn!(image_id = %id, error = %e, "quarantine failed");
        }
        Verdict::Corrupt(failure.into())
    }
}

/// Waits for the verdict of `pending`: `Ok` when the file is intact.
pub(crate) async fn wait_for_verdict(mut pending: Pending) -> io::Result<()> {
    let verdict = match pending.wait_for(Option::is_some).await {
        Ok(v) => v.clone(),
        Err(_) => None,
    };
    match verdict {
        Some(Verdict::Intact) => Ok(()),
        Some(v @ Verdict::Corrupt(_)) => {
            Err(io::Error::new(io::ErrorKind::InvalidData, v.to_string()))
        }
        Some(v @ Verdict::Undecided(_)) => Err(io::Error::other(v.to_string())),
        None => Err(io::Error::other(
            "the verification of the cached file stopped",
        )),
    }
}
