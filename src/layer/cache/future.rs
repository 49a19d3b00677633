//! [`ResponseFuture`] of the [`Cache`](super::Cache) service.

use super::ResponseBody;

/// Response future of [`Cache`](super::Cache): requests the cache does not
/// handle pass through at no cost; hits, fills and invalidations are
/// answered by the cache (see [`crate::layer::ResponseFuture`]).
pub type ResponseFuture<F, B, E> = crate::layer::ResponseFuture<F, B, ResponseBody<B>, E>;
