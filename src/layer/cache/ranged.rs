//! Single ranges: from a cached file, from a running fill, or from the
//! upstream (never stored).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_RANGE, CONTENT_TYPE, IF_RANGE, RANGE};
use http::{request, HeaderValue, Request, Response, StatusCode};
use http_body::Body;
use tower::Service;
use tracing::Instrument;

use super::download::{Download, Follow, Result};
use super::hit::{disagreement, Cached};
use super::range::{partial_headers, ByteRange, Span};
use super::ResponseBody;
use crate::checksum::Expected;
use crate::fill::{follow, Continuation, Fill, Part};
use crate::headers::request_id;
use crate::store::{recorded, wait_for_verdict, CacheEntry, OpenedHit};
use crate::upstream::{md5_from_header, Caller, ImageFacts, RequestBody};
use crate::BoxError;

impl<S, ResB> Download<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    /// Answers a single-range request.
    pub(super) async fn run_range(
        mut self,
        req: Request<RequestBody>,
        range: ByteRange,
    ) -> Result<ResB, S::Error> {
        let (parts, body) = req.into_parts();
        if let Some(fill) = self.core.fills().get(&self.id) {
            return self.range_of_fill(fill, range, parts, body).await;
        }
        match self.core.store().lookup(&self.id).await {
            Ok(Some(entry)) => {
                let caller = Caller::new(&parts);
                let (opened, facts) = match self.open_cached(&entry, &caller).await {
                    Cached::Serve(opened, facts) => (opened, facts),
                    Cached::Refused(resp) => return Ok(*resp),
                    Cached::Busy => return Ok(super::download::busy()),
                    Cached::Forward | Cached::Gone => {
                        return self.range_miss(parts, body, Then::Nothing).await
                    }
                };
                let size = entry.size;
                if size == 0 {
                    // Glance's answers to ranges of an empty image are its own.
                    return self.range_miss(parts, body, Then::Nothing).await;
                }
                // The size is the image's (the upstream agreed, when asked),
                // whatever the file's state.
                let Some(span) = range.resolve(size) else {
                    return self.unsatisfiable(size, parts, body).await;
                };
                if let Some(why) = opened.unverified(&entry) {
                    if let Some(then) = self.unverified_range(&entry, &opened, facts.as_ref()).await
                    {
                        tracing::debug!(image_id = %self.id, why, "range of a file not verified in time; sent upstream");
                        return self.range_miss(parts, body, then).await;
                    }
                }
                let md5 = match facts {
                    Some(facts) => facts.checksum,
                    None => entry.upstream_checksum(),
                };
                self.core.metrics().range_hit();
                let store = self.core.store();
                let body = store.hit_body(&self.id, opened.file, (span.start, span.end()), false);
                tracing::debug!(image_id = %self.id, start = span.start, last = span.last, "range from the cache");
                Ok(partial(
                    ResponseBody::hit(body),
                    span,
                    size,
                    None,
                    md5.as_deref(),
                    request_id(&parts.headers),
                ))
            }
            Ok(None) => self.range_miss(parts, body, Then::Fetch).await,
            Err(e) => {
                tracing::warn!(image_id = %self.id, error = %e, "cache lookup failed; forwarding");
                self.range_miss(parts, body, Then::Nothing).await
            }
        }
    }

    /// A range of an image being filled: read from the growing file as
    /// the bytes land (the image's last byte once the fill is verified),
    /// never a second download of the image. Before its `206` the range
    /// waits, at most the configured range wait in all (the fill's
    /// response head included), for its first byte to be on disk; when
    /// the fill's bytes come from elsewhere than the upstream (unverified
    /// until the fill ends, and a part cannot be checked once sent), for
    /// the whole fill to be verified. A range the fill does not
    /// reach in time, or that the fill fails before, is the upstream's to
    /// answer. Once under way, the range follows the fill: an upstream that
    /// stops sending fails the fill after the reverse proxy's idle timeout
    /// and the range ends there (truncated); a disk that fails sends the
    /// rest of the range from the upstream.
    async fn range_of_fill(
        mut self,
        fill: Arc<Fill>,
        range: ByteRange,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        match self.may_follow(&fill, &caller).await {
            Follow::Yes => {}
            Follow::Refused(resp) => return Ok(*resp),
            Follow::Busy => return Ok(super::download::busy()),
            Follow::Forward => return self.range_miss(parts, body, Then::Nothing).await,
        }
        // The whole wait, the fill's response head included, is bounded.
        let wait = self.core.ranges().fill_wait;
        let deadline = tokio::time::Instant::now() + wait;
        let head = match tokio::time::timeout_at(deadline, fill.wait_head()).await {
            Ok(Some(head)) => head,
            Ok(None) => return self.range_miss(parts, body, Then::Nothing).await,
            Err(_) => {
                tracing::debug!(image_id = %self.id, "the fill has no response yet; range sent upstream");
                return self.range_miss(parts, body, Then::Nothing).await;
            }
        };
        let size = match head.content_length {
            Some(size) if size > 0 && head.status == StatusCode::OK => size,
            // No size to resolve the range against: Glance decides.
            _ => return self.range_miss(parts, body, Then::Nothing).await,
        };
        let Some(span) = range.resolve(size) else {
            return self.unsatisfiable(size, parts, body).await;
        };
        let unverified_source = fill.continuation() == Continuation::Verify;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !fill.reaches(span.start, unverified_source, left).await {
            tracing::debug!(image_id = %self.id, start = span.start, unverified_source,
                "the fill did not bring the range in time; sent upstream");
            return self.range_miss(parts, body, Then::Nothing).await;
        }
        self.core.metrics().range_hit();
        let chunk = self.core.store().read_buffers();
        let part = Part::Range {
            start: span.start,
            end: span.end(),
        };
        let resume = self.resume(caller, Some(span.last));
        let body = follow(Arc::clone(&fill), part, chunk, Some(resume));
        let md5 = head
            .headers
            .get("content-md5")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        tracing::debug!(image_id = %self.id, start = span.start, last = span.last, "range from a running fill");
        Ok(partial(
            ResponseBody::follow(body),
            span,
            size,
            head.headers.get(CONTENT_TYPE),
            md5.as_deref(),
            request_id(&parts.headers),
        ))
    }

    /// Whether a range may be served from `opened`, the file of `entry`,
    /// which changed since it was verified (or never was): `None` once the
    /// file is found intact, within the range wait, by its verification
    /// (started now, or the one already under way for its hits); else what
    /// the upstream's answer to the range should lead to. A file never
    /// verified is checked against the upstream's checksum, when the
    /// range's authorization brought one that nothing contradicts; else
    /// only a whole download, which brings it, can verify the file.
    async fn unverified_range(
        &mut self,
        entry: &CacheEntry,
        opened: &OpenedHit,
        facts: Option<&ImageFacts>,
    ) -> Option<Then> {
        let (expected, from_upstream) = match recorded(entry) {
            Some(mut expected) => {
                if expected.multihash.is_none() {
                    expected.multihash = facts.and_then(|f| f.multihash.clone());
                }
                (expected, entry.verified)
            }
            None => {
                let facts = facts.filter(|f| disagreement(f, entry).is_none());
                let md5 = facts.and_then(|f| f.checksum.as_deref().and_then(md5_from_header));
                let (Some(facts), Some(md5)) = (facts, md5) else {
                    return Some(Then::Fetch);
                };
                let expected = Expected {
                    md5: Some(md5),
                    multihash: facts.multihash.clone(),
                };
                (expected, true)
            }
        };
        let store = self.core.store();
        let (pending, _) = store.reverification(entry, opened, expected, from_upstream);
        let wait = self.core.ranges().fill_wait;
        let intact = matches!(
            tokio::time::timeout(wait, wait_for_verdict(pending)).await,
            Ok(Ok(()))
        );
        // The verification goes on without the range (and is recorded).
        // Found intact, the file is trusted from here on as for any
        // verified one (the range's bytes are read after this check).
        (!intact || opened.changed_since_opened()).then_some(Then::Nothing)
    }

    /// A range the cache cannot answer: the upstream's answer, relayed
    /// and never stored. When configured and `then` says so, the whole
    /// image is fetched in the background with the caller's credentials.
    async fn range_miss(
        self,
        parts: request::Parts,
        body: RequestBody,
        then: Then,
    ) -> Result<ResB, S::Error> {
        self.core.metrics().range_miss();
        if then == Then::Fetch
            && self.core.ranges().fill_on_miss
            && self.core.fills().get(&self.id).is_none()
        {
            self.fill_in_background(&parts);
        }
        self.relay(parts, body).await
    }

    /// Downloads the whole image as the caller of `parts`, for nobody: an
    /// uncached image is filled (the fill runs on without a client); a
    /// cached file never verified, whose checksum the range's
    /// authorization did not bring, is verified against the upstream's
    /// (the download counts as one hit), so the next range is served from
    /// it.
    fn fill_in_background(&self, parts: &request::Parts) {
        let mut req = Request::new(RequestBody::empty());
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = parts.uri.clone();
        *req.version_mut() = parts.version;
        *req.headers_mut() = parts.headers.clone();
        for name in [
            RANGE,
            IF_RANGE,
            http::header::CONTENT_LENGTH,
            http::header::TRANSFER_ENCODING,
        ] {
            req.headers_mut().remove(name);
        }
        *req.extensions_mut() = parts.extensions.clone();
        let download = Download::new(self.core.clone(), self.inner.clone(), self.id.clone());
        let id = self.id.clone();
        tokio::spawn(
            async move {
                match download.run_whole(req).await {
                    // A fill or a verification runs on without its body.
                    Ok(resp) => {
                        tracing::debug!(image_id = %id, status = %resp.status(), "background fill after a range miss")
                    }
                    Err(e) => {
                        let e: BoxError = e.into();
                        tracing::debug!(image_id = %id, error = %e, "background fill after a range miss failed")
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// A range starting at or past the end of an image of `size` bytes:
    /// Glance's `416` (its explanation follows the request's `Accept`),
    /// with the `Content-Range: bytes */size` HTTP asks for.
    async fn unsatisfiable(
        self,
        size: u64,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        self.core.metrics().range_miss();
        let mut resp = self.relay(parts, body).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE
            && !resp.headers().contains_key(CONTENT_RANGE)
        {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut().insert(CONTENT_RANGE, v);
            }
        }
        Ok(resp)
    }
}

/// What a range the cache cannot answer leads to besides its relay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Then {
    /// Fetch the whole image in the background, when configured: the
    /// image is not cached, or its file was never verified.
    Fetch,
    /// Nothing: a fill or a verification is running, or the upstream
    /// decides this one.
    Nothing,
}

/// A `206` carrying `body`, the bytes of `span`.
fn partial<B>(
    body: ResponseBody<B>,
    span: Span,
    size: u64,
    content_type: Option<&HeaderValue>,
    md5: Option<&str>,
    request_id: HeaderValue,
) -> Response<ResponseBody<B>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
    *resp.headers_mut() = partial_headers(span, size, content_type, md5, request_id);
    resp
}
