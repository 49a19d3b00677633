//! Removing every committed entry (`DELETE /v2/cache`).

use std::io;

use super::blocking::blocking;
use super::size::image_files;
use super::CacheStore;
use crate::{Error, ImageId};

impl CacheStore {
    /// Removes every committed entry, file and row. Returns the number of
    /// image files removed.
    ///
    /// Only files named by a valid image id are touched: the index and its
    /// `-wal`/`-shm` files, lock files and anything else in the directory
    /// stay (Glance deletes and counts them).
    /// `incomplete/`, `invalid/` and `queue/` are left alone; see
    /// `clear_queue` for the queue.
    ///
    /// Hits already streaming finish normally (unlink semantics). An entry
    /// committed while the clear runs may survive it.
    pub(crate) async fn clear_cache(&self) -> Result<usize, Error> {
        // Rows are listed before the files are scanned, so an entry committed
        // after the scan keeps both its file and its row.
        let rows = self.inner.index.list().await?;
        let root = self.root().to_owned();
        let removed = blocking("clear", self.root(), move || {
            let mut removed = Vec::new();
            for (id, _) in image_files(&root)? {
                let path = root.join(id.as_str());
                match std::fs::remove_file(&path) {
                    Ok(()) => removed.push(id),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io("remove", &path, e)),
                }
            }
            Ok(removed)
        })
        .await?;
        let count = removed.len();
        let mut ids: Vec<ImageId> = rows.into_iter().map(|r| r.image_id).collect();
        ids.extend(removed);
        ids.sort_unstable();
        ids.dedup();
        let rows_deleted = self.inner.index.delete_many(ids).await?;
        tracing::info!(files = count, rows = rows_deleted, "cache cleared");
        Ok(count)
    }
}
