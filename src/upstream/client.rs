//! [`Upstream`]: the questions the proxy asks the image service itself.

use std::future::Future;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use tower::{Service, ServiceExt};

use super::record::{ImageFacts, ImageRecord};
use super::{Caller, RequestBody};
use crate::{BoxError, ImageId};

/// Largest document read from the upstream (image record, versions).
const DOCUMENT_LIMIT: usize = 1 << 20;

/// Why a question to the upstream got no usable answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The request failed before an answer (connection, timeout).
    #[error("the image service could not be asked: {0}")]
    Unreachable(#[source] BoxError),
    /// An answer the question does not expect.
    #[error("the image service answered {0}")]
    Status(StatusCode),
    /// A `200` whose document could not be read or parsed.
    #[error("the {0} could not be read")]
    Unreadable(&'static str),
    /// The rest of an image was asked for and something else came back.
    #[error("the image service answered {status} to a request for the rest of the image from byte {offset}")]
    NotTheRest {
        /// Where the rest was asked to start.
        offset: u64,
        /// What came back.
        status: StatusCode,
    },
}

/// The status of a small answer, its body read (at most a document's
/// worth) so that the connection goes back to the pool.
async fn read_small<B>(resp: Response<B>) -> StatusCode
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    let status = resp.status();
    let _ = Limited::new(resp.into_body(), DOCUMENT_LIMIT)
        .collect()
        .await;
    status
}

/// The answer to one question.
#[derive(Debug)]
pub(crate) enum Reply<T, B> {
    /// What was asked for.
    Ok(T),
    /// The upstream's `401`, `403` or `404`, to relay or to interpret.
    Refused(Response<B>),
    /// No usable answer.
    Failed(UpstreamError),
}

fn is_refusal(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
    )
}

/// The one client of the image service behind the proxy: every question
/// the proxy asks on its own (authorizing a hit, looking an image up for
/// the management API or a prefetch, resuming a download, discovering
/// versions) goes through here, through the inner service (normally the
/// reverse proxy), with the [`Caller`]'s own credentials.
///
/// The futures it returns own a clone of the service and borrow nothing
/// of the client, so the service need not be `Sync`.
#[derive(Clone, Debug)]
pub(crate) struct Upstream<S> {
    service: S,
}

impl<S, B> Upstream<S>
where
    S: Service<Request<RequestBody>, Response = Response<B>> + Clone,
    S::Error: Into<BoxError>,
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    pub(crate) fn new(service: S) -> Self {
        Upstream { service }
    }

    /// `GET path` as `caller`, with one extra header.
    fn get(
        &self,
        caller: &Caller,
        path: &str,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> impl Future<Output = Result<Response<B>, UpstreamError>> {
        let mut req = caller.get(path, RequestBody::empty());
        if let Some((name, value)) = extra {
            req.headers_mut().insert(name, value);
        }
        let service = self.service.clone();
        async move {
            service
                .oneshot(req)
                .await
                .map_err(|e| UpstreamError::Unreachable(e.into()))
        }
    }

    /// `GET /v2/images/{id}`: the image record as `caller` may see it.
    pub(crate) fn image_record(
        &self,
        caller: &Caller,
        id: &ImageId,
    ) -> impl Future<Output = Reply<ImageRecord, B>> {
        let accept = (header::ACCEPT, HeaderValue::from_static("application/json"));
        let get = self.get(caller, &format!("/v2/images/{id}"), Some(accept));
        async move {
            let resp = match get.await {
                Ok(resp) => resp,
                Err(e) => return Reply::Failed(e),
            };
            match resp.status() {
                StatusCode::OK => {}
                s if is_refusal(s) => return Reply::Refused(resp),
                s => return Reply::Failed(UpstreamError::Status(s)),
            }
            let Ok(body) = Limited::new(resp.into_body(), DOCUMENT_LIMIT)
                .collect()
                .await
            else {
                return Reply::Failed(UpstreamError::Unreadable("image record"));
            };
            match serde_json::from_slice::<ImageRecord>(&body.to_bytes()) {
                Ok(record) => Reply::Ok(record),
                Err(_) => Reply::Failed(UpstreamError::Unreadable("image record")),
            }
        }
    }

    /// A one-byte ranged download as `caller`: Glance applies its
    /// `download_image` policy (and its refusal of deactivated images to
    /// non-admins) exactly as to a full download, and its `206` carries the
    /// whole image's size (`Content-Range: bytes 0-0/SIZE`) and MD5
    /// (`Content-MD5`). An empty image answers `416`; an upstream that
    /// ignores ranges answers `200` (its body is dropped unread).
    pub(crate) fn probe(
        &self,
        caller: &Caller,
        id: &ImageId,
    ) -> impl Future<Output = Reply<ImageFacts, B>> {
        let range = (header::RANGE, HeaderValue::from_static("bytes=0-0"));
        let get = self.get(caller, &format!("/v2/images/{id}/file"), Some(range));
        async move {
            let resp = match get.await {
                Ok(resp) => resp,
                Err(e) => return Reply::Failed(e),
            };
            match resp.status() {
                // The byte (or the 416's few) read, so that the connection
                // goes back to the pool: a storm of hits must not open a
                // connection per authorization.
                StatusCode::PARTIAL_CONTENT | StatusCode::RANGE_NOT_SATISFIABLE => {
                    let facts = ImageFacts::from_probe(resp.status(), resp.headers());
                    read_small(resp).await;
                    Reply::Ok(facts)
                }
                // An upstream that ignores Range sends the whole image: the
                // connection is closed rather than drained.
                StatusCode::OK => Reply::Ok(ImageFacts::from_probe(resp.status(), resp.headers())),
                s if is_refusal(s) => Reply::Refused(resp),
                s => Reply::Failed(UpstreamError::Status(s)),
            }
        }
    }

    /// `GET /v2/images/{id}/file` as `caller`.
    pub(crate) fn download(
        &self,
        caller: &Caller,
        id: &ImageId,
    ) -> impl Future<Output = Result<Response<B>, UpstreamError>> {
        self.get(caller, &format!("/v2/images/{id}/file"), None)
    }

    /// The image from byte `offset` on (to byte `last` inclusive, when
    /// given), as `caller`: the body of a `206` whose `Content-Range`
    /// starts at `offset`.
    pub(crate) fn resume(
        &self,
        caller: &Caller,
        id: &ImageId,
        offset: u64,
        last: Option<u64>,
    ) -> impl Future<Output = Result<B, UpstreamError>> {
        let last = last.map(|l| l.to_string()).unwrap_or_default();
        let get = HeaderValue::try_from(format!("bytes={offset}-{last}"))
            .map(|range| {
                self.get(
                    caller,
                    &format!("/v2/images/{id}/file"),
                    Some((header::RANGE, range)),
                )
            })
            .map_err(|e| UpstreamError::Unreachable(e.into()));
        async move {
            let resp = get?.await?;
            let starts_at_offset = resp
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with(&format!("bytes {offset}-")));
            if resp.status() != StatusCode::PARTIAL_CONTENT || !starts_at_offset {
                return Err(UpstreamError::NotTheRest {
                    offset,
                    status: resp.status(),
                });
            }
            Ok(resp.into_body())
        }
    }

    /// Whether the upstream serves: its `GET /healthcheck` (Glance's oslo
    /// healthcheck middleware) answers 200, or, where it has none (404, or
    /// Glance's 300 for a path it does not know), its `GET /versions` answers. The error says what it answered instead.
    pub(crate) fn healthcheck(&self, caller: &Caller) -> impl Future<Output = Result<(), String>> {
        let check = self.get(caller, "/healthcheck", None);
        let versions = self.get(caller, "/versions", None);
        async move {
            let status = match check.await {
                Ok(resp) => read_small(resp).await,
                Err(e) => return Err(format!("the upstream does not answer: {e}")),
            };
            match status.as_u16() {
                200 => Ok(()),
                // No healthcheck middleware: 404, or Glance's version
                // negotiation (300) for a path it does not know.
                404 | 300 => match versions.await {
                    Ok(resp) => match read_small(resp).await.as_u16() {
                        200 | 300 => Ok(()),
                        other => Err(format!("the upstream answers GET /versions with {other}")),
                    },
                    Err(e) => Err(format!("the upstream does not answer: {e}")),
                },
                _ => Err(format!("the upstream's /healthcheck answers {status}")),
            }
        }
    }

    /// The upstream's version document (`GET /versions`), if it has one.
    pub(crate) fn versions(
        &self,
        caller: &Caller,
    ) -> impl Future<Output = Option<serde_json::Value>> {
        let get = self.get(caller, "/versions", None);
        async move {
            let resp = get.await.ok()?;
            if !matches!(resp.status().as_u16(), 200 | 300) {
                return None;
            }
            let body = Limited::new(resp.into_body(), DOCUMENT_LIMIT)
                .collect()
                .await
                .ok()?;
            serde_json::from_slice(&body.to_bytes()).ok()
        }
    }
}
