//! [`FileStamp`]: a file's identity, to tell whether it may have changed.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

/// Inode, size, mtime and ctime of a cached file. A write, a truncation, a
/// replacement (even one that restores the mtime afterwards, as `touch -d`
/// does: that moves the ctime) changes at least one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStamp {
    pub(crate) ino: u64,
    pub(crate) size: u64,
    pub(crate) mtime_ns: i64,
    pub(crate) ctime_ns: i64,
}

impl FileStamp {
    pub(crate) fn of(meta: &Metadata) -> Self {
        FileStamp {
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}
