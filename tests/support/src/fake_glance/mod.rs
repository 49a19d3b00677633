//! An in-process fake of Glance's v2 image API.
//!
//! It is the upstream of the integration tests, which can make it misbehave
//! on demand and count every call, and of the proxy's `demo` command. On the
//! wire it behaves like a real Glance 33 **without** an image cache (so
//! `/versions` lists `v2.17` as CURRENT and no cache API versions), as
//! recorded in the project's wire transcripts:
//!
//! | request | answer |
//! |---|---|
//! | `GET /versions` (`GET /`, unknown version prefix) | 200 (300) versions document, hrefs `http://<Host>/v2/` |
//! | `GET /v2/images/{id}` | 200 Glance-shaped JSON; 404 unknown or invisible |
//! | `GET /v2/images/{id}/file` | 200 `Content-Type`, `Content-MD5` (hex), `Content-Length`; 64 KiB chunks |
//! | ... with `Range: bytes=a-b`, `a-`, `-n` or `Content-Range: bytes a-b/*` | 206 + `Content-Range`; 416 / 400 (multi-range) with Glance's texts |
//! | ... of an image without data | 204; with a range header: connection dropped, no response (Glance's crash) |
//! | `HEAD .../file` | 405 `Allow: GET, PUT` |
//! | `PUT .../file` | body streamed to a temporary file and hashed; 204, image `active` |
//! | `POST /v2/images` | 201, a `queued` image |
//! | `DELETE /v2/images/{id}` | 204 |
//! | `POST /v2/images/{id}/actions/{deactivate,reactivate}` | 204 |
//! | `GET /v2/images` | the visible images (no filters, no paging) |
//! | anything else, trailing slashes | 404 |
//!
//! Error bodies are webob's HTML pages; every response after
//! authentication carries `x-openstack-request-id: req-<uuid4>` (the 401s
//! and the versions document do not, as in Glance).
//!
//! Authorization follows Glance 33's default policies (see [`AuthMode`] and
//! [`Identity`]): an image the caller cannot see is 404; `download_image`
//! needs `member` (a reader who can see the image gets 403); non-admins get
//! 403 for deactivated images; `delete`, `upload`, `deactivate` and
//! `reactivate` need `member` in the owner project (or admin).
//!
//! Per-image (or default) [`Behaviour`]s make it misbehave: delays, slow
//! bodies, resets, stalls, bodies held at a [`Gate`] until the test opens
//! it, wrong or missing `Content-MD5`, chunked bodies, forced statuses,
//! lying metadata and corrupt bytes. Every request lands in the call log
//! ([`Call`]).
//!
//! Image data is either small in-memory bytes, a deterministic
//! [`Pattern`] of any length (never materialised), or uploaded data in a
//! temporary file. MD5/SHA-512 of a pattern are computed by streaming it when
//! the image is added (two blocking threads); a 1 GiB pattern costs about
//! 3 s in an optimised build and 6–8 s in a debug build, once per process.
//!
//! # Example
//!
//! ```
//! use glance_cache_support::fake_glance::{AuthMode, Behaviour, FakeGlance, FakeImage, Identity, Visibility};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let id = "6c5d7e0a-3f43-4d3c-9c55-7b1f8a1e2d01";
//! let big = "6c5d7e0a-3f43-4d3c-9c55-7b1f8a1e2d02";
//! let glance = FakeGlance::builder()
//!     .auth(AuthMode::Tokens)
//!     .token("ADMIN", Identity::new("admin-project").roles(["admin"]))
//!     .token("MEMBER", Identity::new("X").roles(["member"]))
//!     .image(FakeImage::new(id).bytes("IMAGEDATA").visibility(Visibility::Public).owner("X"))
//!     .image(FakeImage::new(big).pattern(1 << 20, 7))
//!     .spawn()
//!     .await?;
//! assert!(glance.url().starts_with("http://127.0.0.1:"));
//! assert_eq!(glance.image_md5(id).as_deref(), Some("0fc85dbea99575776296eaaa1d314eb1"));
//!
//! // Make the big image's downloads fail after 64 KiB.
//! glance.set_behaviour(big, Behaviour::default().reset_after(64 << 10));
//! assert_eq!(glance.file_gets(id), 0);
//! glance.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub(crate) mod accept_loop;
mod behaviour;
mod body;
mod builder;
mod calls;
mod download;
mod error;
mod gate;
mod handlers;
mod html;
mod image;
mod json;
mod pattern;
mod policy;
mod range;
mod responses;
mod routes;
mod server;
mod state;
mod upload;
mod versions;

#[cfg(test)]
mod tests;

pub use behaviour::Behaviour;
pub use builder::{FakeGlance, FakeGlanceBuilder};
pub use calls::Call;
pub use error::FakeGlanceError;
pub use gate::Gate;
pub use image::{FakeImage, ImageStatus, Visibility};
pub use pattern::Pattern;
pub use policy::{AuthMode, Identity};
pub use server::RunningFakeGlance;
