//! Hits: a cached entry served once the upstream agrees, hashed again
//! while served when its file may have changed.

use bytes::Bytes;
use http::{request, Request, Response};
use http_body::Body;
use tower::Service;

use super::download::{Download, Result};
use super::headers::hit_headers;
use super::ResponseBody;
use crate::auth::Decision;
use crate::checksum::Expected;
use crate::headers::request_id;
use crate::store::{recorded, CacheEntry, OpenedHit, Verdict, VerificationJoined};
use crate::upstream::{md5_from_header, Caller, ImageFacts, Reply, RequestBody};
use crate::BoxError;

/// What a cached entry comes to once the upstream was asked about the
/// caller and the file was opened.
pub(super) enum Cached<B> {
    /// Serve it: the open file, and what the upstream said of the image
    /// (when it was asked).
    Serve(OpenedHit, Option<ImageFacts>),
    /// The upstream refused the caller: its answer, to relay.
    Refused(Box<Response<ResponseBody<B>>>),
    /// No conclusive answer, or an unreadable file: the request goes
    /// upstream.
    Forward,
    /// The entry is gone, or disagreed with the upstream and was
    /// quarantined: the image must be fetched again.
    Gone,
    /// The upstream could not answer in time: `503`, retry later.
    Busy,
}

impl<S, ResB> Download<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    /// Asks the upstream whether `caller` may have the image while the
    /// cached file opens (opening checks it against the index, whoever
    /// asks), then checks the entry against what the upstream said.
    pub(super) async fn open_cached(
        &mut self,
        entry: &CacheEntry,
        caller: &Caller,
    ) -> Cached<ResB> {
        let store = self.core.store();
        let (decision, opened) = tokio::join!(
            self.core
                .authorizer()
                .authorize(self.upstream(), caller, &self.id),
            store.open_hit(entry)
        );
        let facts = match decision {
            Decision::Allow(facts) => facts,
            Decision::Deny(refusal) => {
                self.core.metrics().hit_refused();
                let resp = refusal.into_response().map(ResponseBody::message);
                return Cached::Refused(Box::new(resp));
            }
            Decision::Forward(why) => {
                tracing::debug!(image_id = %self.id, %why, "hit forwarded to the upstream");
                return Cached::Forward;
            }
            Decision::Busy => return Cached::Busy,
        };
        if let Some(why) = facts.as_ref().and_then(|f| disagreement(f, entry)) {
            tracing::warn!(image_id = %self.id, why, "cached entry disagrees with the upstream; quarantined");
            // The file opened for this hit, when there is one: a file
            // committed anew since is not this entry's to quarantine.
            let quarantined = match opened {
                Ok(Some(opened)) => store.quarantine_file(entry, opened.file).await,
                _ => store.quarantine_entry(&self.id).await,
            };
            if let Err(e) = quarantined {
                tracing::warn!(image_id = %self.id, error = %e, "quarantine failed");
                return Cached::Forward;
            }
            return Cached::Gone;
        }
        match opened {
            Ok(Some(opened)) => Cached::Serve(opened, facts),
            Ok(None) => Cached::Gone,
            Err(e) => {
                tracing::warn!(image_id = %self.id, error = %e, "cannot read cached entry; forwarding");
                Cached::Forward
            }
        }
    }

    /// Serves a committed entry once the upstream agrees.
    pub(super) async fn hit(
        mut self,
        entry: CacheEntry,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        let (opened, facts) = match self.open_cached(&entry, &caller).await {
            Cached::Serve(opened, facts) => (opened, facts),
            Cached::Refused(resp) => return Ok(*resp),
            Cached::Busy => return Ok(super::download::busy()),
            Cached::Forward => return self.forward(parts, body).await,
            // Fetch it again like any miss.
            Cached::Gone => return self.miss(parts, body).await,
        };
        if let Some(why) = opened.unverified(&entry) {
            return self
                .verifying_hit(entry, opened, facts, why, caller, parts, body)
                .await;
        }
        // Glance sends the image's checksum (none when the image has none);
        // when the upstream was not asked, the one it announced at the fill.
        let md5 = match facts {
            Some(facts) => facts.checksum,
            None => entry.upstream_checksum(),
        };
        self.core.metrics().hit();
        let store = self.core.store();
        let body = store.hit_body(&self.id, opened.file, (0, entry.size), true);
        let mut resp = Response::new(ResponseBody::hit(body));
        *resp.headers_mut() = hit_headers(entry.size, md5.as_deref(), request_id(&parts.headers));
        tracing::debug!(image_id = %self.id, size = entry.size, "cache hit");
        Ok(resp)
    }

    /// Serves an entry whose file may not be what was verified (changed
    /// since, or never verified) while hashing it again: against the
    /// digests recorded at its verification, else against the upstream's.
    #[allow(clippy::too_many_arguments)]
    async fn verifying_hit(
        self,
        entry: CacheEntry,
        opened: OpenedHit,
        facts: Option<ImageFacts>,
        why: &'static str,
        caller: Caller,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let mut facts = facts.unwrap_or_default();
        let (expected, verified_upstream) = match recorded(&entry) {
            Some(mut expected) => {
                if expected.multihash.is_none() {
                    expected.multihash = facts.multihash.clone();
                }
                (expected, entry.verified)
            }
            None => {
                // Never verified: the upstream's checksum decides. The
                // authorization may not have brought it; the record does.
                if facts.checksum.is_none() {
                    match self.upstream().image_record(&caller, &self.id).await {
                        Reply::Ok(record) => facts = record.facts(),
                        Reply::Refused(resp) => {
                            self.core.metrics().hit_refused();
                            return Ok(resp.map(ResponseBody::upstream));
                        }
                        Reply::Failed(e) => {
                            tracing::warn!(image_id = %self.id, error = %e,
                                "cannot verify the cached file against the upstream; forwarding");
                            return self.forward(parts, body).await;
                        }
                    }
                }
                let expected = Expected {
                    md5: facts.checksum.as_deref().and_then(md5_from_header),
                    multihash: facts.multihash.clone(),
                };
                // Nothing to verify it against (an image without a checksum,
                // say registered by location), or a record it contradicts:
                // a file of unknown origin is not served; the upstream's
                // bytes are fetched instead.
                let doubt = match disagreement(&facts, &entry) {
                    Some(why) => Some(why),
                    None if expected.is_empty() => {
                        Some("the upstream has no checksum to verify it")
                    }
                    None => None,
                };
                if let Some(doubt) = doubt {
                    tracing::warn!(image_id = %self.id, doubt,
                        "adopted cached file cannot be verified; quarantined, fetched again");
                    let store = self.core.store();
                    if let Err(e) = store.quarantine_file(&entry, opened.file).await {
                        tracing::warn!(image_id = %self.id, error = %e, "quarantine failed");
                        return self.forward(parts, body).await;
                    }
                    return self.miss(parts, body).await;
                }
                let from_upstream = expected.md5.is_some();
                (expected, from_upstream)
            }
        };
        let md5 = facts.checksum.clone().or_else(|| entry.upstream_checksum());
        let size = entry.size;
        let store = self.core.store();
        let (pending, joined) = store.reverification(&entry, &opened, expected, verified_upstream);
        if matches!(&*pending.borrow(), Some(Verdict::Corrupt(_))) {
            // Found corrupt (and quarantined) a moment ago: fetched again.
            return self.miss(parts, body).await;
        }
        self.core.metrics().hit();
        match joined {
            VerificationJoined::Started => {
                tracing::info!(image_id = %self.id, why, "cached file is hashed again; its last byte waits for the verdict")
            }
            VerificationJoined::Existing => {
                tracing::debug!(image_id = %self.id, why, "cached file already being hashed again; its last byte waits for the verdict")
            }
        }
        let body = store.verifying_hit_body(entry, opened, pending);
        let mut resp = Response::new(ResponseBody::verifying(body));
        *resp.headers_mut() = hit_headers(size, md5.as_deref(), request_id(&parts.headers));
        Ok(resp)
    }
}

/// Why a cached entry cannot be the image the upstream describes.
pub(super) fn disagreement(facts: &ImageFacts, entry: &CacheEntry) -> Option<&'static str> {
    if facts.size.is_some_and(|s| s > 0 && s != entry.size) {
        return Some("size differs");
    }
    match (&facts.checksum, &entry.checksum) {
        (Some(want), Some(have)) if !want.is_empty() && !want.eq_ignore_ascii_case(have) => {
            return Some("checksum differs")
        }
        _ => {}
    }
    match (&facts.multihash, &entry.multihash) {
        (Some(want), Some(have)) if want.algorithm == have.algorithm && want != have => {
            Some("multihash differs")
        }
        _ => None,
    }
}
