//! Another process's fill, seen from this one: two proxies sharing a cache
//! directory (a restart overlap, two units by mistake) follow each other's
//! fills instead of each downloading the image again.
//!
//! The writer holds an exclusive `flock` on `incomplete/<id>` for the whole
//! fill and releases it only after its commit (fsync, then rename to
//! `<id>`, which keeps the inode, then the index row) or its failure (the
//! file is removed or quarantined; the lock goes when the writer's last
//! follower closes the file). So a reader that holds the file open learns
//! everything it needs from it: how many bytes are there (its size),
//! whether the writer is still at work (the lock), and whether the fill was
//! committed (`<id>` is now this very file).

use std::fs::{File, TryLockError};
use std::sync::Arc;

use super::blocking::blocking;
use super::{disk, CacheStore};
use crate::{Error, ImageId};

/// Where another process's fill stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ForeignFill {
    /// Still writing: this many bytes are in the file.
    Writing(u64),
    /// Committed: the file is the entry now, with this many bytes (the
    /// writer verified them before its commit).
    Committed(u64),
    /// Over without a commit (failed, discarded, or taken away). The
    /// reader's descriptor keeps a shared lock on the file from then on,
    /// so that no new fill takes it over (truncates and rewrites it) while
    /// this process's followers may still read back what they sent.
    Ended,
}

impl CacheStore {
    /// The file of a fill of `id` that another writer (another process
    /// sharing the directory) holds right now, opened for reading; `None`
    /// when nobody holds one.
    pub(crate) async fn foreign_fill(&self, id: &ImageId) -> Option<Arc<File>> {
        let path = self.inner.layout.incomplete(id);
        let opened = blocking("open", &path.clone(), move || {
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(_) => return Ok(None),
            };
            Ok(match file.try_lock_shared() {
                Err(TryLockError::WouldBlock) => Some(file),
                Ok(()) => {
                    let _ = file.unlock();
                    None
                }
                Err(TryLockError::Error(_)) => None,
            })
        })
        .await;
        opened.ok().flatten().map(Arc::new)
    }

    /// Where the fill whose file [`foreign_fill`](Self::foreign_fill)
    /// opened stands now.
    pub(crate) async fn foreign_fill_state(
        &self,
        id: &ImageId,
        file: &Arc<File>,
    ) -> Result<ForeignFill, Error> {
        let entry = self.inner.layout.entry(id);
        let file = Arc::clone(file);
        let path = self.inner.layout.incomplete(id);
        blocking("fstat", &path.clone(), move || {
            let stat = |file: &File| {
                file.metadata()
                    .map(|m| m.len())
                    .map_err(|e| Error::io("fstat", &path, e))
            };
            match file.try_lock_shared() {
                Err(TryLockError::WouldBlock) => Ok(ForeignFill::Writing(stat(&file)?)),
                Err(TryLockError::Error(e)) => Err(Error::io("flock", &path, e)),
                Ok(()) if disk::same_file(&file, &entry) => {
                    let _ = file.unlock();
                    Ok(ForeignFill::Committed(stat(&file)?))
                }
                // The lock stays: see `ForeignFill::Ended`.
                Ok(()) => Ok(ForeignFill::Ended),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn id() -> ImageId {
        ImageId::parse("50000000-0000-0000-0000-000000000001").unwrap()
    }

    #[tokio::test]
    async fn a_fill_held_elsewhere_is_seen_growing_then_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::builder(dir.path()).open().await.unwrap();
        assert!(store.foreign_fill(&id()).await.is_none(), "no fill at all");

        // Another writer: its own open file description, locked.
        let path = store.inner.layout.incomplete(&id());
        let mut writer = File::create(&path).unwrap();
        writer.lock().unwrap();
        writer.write_all(b"abc").unwrap();
        let file = store.foreign_fill(&id()).await.expect("held elsewhere");
        assert_eq!(
            store.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Writing(3)
        );
        writer.write_all(b"def").unwrap();
        std::fs::rename(&path, store.inner.layout.entry(&id())).unwrap();
        assert_eq!(
            store.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Writing(6),
            "renamed but still locked: not over yet"
        );
        drop(writer);
        assert_eq!(
            store.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Committed(6)
        );
    }

    #[tokio::test]
    async fn another_process_sees_the_commit_while_this_one_s_followers_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let writer = CacheStore::builder(dir.path()).open().await.unwrap();
        let other = CacheStore::builder(dir.path()).open().await.unwrap();
        let fill = writer.begin_fill(&id(), Some(5)).await.unwrap();
        (&**fill.file()).write_all(b"hello").unwrap();
        // A follower's reader: the same open file, kept past the commit.
        let follower = Arc::clone(fill.file());
        let file = other.foreign_fill(&id()).await.expect("held by the writer");
        assert_eq!(
            other.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Writing(5)
        );
        fill.commit(5, "5d41402abc4b2a76b9719d911017c592".into(), true, None)
            .await
            .unwrap();
        assert_eq!(
            other.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Committed(5)
        );
        drop(follower);
    }

    #[tokio::test]
    async fn a_fill_that_ends_without_its_rename_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let store = CacheStore::builder(dir.path()).open().await.unwrap();
        let path = store.inner.layout.incomplete(&id());
        let writer = File::create(&path).unwrap();
        writer.lock().unwrap();
        let file = store.foreign_fill(&id()).await.expect("held elsewhere");
        std::fs::remove_file(&path).unwrap();
        drop(writer);
        assert_eq!(
            store.foreign_fill_state(&id(), &file).await.unwrap(),
            ForeignFill::Ended
        );
        // A leftover nobody holds is no fill.
        let leftover = File::create(&path).unwrap();
        drop(leftover);
        assert!(store.foreign_fill(&id()).await.is_none());
    }
}
