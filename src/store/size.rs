//! Cache size accounting: the image files directly in the directory.
//!
//! Only files whose name is a valid [`ImageId`] count. The index
//! (`cache.db`, `-wal`, `-shm`), lock files, probe files and any other junk
//! are neither counted nor, by [`CacheStore::clear_cache`], removed.

use std::io;
use std::path::Path;

use super::blocking::blocking;
use super::CacheStore;
use crate::{Error, ImageId};

/// Blocking: `(id, size)` of every regular image file directly in `root`,
/// ordered by id. Files that vanish while listing are skipped.
pub(super) fn image_files(root: &Path) -> Result<Vec<(ImageId, u64)>, Error> {
    let mut out = Vec::new();
    let dir = std::fs::read_dir(root).map_err(|e| Error::io("list", root, e))?;
    for dirent in dir {
        let dirent = dirent.map_err(|e| Error::io("list", root, e))?;
        let name = dirent.file_name();
        let Some(id) = name.to_str().and_then(|n| ImageId::parse(n).ok()) else {
            continue;
        };
        match dirent.metadata() {
            Ok(meta) if meta.is_file() => out.push((id, meta.len())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", dirent.path(), e)),
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

impl CacheStore {
    /// `image_cache_max_size`: the size [`prune`](CacheStore::prune) brings
    /// the cache down to, and the largest image a fill admits.
    pub fn max_size(&self) -> u64 {
        self.inner.max_size
    }

    /// The cache size: the sum of the sizes of the image files
    /// directly in the cache directory. `incomplete/`, `invalid/` and
    /// `queue/` are not counted, nor is any file whose name is not an image id.
    pub async fn cache_size(&self) -> Result<u64, Error> {
        let root = self.root().to_owned();
        let files = blocking("list", self.root(), move || image_files(&root)).await?;
        Ok(files.iter().map(|(_, size)| size).sum())
    }
}
