//! Tower middleware.
pub mod cache;
