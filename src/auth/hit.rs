//! Asking the upstream whether a caller may download an image.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tokio::sync::Semaphore;
use tower::Service;

use super::decisions::Decisions;
use super::inflight::InFlight;
use super::refusal::Refusal;
use crate::metrics::Metrics;
use crate::upstream::{Caller, ImageFacts, Reply, RequestBody, Upstream, UpstreamError};
use crate::{BoxError, ImageId};

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

/// What to do with a request for cached bytes. Callers asking the same
/// question at the same time each get a copy of one answer.
#[derive(Clone, Debug)]
pub(crate) enum Decision {
    /// Serve from the cache; what the upstream said about the image, when
    /// it was asked.
    Allow(Option<ImageFacts>),
    /// Send the caller's request to the upstream (a deactivated image in
    /// `metadata` mode, or no conclusive answer).
    Forward(Arc<Unsure>),
    /// Relay the upstream's refusal (401, 403, 404) unchanged.
    Deny(Refusal),
    /// The upstream could not answer in time (overloaded, unreachable, or
    /// too many questions already waiting): the client is told to retry,
    /// and its download is not forwarded (that would only add load).
    Busy,
}

/// How many hit authorizations may wait for the upstream at once, and how
/// long one may take (waiting for its turn included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct AuthorizationLimits {
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
}

/// Why the upstream's answer was not conclusive.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unsure {
    /// The image is not active (`metadata` mode): the upstream decides.
    #[error("the image is not active")]
    NotActive,
    /// The question failed.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The upstream refused with a body too large to be a refusal.
    #[error("the image service's refusal could not be read")]
    UnreadableRefusal,
}

/// Hit authorization policy plus its decision memory.
#[derive(Debug)]
pub(crate) struct HitAuthorizer {
    mode: HitAuthorization,
    decisions: Decisions,
    /// The questions being asked right now, shared by every caller who
    /// needs the same answer.
    inflight: InFlight<Decision>,
    metrics: Metrics,
    /// One permit per authorization request in flight to the upstream.
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl HitAuthorizer {
    pub(crate) fn new(
        mode: HitAuthorization,
        ttl: Duration,
        metrics: Metrics,
        limits: AuthorizationLimits,
    ) -> Self {
        HitAuthorizer {
            mode,
            decisions: Decisions::new(ttl),
            inflight: InFlight::new(),
            metrics,
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            timeout: limits.timeout,
        }
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

    /// Asks the upstream, as `caller`, whether `caller` may download `id`:
    /// one round trip (the download probe, or the image record in
    /// `metadata` mode) unless a positive answer for the same credentials
    /// is remembered, or the same question is already being asked (then
    /// its answer is shared).
    pub(crate) async fn authorize<S, B>(
        &self,
        upstream: Upstream<S>,
        caller: &Caller,
        id: &ImageId,
    ) -> Decision
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        if self.mode == HitAuthorization::None {
            return Decision::Allow(None);
        }
        let identity = caller.identity_key();
        if let Some(facts) = self.decisions.get(&identity, id) {
            return Decision::Allow(facts);
        }
        // Each caller waits at most `timeout` from here, whoever asks.
        let deadline = tokio::time::Instant::now() + self.timeout;
        let question = (identity, id.clone());
        let ask = || self.ask(upstream, caller, id, deadline);
        match tokio::time::timeout_at(deadline, self.inflight.answer(question, ask)).await {
            Ok(decision) => decision,
            Err(_) => self.busy(id),
        }
    }

    /// The one round trip behind [`authorize`](Self::authorize), bounded:
    /// at most `concurrency` questions in flight (the others wait their
    /// turn, first come first served), answered by `deadline` or the
    /// client is told to retry.
    async fn ask<S, B>(
        &self,
        upstream: Upstream<S>,
        caller: &Caller,
        id: &ImageId,
        deadline: tokio::time::Instant,
    ) -> Decision
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let Ok(Ok(_slot)) = tokio::time::timeout_at(deadline, self.slots.acquire()).await else {
            tracing::warn!(image_id = %id, timeout = ?self.timeout,
                "no hit authorization slot in time: the upstream is overloaded; answering 503");
            return Decision::Busy;
        };
        let started = std::time::Instant::now();
        let reply = if self.mode == HitAuthorization::Probe {
            let Ok(reply) = tokio::time::timeout_at(deadline, upstream.probe(caller, id)).await
            else {
                return self.busy(id);
            };
            self.metrics.authorization(started.elapsed());
            reply
        } else {
            let Ok(record) =
                tokio::time::timeout_at(deadline, upstream.image_record(caller, id)).await
            else {
                return self.busy(id);
            };
            self.metrics.authorization(started.elapsed());
            match record {
                // Deactivated images are the upstream's to serve or refuse.
                Reply::Ok(record) if !record.is_active() => {
                    return Decision::Forward(Arc::new(Unsure::NotActive))
                }
                Reply::Ok(record) => Reply::Ok(record.facts()),
                Reply::Refused(resp) => Reply::Refused(resp),
                Reply::Failed(e) => Reply::Failed(e),
            }
        };
        match reply {
            Reply::Ok(facts) => {
                self.decisions
                    .allow(caller.identity_key(), id.clone(), Some(facts.clone()));
                Decision::Allow(Some(facts))
            }
            Reply::Refused(resp) => {
                match tokio::time::timeout_at(deadline, Refusal::read(resp)).await {
                    Ok(Some(refusal)) => Decision::Deny(refusal),
                    Ok(None) => Decision::Forward(Arc::new(Unsure::UnreadableRefusal)),
                    Err(_) => self.busy(id),
                }
            }
            // Unreachable, or answering that it is overloaded: forwarding
            // the download would only add load (or fail the same way).
            Reply::Failed(UpstreamError::Unreachable(e)) => {
                tracing::warn!(image_id = %id, error = %e,
                    "the upstream could not be asked about a hit; answering 503");
                Decision::Busy
            }
            Reply::Failed(UpstreamError::Status(status))
                if matches!(status.as_u16(), 429 | 502 | 503 | 504) =>
            {
                tracing::warn!(image_id = %id, %status,
                    "the upstream is overloaded; answering the hit with 503");
                Decision::Busy
            }
            Reply::Failed(e) => Decision::Forward(Arc::new(e.into())),
        }
    }

    fn busy(&self, id: &ImageId) -> Decision {
        tracing::warn!(image_id = %id, timeout = ?self.timeout,
            "the upstream did not authorize a hit in time; answering 503");
        Decision::Busy
    }
}
