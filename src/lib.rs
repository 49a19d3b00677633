//! Caching middleware for OpenStack Glance image downloads.
//!
//! `glance-cache` keeps a verified local copy of every image a node serves,
//! in Glance's own cache directory layout and SQLite index, as tower
//! middleware in front of any service that speaks Glance's image API. The
//! `glance-cache-proxy` binary runs it as a sidecar; a Rust program adds
//! it to its own hyper server with a [`Stack`] (see its example).
//!
//! # The request path
//!
//! ```text
//! client -> RequestId -> CacheManage -> Cache -> upstream (ReverseProxy -> Glance)
//!                                         |
//!                        GlanceCache: local store, fills, hit authorizer
//! ```
//!
//! * [`RequestIdLayer`]: Glance's `x-openstack-request-id` on every
//!   response, one log line per request.
//! * [`CacheManageLayer`]: Glance's cache API (`/v2/cache…`, the legacy
//!   `/v2/cached_images…` and `/v2/queued_images…`) and version discovery;
//!   everything else goes on.
//! * [`CacheLayer`]: decides per request: pass through, serve a hit (after
//!   the upstream authorized the caller: one ranged probe with the caller's
//!   credentials), or join or start a fill. A fill is the one upstream
//!   download of an image; every client follows the growing file at its
//!   own pace; the last byte is released only once size and MD5 are
//!   verified (size, MD5 and the image record's multihash, each hashed on
//!   its own thread); `fsync` + `rename` commit it. Single ranges of a
//!   cached image come from the file after the same authorization.
//! * [`GlanceCache`] (module [`cache`]) is the cache itself: the store, the
//!   fills in flight, the authorizer, the prefetch queue, the metrics; it
//!   owns every state change of an entry (fill, commit, invalidate, clear).
//!   Layers and workers hold it, never each other.
//!
//! # Storage
//!
//! The local tier is [`store::CacheStore`]: one cache directory in Glance's
//! own layout (`<id>`, `incomplete/`, `invalid/`, `queue/`), its files read
//! through `object_store`'s local filesystem and written by fills
//! (exclusive, locked `incomplete/<id>`, committed with `fsync` + `rename`),
//! and Glance's `cached_images` index in SQLite, served by one thread. It is
//! also the fill tier: followers read the growing file. Blocking work stays
//! inside the store, behind an async API.
//!
//! The optional remote tier is [`remote::RemoteTier`]: a bucket of any
//! S3-compatible store shared by every node (image objects with their
//! digests, the node registry, the fill leases). A local miss fills from
//! it, else from the node holding the image's fill lease, else from the
//! upstream; committed images are uploaded in the background. See
//! [`GlanceCacheBuilder::remote`](cache::GlanceCacheBuilder::remote).
//!
//! # Modules, top to bottom
//!
//! Dependencies point down only: [`stack`] builds the service from
//! [`layer`]s and [`worker`]s; they use [`cache`]; the cache uses the
//! `fill` machinery, [`auth`], the `upstream` client and the [`store`]; at
//! the bottom sit [`remote`] (the shared tier; it knows nothing of the
//! cache), [`metrics`], [`ImageId`] (the only way a request value
//! becomes a path or an object key), the header and version rules,
//! [`reverse_proxy`] and [`server`], and [`tls`] (rustls configurations for the upstream and
//! Keystone clients and for the listeners, reloadable; it depends on
//! nothing else in the crate).
//!
//! # Invariants
//!
//! 1. No whole image in memory: bodies stream with backpressure.
//! 2. A file at `<id>` is complete and was verified; a file that may have
//!    changed since (its identity differs from the index's) is verified
//!    again while it is served, its last byte held back.
//! 3. Only an [`ImageId`] becomes a path; the index and lock files live
//!    outside the image namespace.
//! 4. Blocking I/O and SQLite never run on an async worker thread: the
//!    store does them on the blocking pool or its index thread.
//! 5. Every state change survives `kill -9`: a restart reconciles files
//!    and rows; an interrupted upload leaves nothing visible in the remote
//!    tier.
//! 6. Client-supplied identity headers are never trusted; the upstream
//!    decides who may read which image, for local and remote hits alike.
#![deny(unsafe_code)]
#![warn(missing_docs, rust_2018_idioms, unreachable_pub)]

pub mod auth;
pub mod cache;
pub mod checksum;
mod error;
mod fill;
mod headers;
pub mod image_id;
pub mod layer;
pub mod metrics;
pub mod remote;
pub mod reverse_proxy;
pub mod server;
pub mod stack;
pub mod store;
pub mod tls;
mod upstream;
mod versioning;
pub mod worker;

pub use cache::GlanceCache;
pub use error::{BoxError, Error};
pub use image_id::ImageId;
pub use layer::cache::CacheLayer;
pub use layer::manage::CacheManageLayer;
pub use layer::request_id::RequestIdLayer;
pub use stack::Stack;
pub use upstream::RequestBody;

/// The Rust examples of `README.md`, compiled as documentation tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeExamples;
