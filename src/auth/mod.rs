//! Hit authorization: may this caller download this image? (spec Appendix A)
//!
//! Before the proxy serves cached bytes, it asks the upstream, *with the
//! caller's own request headers*, whether the caller may download the image,
//! so that a hit answers exactly what a miss would have: Glance's 401, 403
//! and 404 are relayed, a deactivated image goes to the upstream, and a
//! reader-only user (who may see but not download) is refused.
//!
//! The questions are sent through the service the cache wraps (normally the
//! reverse proxy), so the middleware needs no client of its own. Modes
//! ([`HitAuthorization`]):
//!
//! * `probe` (default): `GET /v2/images/{id}` (status, size, checksum, and
//!   visibility) and a 1-byte ranged `GET /v2/images/{id}/file` (the
//!   `download_image` policy), concurrently;
//! * `metadata`: only the metadata request (cheaper; cannot tell a reader
//!   from a member);
//! * `none`: no questions (lab setups only).
//!
//! Positive answers are remembered for a short time per caller identity
//! (the exact credential headers, never shared between tokens).

mod caller;
mod decisions;
mod hit;
pub mod manage;

pub(crate) use caller::Caller;
pub(crate) use hit::{Decision, HitAuthorizer, ImageMeta};

pub use hit::HitAuthorization;
