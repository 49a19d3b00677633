//! [`CacheManageLayer`]: configuration of the management API.

use std::time::Duration;

use tower::Layer;

use super::CacheManage;
use crate::auth::manage::ManagementAuth;
use crate::layer::cache::CacheLayer;
use crate::worker::Prefetcher;

/// Answers Glance's cache management API (`/v2/cache…`, `/v2/cached_images…`,
/// `/v2/queued_images…`) and merges the cache API versions into version
/// discovery. See the [module docs](crate::layer::manage).
#[derive(Clone, Debug)]
pub struct CacheManageLayer {
    pub(crate) cache: Option<CacheLayer>,
    pub(crate) auth: ManagementAuth,
    pub(crate) prefetcher: Option<Prefetcher>,
    pub(crate) stall_time: Duration,
    pub(crate) public_endpoint: Option<String>,
}

impl CacheManageLayer {
    /// The management API for `cache` (`None`: caching is disabled at this
    /// site, and the v2 endpoints answer Glance's 404 after the policy
    /// check), authorizing callers with `auth`.
    pub fn new(cache: Option<CacheLayer>, auth: ManagementAuth) -> Self {
        CacheManageLayer {
            cache,
            auth,
            prefetcher: None,
            stall_time: Duration::from_secs(86_400),
            public_endpoint: None,
        }
    }

    /// The worker that caches images queued with `PUT /v2/cache/{id}`.
    /// Without one, images are only queued on disk (Glance's "worker paused").
    pub fn with_prefetcher(mut self, prefetcher: Prefetcher) -> Self {
        self.prefetcher = Some(prefetcher);
        self
    }

    /// Glance's `public_endpoint`: the base of the `href`s in the version
    /// document (default: the request's `Host`).
    pub fn with_public_endpoint(mut self, url: Option<http::Uri>) -> Self {
        self.public_endpoint = url.map(|u| u.to_string().trim_end_matches('/').to_string());
        self
    }

    /// `image_cache_stall_time` for `POST /v2/cache/clean`.
    pub fn with_stall_time(mut self, stall: Duration) -> Self {
        self.stall_time = stall;
        self
    }
}

impl<S> Layer<S> for CacheManageLayer {
    type Service = CacheManage<S>;

    fn layer(&self, inner: S) -> CacheManage<S> {
        CacheManage {
            inner,
            state: self.clone(),
        }
    }
}
