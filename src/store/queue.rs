//! The prefetch queue: zero-byte marker files in `queue/`.
//!
//! A marker's mtime is its queue time; [`CacheStore::queued`] lists the
//! oldest first. A successful commit of the image removes its marker.

use std::fs::OpenOptions;
use std::io;
use std::time::SystemTime;

use super::blocking::blocking;
use super::CacheStore;
use crate::{Error, ImageId};

impl CacheStore {
    /// Queues `id` for caching (Glance's driver-level `queue_image`).
    ///
    /// Returns `false`, changing nothing, when the image is cached already
    /// (`<id>` exists), is being cached (`incomplete/<id>` exists) or is
    /// queued already; otherwise creates the empty marker `queue/<id>` and
    /// returns `true`.
    ///
    pub(crate) async fn queue_image(&self, id: &ImageId) -> Result<bool, Error> {
        let layout = self.inner.layout.clone();
        let id = id.clone();
        let marker = layout.queue(&id);
        blocking("queue", &marker.clone(), move || {
            if layout.entry(&id).exists() || layout.incomplete(&id).exists() {
                return Ok(false);
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&marker)
            {
                Ok(_) => {
                    tracing::info!(image_id = %id, "image queued for caching");
                    Ok(true)
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
                Err(e) => Err(Error::io("create", &marker, e)),
            }
        })
        .await
    }

    /// The queued images, oldest first (marker mtime, ties by id).
    ///
    /// Markers that disappear while listing (a commit or a dequeue racing
    /// the listing) are skipped, as are files not named by an image id.
    pub async fn queued(&self) -> Result<Vec<ImageId>, Error> {
        let dir = self.root().join("queue");
        blocking("list", &dir.clone(), move || {
            let mut found: Vec<(SystemTime, ImageId)> = Vec::new();
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for dirent in entries {
                let dirent = dirent.map_err(|e| Error::io("list", &dir, e))?;
                let name = dirent.file_name();
                let Some(id) = name.to_str().and_then(|n| ImageId::parse(n).ok()) else {
                    continue;
                };
                let meta = match dirent.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io("stat", dirent.path(), e)),
                };
                if !meta.is_file() {
                    continue;
                }
                let at = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                found.push((at, id));
            }
            found.sort_unstable();
            Ok(found.into_iter().map(|(_, id)| id).collect())
        })
        .await
    }

    /// Whether `queue/<id>` exists.
    pub async fn is_queued(&self, id: &ImageId) -> Result<bool, Error> {
        let marker = self.inner.layout.queue(id);
        blocking("stat", &marker.clone(), move || {
            marker
                .try_exists()
                .map_err(|e| Error::io("stat", &marker, e))
        })
        .await
    }

    /// Removes `queue/<id>`. Returns whether it was there; a missing marker
    /// is not an error.
    pub(crate) async fn dequeue(&self, id: &ImageId) -> Result<bool, Error> {
        let marker = self.inner.layout.queue(id);
        let path = marker.clone();
        let remove = move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove", &path, e)),
        };
        blocking("remove", &marker, remove).await
    }

    /// Removes every queue marker. Returns how many were removed. Files in
    /// `queue/` not named by an image id are left alone.
    pub(crate) async fn clear_queue(&self) -> Result<usize, Error> {
        let dir = self.root().join("queue");
        let removed = blocking("clear", &dir.clone(), move || {
            let mut removed = 0;
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))?;
            for dirent in entries {
                let dirent = dirent.map_err(|e| Error::io("list", &dir, e))?;
                let name = dirent.file_name();
                if name.to_str().and_then(|n| ImageId::parse(n).ok()).is_none() {
                    continue;
                }
                match dirent.file_type() {
                    Ok(t) if t.is_file() => {}
                    _ => continue,
                }
                match std::fs::remove_file(dirent.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", dirent.path(), e)),
                }
            }
            Ok(removed)
        })
        .await?;
        tracing::info!(removed, "queue cleared");
        Ok(removed)
    }
}
