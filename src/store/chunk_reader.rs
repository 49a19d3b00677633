//! [`ChunkReader`]: positional reads of a cached file for a response body.
//!
//! Two costs dominated a hit in the load profile (BENCHMARKS.md): a thread
//! hop per chunk (one `spawn_blocking` per 256 KiB read: ~40% of the CPU in
//! thread switches and scheduler locks) and a freshly zeroed buffer per chunk.
//! This reader removes both:
//!
//! * it first reads with `preadv2(RWF_NOWAIT)`, which copies what the page
//!   cache holds and never waits for the disk — so a warm file is read on the
//!   async worker in about the time of a `memcpy` (tens of microseconds per
//!   chunk, like hyper's own copy of it into the socket; fill files are opened
//!   `O_NOATIME` so that reading a growing file writes no atime), and only a
//!   read that would block
//!   goes to the blocking pool (kernels or filesystems without `RWF_NOWAIT`
//!   get the blocking read every time);
//! * the buffers handed to hyper come back to a small per-body pool when hyper
//!   drops them, so a download allocates and zeroes its buffers once. A body
//!   keeps at most [`POOL_MAX`] spare chunks besides the ones hyper holds,
//!   until it is dropped; full-size ones are paid for by the budget every
//!   download shares ([`ReadBuffers`]), small ones when it is spent.
//!
//! Both paths return what the file holds: a read may be short, and only a
//! read that finds no byte at all at `pos` is an `UnexpectedEof` error.

use std::fs::File;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use rustix::io::{preadv2, Errno, ReadWriteFlags};
use tokio::task::JoinHandle;

use super::read_buffers::{Buffer, ReadBuffers};

/// Spare buffers a body keeps for reuse (the one hyper is sending is extra).
const POOL_MAX: usize = 2;

/// Chunks of one body that may be out at once (handed to hyper and not yet
/// written to the socket). hyper would queue up to about 400 KiB per
/// connection ahead of a slow client; with this bound a download holds at
/// most two chunks, whatever hyper's buffer size, and a fast one loses
/// nothing (one chunk is written while the next is read).
const MAX_OUT: usize = 2;

/// The chunks of one body that are out, and the body's waker for when one
/// comes back.
#[derive(Default)]
struct Out {
    count: AtomicUsize,
    waker: AtomicWaker,
}

type Pool = Arc<Mutex<Vec<Buffer>>>;

/// A blocking read in progress: the buffer and how many bytes it holds.
type BlockingRead = JoinHandle<io::Result<(Buffer, usize)>>;

/// Reads chunks of one file at caller-given offsets, at most one at a time.
pub(crate) struct ChunkReader {
    file: Arc<File>,
    buffers: ReadBuffers,
    pool: Pool,
    out: Arc<Out>,
    nowait: bool,
    pending: Option<BlockingRead>,
}

impl ChunkReader {
    pub(crate) fn new(file: Arc<File>, buffers: ReadBuffers) -> Self {
        ChunkReader {
            file,
            buffers,
            pool: Arc::new(Mutex::new(Vec::with_capacity(POOL_MAX))),
            out: Arc::default(),
            nowait: true,
            pending: None,
        }
    }

    /// Reads up to `max` bytes (at most one chunk) at `pos`, possibly fewer;
    /// a file that ends at or before `pos` is an `UnexpectedEof` error.
    ///
    /// After `Pending`, call again with the same `pos` (`max` is ignored
    /// while a read is in flight).
    pub(crate) fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        pos: u64,
        max: u64,
    ) -> Poll<io::Result<Bytes>> {
        if self.pending.is_none() && self.too_many_out(cx) {
            return Poll::Pending;
        }
        let mut handle = match self.pending.take() {
            Some(handle) => handle,
            None => match self.start_read(pos, max) {
                Ok(handle) => handle,
                Err(done) => return Poll::Ready(done),
            },
        };
        let Poll::Ready(result) = Pin::new(&mut handle).poll(cx) else {
            self.pending = Some(handle);
            return Poll::Pending;
        };
        let (buf, len) = result.map_err(io::Error::other)??;
        Poll::Ready(Ok(self.bytes(buf, len)))
    }

    /// Reads from the page cache when it holds the bytes (`Err` with the
    /// result), or starts a read on the blocking pool.
    fn start_read(&mut self, pos: u64, max: u64) -> Result<BlockingRead, io::Result<Bytes>> {
        let mut buf = self.buffer();
        let len = max.min(buf.len() as u64) as usize;
        if self.nowait {
            match read_nowait(&self.file, &mut buf.as_mut_slice()[..len], pos) {
                Ok(0) => {} // the blocking read reports the short file
                Ok(n) => return Err(Ok(self.bytes(buf, n))),
                Err(Errno::AGAIN) => {}
                Err(Errno::OPNOTSUPP | Errno::INVAL | Errno::NOSYS) => {
                    tracing::debug!(
                        "RWF_NOWAIT reads unsupported here; reading on the blocking pool"
                    );
                    self.nowait = false;
                }
                Err(e) => return Err(Err(e.into())),
            }
        }
        let file = Arc::clone(&self.file);
        Ok(tokio::task::spawn_blocking(move || {
            let n = read_some_at(&file, &mut buf.as_mut_slice()[..len], pos)?;
            Ok((buf, n))
        }))
    }

    /// Whether [`MAX_OUT`] chunks are out; the task is then woken when
    /// one comes back.
    fn too_many_out(&self, cx: &mut Context<'_>) -> bool {
        if self.out.count.load(Ordering::Acquire) < MAX_OUT {
            return false;
        }
        self.out.waker.register(cx.waker());
        // A chunk may have come back before the waker was registered.
        self.out.count.load(Ordering::Acquire) >= MAX_OUT
    }

    /// A spare buffer, or a new one; a small spare gives way to a
    /// full-size buffer as soon as the budget pays for one again.
    fn buffer(&self) -> Buffer {
        let spare = self.pool.lock().map(|mut p| p.pop()).unwrap_or(None);
        match spare {
            Some(buf) if buf.is_full_size() => buf,
            Some(small) => self.buffers.take_full().unwrap_or(small),
            None => self.buffers.take(),
        }
    }

    fn bytes(&self, buf: Buffer, len: usize) -> Bytes {
        self.out.count.fetch_add(1, Ordering::AcqRel);
        Bytes::from_owner(Pooled {
            buf: Some(buf),
            len,
            out: Arc::clone(&self.out),
            pool: Arc::clone(&self.pool),
        })
    }
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        if let Some(handle) = self.pending.take() {
            handle.abort();
        }
    }
}

/// A chunk handed to hyper; its buffer returns to the body's pool on drop.
struct Pooled {
    buf: Option<Buffer>,
    len: usize,
    pool: Pool,
    out: Arc<Out>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        self.buf.as_ref().map_or(&[], |b| &b.as_slice()[..self.len])
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let (Ok(mut pool), Some(buf)) = (self.pool.lock(), self.buf.take()) {
            if pool.len() < POOL_MAX {
                pool.push(buf);
            }
        }
        self.out.count.fetch_sub(1, Ordering::AcqRel);
        self.out.waker.wake();
    }
}

/// Copies what the page cache holds of `[pos, pos + buf.len())`, without
/// waiting for the disk: `EAGAIN` when the first byte is not cached.
fn read_nowait(file: &File, buf: &mut [u8], pos: u64) -> Result<usize, Errno> {
    loop {
        match preadv2(
            file,
            &mut [IoSliceMut::new(buf)],
            pos,
            ReadWriteFlags::NOWAIT,
        ) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// Reads what the file holds of `[pos, pos + buf.len())` (retrying short
/// reads until the end of the file); no byte at all is an `UnexpectedEof` error.
fn read_some_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 0 && !buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("cached file ended at offset {pos}, before its announced length"),
        ));
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::io::Write;

    fn file_with(data: &[u8]) -> Arc<File> {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(data).unwrap();
        Arc::new(f)
    }

    /// A reader that never tries `RWF_NOWAIT`, as on a filesystem without it.
    fn blocking_only(file: Arc<File>, chunk: usize) -> ChunkReader {
        let mut r = ChunkReader::new(file, ReadBuffers::unbounded(chunk));
        r.nowait = false;
        r
    }

    fn readers(data: &[u8], chunk: usize) -> [ChunkReader; 2] {
        [
            ChunkReader::new(file_with(data), ReadBuffers::unbounded(chunk)),
            blocking_only(file_with(data), chunk),
        ]
    }

    #[tokio::test]
    async fn reads_chunks_at_the_given_offsets() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for mut r in readers(&data, 4096) {
            let a = poll_fn(|cx| r.poll_read(cx, 0, 100_000)).await.unwrap();
            assert_eq!(&a[..], &data[..4096]);
            let b = poll_fn(|cx| r.poll_read(cx, 99_000, 1_000)).await.unwrap();
            assert_eq!(&b[..], &data[99_000..]);
        }
    }

    #[tokio::test]
    async fn the_page_cache_path_is_taken_when_the_data_is_there() {
        let data = vec![9u8; 8192];
        let mut r = ChunkReader::new(file_with(&data), ReadBuffers::unbounded(4096));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        // Just written: in the page cache. Ready at the first poll, no thread hop
        // (unless this filesystem lacks RWF_NOWAIT; then the read must still work).
        match r.poll_read(&mut cx, 0, 8192) {
            Poll::Ready(chunk) => assert_eq!(chunk.unwrap().len(), 4096),
            Poll::Pending => {
                assert!(!r.nowait, "pending although the data is cached");
                let chunk = poll_fn(|cx| r.poll_read(cx, 0, 8192)).await.unwrap();
                assert_eq!(chunk.len(), 4096);
            }
        }
    }

    #[tokio::test]
    async fn buffers_come_back_to_the_pool_when_hyper_drops_them() {
        let data = vec![5u8; 3 * 4096];
        let mut r = ChunkReader::new(file_with(&data), ReadBuffers::unbounded(4096));
        let a = poll_fn(|cx| r.poll_read(cx, 0, 4096)).await.unwrap();
        let first = a.as_ptr();
        drop(a);
        assert_eq!(r.pool.lock().unwrap().len(), 1);
        let b = poll_fn(|cx| r.poll_read(cx, 4096, 4096)).await.unwrap();
        assert_eq!(b.as_ptr(), first, "the dropped buffer is reused");
        // A chunk still held by the client is never overwritten.
        let c = poll_fn(|cx| r.poll_read(cx, 8192, 4096)).await.unwrap();
        assert_ne!(c.as_ptr(), b.as_ptr());
        assert!(b.iter().chain(c.iter()).all(|&x| x == 5));
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_is_an_error() {
        for mut r in readers(&[1u8; 1000], 4096) {
            // What is there is served (a short read), then the end is an error.
            let a = poll_fn(|cx| r.poll_read(cx, 0, 4096)).await.unwrap();
            assert_eq!(a.len(), 1000);
            let err = poll_fn(|cx| r.poll_read(cx, 1000, 4096)).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        }
    }

    #[tokio::test]
    async fn at_most_two_chunks_are_out_and_a_returned_one_wakes_the_body() {
        let data = vec![1u8; 5 * 4096];
        let mut r = ChunkReader::new(file_with(&data), ReadBuffers::unbounded(4096));
        let a = poll_fn(|cx| r.poll_read(cx, 0, 4096)).await.unwrap();
        let b = poll_fn(|cx| r.poll_read(cx, 4096, 4096)).await.unwrap();
        let (waker, woken) = futures_test_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(
            r.poll_read(&mut cx, 8192, 4096).is_pending(),
            "a third chunk waits while two are out"
        );
        assert_eq!(woken.load(Ordering::SeqCst), 0);
        drop(a);
        assert_eq!(
            woken.load(Ordering::SeqCst),
            1,
            "a chunk that comes back wakes the body"
        );
        let c = poll_fn(|cx| r.poll_read(cx, 8192, 4096)).await.unwrap();
        assert_eq!(c.len(), 4096);
        drop((b, c));
    }

    /// A waker that counts its wakes.
    fn futures_test_waker() -> (std::task::Waker, Arc<AtomicUsize>) {
        struct Count(Arc<AtomicUsize>);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let woken = Arc::new(AtomicUsize::new(0));
        (Arc::new(Count(Arc::clone(&woken))).into(), woken)
    }
}
