//! Caching middleware for OpenStack Glance image downloads.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod auth;
pub mod config;
pub mod fill;
mod error;
pub mod image_id;
pub mod layer;
pub mod store;
pub mod reverse_proxy;
pub mod server;

#[cfg(feature = "fake-glance")]
pub mod fake_glance;

pub use error::{BoxError, Error};
pub use image_id::ImageId;
pub use layer::cache::CacheLayer;
