//! The cache paths of a download: hit, join a fill, lead a fill; and the
//! invalidation after an image delete.

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
use super::ResponseBody;
use crate::auth::Decision;
use crate::cache::{GlanceCache, Started};
use crate::fill::{follow, Fill, Head, Joined, LeaderGuard, Resume};
use crate::headers::{request_id, REQUEST_ID};
use crate::store::CacheEntry;
use crate::upstream::{Caller, ImageFacts, RequestBody, Upstream};
use crate::{BoxError, ImageId};

type Result<B, E> = std::result::Result<Response<ResponseBody<B>>, E>;

/// What the leader's upstream request turned into.
enum Led<B, E> {
    Started(Started<B>),
    Failed(E),
}

/// One cache-relevant download.
pub(crate) struct Download<S> {
    core: GlanceCache,
    inner: S,
    id: ImageId,
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

    fn upstream(&self) -> Upstream<S> {
        Upstream::new(self.inner.clone())
    }

    pub(crate) async fn run(self, req: Request<RequestBody>) -> Result<ResB, S::Error> {
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
    async fn miss(self, parts: request::Parts, body: RequestBody) -> Result<ResB, S::Error> {
        match self.core.fills().join_or_lead(&self.id) {
            Joined::Follower(fill) => self.join(fill, parts, body).await,
            Joined::Leader(guard) => self.lead(guard, parts, body).await,
        }
    }

    async fn forward(self, parts: request::Parts, body: RequestBody) -> Result<ResB, S::Error> {
        self.core.metrics().miss();
        let resp = self.inner.oneshot(Request::from_parts(parts, body)).await?;
        Ok(resp.map(ResponseBody::upstream))
    }

    /// Serves a committed entry once the upstream agrees.
    async fn hit(
        self,
        entry: CacheEntry,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        let store = self.core.store();
        // The upstream's answer takes a round trip; the file opens meanwhile
        // (opening checks it against the index, whoever asks).
        let (decision, opened) = tokio::join!(
            self.core
                .authorizer()
                .authorize(self.upstream(), &caller, &self.id),
            store.open_hit(&entry)
        );
        let facts = match decision {
            Decision::Allow(facts) => facts,
            Decision::Deny(resp) => {
                self.core.metrics().hit_refused();
                return Ok(resp.map(ResponseBody::upstream));
            }
            Decision::Forward(why) => {
                tracing::debug!(image_id = %self.id, %why, "hit forwarded to the upstream");
                return self.forward(parts, body).await;
            }
        };
        if let Some(why) = facts.as_ref().and_then(|f| disagreement(f, &entry)) {
            tracing::warn!(image_id = %self.id, why, "cached entry disagrees with the upstream; quarantined");
            drop(opened);
            if let Err(e) = store.quarantine_entry(&self.id).await {
                tracing::warn!(image_id = %self.id, error = %e, "quarantine failed");
                return self.forward(parts, body).await;
            }
            return self.miss(parts, body).await;
        }
        let file = match opened {
            Ok(Some(file)) => file,
            // Missing or quarantined: fetch it again like any miss.
            Ok(None) => return self.miss(parts, body).await,
            Err(e) => {
                tracing::warn!(image_id = %self.id, error = %e, "cannot read cached entry; forwarding");
                return self.forward(parts, body).await;
            }
        };
        // Glance sends the image's checksum (none when the image has none);
        // when the upstream was not asked, ours.
        let md5 = match facts {
            Some(facts) => facts.checksum,
            None => entry.checksum.clone(),
        };
        self.core.metrics().hit();
        let body = store.hit_body(&self.id, file, entry.size);
        let mut resp = Response::new(ResponseBody::hit(body));
        *resp.headers_mut() = hit_headers(entry.size, md5.as_deref(), request_id(&parts.headers));
        tracing::debug!(image_id = %self.id, size = entry.size, "cache hit");
        Ok(resp)
    }

    /// Follows a fill started by another request, once the upstream agrees.
    async fn join(
        self,
        fill: Arc<Fill>,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        // The upstream is sending the leader the image right now: a follower
        // with the leader's exact credentials has its answer once the fill
        // has started (and forwards its own request if it has not).
        if !fill.led_by(&caller.identity_key()) {
            match self
                .core
                .authorizer()
                .authorize(self.upstream(), &caller, &self.id)
                .await
            {
                Decision::Allow(_) => {}
                Decision::Deny(resp) => {
                    self.core.metrics().hit_refused();
                    return Ok(resp.map(ResponseBody::upstream));
                }
                Decision::Forward(_) => return self.forward(parts, body).await,
            }
        }
        if fill.wait_head().await.is_none() {
            return self.forward(parts, body).await;
        }
        tracing::debug!(image_id = %self.id, "joined a running fill");
        self.core.metrics().miss();
        Ok(self.follower_response(&fill, request_id(&parts.headers), caller))
    }

    /// Sends the request upstream and, if the answer is cacheable, starts
    /// the fill that this and every later request for the image follows.
    async fn lead(
        self,
        guard: LeaderGuard,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        self.core.metrics().miss();
        let caller = Caller::new(&parts);
        let identity = caller.identity_key();
        guard.fill().set_leader_identity(identity.clone());
        let req = Request::from_parts(parts, body);
        let (tx, rx) = oneshot::channel();
        let core = self.core.clone();
        let inner = self.inner.clone();
        // Its own task: a leader whose client goes away still starts the fill.
        tokio::spawn(
            async move {
                let led = match inner.oneshot(req).await {
                    Ok(resp) => Led::Started(core.start_fill(guard, resp).await),
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

    fn follower_response(
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
        let chunk = self.core.store().hit_chunk_size();
        let body = follow(
            Arc::clone(fill),
            head.content_length,
            chunk,
            Some(self.resume(caller)),
        );
        let mut resp = Response::new(ResponseBody::follow(body));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp.headers_mut().insert(REQUEST_ID, request_id);
        resp
    }

    /// Fetches the rest of the image from an offset as the caller, for a
    /// follower whose fill lost its disk.
    fn resume(&self, caller: Caller) -> Resume {
        let upstream = self.upstream();
        let id = self.id.clone();
        Box::new(move |offset| {
            Box::pin(async move {
                let body = upstream.resume(&caller, &id, offset).await?;
                Ok(body.map_err(Into::into).boxed_unsync())
            })
        })
    }
}

/// Why a cached entry cannot be the image the upstream describes.
fn disagreement(facts: &ImageFacts, entry: &CacheEntry) -> Option<&'static str> {
    if facts.size.is_some_and(|s| s > 0 && s != entry.size) {
        return Some("size differs");
    }
    match (&facts.checksum, &entry.checksum) {
        (Some(want), Some(have)) if !want.is_empty() && !want.eq_ignore_ascii_case(have) => {
            Some("checksum differs")
        }
        _ => None,
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
        match core.invalidate(&id).await {
            Ok(true) => {
                tracing::info!(image_id = %id, "image deleted upstream; cache entry removed")
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(image_id = %id, error = %e, "could not remove cache entry"),
        }
    }
    Ok(resp.map(ResponseBody::upstream))
}

fn message<B>(status: StatusCode, text: &str) -> Response<ResponseBody<B>> {
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
