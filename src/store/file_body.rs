//! [`FileBody`]: streams a cached file in large positional reads.
//!
//! object_store's own `into_stream()` reads 8 KiB per blocking task, about ten
//! times slower than the page cache allows. This body reads
//! `hit_chunk_size` bytes (256 KiB by default; less when the memory all
//! downloads share is spent) per read through a
//! [`ChunkReader`]: on the async worker when the page cache holds the bytes,
//! on the blocking pool when the disk must be read, into buffers reused for
//! the whole download.

use std::fmt;
use std::fs::File;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::chunk_reader::ChunkReader;
use super::read_buffers::ReadBuffers;
use crate::metrics::Metrics;

/// Called once when the last byte of the file has been handed to the client.
pub(crate) type OnComplete = Box<dyn FnOnce() + Send>;

/// A response body that reads `[start, end)` of a file in large chunks.
pub(crate) struct FileBody {
    reader: ChunkReader,
    pos: u64,
    end: u64,
    on_complete: Option<OnComplete>,
    metrics: Option<Metrics>,
}

impl FileBody {
    pub(crate) fn new(file: Arc<File>, start: u64, end: u64, buffers: ReadBuffers) -> Self {
        FileBody {
            reader: ChunkReader::new(file, buffers),
            pos: start,
            end,
            on_complete: None,
            metrics: None,
        }
    }

    /// Counts every chunk read into `metrics` as hit bytes.
    pub(crate) fn counting(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub(crate) fn on_complete(mut self, f: OnComplete) -> Self {
        self.on_complete = Some(f);
        self
    }
}

impl fmt::Debug for FileBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileBody")
            .field("pos", &self.pos)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let bytes = match ready!(this.reader.poll_read(cx, this.pos, this.end - this.pos)) {
            Ok(bytes) => bytes,
            Err(e) => {
                this.end = this.pos;
                return Poll::Ready(Some(Err(e)));
            }
        };
        this.pos += bytes.len() as u64;
        if let Some(metrics) = &this.metrics {
            metrics.hit_bytes(bytes.len() as u64);
        }
        if this.pos >= this.end {
            if let Some(done) = this.on_complete.take() {
                done();
            }
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }

    fn is_end_stream(&self) -> bool {
        self.pos >= self.end
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.end.saturating_sub(self.pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test]
    async fn streams_whole_file_in_chunks_and_reports_completion() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let mut body = FileBody::new(
            Arc::new(f),
            0,
            data.len() as u64,
            ReadBuffers::unbounded(65536),
        )
        .on_complete(Box::new(move || flag.store(true, Ordering::SeqCst)));
        let mut got = Vec::new();
        let mut frames = 0;
        while let Some(frame) = body.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
            frames += 1;
        }
        assert_eq!(got, data);
        assert!(frames >= 16, "64 KiB chunks at most: {frames} frames");
        assert!(done.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn truncated_file_is_an_error_not_a_short_body() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
        let body = FileBody::new(Arc::new(f), 0, 5000, ReadBuffers::unbounded(4096));
        let err = body.collect().await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
