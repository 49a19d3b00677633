//! Uploading a committed image: complete or nothing. A small image is one
//! `PUT`; a larger one a multipart upload of 8 MiB parts, at most two in
//! memory, aborted on failure. A process killed mid-upload leaves an
//! incomplete multipart upload, which no reader sees and which the
//! bucket's lifecycle rule (`AbortIncompleteMultipartUpload`) removes.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use object_store::{PutMultipartOptions, PutOptions, PutPayload, WriteMultipart};

use super::{RemoteError, RemoteImage, RemoteTier};
use crate::metrics::RemoteEvent;

/// Bytes per multipart part (S3 wants at least 5 MiB but for the last).
pub(crate) const PART: usize = 8 << 20;

/// Bytes read from the file at a time.
const READ: usize = 1 << 20;

/// Longest wait for the store to take one part (or to complete the
/// upload): a store that accepts connections and then says nothing must
/// not hold an upload slot forever.
const PART_TIMEOUT: Duration = Duration::from_secs(120);

/// Attempts of one upload, and the pauses between them.
const RETRIES: [Duration; 2] = [Duration::from_secs(1), Duration::from_secs(5)];

impl RemoteTier {
    /// Uploads `file`, the verified bytes of `image`, unless the tier
    /// already has the image with the same size and digests. Retried twice;
    /// returns whether an upload happened.
    ///
    /// # Errors
    /// Every attempt failed (counted as `upload_failure`).
    pub async fn upload(
        &self,
        file: std::sync::Arc<std::fs::File>,
        image: &RemoteImage,
    ) -> Result<bool, RemoteError> {
        let _permit = self.inner.uploads.acquire().await;
        let metrics = self.metrics();
        if let Ok(Some(there)) = self.head(&image.image_id).await {
            if there.size == image.size
                && there.checksum == image.checksum
                && there.multihash == image.multihash
            {
                return Ok(false);
            }
        }
        let mut last = None;
        for pause in std::iter::once(Duration::ZERO).chain(RETRIES) {
            tokio::time::sleep(pause).await;
            match self.upload_once(&file, image).await {
                Ok(()) => {
                    metrics.remote(RemoteEvent::Upload);
                    tracing::info!(image_id = %image.image_id, size = image.size,
                        "image uploaded to the remote tier");
                    return Ok(true);
                }
                Err(e) => {
                    tracing::debug!(image_id = %image.image_id, error = %e, "upload attempt failed");
                    last = Some(e);
                }
            }
        }
        metrics.remote(RemoteEvent::UploadFailure);
        let e = last.unwrap_or(RemoteError::Unavailable {
            retry_in: Duration::ZERO,
        });
        tracing::warn!(image_id = %image.image_id, error = %e,
            "could not upload the image to the remote tier; it stays local only");
        Err(e)
    }

    async fn upload_once(
        &self,
        file: &std::sync::Arc<std::fs::File>,
        image: &RemoteImage,
    ) -> Result<(), RemoteError> {
        let key = self.inner.keys.image(&image.image_id);
        let store = &self.inner.store;
        let attributes = image.attributes();
        let size = usize::try_from(image.size).unwrap_or(usize::MAX);
        if size <= PART {
            let bytes = read_at(file, 0, size).await?;
            if bytes.len() != size {
                return Err(short(image));
            }
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            let payload = PutPayload::from(bytes);
            // One request, bounded like every other.
            self.call("put", &key, store.put_opts(&key, payload, options))
                .await?;
            return Ok(());
        }
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        self.inner.health.gate()?;
        let upload = store
            .put_multipart_opts(&key, options)
            .await
            .map_err(|source| self.failed("create multipart", &key, source))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut offset = 0u64;
        while offset < image.size {
            let want = READ.min(usize::try_from(image.size - offset).unwrap_or(READ));
            let chunk = match read_at(file, offset, want).await {
                Ok(chunk) if chunk.len() == want => chunk,
                Ok(_) => {
                    abort(writer).await;
                    return Err(short(image));
                }
                Err(e) => {
                    abort(writer).await;
                    return Err(e);
                }
            };
            match tokio::time::timeout(PART_TIMEOUT, writer.wait_for_capacity(1)).await {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    // The failed part's upload is aborted by `abort`.
                    abort(writer).await;
                    return Err(self.failed("upload part", &key, source));
                }
                Err(_) => {
                    abort(writer).await;
                    return Err(self.timed_out("upload part", &key));
                }
            }
            writer.write(&chunk);
            offset += chunk.len() as u64;
        }
        match tokio::time::timeout(PART_TIMEOUT, writer.finish()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(source)) => Err(self.failed("complete multipart", &key, source)),
            Err(_) => Err(self.timed_out("complete multipart", &key)),
        }
    }

    fn timed_out(&self, operation: &'static str, key: &object_store::path::Path) -> RemoteError {
        let e = RemoteError::Timeout {
            operation,
            key: key.to_string(),
            timeout: PART_TIMEOUT,
        };
        self.inner.health.failure(&e, &self.inner.metrics);
        e
    }

    fn failed(
        &self,
        operation: &'static str,
        key: &object_store::path::Path,
        source: object_store::Error,
    ) -> RemoteError {
        let e = RemoteError::Store {
            operation,
            key: key.to_string(),
            source,
        };
        self.inner.health.failure(&e, &self.inner.metrics);
        e
    }
}

/// Aborts a multipart upload, bounded (a store that does not answer keeps
/// the parts until the bucket's lifecycle rule removes them).
async fn abort(writer: WriteMultipart) {
    let _ = tokio::time::timeout(Duration::from_secs(10), writer.abort()).await;
}

fn short(image: &RemoteImage) -> RemoteError {
    RemoteError::Local(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!(
            "the cached file of {} is shorter than {} bytes",
            image.image_id, image.size
        ),
    ))
}

/// Reads up to `len` bytes at `offset` on a blocking thread.
async fn read_at(
    file: &std::sync::Arc<std::fs::File>,
    offset: u64,
    len: usize,
) -> Result<Bytes, RemoteError> {
    let file = std::sync::Arc::clone(file);
    let read = tokio::task::spawn_blocking(move || -> std::io::Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let mut buf = BytesMut::zeroed(len);
        let mut done = 0;
        while done < len {
            match file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(done);
        Ok(buf.freeze())
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(read)
}
