//! [`CacheStore::check_health`]: whether the cache can work right now.

use super::blocking::blocking;
use super::CacheStore;
use crate::{Error, ImageId};

/// An id no image has (version 4, all zeros): looking it up exercises the
/// index without finding anything.
const NO_IMAGE: &str = "00000000-0000-4000-8000-000000000000";

impl CacheStore {
    /// Whether the cache can work: its `incomplete/` directory takes a new
    /// file (created and removed again), and the index answers a lookup.
    /// Cheap enough for a load balancer's health check every few seconds.
    ///
    /// # Errors
    /// The first of the two that fails.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), glance_cache::Error> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let store = glance_cache::store::CacheStore::builder(dir.path()).open().await?;
    /// store.check_health().await?;
    /// # Ok(()) }
    /// ```
    pub async fn check_health(&self) -> Result<(), Error> {
        let dir = self.root().join("incomplete");
        // One name per check: concurrent checks never remove each other's file.
        let probe = dir.join(format!(".healthcheck-{}", uuid::Uuid::new_v4().simple()));
        blocking("health check", &dir, move || {
            std::fs::write(&probe, b"")
                .and_then(|()| std::fs::remove_file(&probe))
                .map_err(|e| Error::io("write a file in", &probe, e))
        })
        .await?;
        let id = ImageId::parse(NO_IMAGE)
            .map_err(|e| Error::io("health check", &dir, std::io::Error::other(e)))?;
        self.is_cached(&id).await.map(|_| ())
    }
}
