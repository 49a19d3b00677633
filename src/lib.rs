//! Caching middleware for OpenStack Glance image downloads.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod auth;
mod error;
pub mod fill;
pub mod image_id;
pub mod layer;
pub mod metrics;
pub mod reverse_proxy;
pub mod server;
pub mod store;
pub mod worker;

pub use error::{BoxError, Error};
pub use image_id::ImageId;
pub use layer::cache::CacheLayer;
pub use layer::manage::CacheManageLayer;
pub use layer::request_id::RequestIdLayer;
