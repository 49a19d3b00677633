//! The state every connection shares: images, behaviours, tokens, the call
//! log and the upload directory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use http::HeaderMap;

use super::behaviour::Behaviour;
use super::calls::CallLog;
use super::image::{Data, ImageRecord};
use super::policy::{AuthMode, Identity};

pub(crate) struct Shared {
    pub(crate) addr: SocketAddr,
    /// `http` or `https`.
    pub(crate) scheme: &'static str,
    pub(crate) auth: AuthMode,
    pub(crate) tokens: Mutex<HashMap<String, Identity>>,
    pub(crate) images: Mutex<HashMap<String, ImageRecord>>,
    pub(crate) behaviours: Mutex<Behaviours>,
    pub(crate) calls: CallLog,
    pub(crate) served: Arc<AtomicU64>,
    pub(crate) connection_close: bool,
    pub(crate) keystone_uri: String,
    pub(crate) uploads: UploadDir,
}

#[derive(Default)]
pub(crate) struct Behaviours {
    pub(crate) default: Behaviour,
    pub(crate) per_image: HashMap<String, Behaviour>,
}

/// Locks `m`, ignoring poisoning (a panicking test thread must not wedge
/// the fake for the others).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The behaviour in force for image `id`.
    pub(crate) fn behaviour(&self, id: &str) -> Behaviour {
        let b = lock(&self.behaviours);
        b.per_image.get(id).unwrap_or(&b.default).clone()
    }

    /// A copy of the image record, unless unknown or deleted.
    pub(crate) fn image(&self, id: &str) -> Option<ImageRecord> {
        lock(&self.images)
            .get(id)
            .filter(|r| !r.status.is_deleted())
            .cloned()
    }

    /// The caller of a request, or `None` when it must be answered 401.
    pub(crate) fn identify(&self, headers: &HeaderMap) -> Option<Identity> {
        match self.auth {
            AuthMode::NoAuth => Some(Identity::unauthenticated_admin()),
            AuthMode::Tokens => {
                let token = headers.get("x-auth-token")?.to_str().ok()?;
                lock(&self.tokens).get(token).cloned()
            }
        }
    }
}

/// Where uploaded image data lives; a directory the fake created itself is
/// removed when the fake is dropped.
pub(crate) struct UploadDir {
    pub(crate) path: PathBuf,
    pub(crate) remove_on_drop: bool,
}

impl Drop for UploadDir {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(e) = std::fs::remove_dir_all(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(path = %path.display(), error = %e, "fake glance: cannot remove upload dir");
                }
            }
        };
        // Synchronously: a blocking task would never run once the test's
        // runtime shuts down, leaving uploads (hundreds of MiB) in /tmp.
        remove();
    }
}

/// Removes an uploaded file off the async threads.
pub(crate) fn discard(data: &Data) {
    if let Data::File { path, .. } = data {
        let path = Arc::clone(path);
        let remove = move || {
            if let Err(e) = std::fs::remove_file(path.as_path()) {
                tracing::debug!(path = %path.display(), error = %e, "fake glance: remove upload");
            }
        };
        // Synchronously: a blocking task would never run once the test's
        // runtime shuts down, leaving uploads (hundreds of MiB) in /tmp.
        remove();
    }
}
