//! The image service behind the proxy, as the middleware talks to it.
//!
//! Every layer of this crate hands its inner service a `Request<`[`RequestBody`]`>`:
//! the client's request, or a question the proxy asks itself. Those questions
//! all go through one client (`Upstream`), over that same inner service,
//! with the credentials of the caller they are asked for: the image record,
//! the one-byte download probe that authorizes a hit, the rest of an image
//! from an offset (a follower whose fill lost its disk), and the version
//! document.

mod body;
mod caller;
mod client;
mod record;

pub use body::RequestBody;
pub(crate) use caller::Caller;
pub(crate) use client::{Reply, Upstream, UpstreamError};
pub(crate) use record::{md5_from_header, ImageFacts};
