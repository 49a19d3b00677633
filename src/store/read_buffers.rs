//! [`ReadBuffers`]: the memory that the read buffers of every download
//! share.
//!
//! Each download (a hit, a range, a follower of a fill) reads its file in
//! chunks of `hit_chunk_size` into buffers that hyper holds until the
//! socket took them, and keeps a couple of spares for reuse. At 1000
//! concurrent downloads that came to 750 MiB of buffers. So full-size
//! buffers are taken from one budget shared by every download
//! (`[proxy] download_buffer_memory`); while it is spent, a download reads
//! in [`SMALL_CHUNK`] pieces instead, slower per byte but never stuck, so
//! memory stays bounded by configuration (the budget, plus a few small
//! buffers per connection) whatever the number of clients.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes per read of a download whose full-size buffer the budget cannot
/// pay for.
pub(crate) const SMALL_CHUNK: usize = 16 * 1024;

/// How downloads read their files: the chunk size, and the memory their
/// full-size buffers share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct ReadBuffers {
    chunk: usize,
    budget: Arc<Budget>,
}

struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl fmt::Debug for ReadBuffers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBuffers")
            .field("chunk", &self.chunk)
            .field("limit", &self.budget.limit)
            .field("used", &self.budget.used.load(Ordering::Relaxed))
            .finish()
    }
}

impl ReadBuffers {
    /// Chunks of `chunk` bytes, full-size buffers worth `limit` bytes in all.
    pub(crate) fn new(chunk: usize, limit: usize) -> Self {
        ReadBuffers {
            chunk: chunk.max(4096),
            budget: Arc::new(Budget {
                limit,
                used: AtomicUsize::new(0),
            }),
        }
    }

    /// Chunks of `chunk` bytes, no shared limit (tests).
    #[cfg(test)]
    pub(crate) fn unbounded(chunk: usize) -> Self {
        Self::new(chunk, usize::MAX)
    }

    /// The full chunk size.
    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk
    }

    /// Bytes of full-size buffers alive now.
    #[cfg(test)]
    pub(crate) fn in_use(&self) -> usize {
        self.budget.used.load(Ordering::Relaxed)
    }

    /// A buffer for one read: full-size while the budget pays for it, else
    /// a small one.
    pub(crate) fn take(&self) -> Buffer {
        self.take_full()
            .unwrap_or_else(|| Buffer::unaccounted(SMALL_CHUNK.min(self.chunk)))
    }

    /// A full-size buffer, if the budget pays for it.
    pub(crate) fn take_full(&self) -> Option<Buffer> {
        let budget = &self.budget;
        let n = self.chunk;
        budget
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= budget.limit)
            })
            .ok()?;
        Some(Buffer {
            data: vec![0u8; n],
            budget: Some(Arc::clone(&self.budget)),
        })
    }
}

/// One read buffer; a full-size one gives its bytes back to the budget
/// when dropped.
pub(crate) struct Buffer {
    data: Vec<u8>,
    budget: Option<Arc<Budget>>,
}

impl Buffer {
    fn unaccounted(len: usize) -> Self {
        Buffer {
            data: vec![0u8; len],
            budget: None,
        }
    }

    /// Whether it is a full-size buffer paid for by the budget.
    pub(crate) fn is_full_size(&self) -> bool {
        self.budget.is_some()
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.data
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.used.fetch_sub(self.data.len(), Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_buffers_while_the_budget_lasts_then_small_ones() {
        let buffers = ReadBuffers::new(256 * 1024, 512 * 1024);
        let a = buffers.take();
        let b = buffers.take();
        assert!(a.is_full_size() && b.is_full_size());
        assert_eq!(buffers.in_use(), 512 * 1024);
        let c = buffers.take();
        assert!(!c.is_full_size());
        assert_eq!(c.len(), SMALL_CHUNK);
        drop(a);
        assert_eq!(buffers.in_use(), 256 * 1024);
        assert!(buffers.take().is_full_size(), "freed memory is reused");
        drop((b, c));
        assert_eq!(buffers.in_use(), 0);
    }

    #[test]
    fn a_small_chunk_size_is_never_exceeded() {
        let buffers = ReadBuffers::new(4096, 0);
        assert_eq!(buffers.take().len(), 4096);
    }
}
