//! Startup reconciliation of files and index rows.

use std::fmt;
use std::fs::{Metadata, OpenOptions, TryLockError};
use std::io;
use std::path::Path;
use std::time::UNIX_EPOCH;

use super::CacheStore;
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
        match file.try_lock() {
            Ok(()) => {
                std::fs::remove_file(&path)?;
                tracing::info!(image_id = %id, "removed stale incomplete file");
                out.stale_removed += 1;
            }
            Err(TryLockError::WouldBlock) => out.in_use += 1,
            Err(TryLockError::Error(e)) => return Err(e),
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
