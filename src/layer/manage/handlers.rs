//! The management endpoints (spec §3.1–3.3), in Glance's order of checks:
//! routing, body rules, image lookup as the caller, policy, "cache enabled",
//! then the work.

use std::marker::PhantomData;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{request, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use serde_json::{json, Value};
use tower::{Service, ServiceExt};

use super::respond::Responder;
use super::routes::Endpoint;
use super::versions::merged;
use super::{CacheManageLayer, ManageBody};
use crate::auth::manage::{PolicyRule, Refusal};
use crate::auth::Caller;
use crate::layer::cache::{CacheLayer, RequestBody};
use crate::store::CacheEntry;
use crate::{BoxError, ImageId};

/// Largest request body read (to be rejected) on a management call.
const BODY_LIMIT: usize = 64 * 1024;
/// Largest upstream document read (image record, versions).
const DOC_LIMIT: usize = 1 << 20;

type Answer<B, E> = Result<Response<ManageBody<B>>, E>;

/// One row of `cached_images`, with Glance's five fields (numeric epochs).
#[derive(Serialize)]
struct Row<'a> {
    image_id: &'a str,
    hits: u64,
    last_accessed: f64,
    last_modified: f64,
    size: u64,
}

fn rows(entries: &[CacheEntry]) -> Vec<Row<'_>> {
    entries
        .iter()
        .map(|e| Row {
            image_id: e.image_id.as_str(),
            hits: e.hits,
            last_accessed: e.last_accessed,
            last_modified: e.last_modified,
            size: e.size,
        })
        .collect()
}

/// What the upstream says about an image, asked as the caller.
enum Lookup<B> {
    Found { status: String },
    NotFound,
    Refused(Response<B>),
    Failed(String),
}

pub(crate) struct Handler<S, ReqB> {
    state: CacheManageLayer,
    inner: S,
    _body: PhantomData<fn(ReqB)>,
}

impl<S, ReqB, ResB> Handler<S, ReqB>
where
    S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ReqB: Body<Data = Bytes> + Send + 'static,
    ReqB::Error: Into<BoxError>,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    pub(crate) fn new(state: CacheManageLayer, inner: S) -> Self {
        Handler {
            state,
            inner,
            _body: PhantomData,
        }
    }

    pub(crate) async fn run(
        self,
        endpoint: Endpoint,
        req: Request<ReqB>,
    ) -> Answer<ResB, S::Error> {
        let Handler { state, inner, .. } = self;
        let (parts, body) = req.into_parts();
        let r = Responder::new(&parts.headers);
        let ctx = Ctx {
            state: &state,
            parts: &parts,
            r: &r,
        };
        match &endpoint {
            Endpoint::MethodNotAllowed(allow) => return Ok(r.method_not_allowed(allow)),
            Endpoint::NotFound => {
                return Ok(r.error(StatusCode::NOT_FOUND, "The resource could not be found."))
            }
            Endpoint::Versions { multiple_choices } => {
                return Ok(ctx.versions(inner, *multiple_choices).await)
            }
            _ => {}
        }
        if !endpoint.is_legacy() {
            if let Some(resp) = body_rule(&parts, body, &r).await {
                return Ok(resp);
            }
        }
        Ok(match endpoint {
            Endpoint::CacheList => ctx.cache_list().await,
            Endpoint::CacheClear => ctx.cache_clear().await,
            Endpoint::CacheQueue(id) => ctx.cache_queue(inner, &id).await,
            Endpoint::CacheDelete(id) => ctx.cache_delete(inner, &id).await,
            Endpoint::CachedNodes(_) => ctx.cached_nodes().await,
            Endpoint::Clean => ctx.clean().await,
            Endpoint::Prune => ctx.prune().await,
            legacy => ctx.legacy(legacy).await,
        })
    }
}

/// What every endpoint needs; borrowed across awaits, so it holds only
/// `Sync` parts (never the inner service, which is passed by value).
struct Ctx<'a> {
    state: &'a CacheManageLayer,
    parts: &'a request::Parts,
    r: &'a Responder,
}

impl Ctx<'_> {
    /// Policy, then "is caching enabled" (spec §3.1 steps 4 and 5).
    async fn admit<B>(&self, rule: PolicyRule) -> Result<&CacheLayer, Response<ManageBody<B>>> {
        let r = self.r;
        if let Err(refusal) = self.state.auth.check(&self.parts.headers, rule).await {
            if let Refusal::Unavailable(why) = &refusal {
                tracing::warn!(
                    rule = rule.as_str(),
                    why,
                    "management call refused: identity service unavailable"
                );
            }
            return Err(r.refusal(&refusal));
        }
        self.state.cache.as_ref().ok_or_else(|| r.disabled())
    }

    async fn cache_list<B>(&self) -> Response<ManageBody<B>> {
        let r = self.r;
        let cache = match self.admit(PolicyRule::CacheList).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let store = cache.store();
        let (entries, queued) = match (store.list().await, store.queued().await) {
            (Ok(e), Ok(q)) => (e, q),
            (Err(e), _) | (_, Err(e)) => return r.internal("cannot read the cache", &e),
        };
        let queued: Vec<&str> = queued.iter().map(ImageId::as_str).collect();
        let mut doc = json!({"cached_images": rows(&entries), "queued_images": queued});
        if let Some(p) = &self.state.prefetcher {
            let errors = p.errors();
            if !errors.is_empty() {
                doc["queued_image_errors"] = json!(errors);
            }
        }
        r.json(StatusCode::OK, &doc)
    }

    async fn cache_clear<B>(&self) -> Response<ManageBody<B>> {
        let (r, parts) = (self.r, self.parts);
        let cache = match self.admit(PolicyRule::CacheDelete).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        // Lower-cased but not trimmed, as Glance reads it.
        let target = parts
            .headers
            .get("x-image-cache-clear-target")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_lowercase())
            .unwrap_or_default();
        let (cache_too, queue_too) = match target.as_str() {
            "" => (true, true),
            "cache" => (true, false),
            "queue" => (false, true),
            _ => {
                return r.error(
                    StatusCode::BAD_REQUEST,
                    "If provided 'x-image-cache-clear-target' must be 'cache', 'queue' or empty string.",
                )
            }
        };
        let store = cache.store();
        if cache_too {
            if let Err(e) = store.clear_cache().await {
                return r.internal("cannot clear the cache", &e);
            }
        }
        if queue_too {
            if let Err(e) = store.clear_queue().await {
                return r.internal("cannot clear the queue", &e);
            }
            if let Some(p) = &self.state.prefetcher {
                p.forget_all();
            }
        }
        r.empty(StatusCode::NO_CONTENT)
    }

    async fn cache_queue<S, ReqB, ResB>(&self, inner: S, raw: &str) -> Response<ManageBody<ResB>>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        let r = self.r;
        let Ok(id) = ImageId::parse(raw) else {
            return r.image_not_found(raw);
        };
        let status = match self.image_status(inner, &id).await {
            Ok(Some(status)) => status,
            Ok(None) => return r.image_not_found(raw),
            Err(resp) => return resp,
        };
        let cache = match self.admit(PolicyRule::CacheImage).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        if status != "active" {
            return r.error(
                StatusCode::BAD_REQUEST,
                "Only images with status active can be targeted for queueing",
            );
        }
        if let Err(e) = cache.store().queue_image(&id).await {
            return r.internal("cannot queue the image", &e);
        }
        match &self.state.prefetcher {
            Some(p) => p.submit_with(id, Some(Caller::new(self.parts).headers().clone())),
            None => tracing::info!(image_id = %id, "image queued; prefetching is paused"),
        }
        r.empty(StatusCode::ACCEPTED)
    }

    async fn cache_delete<S, ReqB, ResB>(&self, inner: S, raw: &str) -> Response<ManageBody<ResB>>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        let r = self.r;
        let Ok(id) = ImageId::parse(raw) else {
            return r.image_not_found(raw);
        };
        match self.image_status(inner, &id).await {
            Ok(Some(_)) => {}
            Err(resp) => return resp,
            // Unknown upstream but still here: let the operator clean up.
            Ok(None) => {
                let known = match &self.state.cache {
                    Some(c) => {
                        let store = c.store();
                        matches!(store.lookup(&id).await, Ok(Some(_)))
                            || matches!(store.is_queued(&id).await, Ok(true))
                    }
                    None => false,
                };
                if !known {
                    return r.image_not_found(raw);
                }
            }
        }
        let cache = match self.admit(PolicyRule::CacheDelete).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        if let Some(fill) = cache.fills.get(&id) {
            fill.cancel_commit();
        }
        let store = cache.store();
        if let Err(e) = store.invalidate(&id).await {
            return r.internal("cannot delete the cached image", &e);
        }
        if let Err(e) = store.dequeue(&id).await {
            return r.internal("cannot delete the queued image", &e);
        }
        if let Some(p) = &self.state.prefetcher {
            p.forget(&id);
        }
        r.empty(StatusCode::NO_CONTENT)
    }

    async fn cached_nodes<B>(&self) -> Response<ManageBody<B>> {
        let r = self.r;
        if let Err(resp) = self.admit(PolicyRule::ListCachedNodes).await {
            return resp;
        }
        r.error(StatusCode::CONFLICT, "Centralized caching is not enabled")
    }

    async fn clean<B>(&self) -> Response<ManageBody<B>> {
        let r = self.r;
        let cache = match self.admit(PolicyRule::CacheClean).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        match cache.store().clean(self.state.stall_time).await {
            Ok(report) => {
                tracing::info!(
                    invalid = report.invalid_removed,
                    incomplete = report.incomplete_removed,
                    "cache cleaned"
                );
                r.empty(StatusCode::OK)
            }
            Err(e) => r.internal("clean failed", &e),
        }
    }

    async fn prune<B>(&self) -> Response<ManageBody<B>> {
        let r = self.r;
        let cache = match self.admit(PolicyRule::CachePrune).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        match cache.store().prune().await {
            Ok(report) => {
                tracing::info!(files = report.files, bytes = report.bytes, "cache pruned");
                r.json(
                    StatusCode::OK,
                    &json!({"total_files_pruned": report.files, "total_bytes_pruned": report.bytes}),
                )
            }
            Err(e) => r.internal("prune failed", &e),
        }
    }

    /// The `cachemanagement` flavor's API (spec §3.3): policy
    /// `manage_image_cache`, always 200 JSON. Ids are validated (Glance
    /// would act on any file name).
    async fn legacy<B>(&self, endpoint: Endpoint) -> Response<ManageBody<B>> {
        let r = self.r;
        let cache = match self.admit(PolicyRule::ManageImageCache).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let store = cache.store();
        let null = || r.json(StatusCode::OK, &Value::Null);
        let bad_id = |raw: &str| {
            let shown: String = raw.chars().take(64).collect();
            r.error(
                StatusCode::BAD_REQUEST,
                &format!("Image ID '{shown}' is not a valid UUID."),
            )
        };
        match endpoint {
            Endpoint::LegacyListCached => match store.list().await {
                Ok(entries) => r.json(StatusCode::OK, &json!({"cached_images": rows(&entries)})),
                Err(e) => r.internal("cannot read the cache", &e),
            },
            Endpoint::LegacyDeleteCached(raw) => match ImageId::parse(&raw) {
                Ok(id) => match store.invalidate(&id).await {
                    Ok(_) => null(),
                    Err(e) => r.internal("cannot delete the cached image", &e),
                },
                Err(_) => bad_id(&raw),
            },
            Endpoint::LegacyDeleteAllCached => match store.clear_cache().await {
                Ok(n) => r.json(StatusCode::OK, &json!({"num_deleted": n})),
                Err(e) => r.internal("cannot clear the cache", &e),
            },
            Endpoint::LegacyQueue(raw) => match ImageId::parse(&raw) {
                Ok(id) => match store.queue_image(&id).await {
                    Ok(_) => null(),
                    Err(e) => r.internal("cannot queue the image", &e),
                },
                Err(_) => bad_id(&raw),
            },
            Endpoint::LegacyListQueued => match store.queued().await {
                Ok(ids) => {
                    let ids: Vec<&str> = ids.iter().map(ImageId::as_str).collect();
                    r.json(StatusCode::OK, &json!({"queued_images": ids}))
                }
                Err(e) => r.internal("cannot read the queue", &e),
            },
            Endpoint::LegacyDeleteQueued(raw) => match ImageId::parse(&raw) {
                Ok(id) => match store.dequeue(&id).await {
                    Ok(_) => null(),
                    Err(e) => r.internal("cannot delete the queued image", &e),
                },
                Err(_) => bad_id(&raw),
            },
            Endpoint::LegacyDeleteAllQueued => match store.clear_queue().await {
                Ok(n) => r.json(StatusCode::OK, &json!({"num_deleted": n})),
                Err(e) => r.internal("cannot clear the queue", &e),
            },
            _ => r.error(StatusCode::NOT_FOUND, "The resource could not be found."),
        }
    }

    /// [`Self::lookup`] as a handler uses it: the image's status (`None`:
    /// the upstream does not know the image), or the answer to return at
    /// once (the upstream's own refusal, or 502 when the lookup failed).
    async fn image_status<S, ReqB, ResB>(
        &self,
        inner: S,
        id: &ImageId,
    ) -> Result<Option<String>, Response<ManageBody<ResB>>>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        match self.lookup(inner, id).await {
            Lookup::Found { status } => Ok(Some(status)),
            Lookup::NotFound => Ok(None),
            Lookup::Refused(resp) => Err(resp.map(ManageBody::inner)),
            Lookup::Failed(why) => Err(self.r.error(StatusCode::BAD_GATEWAY, &why)),
        }
    }

    /// `GET /v2/images/{id}` on the upstream with the caller's credentials.
    async fn lookup<S, ReqB, ResB>(&self, inner: S, id: &ImageId) -> Lookup<ResB>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        S::Error: Into<BoxError>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        let caller = Caller::new(self.parts);
        let mut req = caller.get(&format!("/v2/images/{id}"), RequestBody::empty());
        req.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_static("application/json"),
        );
        let resp = match inner.oneshot(req).await {
            Ok(resp) => resp,
            Err(e) => return Lookup::Failed(format!("image lookup failed: {}", e.into())),
        };
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => return Lookup::NotFound,
            StatusCode::UNAUTHORIZED => return Lookup::Refused(resp),
            s => {
                return Lookup::Failed(format!(
                    "the image service answered {s} to the image lookup"
                ))
            }
        }
        let doc = match Limited::new(resp.into_body(), DOC_LIMIT).collect().await {
            Ok(body) => serde_json::from_slice::<Value>(&body.to_bytes()).ok(),
            Err(_) => None,
        };
        match doc
            .as_ref()
            .and_then(|d| d.get("status"))
            .and_then(Value::as_str)
        {
            Some(status) => Lookup::Found {
                status: status.to_owned(),
            },
            None => Lookup::Failed("the image record could not be read".into()),
        }
    }

    /// The upstream's version document with the cache versions merged in.
    async fn versions<S, ReqB, ResB>(
        &self,
        inner: S,
        multiple_choices: bool,
    ) -> Response<ManageBody<ResB>>
    where
        S: Service<Request<RequestBody<ReqB>>, Response = Response<ResB>>,
        ResB: Body<Data = Bytes>,
        ResB::Error: Into<BoxError>,
    {
        let (r, parts) = (self.r, self.parts);
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        let base = match (&self.state.public_endpoint, host) {
            (Some(public), _) => public.clone(),
            (None, Some(host)) => format!("http://{host}"),
            (None, None) => "http://localhost".to_owned(),
        };
        let upstream = {
            let caller = Caller::new(parts);
            let req = caller.get("/versions", RequestBody::empty());
            match inner.oneshot(req).await {
                Ok(resp) if resp.status().as_u16() == 200 || resp.status().as_u16() == 300 => {
                    match Limited::new(resp.into_body(), DOC_LIMIT).collect().await {
                        Ok(body) => serde_json::from_slice::<Value>(&body.to_bytes()).ok(),
                        Err(_) => None,
                    }
                }
                _ => None,
            }
        };
        let status = if multiple_choices {
            StatusCode::MULTIPLE_CHOICES
        } else {
            StatusCode::OK
        };
        r.json(status, &merged(upstream.as_ref(), &base))
    }
}

/// Glance's body rules (spec §3.1): GETs take no body; other methods take
/// no body either (Glance would fail with 500 on a JSON object; we answer 400).
async fn body_rule<ReqB, B>(
    parts: &request::Parts,
    body: ReqB,
    r: &Responder,
) -> Option<Response<ManageBody<B>>>
where
    ReqB: Body<Data = Bytes>,
    ReqB::Error: Into<BoxError>,
{
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared == Some(0) || (declared.is_none() && body.is_end_stream()) {
        return None;
    }
    let bytes = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Some(r.error(
                StatusCode::BAD_REQUEST,
                "The request body is too large or broken.",
            ))
        }
    };
    if bytes.is_empty() {
        return None;
    }
    if parts.method == Method::GET {
        return Some(r.error(
            StatusCode::BAD_REQUEST,
            "A body is not expected with this request.",
        ));
    }
    if serde_json::from_slice::<Value>(&bytes).is_err() {
        return Some(r.error(StatusCode::BAD_REQUEST, "Malformed JSON in request body."));
    }
    Some(r.error(
        StatusCode::BAD_REQUEST,
        "A body is not expected with this request.",
    ))
}
