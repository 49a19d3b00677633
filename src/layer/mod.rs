//! Tower middleware: the cache, the management API and request ids.
pub mod cache;
mod future;
pub mod manage;
pub mod request_id;

pub use future::ResponseFuture;
