//! Asking the upstream whether a caller may download an image.

use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use tower::{Service, ServiceExt};

use super::decisions::Decisions;
use super::Caller;
use crate::layer::cache::RequestBody;
use crate::{BoxError, ImageId};

/// Largest image-metadata document read from the upstream.
const METADATA_LIMIT: usize = 1 << 20;

/// The parts of Glance's image record a hit needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub(crate) struct ImageMeta {
    #[serde(default)]
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) size: Option<u64>,
    #[serde(default)]
    pub(crate) checksum: Option<String>,
}

/// How a cache hit is authorized with the caller's credentials before it
/// is served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HitAuthorization {
    /// `probe`: a one-byte ranged download as the caller (Glance applies its
    /// `download_image` policy to it as to a full download).
    Probe,
    /// `metadata`: the image record only (cannot tell a reader from a member).
    Metadata,
    /// `none`: no check (trusted networks only).
    None,
}

impl HitAuthorization {
    /// Every mode.
    pub const ALL: [HitAuthorization; 3] = [
        HitAuthorization::Probe,
        HitAuthorization::Metadata,
        HitAuthorization::None,
    ];

    /// The mode's name, as in `[proxy] hit_authorization`.
    ///
    /// ```
    /// use glance_cache::auth::HitAuthorization;
    /// assert_eq!(HitAuthorization::Probe.as_str(), "probe");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            HitAuthorization::Probe => "probe",
            HitAuthorization::Metadata => "metadata",
            HitAuthorization::None => "none",
        }
    }

    /// The mode called `name`.
    ///
    /// ```
    /// use glance_cache::auth::HitAuthorization;
    /// assert_eq!(HitAuthorization::from_name("metadata"), Some(HitAuthorization::Metadata));
    /// assert_eq!(HitAuthorization::from_name("Probe"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for HitAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to do with a request for cached bytes.
#[derive(Debug)]
pub(crate) enum Decision<B> {
    /// Serve from the cache; the image record when it was fetched.
    Allow(Option<ImageMeta>),
    /// Send the caller's request to the upstream (deactivated image, or the
    /// upstream's answer was not conclusive).
    Forward(&'static str),
    /// Relay the upstream's refusal (401, 403, 404) unchanged.
    Deny(Response<B>),
}

enum Answer<B> {
    Yes,
    Meta(ImageMeta),
    Deny(Response<B>),
    Unsure(&'static str),
}

/// Hit authorization policy plus its decision memory.
#[derive(Debug)]
pub(crate) struct HitAuthorizer {
    mode: HitAuthorization,
    decisions: Decisions,
}

fn is_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    )
}

impl HitAuthorizer {
    pub(crate) fn new(mode: HitAuthorization, ttl: Duration) -> Self {
        HitAuthorizer {
            mode,
            decisions: Decisions::new(ttl),
        }
    }

    pub(crate) fn mode(&self) -> HitAuthorization {
        self.mode
    }

    pub(crate) fn ttl(&self) -> Duration {
        self.decisions.ttl()
    }

    /// Remembers that the upstream has just served `id` to the caller with
    /// this [`identity_key`](Caller::identity_key) (it answered the caller's
    /// own download with the image), so that the caller's next hits within
    /// the TTL need no round trip.
    pub(crate) fn served(&self, identity: Vec<u8>, id: &ImageId) {
        if self.mode != HitAuthorization::None {
            self.decisions.allow(identity, id.clone(), None);
        }
    }

    pub(crate) async fn authorize<S, ReqB, ResB>(
        &self,
        inner: S,
        caller: &Caller,
        id: &ImageId,
    ) -> Decision<ResB>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        if self.mode == HitAuthorization::None {
            return Decision::Allow(None);
        }
        let identity = caller.identity_key();
        if let Some(meta) = self.decisions.get(&identity, id) {
            return Decision::Allow(meta);
        }
        let metadata = metadata(inner.clone(), caller, id);
        let (meta, download) = if self.mode == HitAuthorization::Probe {
            let (m, d) = tokio::join!(metadata, probe(inner, caller, id));
            (m, d)
        } else {
            (metadata.await, Answer::Yes)
        };
        let meta = match meta {
            Answer::Meta(meta) => meta,
            Answer::Deny(resp) => return Decision::Deny(resp),
            Answer::Unsure(why) => return Decision::Forward(why),
            Answer::Yes => return Decision::Forward("no image metadata"),
        };
        if meta.status != "active" {
            // Deactivated images are the upstream's to serve or refuse (spec §1.4 step 5).
            return Decision::Forward("image is not active");
        }
        match download {
            Answer::Yes | Answer::Meta(_) => {}
            Answer::Deny(resp) => return Decision::Deny(resp),
            Answer::Unsure(why) => return Decision::Forward(why),
        }
        self.decisions
            .allow(identity, id.clone(), Some(meta.clone()));
        Decision::Allow(Some(meta))
    }
}

/// `GET /v2/images/{id}` as the caller.
async fn metadata<S, ReqB, ResB>(inner: S, caller: &Caller, id: &ImageId) -> Answer<ResB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
    ResB: Body<Data = Bytes>,
    ResB::Error: Into<BoxError>,
{
    let mut req = caller.get(&format!("/v2/images/{id}"), RequestBody::empty());
    req.headers_mut().insert(
        header::ACCEPT,
        http::HeaderValue::from_static("application/json"),
    );
    let Ok(resp) = inner.oneshot(req).await else {
        return Answer::Unsure("image metadata request failed");
    };
    let status = resp.status();
    if is_refusal(status) {
        return Answer::Deny(resp);
    }
    if status != StatusCode::OK {
        return Answer::Unsure("unexpected answer to the image metadata request");
    }
    let Ok(body) = Limited::new(resp.into_body(), METADATA_LIMIT)
        .collect()
        .await
    else {
        return Answer::Unsure("image metadata could not be read");
    };
    match serde_json::from_slice::<ImageMeta>(&body.to_bytes()) {
        Ok(meta) => Answer::Meta(meta),
        Err(_) => Answer::Unsure("image metadata is not JSON"),
    }
}

/// A 1-byte ranged download as the caller: Glance applies its
/// `download_image` policy to it exactly as to a full download.
async fn probe<S, ReqB, ResB>(inner: S, caller: &Caller, id: &ImageId) -> Answer<ResB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
{
    let mut req = caller.get(&format!("/v2/images/{id}/file"), RequestBody::empty());
    req.headers_mut()
        .insert(header::RANGE, http::HeaderValue::from_static("bytes=0-0"));
    let Ok(resp) = inner.oneshot(req).await else {
        return Answer::Unsure("download probe failed");
    };
    match resp.status() {
        // 416: an empty image; the caller passed the policy check to get there.
        StatusCode::PARTIAL_CONTENT | StatusCode::OK | StatusCode::RANGE_NOT_SATISFIABLE => {
            Answer::Yes
        }
        s if is_refusal(s) => Answer::Deny(resp),
        _ => Answer::Unsure("unexpected answer to the download probe"),
    }
}
