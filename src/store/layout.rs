//! Glance's on-disk layout of a cache directory.
//!
//! ```text
//! D/<id>             complete, verified image
//! D/incomplete/<id>  fill in progress (locked by its writer)
//! D/invalid/<id>     failed or aborted fill, kept until the next clean
//! D/queue/<id>       zero-byte "please cache" marker
//! D/cache.db         the index (never a valid image id, so never served)
//! ```

use std::path::{Path, PathBuf};

use crate::ImageId;

/// The sub-directories of a cache directory.
pub(crate) const SUBDIRS: [&str; 3] = ["incomplete", "invalid", "queue"];

/// Paths inside one cache directory. Only an [`ImageId`] becomes a file name.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: PathBuf) -> Self {
        Layout { root }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn entry(&self, id: &ImageId) -> PathBuf {
        self.root.join(id.as_str())
    }

    pub(crate) fn incomplete(&self, id: &ImageId) -> PathBuf {
        self.root.join("incomplete").join(id.as_str())
    }

    pub(crate) fn invalid(&self, id: &ImageId) -> PathBuf {
        self.root.join("invalid").join(id.as_str())
    }

    pub(crate) fn queue(&self, id: &ImageId) -> PathBuf {
        self.root.join("queue").join(id.as_str())
    }

    /// The object-store path of a committed entry.
    pub(crate) fn entry_object(id: &ImageId) -> object_store::path::Path {
        object_store::path::Path::from(id.as_str())
    }
}
