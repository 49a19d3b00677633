//! `PUT /v2/images/{id}/file`: the body (sized or chunked) is streamed into
//! a file in the upload directory on a blocking thread, hashed on the way;
//! nothing is held in memory beyond a few chunks.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::image::{Data, Digests, ImageStatus};
use super::policy::{self, Identity, Rule};
use super::responses::{self, Reply};
use super::routes::Crash;
use super::state::{self, lock, Shared};
use crate::BoxError;

pub(crate) async fn upload<B>(
    shared: &Arc<Shared>,
    who: &Identity,
    id: &str,
    body: B,
) -> Result<Reply, Crash>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    {
        let mut images = lock(&shared.images);
        let Some(image) = images
            .get_mut(id)
            .filter(|i| !i.status.is_deleted() && policy::visible(who, i))
        else {
            return Ok(responses::image_not_found(id));
        };
        if let Err(d) = policy::enforce(Rule::UploadImage, who, image) {
            return Ok(responses::denied(d));
        }
        if image.status != ImageStatus::Queued {
            return Ok(responses::error(
                StatusCode::CONFLICT,
                &format!(
                    "Image status transition from {} to saving is not allowed",
                    image.status
                ),
            ));
        }
        image.status = ImageStatus::Saving;
        image.touch();
    }

    let received = receive(body, &shared.uploads.path).await;
    let mut images = lock(&shared.images);
    let image = images
        .get_mut(id)
        .filter(|i| i.status == ImageStatus::Saving);
    match (received, image) {
        (Ok(up), Some(image)) => {
            image.data = Data::File {
                path: Arc::new(up.path),
                len: up.len,
            };
            image.digests = Some(up.digests);
            image.status = ImageStatus::Active;
            image.touch();
            Ok(responses::no_content())
        }
        (Ok(up), None) => {
            state::discard(&Data::File {
                path: Arc::new(up.path),
                len: up.len,
            });
            Ok(responses::error(
                StatusCode::GONE,
                &format!("Image {id} could not be found after upload. The image may have been deleted during the upload, cleaning up the chunks uploaded."),
            ))
        }
        (Err(e), image) => {
            tracing::debug!(image = id, error = %e, "fake glance: upload failed");
            if let Some(image) = image {
                image.status = ImageStatus::Queued;
                image.touch();
            }
            Err(Crash)
        }
    }
}

/// A completed upload.
pub(crate) struct Uploaded {
    pub(crate) path: PathBuf,
    pub(crate) len: u64,
    pub(crate) digests: Digests,
}

/// Streams `body` into a new file in `dir`; the file is removed on failure.
pub(crate) async fn receive<B>(mut body: B, dir: &Path) -> io::Result<Uploaded>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let path = dir.join(format!("upload-{}.data", uuid::Uuid::new_v4()));
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let target = path.clone();
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(u64, Digests)> {
        let mut file = std::fs::File::create(&target)?;
        let mut hasher = Digests::hasher();
        let mut len = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk)?;
            hasher.update(&chunk);
            len += chunk.len() as u64;
        }
        file.flush()?;
        Ok((len, hasher.finish()))
    });

    let mut failure = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    if tx.send(data).await.is_err() {
                        break; // the writer failed; its error is reported below
                    }
                }
            }
            Err(e) => {
                failure = Some(io::Error::other(e.into()));
                break;
            }
        }
    }
    drop(tx);
    let written = writer.await.map_err(io::Error::other).and_then(|r| r);
    let result = match (failure, written) {
        (Some(e), _) | (None, Err(e)) => Err(e),
        (None, Ok((len, digests))) => Ok(Uploaded {
            path: path.clone(),
            len,
            digests,
        }),
    };
    if result.is_err() {
        state::discard(&Data::File {
            path: Arc::new(path),
            len: 0,
        });
    }
    result
}
