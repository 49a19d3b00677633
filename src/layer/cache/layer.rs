//! [`CacheLayer`]: the configuration shared by every [`Cache`] service.

use tower::Layer;

use super::Cache;
use crate::cache::GlanceCache;

/// Caches `GET /v2/images/{id}/file` bodies in a [`GlanceCache`].
///
/// Cheap to clone; every service built from one cache (and its clones)
/// shares the store and the single-flight registry, so concurrent first
/// downloads of one image cost one upstream download.
/// See the [module docs](crate::layer::cache) for an example.
#[derive(Clone, Debug)]
pub struct CacheLayer {
    pub(super) core: Option<GlanceCache>,
}

impl CacheLayer {
    /// A layer serving downloads from `cache` (its hit authorization,
    /// store and fills).
    pub fn new(cache: GlanceCache) -> Self {
        CacheLayer { core: Some(cache) }
    }

    /// A layer that caches nothing: every request passes through (a stack
    /// without a cache directory).
    pub(crate) fn disabled() -> Self {
        CacheLayer { core: None }
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            core: self.core.clone(),
        }
    }
}
