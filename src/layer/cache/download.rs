//! The cache paths of a download: join a fill, lead a fill (hits are in
//! `hit`, ranges in `ranged`); and the invalidation after an image delete.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{request, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::headers::hit_headers;
use super::range::Ranged;
use super::ResponseBody;
use crate::auth::Decision;
use crate::cache::{FillFrom, GlanceCache, Started, PEER_HEADER};
use crate::checksum::Expected;
use crate::fill::{follow, Fill, Head, Joined, LeaderGuard, Part, PendingRecord, Resume};
use crate::headers::{request_id, REQUEST_ID};
use crate::remote::Lease;
use crate::upstream::{md5_from_header, Caller, Reply, RequestBody, Upstream};
use crate::{BoxError, ImageId};

pub(super) type Result<B, E> = std::result::Result<Response<ResponseBody<B>>, E>;

/// What the leader's upstream request turned into.
pub(super) enum Led<B, E> {
    Started(Started<B>),
    Failed(E),
}

/// One cache-relevant download.
pub(crate) struct Download<S> {
    pub(super) core: GlanceCache,
    pub(super) inner: S,
    pub(super) id: ImageId,
}

impl<S, ResB> Download<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    pub(crate) fn new(core: GlanceCache, inner: S, id: ImageId) -> Self {
        Download { core, inner, id }
    }

    pub(super) fn upstream(&self) -> Upstream<S> {
        Upstream::new(self.inner.clone())
    }

    /// Answers `req`: the whole image, or the range `ranged` says.
    pub(crate) async fn run(
        self,
        mut req: Request<RequestBody>,
        ranged: Ranged,
    ) -> Result<ResB, S::Error> {
        match ranged {
            Ranged::Single(range) => return self.run_range(req, range).await,
            Ranged::IgnoredRange => {
                // Neither the cache nor the upstream sends a part now.
                req.headers_mut().remove(http::header::RANGE);
                req.headers_mut().remove(http::header::IF_RANGE);
            }
            Ranged::Whole | Ranged::Upstream => {}
        }
        self.run_whole(req).await
    }

    /// Answers a request for the whole image.
    pub(super) async fn run_whole(self, req: Request<RequestBody>) -> Result<ResB, S::Error> {
        let (parts, body) = req.into_parts();
        if let Some(fill) = self.core.fills().get(&self.id) {
            return self.join(fill, parts, body).await;
        }
        match self.core.store().lookup(&self.id).await {
            Ok(Some(entry)) => return self.hit(entry, parts, body).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(image_id = %self.id, error = %e, "cache lookup failed; forwarding");
                return self.forward(parts, body).await;
            }
        }
        self.miss(parts, body).await
    }

    /// Leads a new fill, or follows one that another request just started.
    pub(super) async fn miss(
        self,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        match self.core.fills().join_or_lead(&self.id) {
            Joined::Follower(fill) => self.join(fill, parts, body).await,
            Joined::Leader(guard) => self.lead(guard, parts, body).await,
        }
    }

    /// Sends the request upstream, counted as a miss.
    pub(super) async fn forward(
        self,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        self.core.metrics().miss();
        self.relay(parts, body).await
    }

    /// Sends the request upstream and relays the answer as it is.
    pub(super) async fn relay(
        self,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let resp = self.inner.oneshot(Request::from_parts(parts, body)).await?;
        Ok(resp.map(ResponseBody::upstream))
    }

    /// Follows a fill started by another request, once the upstream agrees.
    async fn join(
        mut self,
        fill: Arc<Fill>,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        match self.may_follow(&fill, &caller).await {
            Follow::Yes => {}
            Follow::Refused(resp) => return Ok(*resp),
            Follow::Busy => return Ok(busy()),
            Follow::Forward => return self.forward(parts, body).await,
        }
        if fill.wait_head().await.is_none() {
            return self.forward(parts, body).await;
        }
        tracing::debug!(image_id = %self.id, "joined a running fill");
        self.core.metrics().miss();
        Ok(self.follower_response(&fill, request_id(&parts.headers), caller))
    }

    /// Whether `caller` may follow `fill`. The upstream is sending the
    /// leader the image right now: a follower with the leader's exact
    /// credentials has its answer once the fill has started (and forwards
    /// its own request if it has not); any other asks the upstream.
    pub(super) async fn may_follow(&mut self, fill: &Fill, caller: &Caller) -> Follow<ResB> {
        if fill.led_by(&caller.identity_key()) {
            return Follow::Yes;
        }
        match self
            .core
            .authorizer()
            .authorize(self.upstream(), caller, &self.id)
            .await
        {
            Decision::Allow(_) => Follow::Yes,
            Decision::Deny(refusal) => {
                self.core.metrics().hit_refused();
                let resp = refusal.into_response().map(ResponseBody::message);
                Follow::Refused(Box::new(resp))
            }
            Decision::Forward(_) => Follow::Forward,
            Decision::Busy => Follow::Busy,
        }
    }

    /// Starts the fill that this and every later request for the image
    /// follows: from another process's fill of it, when one sharing the
    /// cache directory is filling it now; else, in a cluster, from the
    /// remote tier or the node filling it; else from the upstream. A
    /// request from another node of the cluster is served from here or
    /// the upstream, never sent on to a third node.
    async fn lead(
        self,
        guard: LeaderGuard,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        if let Some(file) = self.core.store().foreign_fill(&self.id).await {
            return self.lead_from_foreign(guard, file, parts, body).await;
        }
        if self.core.cluster().is_some() && !parts.headers.contains_key(PEER_HEADER) {
            return self.lead_in_cluster(guard, parts, body).await;
        }
        self.lead_from_upstream(guard, parts, body, None).await
    }

    /// Follows another process's fill once the upstream agrees that the
    /// caller may download the image (its answer also gives the size and
    /// checksum of the response head). Without those facts, the fill comes
    /// from the upstream as usual.
    async fn lead_from_foreign(
        mut self,
        guard: LeaderGuard,
        file: Arc<std::fs::File>,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        let facts = match self.authorize_leader(&caller).await {
            Leader::Allowed(Some(facts)) if facts.size.is_some() => facts,
            Leader::Allowed(_) | Leader::Upstream => {
                return self.lead_from_upstream(guard, parts, body, None).await
            }
            Leader::Answer(resp) => return Ok(*resp),
        };
        let size = facts.size.unwrap_or_default();
        self.core.metrics().miss();
        // Each follower gets its own request id: none in the shared head.
        let placeholder = HeaderValue::from_static("-");
        let mut headers = hit_headers(size, facts.checksum.as_deref(), placeholder);
        headers.remove(REQUEST_ID);
        let head = Head {
            status: StatusCode::OK,
            headers,
            content_length: Some(size),
        };
        guard.fill().set_leader_identity(caller.identity_key());
        let fill = self.core.follow_foreign_fill(guard, head, file, size);
        Ok(self.follower_response(&fill, request_id(&parts.headers), caller))
    }

    /// Asks the upstream whether `caller`, leading a fill from elsewhere
    /// (another process's fill, the remote tier), may have the image.
    pub(super) async fn authorize_leader(&mut self, caller: &Caller) -> Leader<ResB> {
        let decision = self
            .core
            .authorizer()
            .authorize(self.upstream(), caller, &self.id)
            .await;
        match decision {
            Decision::Allow(facts) => Leader::Allowed(facts),
            Decision::Forward(_) => Leader::Upstream,
            Decision::Deny(refusal) => {
                self.core.metrics().hit_refused();
                let resp = refusal.into_response().map(ResponseBody::message);
                Leader::Answer(Box::new(resp))
            }
            Decision::Busy => Leader::Answer(Box::new(busy())),
        }
    }

    /// Sends the request upstream and, if the answer is cacheable, starts
    /// the fill from it (holding the cluster's fill `lease`, when given,
    /// until the fill and its upload are over).
    pub(super) async fn lead_from_upstream(
        self,
        guard: LeaderGuard,
        parts: request::Parts,
        body: RequestBody,
        lease: Option<Lease>,
    ) -> Result<ResB, S::Error> {
        self.core.metrics().miss();
        let caller = Caller::new(&parts);
        let identity = caller.identity_key();
        guard.fill().set_leader_identity(identity.clone());
        let record = self.record(&caller);
        let req = Request::from_parts(parts, body);
        let (tx, rx) = oneshot::channel();
        let core = self.core.clone();
        let inner = self.inner.clone();
        // Its own task: a leader whose client goes away still starts the fill.
        tokio::spawn(
            async move {
                let led = match inner.oneshot(req).await {
                    Ok(resp) => Led::Started(
                        core.start_fill(guard, resp, Some(record), FillFrom::upstream(lease))
                            .await,
                    ),
                    Err(e) => Led::Failed(e),
                };
                let _ = tx.send(led);
            }
            .in_current_span(),
        );
        match rx.await {
            Ok(Led::Started(Started::Filling(fill, upstream_id))) => {
                self.core.authorizer().served(identity, &self.id);
                let id = upstream_id.unwrap_or_else(|| request_id(&HeaderMap::new()));
                Ok(self.follower_response(&fill, id, caller))
            }
            Ok(Led::Started(Started::NotCached(resp))) => Ok(resp.map(ResponseBody::upstream)),
            Ok(Led::Failed(e)) => Err(e),
            Err(_) => Ok(message(
                StatusCode::BAD_GATEWAY,
                "the image download task failed",
            )),
        }
    }

    /// Asks for the image record as `caller`, alongside the download it
    /// leads: its checksum and multihash are what the fill's bytes must
    /// have. No answer leaves the fill to the response's `Content-MD5`, a
    /// record without a multihash to MD5.
    pub(super) fn record(&self, caller: &Caller) -> PendingRecord {
        let fetch = self.upstream().image_record(caller, &self.id);
        let id = self.id.clone();
        let task = tokio::spawn(
            async move {
                match fetch.await {
                    Reply::Ok(record) => {
                        let multihash = record.multihash();
                        match (&multihash, &record.os_hash_algo, &record.os_hash_value) {
                            (None, Some(algo), Some(_)) => {
                                // Glance's hashing_algorithm is any hashlib name.
                                tracing::warn!(image_id = %id, %algo,
                                    "image record's multihash is of an algorithm (or a form) this proxy cannot check; MD5 only")
                            }
                            (None, ..) => tracing::debug!(image_id = %id,
                                "image record without a multihash; MD5 only"),
                            (Some(_), ..) => {}
                        }
                        Some(Expected {
                            md5: record.checksum.as_deref().and_then(md5_from_header),
                            multihash,
                        })
                    }
                    Reply::Refused(resp) => {
                        tracing::debug!(image_id = %id, status = %resp.status(),
                            "image record refused; the response's Content-MD5 only");
                        None
                    }
                    Reply::Failed(e) => {
                        tracing::debug!(image_id = %id, error = %e, "no image record; the response's Content-MD5 only");
                        None
                    }
                }
            }
            .in_current_span(),
        );
        Box::pin(async move { task.await.ok().flatten() })
    }

    pub(super) fn follower_response(
        &self,
        fill: &Arc<Fill>,
        request_id: HeaderValue,
        caller: Caller,
    ) -> Response<ResponseBody<ResB>> {
        let head = fill.head().cloned().unwrap_or(Head {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            content_length: None,
        });
        let chunk = self.core.store().read_buffers();
        let body = follow(
            Arc::clone(fill),
            Part::Whole {
                len: head.content_length,
            },
            chunk,
            Some(self.resume(caller, None)),
        );
        let mut resp = Response::new(ResponseBody::follow(body));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp.headers_mut().insert(REQUEST_ID, request_id);
        resp
    }

    /// Fetches the rest of the image (up to byte `last`, when given) from
    /// an offset as the caller, for a follower whose fill lost its disk.
    pub(super) fn resume(&self, caller: Caller, last: Option<u64>) -> Resume {
        let upstream = self.upstream();
        let id = self.id.clone();
        Box::new(move |offset| {
            Box::pin(async move {
                let body = upstream.resume(&caller, &id, offset, last).await?;
                Ok(body.map_err(Into::into).boxed_unsync())
            })
        })
    }
}

/// Invalidates the entry once the upstream accepted `DELETE /v2/images/{id}`.
pub(crate) async fn invalidate_after<F, B, E>(
    core: GlanceCache,
    future: F,
    id: ImageId,
) -> std::result::Result<Response<ResponseBody<B>>, E>
where
    F: Future<Output = std::result::Result<Response<B>, E>>,
{
    let resp = future.await?;
    if resp.status().is_success() {
        match core.image_deleted(&id).await {
            Ok(true) => {
                tracing::info!(image_id = %id, "image deleted upstream; cache entry removed")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(image_id = %id, error = %e, "could not remove cache entry"),
        }
    }
    Ok(resp.map(ResponseBody::upstream))
}

/// What the upstream says of a leader that fills from elsewhere.
pub(super) enum Leader<B> {
    /// It may have the image; what the upstream said of it.
    Allowed(Option<crate::upstream::ImageFacts>),
    /// The answer to relay (a refusal, or `503` when the upstream could
    /// not answer in time).
    Answer(Box<Response<ResponseBody<B>>>),
    /// No conclusive answer: the fill comes from the upstream.
    Upstream,
}

/// Whether a request may follow a fill.
pub(super) enum Follow<B> {
    Yes,
    /// The upstream's refusal, to relay.
    Refused(Box<Response<ResponseBody<B>>>),
    /// No conclusive answer: the request goes upstream.
    Forward,
    /// The upstream could not answer in time: `503`, retry later.
    Busy,
}

/// Seconds a client is told to wait when the upstream could not authorize
/// its download in time.
const RETRY_AFTER_SECONDS: &str = "5";

/// `503 Service Unavailable` with `Retry-After`: the upstream could not say
/// in time whether the caller may have a cached image.
pub(super) fn busy<B>() -> Response<ResponseBody<B>> {
    let mut resp = message(
        StatusCode::SERVICE_UNAVAILABLE,
        "The image service could not authorize this download in time; retry shortly.",
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    resp
}

pub(super) fn message<B>(status: StatusCode, text: &str) -> Response<ResponseBody<B>> {
    let body = format!(
        "{} {}\n\n{text}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(ResponseBody::message(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    resp
}
