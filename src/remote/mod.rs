//! The remote tier: a second cache level on an object store shared by
//! every node (any S3-compatible store: Ceph RGW, Swift's S3 API, MinIO),
//! the node registry, and the fill leases that make a cold image cost one
//! upstream download per cluster.
//!
//! The local directory stays the fill tier: a miss fills it from the
//! remote tier when the image is there, else from the node holding the
//! image's fill lease, else from the upstream; every client follows the
//! growing local file, and the same verification (size, MD5, the image
//! record's multihash) holds back the last byte whatever the source. After
//! a local commit the image is uploaded in the background.
//!
//! ```text
//! <prefix>/images/<id>              the image; size and digests as metadata
//! <prefix>/leases/<id>              the node filling <id> now
//! <prefix>/nodes/<id>/<hex(url)>    node <url> holds <id> locally
//! ```
//!
//! The store is never in a download's way: every request is bounded by a
//! timeout, and after a failure the store is left alone for a pause (one
//! log line, one `error` event) while downloads go to the upstream.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use glance_cache::remote::{RemoteImage, RemoteTier};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tier = RemoteTier::builder(Arc::new(object_store::memory::InMemory::new()))
//!     .node("http://10.0.0.11:9292")
//!     .build();
//! let id = glance_cache::ImageId::parse("6f0c5cb5-5e4c-4c0f-b4a9-0d6a0f1d5e3b")?;
//! let mut file = tempfile::tempfile()?;
//! std::io::Write::write_all(&mut file, b"image bytes")?;
//! tier.upload(Arc::new(file), &RemoteImage::new(id.clone(), 11, None, None)).await?;
//! tier.record_holding(&id).await?;
//! assert_eq!(tier.head(&id).await?.unwrap().size, 11);
//! assert_eq!(tier.holders(&id).await?, ["http://10.0.0.11:9292"]);
//! # Ok(()) }
//! ```

mod connector;
mod error;
mod facts;
mod health;
mod keys;
mod lease;
mod prune;
mod registry;
mod s3;
mod tier;
mod upload;

pub use error::RemoteError;
pub use facts::RemoteImage;
pub(crate) use lease::{Lease, LeaseOutcome};
pub use prune::RemotePruneReport;
pub use registry::HoldingsReport;
pub use s3::S3Options;
pub use tier::{
    RemoteTier, RemoteTierBuilder, DEFAULT_LEASE_TTL, DEFAULT_REMOTE_TIMEOUT,
    DEFAULT_UPLOAD_CONCURRENCY,
};
