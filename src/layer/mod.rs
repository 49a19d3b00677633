//! Tower middleware: the cache and the management API.
pub mod cache;
pub mod manage;
