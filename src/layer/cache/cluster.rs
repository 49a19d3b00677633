//! Leading a fill in a cluster: from the remote tier when it has the
//! image, else from the node holding the image's fill lease, else (with
//! the lease taken) from the upstream.

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::{header, request, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, StreamBody};
use tower::{Service, ServiceExt};

use super::download::{Download, Leader, Result};
use super::headers::hit_headers;
use super::ResponseBody;
use crate::cache::{FillFrom, Started, PEER_HEADER};
use crate::checksum::Expected;
use crate::fill::{LeaderGuard, PendingRecord, Source, RECORD_WAIT};
use crate::headers::{request_id, REQUEST_ID};
use crate::metrics::RemoteEvent;
use crate::remote::{LeaseOutcome, RemoteImage};
use crate::upstream::{Caller, RequestBody};
use crate::BoxError;

impl<S, ResB> Download<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError> + Send + 'static,
    ResB: Body<Data = Bytes> + Send + 'static,
    ResB::Error: Into<BoxError>,
{
    /// Leads a fill of an image this node does not have, in a cluster.
    pub(super) async fn lead_in_cluster(
        self,
        guard: LeaderGuard,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let Some(cluster) = self.core.cluster() else {
            return self.lead_from_upstream(guard, parts, body, None).await;
        };
        let tier = cluster.tier.clone();
        match tier.head(&self.id).await {
            Ok(Some(image)) => return self.lead_from_remote(guard, image, parts, body).await,
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(image_id = %self.id, error = %e, "remote tier not asked");
                return self.lead_from_upstream(guard, parts, body, None).await;
            }
        }
        match tier.try_lease(tier.lease_key(&self.id)).await {
            LeaseOutcome::Acquired(lease) => {
                // The holder before us may have uploaded it meanwhile.
                if let Ok(Some(image)) = tier.head(&self.id).await {
                    lease.release().await;
                    return self.lead_from_remote(guard, image, parts, body).await;
                }
                self.lead_from_upstream(guard, parts, body, Some(lease))
                    .await
            }
            LeaseOutcome::Held(held) => {
                tier.metrics().remote(RemoteEvent::LeaseConflict);
                self.lead_from_peer(guard, &held.holder, parts, body).await
            }
            LeaseOutcome::Unavailable => self.lead_from_upstream(guard, parts, body, None).await,
        }
    }

    /// Fills from the remote tier's copy, once the upstream agrees that the
    /// caller may have the image and the copy matches what it says of it.
    async fn lead_from_remote(
        mut self,
        guard: LeaderGuard,
        image: RemoteImage,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let caller = Caller::new(&parts);
        let facts = match self.authorize_leader(&caller).await {
            Leader::Allowed(facts) => facts,
            Leader::Answer(resp) => return Ok(*resp),
            Leader::Upstream => return self.lead_from_upstream(guard, parts, body, None).await,
        };
        let tier = match self.core.remote() {
            Some(tier) => tier.clone(),
            None => return self.lead_from_upstream(guard, parts, body, None).await,
        };
        let upstream_size = facts.as_ref().and_then(|f| f.size);
        let upstream_md5 = facts.as_ref().and_then(|f| f.checksum.clone());
        let disagrees = upstream_size.is_some_and(|s| s != image.size)
            || matches!((&upstream_md5, &image.checksum), (Some(a), Some(b)) if a != b);
        if disagrees {
            tier.metrics().remote(RemoteEvent::Corrupt);
            tracing::error!(image_id = %self.id, remote_size = image.size, ?upstream_size,
                remote_checksum = ?image.checksum, ?upstream_md5,
                "the remote tier's copy is not the upstream's image; deleted");
            if let Err(e) = tier.delete_image(&self.id).await {
                tracing::warn!(image_id = %self.id, error = %e, "could not delete the remote copy");
            }
            return self.lead_from_upstream(guard, parts, body, None).await;
        }
        let md5_from_upstream = upstream_md5.is_some();
        let Some(md5) = upstream_md5.or(image.checksum.clone()) else {
            // Nothing to verify the copy against.
            return self.lead_from_upstream(guard, parts, body, None).await;
        };
        let stream = match tier.open(&self.id).await {
            Ok(Some((size, stream))) if size == image.size => stream,
            Ok(_) => return self.lead_from_upstream(guard, parts, body, None).await,
            Err(e) => {
                tracing::debug!(image_id = %self.id, error = %e, "remote copy not read");
                return self.lead_from_upstream(guard, parts, body, None).await;
            }
        };
        // The copy's own metadata may be anyone's: the bytes must also match
        // the upstream's record (its checksum, and its multihash, else the
        // copy's), asked for now as the caller; without an answer in time
        // (the fill waits that long for it), the copy's digests are all
        // there is.
        let stored = image.multihash.clone();
        let asked = tokio::time::timeout(RECORD_WAIT, self.record(&caller));
        let record: PendingRecord = Box::pin(async move {
            match asked.await.ok().flatten() {
                Some(mut upstream) => {
                    upstream.multihash = upstream.multihash.or(stored);
                    Some(upstream)
                }
                None => stored.map(|m| Expected {
                    md5: None,
                    multihash: Some(m),
                }),
            }
        });
        let mut headers = hit_headers(image.size, Some(&md5), HeaderValue::from_static("-"));
        headers.remove(REQUEST_ID);
        let mut resp = Response::new(StreamBody::new(stream.map_ok(Frame::data)));
        *resp.headers_mut() = headers;
        let identity = caller.identity_key();
        guard.fill().set_leader_identity(identity.clone());
        let from = FillFrom {
            source: Source::Remote,
            lease: None,
            upstream_md5: md5_from_upstream,
        };
        match self.core.start_fill(guard, resp, Some(record), from).await {
            Started::Filling(fill, _) => {
                tier.metrics().remote(RemoteEvent::Hit);
                self.core.metrics().miss();
                tracing::info!(image_id = %self.id, size = image.size, "filling from the remote tier");
                self.core.authorizer().served(identity, &self.id);
                Ok(self.follower_response(&fill, request_id(&parts.headers), caller))
            }
            // Not fillable here now (no disk space, another writer): the
            // upstream answers this one.
            Started::NotCached(_) => self.forward(parts, body).await,
        }
    }

    /// Fills from the node holding the image's fill lease: it serves this
    /// request with the caller's credentials like any other client's. A
    /// holder that cannot be reached or fails sends the fill upstream.
    async fn lead_from_peer(
        self,
        guard: LeaderGuard,
        holder: &str,
        parts: request::Parts,
        body: RequestBody,
    ) -> Result<ResB, S::Error> {
        let Some(peer) = self.core.cluster().and_then(|c| c.peer(holder)) else {
            return self.lead_from_upstream(guard, parts, body, None).await;
        };
        let mut headers = parts.headers.clone();
        headers.remove(header::RANGE);
        headers.remove(header::IF_RANGE);
        headers.insert(PEER_HEADER, HeaderValue::from_static("1"));
        let mut req = Request::new(RequestBody::empty());
        *req.method_mut() = Method::GET;
        *req.uri_mut() = parts.uri.clone();
        *req.headers_mut() = headers;
        let resp = match peer.oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        };
        let status = resp.status();
        if status.is_server_error() {
            tracing::info!(image_id = %self.id, holder, %status,
                "the node filling the image did not serve it; filling from the upstream");
            return self.lead_from_upstream(guard, parts, body, None).await;
        }
        let caller = Caller::new(&parts);
        let identity = caller.identity_key();
        if status != StatusCode::OK {
            // The upstream's answer to this caller, through the holder.
            self.core.metrics().miss();
            return Ok(resp.map(|b| ResponseBody::peer(b.map_err(Into::into).boxed_unsync())));
        }
        guard.fill().set_leader_identity(identity.clone());
        let record = self.record(&caller);
        let from = FillFrom {
            source: Source::Peer,
            lease: None,
            upstream_md5: false,
        };
        match self.core.start_fill(guard, resp, Some(record), from).await {
            Started::Filling(fill, _) => {
                if let Some(tier) = self.core.remote() {
                    tier.metrics().remote(RemoteEvent::PeerStream);
                }
                self.core.metrics().miss();
                tracing::info!(image_id = %self.id, holder, "filling from the node holding the lease");
                self.core.authorizer().served(identity, &self.id);
                let id = request_id(&HeaderMap::new());
                Ok(self.follower_response(&fill, id, caller))
            }
            Started::NotCached(resp) => {
                self.core.metrics().miss();
                Ok(resp.map(|b| ResponseBody::peer(b.map_err(Into::into).boxed_unsync())))
            }
        }
    }
}
