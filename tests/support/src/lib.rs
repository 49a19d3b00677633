//! Test support for `glance-cache`: what its tests, benches and the proxy's
//! `demo` command run against, and what the library itself never ships.
//!
//! * [`fake_glance`]: an in-process fake of Glance's v2 image API that
//!   misbehaves on demand and counts every call; [`fixture`] is the tests'
//!   standard world on it;
//! * [`fake_keystone`]: an in-process fake of Keystone's token API;
//! * [`real_glance`], [`real_keystone`]: a real Glance and a real Keystone on
//!   loopback, started from the venvs `tests/harness/setup-python.sh` makes;
//! * `s3` (feature `s3`): an S3-protocol server (s3s on a temporary
//!   directory) in the test process, with injectable faults and request counts;
//! * [`haproxy`]: a real HAProxy as a TLS terminator or a round-robin balancer;
//! * [`client`]: an HTTP client that keeps partial bodies; [`wait`]: bounded
//!   waiting and file helpers.
#![deny(unsafe_code)]
#![warn(rust_2018_idioms, unreachable_pub)]

pub mod client;
pub mod fake_glance;
pub mod fake_keystone;
pub mod fixture;
pub mod haproxy;
pub mod harness;
pub mod pki;
pub mod real_glance;
pub mod real_keystone;
#[cfg(feature = "s3")]
pub mod s3;
pub mod wait;

/// A boxed error, as `http_body` bodies and tower services use.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
