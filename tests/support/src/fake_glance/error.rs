//! [`FakeGlanceError`].

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why a fake Glance could not start or take an image.
#[derive(Debug, thiserror::Error)]
pub enum FakeGlanceError {
    /// The listening socket could not be bound.
    #[error("fake glance: bind {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The upload directory could not be created.
    #[error("fake glance: create upload directory {}: {source}", path.display())]
    UploadDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Two images share an id.
    #[error("fake glance: image {id} is defined twice")]
    DuplicateImage {
        /// The id.
        id: String,
    },
    /// Hashing an image's data failed.
    #[error("fake glance: hash the data of image {id}: {source}")]
    Digest {
        /// The image id.
        id: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}
