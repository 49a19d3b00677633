//! The management endpoints, in Glance's order of checks:
//! routing, body rules, image lookup as the caller, policy, "cache enabled",
//! then the work.

use crate::server::TlsConnection;

/// How long the health check waits for the upstream's answer.
const HEALTHCHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{request, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use serde::Serialize;
use serde_json::{json, Value};
use tower::Service;

use super::respond::Responder;
use super::routes::Endpoint;
use super::versions::merged;
use super::{CacheManageLayer, ManageBody};
use crate::auth::manage::{PolicyRule, Refusal};
use crate::cache::GlanceCache;
use crate::store::CacheEntry;
use crate::upstream::{Caller, Reply, RequestBody, Upstream};
use crate::{BoxError, ImageId};

/// Largest request body read (to be rejected) on a management call.
const BODY_LIMIT: usize = 64 * 1024;

/// One row of `cached_images`, with Glance's five fields (numeric epochs),
/// and with a remote tier, where the image is: `local` (this node only) or
/// `both` (also in the remote tier).
#[derive(Serialize)]
struct Row<'a> {
    image_id: &'a str,
    hits: u64,
    last_accessed: f64,
    last_modified: f64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tier: Option<&'static str>,
}

/// The images of the remote tier, when the cache has one and it can be
/// listed now (a listing that fails leaves the tier columns out, logged).
async fn remote_images(cache: &GlanceCache) -> Option<Vec<crate::remote::RemoteImage>> {
    match cache.remote()?.list().await {
        Ok(images) => Some(images),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the remote tier");
            None
        }
    }
}

/// The cache listing: `cached_images` (with their tier when the remote
/// tier could be listed) and, then, `remote_images`: the images only the
/// remote tier holds (`tier: remote`).
fn listing(entries: &[CacheEntry], remote: Option<&[crate::remote::RemoteImage]>) -> Value {
    let Some(remote) = remote else {
        return json!({"cached_images": rows(entries, None)});
    };
    let in_remote: std::collections::HashSet<&ImageId> =
        remote.iter().map(|i| &i.image_id).collect();
    let local: std::collections::HashSet<&ImageId> = entries.iter().map(|e| &e.image_id).collect();
    let remote_only: Vec<Value> = remote
        .iter()
        .filter(|i| !local.contains(&i.image_id))
        .map(|i| {
            json!({"image_id": i.image_id.as_str(), "size": i.size,
                   "last_modified": i.last_modified, "tier": "remote"})
        })
        .collect();
    json!({"cached_images": rows(entries, Some(&in_remote)), "remote_images": remote_only})
}

fn rows<'a>(
    entries: &'a [CacheEntry],
    in_remote: Option<&std::collections::HashSet<&ImageId>>,
) -> Vec<Row<'a>> {
    entries
        .iter()
        .map(|e| Row {
            image_id: e.image_id.as_str(),
            hits: e.hits,
            last_accessed: e.last_accessed,
            last_modified: e.last_modified,
            size: e.size,
            tier: in_remote.map(|r| {
                if r.contains(&e.image_id) {
                    "both"
                } else {
                    "local"
                }
            }),
        })
        .collect()
}

/// The caller's request headers with its `X-Auth-Token` (a static admin
/// token) replaced by the service user's `token`, or dropped.
fn credentials(parts: &request::Parts, token: Option<&str>) -> HeaderMap {
    let mut headers = Caller::new(parts).headers().clone();
    headers.remove(X_AUTH_TOKEN);
    if let Some(value) = token.and_then(|t| HeaderValue::from_str(t).ok()) {
        headers.insert(X_AUTH_TOKEN, value);
    }
    headers
}

const X_AUTH_TOKEN: &str = "x-auth-token";

/// What the upstream says about an image, asked as the caller.
enum Lookup<B> {
    Found { status: String },
    NotFound,
    Refused(Response<B>),
    Failed(String),
}

pub(crate) struct Handler<S> {
    state: CacheManageLayer,
    upstream: Upstream<S>,
}

impl<S, ResB> Handler<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    pub(crate) fn new(state: CacheManageLayer, inner: S) -> Self {
        Handler {
            state,
            upstream: Upstream::new(inner),
        }
    }

    pub(crate) async fn run(
        self,
        endpoint: Endpoint,
        req: Request<RequestBody>,
    ) -> Result<Response<ManageBody<ResB>>, S::Error> {
        let Handler { state, upstream } = self;
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
                return Ok(ctx.versions(upstream, *multiple_choices).await)
            }
            Endpoint::Healthcheck => return Ok(ctx.healthcheck(upstream).await),
            _ => {}
        }
        // Glance authenticates (keystonemiddleware, first in its pipeline)
        // before it reads a body: a caller without valid credentials gets
        // 401 whatever it sends; the policy (403) comes after the body.
        // Only a request with a body needs this early check (each endpoint
        // checks the caller before it does anything else).
        let has_body = !body.is_end_stream()
            && parts
                .headers
                .get(CONTENT_LENGTH)
                .is_none_or(|v| v.as_bytes() != b"0");
        if has_body {
            if let Err(refusal @ (Refusal::Unauthenticated | Refusal::Unavailable(_))) = state
                .auth
                .check(&parts.headers, PolicyRule::CacheList)
                .await
            {
                return Ok(r.refusal(&refusal));
            }
        }
        if !endpoint.is_legacy() {
            if let Some(resp) = body_rule(&parts, body, &r).await {
                return Ok(resp);
            }
        }
        Ok(match endpoint {
            Endpoint::CacheList => ctx.cache_list().await,
            Endpoint::CacheClear => ctx.cache_clear().await,
            Endpoint::CacheQueue(id) => ctx.cache_queue(upstream, &id).await,
            Endpoint::CacheDelete(id) => ctx.cache_delete(upstream, &id).await,
            Endpoint::CachedNodes(id) => ctx.cached_nodes(upstream, &id).await,
            Endpoint::Clean => ctx.clean().await,
            Endpoint::Prune => ctx.prune().await,
            legacy => ctx.legacy(legacy).await,
        })
    }
}

/// What every endpoint needs; borrowed across awaits, so it holds only
/// `Sync` parts (the upstream client is passed by value to the endpoints
/// that ask the upstream).
struct Ctx<'a> {
    state: &'a CacheManageLayer,
    parts: &'a request::Parts,
    r: &'a Responder,
}

impl Ctx<'_> {
    /// Policy, then "is caching enabled" (Glance's order of checks).
    async fn admit<B>(&self, rule: PolicyRule) -> Result<&GlanceCache, Response<ManageBody<B>>> {
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
        self.state.core.as_ref().ok_or_else(|| r.disabled())
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
        let remote = remote_images(cache).await;
        let mut doc = listing(&entries, remote.as_deref());
        doc["queued_images"] = json!(queued);
        let errors = cache.prefetch_errors();
        if !errors.is_empty() {
            doc["queued_image_errors"] = json!(errors);
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
        if cache_too {
            if let Err(e) = cache.clear_cache().await {
                return r.internal("cannot clear the cache", &e);
            }
        }
        if queue_too {
            if let Err(e) = cache.clear_queue().await {
                return r.internal("cannot clear the queue", &e);
            }
        }
        r.empty(StatusCode::NO_CONTENT)
    }

    async fn cache_queue<S, B>(&self, upstream: Upstream<S>, raw: &str) -> Response<ManageBody<B>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let r = self.r;
        let Ok(id) = ImageId::parse(raw) else {
            return r.image_not_found(raw);
        };
        let status = match self.image_status(upstream, &id).await {
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
        // With a service user, a static admin token stays here: the
        // prefetch runs as that user.
        let auth = &self.state.auth;
        let credentials =
            if auth.presents_static_token(&self.parts.headers) && auth.has_service_credentials() {
                credentials(self.parts, None)
            } else {
                Caller::new(self.parts).headers().clone()
            };
        if let Err(e) = cache.queue(&id, Some(credentials)).await {
            return r.internal("cannot queue the image", &e);
        }
        r.empty(StatusCode::ACCEPTED)
    }

    async fn cache_delete<S, B>(&self, upstream: Upstream<S>, raw: &str) -> Response<ManageBody<B>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let r = self.r;
        let Ok(id) = ImageId::parse(raw) else {
            return r.image_not_found(raw);
        };
        match self.image_status(upstream, &id).await {
            Ok(Some(_)) => {}
            Err(resp) => return resp,
            // Unknown upstream but still here: let the operator clean up.
            Ok(None) => {
                let known = match &self.state.core {
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
        if let Err(e) = cache.invalidate(&id).await {
            return r.internal("cannot delete the cached image", &e);
        }
        if let Err(e) = cache.dequeue(&id).await {
            return r.internal("cannot delete the queued image", &e);
        }
        r.empty(StatusCode::NO_CONTENT)
    }

    /// The nodes holding the image in their local tier, from the remote
    /// tier's node registry (Glance's centralized_db answer); 409 without
    /// a remote tier, as Glance without that driver.
    async fn cached_nodes<S, B>(&self, upstream: Upstream<S>, raw: &str) -> Response<ManageBody<B>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let r = self.r;
        let cache = match self.admit(PolicyRule::ListCachedNodes).await {
            Ok(c) => c,
            Err(resp) => return resp,
        };
        let Some(tier) = cache.remote() else {
            return r.error(StatusCode::CONFLICT, "Centralized caching is not enabled");
        };
        let Ok(id) = ImageId::parse(raw) else {
            return r.image_not_found(raw);
        };
        match self.image_status(upstream, &id).await {
            Ok(Some(_)) => {}
            Ok(None) => return r.image_not_found(raw),
            Err(resp) => return resp,
        }
        match tier.holders(&id).await {
            Ok(nodes) => r.json(StatusCode::OK, &json!(nodes)),
            Err(e) => {
                tracing::warn!(image_id = %id, error = %e, "cannot read the node registry");
                r.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The node registry in the remote store cannot be read now.",
                )
            }
        }
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

    /// The `cachemanagement` flavor's API: policy
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
                Ok(entries) => {
                    let remote = remote_images(cache).await;
                    r.json(StatusCode::OK, &listing(&entries, remote.as_deref()))
                }
                Err(e) => r.internal("cannot read the cache", &e),
            },
            Endpoint::LegacyDeleteCached(raw) => match ImageId::parse(&raw) {
                Ok(id) => match cache.invalidate(&id).await {
                    Ok(_) => null(),
                    Err(e) => r.internal("cannot delete the cached image", &e),
                },
                Err(_) => bad_id(&raw),
            },
            Endpoint::LegacyDeleteAllCached => match cache.clear_cache().await {
                Ok(n) => r.json(StatusCode::OK, &json!({"num_deleted": n})),
                Err(e) => r.internal("cannot clear the cache", &e),
            },
            Endpoint::LegacyQueue(raw) => match ImageId::parse(&raw) {
                Ok(id) => match cache.queue_for_later(&id).await {
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
                Ok(id) => match cache.dequeue(&id).await {
                    Ok(_) => null(),
                    Err(e) => r.internal("cannot delete the queued image", &e),
                },
                Err(_) => bad_id(&raw),
            },
            Endpoint::LegacyDeleteAllQueued => match cache.clear_queue().await {
                Ok(n) => r.json(StatusCode::OK, &json!({"num_deleted": n})),
                Err(e) => r.internal("cannot clear the queue", &e),
            },
            _ => r.error(StatusCode::NOT_FOUND, "The resource could not be found."),
        }
    }

    /// The image's status as the caller may see it (`None`: the upstream
    /// does not know the image, or hides it from the caller), or the answer
    /// to return at once (the upstream's own 401, or 502 when the lookup
    /// failed).
    async fn image_status<S, B>(
        &self,
        upstream: Upstream<S>,
        id: &ImageId,
    ) -> Result<Option<String>, Response<ManageBody<B>>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        match self.lookup(upstream, id).await {
            Lookup::Found { status } => Ok(Some(status)),
            Lookup::NotFound => Ok(None),
            Lookup::Refused(resp) => Err(resp.map(ManageBody::inner)),
            Lookup::Failed(why) => Err(self.r.error(StatusCode::BAD_GATEWAY, &why)),
        }
    }

    /// `GET /v2/images/{id}` on the upstream with the caller's credentials
    /// (the service user's, when there is one, for a static admin token:
    /// the proxy's own secret means nothing to a Keystone-protected
    /// upstream).
    async fn lookup<S, B>(&self, upstream: Upstream<S>, id: &ImageId) -> Lookup<B>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let auth = &self.state.auth;
        let static_token = auth.presents_static_token(&self.parts.headers);
        let caller = if static_token && auth.has_service_credentials() {
            let token = match auth.service_token().await {
                Ok(token) => token,
                Err(e) => {
                    tracing::warn!(image_id = %id, error = %e,
                        "no service token for the image lookup of a static-token call");
                    return Lookup::Failed(format!(
                        "image lookup: the proxy's service user could not sign in to Keystone: {e}"
                    ));
                }
            };
            Caller::from_headers(credentials(self.parts, token.as_deref()))
        } else {
            Caller::new(self.parts)
        };
        match upstream.image_record(&caller, id).await {
            Reply::Ok(record) => Lookup::Found {
                status: record.status,
            },
            Reply::Refused(resp)
                if resp.status() == StatusCode::UNAUTHORIZED
                    && static_token
                    && !auth.has_service_credentials() =>
            {
                let why = "image lookup: the image service requires credentials (401) and a \
                           call made with a static admin token looks images up as the proxy's \
                           service user: configure [keystone_authtoken] auth_url, username, \
                           password and project_name";
                tracing::warn!(image_id = %id, "{why}");
                Lookup::Failed(why.to_owned())
            }
            Reply::Refused(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                Lookup::Refused(resp)
            }
            Reply::Refused(_) => Lookup::NotFound,
            Reply::Failed(e) => Lookup::Failed(format!("image lookup: {e}")),
        }
    }

    /// `GET /healthcheck`: 200 `OK` when the upstream serves and the cache
    /// (if any) can write a file and read its index; else 503 with the
    /// reasons, one per line. Like Glance's own healthcheck, no credentials
    /// are needed.
    async fn healthcheck<S, B>(&self, upstream: Upstream<S>) -> Response<ManageBody<B>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let caller = Caller::new(self.parts);
        let upstream_check =
            tokio::time::timeout(HEALTHCHECK_TIMEOUT, upstream.healthcheck(&caller));
        let cache_check = async {
            match &self.state.core {
                Some(cache) => cache
                    .store()
                    .check_health()
                    .await
                    .map_err(|e| format!("the cache: {e}")),
                None => Ok(()),
            }
        };
        let cache_check = tokio::time::timeout(HEALTHCHECK_TIMEOUT, cache_check);
        let (up, local) = tokio::join!(upstream_check, cache_check);
        let up = up.unwrap_or_else(|_| {
            Err(format!(
                "the upstream did not answer within {HEALTHCHECK_TIMEOUT:?}"
            ))
        });
        let local = local.unwrap_or_else(|_| {
            Err(format!(
                "the cache did not answer within {HEALTHCHECK_TIMEOUT:?}"
            ))
        });
        let problems: Vec<String> = [up, local].into_iter().filter_map(Result::err).collect();
        let (status, text) = if problems.is_empty() {
            (StatusCode::OK, "OK".to_owned())
        } else {
            tracing::warn!(problems = ?problems, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, problems.join("\n"))
        };
        let mut resp = self.r.text(status, text);
        if self.parts.method == http::Method::HEAD {
            *resp.body_mut() = ManageBody::full(Bytes::new());
        }
        resp
    }

    /// The upstream's version document with the cache versions merged in.
    async fn versions<S, B>(
        &self,
        upstream: Upstream<S>,
        multiple_choices: bool,
    ) -> Response<ManageBody<B>>
    where
        S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
        S::Error: Into<BoxError>,
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (r, parts) = (self.r, self.parts);
        // HTTP/1.1 sends Host; HTTP/2 sends the :authority of the URI.
        let host = parts
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| parts.uri.authority().map(|a| a.as_str()));
        let scheme = if parts.extensions.get::<TlsConnection>().is_some() {
            "https"
        } else {
            "http"
        };
        let base = match (&self.state.public_endpoint, host) {
            (Some(public), _) => public.clone(),
            (None, Some(host)) => format!("{scheme}://{host}"),
            (None, None) => format!("{scheme}://localhost"),
        };
        let upstream = upstream.versions(&Caller::new(parts)).await;
        let status = if multiple_choices {
            StatusCode::MULTIPLE_CHOICES
        } else {
            StatusCode::OK
        };
        r.json(status, &merged(upstream.as_ref(), &base))
    }
}

/// Glance's body rules: GETs take no body; other methods take
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
