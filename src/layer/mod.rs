//! Tower middleware: the cache and the management API.
pub mod cache;
mod future;
pub mod manage;

pub use future::ResponseFuture;
