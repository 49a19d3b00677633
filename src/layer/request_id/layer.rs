//! [`RequestIdLayer`].

use tower::Layer;

use super::RequestId;

/// Gives every response an `x-openstack-request-id` and logs one line per
/// request; see the [module docs](super) for the rules and an example.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestIdLayer {
    _private: (),
}

impl RequestIdLayer {
    /// The layer; it has no settings.
    pub fn new() -> Self {
        RequestIdLayer::default()
    }
}

impl<S> Layer<S> for RequestIdLayer {
    type Service = RequestId<S>;

    fn layer(&self, inner: S) -> RequestId<S> {
        RequestId::new(inner)
    }
}
