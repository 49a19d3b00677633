//! Free-space checks and small filesystem helpers used by fills and
//! quarantines.

use std::fs::File;
use std::io;
use std::path::Path;

/// Bytes available to unprivileged writers on the filesystem holding `path`.
pub(crate) fn available_space(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// How a [`reserve`] ended.
#[derive(Debug)]
pub(crate) enum Reserved {
    /// The blocks are allocated.
    Yes,
    /// The filesystem has no room (or the quota is spent).
    NoSpace,
    /// The filesystem cannot reserve (no `fallocate`): the file grows as
    /// it is written.
    Unsupported(io::Error),
}

/// Allocates the disk blocks for the first `len` bytes of `file` without
/// changing its length (`fallocate` with `KEEP_SIZE`): readers still see
/// only what was written, a fill that cannot fit fails now rather than
/// midway, and the writes that follow fill blocks already laid out. Takes
/// about a millisecond to tens of milliseconds per GiB on ext4 (more while
/// its journal is busy), half a second on tmpfs (it allocates the pages).
pub(crate) fn reserve(file: &File, len: u64) -> Reserved {
    use rustix::fs::{fallocate, FallocateFlags};
    use rustix::io::Errno;
    if len == 0 {
        return Reserved::Yes;
    }
    match fallocate(file, FallocateFlags::KEEP_SIZE, 0, len) {
        Ok(()) => Reserved::Yes,
        Err(Errno::NOSPC | Errno::DQUOT | Errno::FBIG) => Reserved::NoSpace,
        Err(e) => Reserved::Unsupported(e.into()),
    }
}

/// Frees the blocks [`reserve`] allocated past the file's end (a
/// truncation to its own length does that on Linux filesystems).
pub(crate) fn release_reserve(file: &File) -> io::Result<()> {
    file.set_len(file.metadata()?.len())
}

/// fsyncs a directory so that a rename inside it survives a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves the file at `from` to `to` (in `invalid/`). Where it cannot be
/// moved (`invalid/` removed, or not writable), it is removed instead, with
/// a warning: a file found bad must not stay where it would be read again.
/// Blocking.
pub(crate) fn quarantine_or_remove(from: &Path, to: &Path) {
    if let Err(e) = std::fs::rename(from, to) {
        if from.symlink_metadata().is_ok() {
            tracing::warn!(path = %from.display(), error = %e, "could not quarantine; removing");
            remove_if_present(from);
        }
    }
}

/// Removes the file at `path`; one already gone is no error, any other
/// failure a warning.
pub(crate) fn remove_if_present(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "could not remove");
        }
    }
}

/// Whether `path` still names the open `file` (same device and inode).
pub(crate) fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
