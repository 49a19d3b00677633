//! Test support for `glance-cache`: what its tests, benches and the proxy's
//! `demo` command run against, and what the library itself never ships.
//!
//! * [`fake_glance`]: an in-process fake of Glance's v2 image API that
//!   misbehaves on demand and counts every call;
//! * [`fake_keystone`]: an in-process fake of Keystone's token API.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod fake_glance;
pub mod fake_keystone;

/// A boxed error, as `http_body` bodies and tower services use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
