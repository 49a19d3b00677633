//! Startup reconciliation of files and index rows.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::{disk, CacheStore};
use crate::{Error, ImageId};

/// What [`CacheStore::reconcile`] changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Unlocked `incomplete/` files removed (left by a killed writer).
    pub stale_incomplete_removed: usize,
    /// `incomplete/` files skipped because a live writer holds them.
    pub incomplete_in_use: usize,
    /// Index rows dropped because their file is gone.
    pub rows_without_file: usize,
    /// Image files given a row (adopted).
    pub files_adopted: usize,
    /// Committed entries after reconciliation.
    pub entries: usize,
}

impl fmt::Display for ReconcileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} entries; removed {} stale incomplete files ({} in use), dropped {} rows without file, adopted {} files",
            self.entries,
            self.stale_incomplete_removed,
            self.incomplete_in_use,
            self.rows_without_file,
            self.files_adopted
        )
    }
}

pub(crate) fn mtime_epoch(meta: &Metadata) -> f64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct Scan {
    stale_removed: usize,
    in_use: usize,
    /// (id, size, mtime) of every image file directly in the directory.
    files: Vec<(ImageId, u64, f64)>,
}

fn scan(root: &Path) -> io::Result<Scan> {
    let mut out = Scan {
        stale_removed: 0,
        in_use: 0,
        files: Vec::new(),
    };
    for dirent in std::fs::read_dir(root.join("incomplete"))? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(id) = name.to_str().and_then(|n| ImageId::parse(n).ok()) else {
            continue;
        };
        let path = dirent.path();
        let Ok(file) = OpenOptions::new().read(true).write(true).open(&path) else {
            continue;
        };
        match remove_if_stale(&id, &path, file)? {
            Incomplete::Removed => out.stale_removed += 1,
            Incomplete::InUse => out.in_use += 1,
            Incomplete::Moved => {}
        }
    }
    for dirent in std::fs::read_dir(root)? {
        let dirent = dirent?;
        let name = dirent.file_name();
        let Some(id) = name.to_str().and_then(|n| ImageId::parse(n).ok()) else {
            continue;
        };
        let meta = dirent.metadata()?;
        if meta.is_file() {
            out.files.push((id, meta.len(), mtime_epoch(&meta)));
        }
    }
    Ok(out)
}

/// What became of an incomplete file at reconcile.
#[derive(Debug, PartialEq, Eq)]
enum Incomplete {
    /// No writer held it: removed.
    Removed,
    /// A writer holds it.
    InUse,
    /// It left the path (committed, or removed) after it was opened; what
    /// is at the path now is not this file's to judge.
    Moved,
}

/// Removes `file`, opened from `path`, unless a writer holds its lock or
/// it is no longer the file at `path`.
fn remove_if_stale(id: &ImageId, path: &Path, file: File) -> io::Result<Incomplete> {
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Incomplete::InUse),
        Err(TryLockError::Error(e)) => return Err(e),
    }
    // Its writer may have committed it (renamed it away) between our open
    // and our lock, and a new fill may own the path now.
    if !disk::same_file(&file, path) {
        return Ok(Incomplete::Moved);
    }
    match std::fs::remove_file(path) {
        Ok(()) => {
            tracing::info!(image_id = %id, "removed stale incomplete file");
            Ok(Incomplete::Removed)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Incomplete::Moved),
        Err(e) => Err(e),
    }
}

pub(super) async fn run(store: &CacheStore) -> Result<ReconcileReport, Error> {
    let root = store.root().to_owned();
    let scanned = tokio::task::spawn_blocking(move || scan(&root))
        .await
        .map_err(|e| Error::io("scan", store.root(), io::Error::other(e)))?
        .map_err(|e| Error::io("scan", store.root(), e))?;
    let index = &store.inner.index;
    let rows = index.list().await?;
    let mut report = ReconcileReport {
        stale_incomplete_removed: scanned.stale_removed,
        incomplete_in_use: scanned.in_use,
        ..Default::default()
    };
    let on_disk: std::collections::HashSet<&ImageId> =
        scanned.files.iter().map(|(id, _, _)| id).collect();
    for row in &rows {
        if !on_disk.contains(&row.image_id) {
            index.delete(&row.image_id).await?;
            tracing::info!(image_id = %row.image_id, "dropped index row without file");
            report.rows_without_file += 1;
        }
    }
    let with_row: std::collections::HashSet<&ImageId> = rows.iter().map(|r| &r.image_id).collect();
    for (id, size, mtime) in &scanned.files {
        if !with_row.contains(id) && index.adopt(id, *size, *mtime).await? {
            tracing::info!(image_id = %id, size, "adopted cached file without index row");
            report.files_adopted += 1;
        }
    }
    report.entries = scanned.files.len();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    fn id() -> ImageId {
        ImageId::parse("70000000-0000-4000-8000-000000000001").unwrap()
    }

    fn open(path: &Path) -> File {
        OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    }

    #[test]
    fn an_incomplete_file_nobody_holds_is_removed_and_a_held_one_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("incomplete");
        std::fs::write(&path, b"LEFT BEHIND").unwrap();
        let writer = open(&path);
        writer.lock().unwrap();
        assert_eq!(
            remove_if_stale(&id(), &path, open(&path)).unwrap(),
            Incomplete::InUse
        );
        drop(writer);
        assert_eq!(
            remove_if_stale(&id(), &path, open(&path)).unwrap(),
            Incomplete::Removed
        );
        assert!(!path.exists());
    }

    #[test]
    fn a_file_committed_between_the_open_and_the_lock_leaves_the_new_fill_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entry) = (dir.path().join("incomplete"), dir.path().join("entry"));
        std::fs::write(&path, b"VERIFIED IMAGE").unwrap();
        let writer = open(&path);
        writer.lock().unwrap();
        let opened = open(&path);
        // The writer commits and lets go; a new fill of the image starts.
        std::fs::rename(&path, &entry).unwrap();
        drop(writer);
        let mut new_fill = File::create(&path).unwrap();
        new_fill.write_all(b"NEW FILL").unwrap();
        assert_eq!(
            remove_if_stale(&id(), &path, opened).unwrap(),
            Incomplete::Moved
        );
        let mut got = String::new();
        File::open(&path).unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got, "NEW FILL");
        assert!(entry.exists());
    }
}
