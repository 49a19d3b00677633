//! [`CacheLayer`]: the configuration shared by every [`Cache`] service.

use std::sync::Arc;
use std::time::Duration;

use tower::Layer;

use super::Cache;
use crate::auth::{HitAuthorization, HitAuthorizer};
use crate::fill::FillRegistry;
use crate::store::CacheStore;

/// Default time a positive hit authorization is remembered per caller.
pub const DEFAULT_AUTHORIZATION_TTL: Duration = Duration::from_secs(10);

/// Caches `GET /v2/images/{id}/file` bodies in a [`CacheStore`].
///
/// Cheap to clone; every service built from one layer (and its clones)
/// shares the store and the single-flight registry, so concurrent first
/// downloads of one image cost one upstream download.
/// See the [module docs](crate::layer::cache) for an example.
#[derive(Clone, Debug)]
pub struct CacheLayer {
    pub(crate) store: CacheStore,
    pub(crate) fills: Arc<FillRegistry>,
    pub(crate) authz: Arc<HitAuthorizer>,
}

impl CacheLayer {
    /// A layer over `store`, asking the upstream (`probe` mode) before
    /// serving a hit, and remembering positive answers for 10 seconds.
    pub fn new(store: CacheStore) -> Self {
        CacheLayer {
            store,
            fills: Arc::default(),
            authz: Arc::new(HitAuthorizer::new(
                HitAuthorization::Probe,
                DEFAULT_AUTHORIZATION_TTL,
            )),
        }
    }

    /// How hits are authorized (see [`crate::auth`]).
    pub fn with_hit_authorization(mut self, mode: HitAuthorization) -> Self {
        let ttl = self.authz_ttl();
        self.authz = Arc::new(HitAuthorizer::new(mode, ttl));
        self
    }

    /// How long a positive answer is remembered per caller identity
    /// (0 disables the memory; the configuration allows at most 30 s).
    pub fn with_authorization_ttl(mut self, ttl: Duration) -> Self {
        self.authz = Arc::new(HitAuthorizer::new(self.authz.mode(), ttl));
        self
    }

    fn authz_ttl(&self) -> Duration {
        self.authz.ttl()
    }

    /// The store this layer caches into.
    pub fn store(&self) -> &CacheStore {
        &self.store
    }

    /// Number of fills currently running.
    pub fn fills_in_flight(&self) -> usize {
        self.fills.len()
    }
}

impl<S> Layer<S> for CacheLayer {
    type Service = Cache<S>;

    fn layer(&self, inner: S) -> Cache<S> {
        Cache {
            inner,
            state: self.clone(),
        }
    }
}
