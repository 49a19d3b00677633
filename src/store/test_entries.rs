//! Helpers of the crate's unit tests: a store in a directory, and entries
//! committed in it.

use std::io::Write;
use std::path::Path;

use super::CacheStore;
use crate::checksum::Hashers;
use crate::ImageId;

/// A store in `dir` that admits fills whatever the free disk space.
pub(crate) async fn open_store(dir: &Path) -> CacheStore {
    CacheStore::builder(dir)
        .with_min_free_disk(0)
        .open()
        .await
        .unwrap()
}

/// Commits `data` as the cached file of `id`, verified, with its MD5.
pub(crate) async fn commit_bytes(store: &CacheStore, id: &ImageId, data: &[u8]) {
    let fill = store.begin_fill(id, Some(data.len() as u64)).await.unwrap();
    (&**fill.file()).write_all(data).unwrap();
    let mut md5 = Hashers::new(None);
    md5.update(data);
    let md5 = hex::encode(md5.finish().md5);
    fill.commit(data.len() as u64, md5, true, None)
        .await
        .unwrap();
}
