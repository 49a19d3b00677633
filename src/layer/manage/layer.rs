//! [`CacheManageLayer`]: configuration of the management API.

use std::time::Duration;

use http::HeaderValue;
use tower::Layer;

use super::CacheManage;
use crate::auth::manage::ManagementAuth;
use crate::cache::GlanceCache;

/// Answers Glance's cache management API (`/v2/cache…`, `/v2/cached_images…`,
/// `/v2/queued_images…`) and merges the cache API versions into version
/// discovery. See the [module docs](crate::layer::manage).
///
/// It also keeps requests from going round in circles: every request it
/// passes on gets a `Via` entry unique to this layer, and a request that
/// arrives with that entry (the upstream is, directly or through others,
/// this proxy again) is answered `508 Loop Detected` at once.
#[derive(Clone, Debug)]
pub struct CacheManageLayer {
    pub(crate) core: Option<GlanceCache>,
    pub(crate) auth: ManagementAuth,
    pub(crate) stall_time: Duration,
    pub(crate) public_endpoint: Option<String>,
    /// This proxy's `Via` entry (`1.1 glance-cache-<random>`), added to every
    /// request passed on; a request that already carries it came back.
    pub(crate) via: HeaderValue,
}

/// A `Via` entry unique to one layer (one proxy process).
fn via_entry() -> HeaderValue {
    let token = uuid::Uuid::new_v4().simple().to_string();
    HeaderValue::from_str(&format!("1.1 glance-cache-{}", &token[..12]))
        .unwrap_or_else(|_| HeaderValue::from_static("1.1 glance-cache"))
}

impl CacheManageLayer {
    /// The management API of `cache`, authorizing callers with `auth`.
    /// Images queued with `PUT /v2/cache/{id}` are fetched at once when the
    /// cache has prefetch workers (see [`Stack`](crate::Stack)), and only
    /// queued on disk otherwise (Glance's "worker paused").
    pub fn new(cache: GlanceCache, auth: ManagementAuth) -> Self {
        CacheManageLayer {
            core: Some(cache),
            auth,
            stall_time: Duration::from_secs(86_400),
            public_endpoint: None,
            via: via_entry(),
        }
    }

    /// The management API of a site without a cache: the v2 cache
    /// endpoints answer Glance's 404 after the policy check, version
    /// discovery and the legacy routes are the upstream's.
    pub(crate) fn disabled(auth: ManagementAuth) -> Self {
        CacheManageLayer {
            core: None,
            auth,
            stall_time: Duration::from_secs(86_400),
            public_endpoint: None,
            via: via_entry(),
        }
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
