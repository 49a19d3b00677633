//! The cache paths of a request: hit, join a fill, lead a fill, invalidate.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_RANGE, RANGE};
use http::{request, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tower::{Service, ServiceExt};
use tracing::Instrument;

use super::headers::{hit_headers, replayable, request_id, REQUEST_ID};
use super::{CacheLayer, RequestBody, ResponseBody};
use crate::auth::{Caller, Decision, ImageMeta};
use crate::fill::{follow, spawn_fill, Expectation, Fill, Head, Joined, LeaderGuard, Resume};
use crate::store::CacheEntry;
use crate::{BoxError, ImageId};

type Result<B, E> = std::result::Result<Response<ResponseBody<B>>, E>;

/// What the leader's upstream request turned into.
enum Led<B, E> {
    Filling(Arc<Fill>, Option<HeaderValue>),
    Passthrough(Response<B>),
    Failed(E),
}

/// One cache-relevant download.
pub(crate) struct Download<S, ReqB> {
    state: CacheLayer,
    inner: S,
    id: ImageId,
    _body: PhantomData<fn(ReqB)>,
}

impl<S, ReqB, ResB> Download<S, ReqB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    pub(crate) fn new(state: CacheLayer, inner: S, id: ImageId) -> Self {
        Download {
            state,
            inner,
            id,
            _body: PhantomData,
        }
    }

    pub(crate) async fn run(self, req: Request<ReqB>) -> Result<ResB, S::Error> {
        let (parts, body) = req.into_parts();
        if let Some(fill) = self.state.fills.get(&self.id) {
            return self.join(fill, parts, body).await;
        }
        match self.state.store.lookup(&self.id).await {
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
    async fn miss(self, parts: request::Parts, body: ReqB) -> Result<ResB, S::Error> {
        match self.state.fills.join_or_lead(&self.id) {
            Joined::Follower(fill) => self.join(fill, parts, body).await,
            Joined::Leader(guard) => self.lead(guard, parts, body).await,
        }
    }

    async fn forward(self, parts: request::Parts, body: ReqB) -> Result<ResB, S::Error> {
        self.state.store.metrics().miss();
        let req = Request::from_parts(parts, RequestBody::new(body));
        let resp = self.inner.clone().oneshot(req).await?;
        Ok(resp.map(ResponseBody::upstream))
    }

    /// Serves a committed entry once the upstream agrees.
    async fn hit(
        self,
        entry: CacheEntry,
        parts: request::Parts,
        body: ReqB,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        let meta = match self
            .state
            .authz
            .authorize(self.inner.clone(), &caller, &self.id)
            .await
        {
            Decision::Allow(meta) => meta,
            Decision::Deny(resp) => {
                self.state.store.metrics().hit_refused();
                return Ok(resp.map(ResponseBody::upstream));
            }
            Decision::Forward(why) => {
                tracing::debug!(image_id = %self.id, why, "hit forwarded to the upstream");
                return self.forward(parts, body).await;
            }
        };
        if let Some(why) = meta.as_ref().and_then(|m| disagreement(m, &entry)) {
            tracing::warn!(image_id = %self.id, why, "cached entry disagrees with the image record; quarantined");
            if let Err(e) = self.state.store.quarantine_entry(&self.id).await {
                tracing::warn!(image_id = %self.id, error = %e, "quarantine failed");
                return self.forward(parts, body).await;
            }
            return self.miss(parts, body).await;
        }
        let file = match self.state.store.open_hit(&entry).await {
            Ok(Some(file)) => file,
            // Missing or quarantined: fetch it again like any miss.
            Ok(None) => return self.miss(parts, body).await,
            Err(e) => {
                tracing::warn!(image_id = %self.id, error = %e, "cannot read cached entry; forwarding");
                return self.forward(parts, body).await;
            }
        };
        // Glance sends the image record's checksum; without a record, ours.
        let md5 = match &meta {
            Some(m) => m.checksum.clone(),
            None => entry.checksum.clone(),
        };
        self.state.store.metrics().hit();
        let body = self.state.store.hit_body(&self.id, file, entry.size);
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
        body: ReqB,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        // The upstream is sending the leader the image right now: a follower
        // with the leader's exact credentials has its answer once the fill
        // has started (and forwards its own request if it has not).
        if !fill.led_by(&caller.identity_key()) {
            match self
                .state
                .authz
                .authorize(self.inner.clone(), &caller, &self.id)
                .await
            {
                Decision::Allow(_) => {}
                Decision::Deny(resp) => {
                    self.state.store.metrics().hit_refused();
                    return Ok(resp.map(ResponseBody::upstream));
                }
                Decision::Forward(_) => return self.forward(parts, body).await,
            }
        }
        if fill.wait_head().await.is_none() {
            return self.forward(parts, body).await;
        }
        tracing::debug!(image_id = %self.id, "joined a running fill");
        self.state.store.metrics().miss();
        Ok(self.follower_response(&fill, request_id(&parts.headers), caller))
    }

    /// Sends the request upstream and, if the answer is cacheable, starts
    /// the fill that this and every later request for the image follows.
    async fn lead(
        self,
        guard: LeaderGuard,
        parts: request::Parts,
        body: ReqB,
    ) -> Result<ResB, S::Error> {
        self.state.store.metrics().miss();
        let caller = Caller::new(&parts);
        let identity = caller.identity_key();
        guard.fill().set_leader_identity(identity.clone());
        let req = Request::from_parts(parts, RequestBody::new(body));
        let (tx, rx) = oneshot::channel();
        let state = self.state.clone();
        let inner = self.inner.clone();
        // Its own task: a leader whose client goes away still starts the fill.
        tokio::spawn(
            async move {
                let led = match inner.oneshot(req).await {
                    Ok(resp) => start_fill(&state, guard, resp).await,
                    Err(e) => Led::Failed(e),
                };
                let _ = tx.send(led);
            }
            .in_current_span(),
        );
        match rx.await {
            Ok(Led::Filling(fill, upstream_id)) => {
                self.state.authz.served(identity, &self.id);
                let id = upstream_id.unwrap_or_else(|| request_id(&http::HeaderMap::new()));
                Ok(self.follower_response(&fill, id, caller))
            }
            Ok(Led::Passthrough(resp)) => Ok(resp.map(ResponseBody::upstream)),
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
            headers: http::HeaderMap::new(),
            content_length: None,
        });
        let resume = self.resume(caller);
        let chunk = self.state.store.hit_chunk_size();
        let body = follow(Arc::clone(fill), head.content_length, chunk, Some(resume));
        let mut resp = Response::new(ResponseBody::follow(body));
        *resp.status_mut() = head.status;
        *resp.headers_mut() = head.headers;
        resp.headers_mut().insert(REQUEST_ID, request_id);
        resp
    }

    /// Fetches the rest of the image from `offset` as the caller, for a
    /// follower whose fill lost its disk.
    fn resume(&self, caller: Caller) -> Resume {
        let inner = self.inner.clone();
        let id = self.id.clone();
        Box::new(move |offset| {
            Box::pin(async move {
                let mut req = caller.get(&format!("/v2/images/{id}/file"), RequestBody::empty());
                req.headers_mut().insert(
                    RANGE,
                    HeaderValue::from_str(&format!("bytes={offset}-")).map_err(BoxError::from)?,
                );
                let resp = inner.oneshot(req).await.map_err(Into::into)?;
                let starts_at_offset = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
                if resp.status() != StatusCode::PARTIAL_CONTENT || !starts_at_offset {
                    return Err(format!(
                        "upstream answered {} to a request for the rest of the image from byte {offset}",
                        resp.status()
                    )
                    .into());
                }
                Ok(resp.into_body().map_err(Into::into).boxed_unsync())
            })
        })
    }
}

/// Why a cached entry cannot be the image the upstream describes.
fn disagreement(meta: &ImageMeta, entry: &CacheEntry) -> Option<&'static str> {
    if meta.size.is_some_and(|s| s > 0 && s != entry.size) {
        return Some("size differs");
    }
    match (&meta.checksum, &entry.checksum) {
        (Some(want), Some(have)) if !want.is_empty() && !want.eq_ignore_ascii_case(have) => {
            Some("checksum differs")
        }
        _ => None,
    }
}

fn cacheable(status: StatusCode) -> bool {
    status.is_success() && status != StatusCode::NO_CONTENT && status != StatusCode::PARTIAL_CONTENT
}

async fn start_fill<B, E>(state: &CacheLayer, guard: LeaderGuard, resp: Response<B>) -> Led<B, E>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let id = guard.fill().id.clone();
    if !cacheable(resp.status()) {
        return Led::Passthrough(resp);
    }
    let expect = match Expectation::from_headers(resp.headers()) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(image_id = %id, error = %e, "not caching");
            return Led::Passthrough(resp);
        }
    };
    let claimed = {
        let store = state.store.clone();
        let id = id.clone();
        let len = expect.len;
        tokio::task::spawn_blocking(move || store.begin_fill(&id, len)).await
    };
    let file = match claimed {
        Ok(Ok(file)) => file,
        Ok(Err(why)) => {
            tracing::info!(image_id = %id, %why, "not caching");
            return Led::Passthrough(resp);
        }
        Err(e) => {
            tracing::warn!(image_id = %id, error = %e, "not caching");
            return Led::Passthrough(resp);
        }
    };
    let (parts, body) = resp.into_parts();
    let head = Head {
        status: parts.status,
        headers: replayable(&parts.headers),
        content_length: expect.len,
    };
    let upstream_id = parts.headers.get(REQUEST_ID).cloned();
    let fill = guard.started();
    fill.start(head, Arc::new(file));
    tracing::debug!(image_id = %id, len = ?expect.len, "fill started");
    spawn_fill(
        Arc::clone(&fill),
        body,
        expect,
        state.store.clone(),
        Arc::clone(&state.fills),
    );
    Led::Filling(fill, upstream_id)
}

/// Removes the entry once the upstream accepted `DELETE /v2/images/{id}` (spec §2).
pub(crate) async fn invalidate_after<F, B, E>(
    state: CacheLayer,
    future: F,
    id: ImageId,
) -> std::result::Result<Response<ResponseBody<B>>, E>
where
    F: Future<Output = std::result::Result<Response<B>, E>>,
{
    let resp = future.await?;
    if resp.status().is_success() {
        if let Some(fill) = state.fills.get(&id) {
            fill.cancel_commit();
        }
        match state.store.invalidate(&id).await {
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
