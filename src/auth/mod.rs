//! Who may read what: hit authorization by the upstream, and who may call
//! the management API.
//!
//! # Hit authorization
//!
//! Before the proxy serves cached bytes, it asks the upstream, *with the
//! caller's own request headers*, whether the caller may download the
//! image, so that a hit answers what a download from the upstream would
//! have: Glance's 401, 403 and 404 are relayed, and a reader-only user (who
//! may see but not download) is refused. Modes ([`HitAuthorization`]):
//!
//! * `probe` (default): one 1-byte ranged `GET /v2/images/{id}/file`.
//!   Glance applies its `download_image` policy to it as to a full
//!   download, refuses a deactivated image to non-admins with 403, and its
//!   `206` carries the whole image's size and `Content-MD5`, which are
//!   checked against the cached entry. One round trip. (An admin's download
//!   of a deactivated image is served from the cache: Glance would serve
//!   the admin the same bytes from its store.)
//! * `metadata`: only the image record `GET /v2/images/{id}` (cannot tell a
//!   reader from a member; a deactivated image goes to the upstream);
//! * `none`: no questions (lab setups only).
//!
//! Positive answers are remembered for a short time per caller identity
//! (the exact credential headers, never shared between tokens). Callers
//! with the same credentials asking about the same image at the same time
//! share one round trip and its answer, and at most
//! `authorization_concurrency` questions are in flight to the upstream at
//! once (the others queue, first come first served, within
//! `authorization_timeout`; past it the caller gets `503` with
//! `Retry-After`).
//!
//! # Management calls
//!
//! [`manage::ManagementAuth`] authenticates callers of the cache API
//! (Keystone, static tokens) and checks Glance's cache policy rules.

mod decisions;
mod hit;
mod inflight;
pub mod manage;
mod refusal;

pub(crate) use hit::{AuthorizationLimits, Decision, HitAuthorizer};

pub use hit::HitAuthorization;
