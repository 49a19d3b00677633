//! [`ResponseFuture`] of the [`CacheManage`](super::CacheManage) service.

use super::ManageBody;

/// Response future of [`CacheManage`](super::CacheManage): a pass-through,
/// or a management request answered by the proxy (see
/// [`crate::layer::ResponseFuture`]).
pub type ResponseFuture<F, B, E> = crate::layer::ResponseFuture<F, B, ManageBody<B>, E>;
