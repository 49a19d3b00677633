//! Turning a leader's upstream answer into a fill.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body::Body;

use super::GlanceCache;
use crate::fill::{
    spawn_fill, spawn_foreign_follow, Continuation, Expectation, Expected, Fill, Head, LeaderGuard,
    PendingRecord, Source,
};
use crate::headers::REQUEST_ID;
use crate::remote::Lease;
use crate::store::NoFill;
use crate::BoxError;

/// What became of a leader's upstream answer.
pub(crate) enum Started<B> {
    /// A fill runs; the upstream's request id, for the leader's response.
    Filling(Arc<Fill>, Option<HeaderValue>),
    /// Not cached (not a cacheable answer, an unusable checksum, too large,
    /// no disk space, another writer): the answer, to relay as it is.
    NotCached(Response<B>),
}

/// Where a fill's bytes come from, and the cluster lease it holds (released
/// once the fill and the upload after it are over).
pub(crate) struct FillFrom {
    pub(crate) source: Source,
    pub(crate) lease: Option<Lease>,
    /// Whether the response's `Content-MD5` is the upstream's word (its
    /// own response, or its answer to the caller's authorization).
    pub(crate) upstream_md5: bool,
}

impl FillFrom {
    pub(crate) fn upstream(lease: Option<Lease>) -> Self {
        FillFrom {
            source: Source::Upstream,
            lease,
            upstream_md5: true,
        }
    }
}

/// Whether an answer to a full download may be cached: a success other
/// than 204 (no data) and 206 (a part).
fn cacheable(status: StatusCode) -> bool {
    status.is_success() && status != StatusCode::NO_CONTENT && status != StatusCode::PARTIAL_CONTENT
}

impl GlanceCache {
    /// Starts the fill `guard` leads from the upstream's answer `resp` to
    /// the leader's download: claims the store's incomplete file, publishes
    /// the head to followers and spawns the task that pulls the body. When
    /// the answer cannot be cached, `guard` is dropped (followers forward
    /// their own requests) and the answer comes back to be relayed.
    /// `record` brings the image record's multihash, asked for alongside
    /// the download.
    pub(crate) async fn start_fill<B>(
        &self,
        guard: LeaderGuard,
        resp: Response<B>,
        record: Option<PendingRecord>,
        from: FillFrom,
    ) -> Started<B>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let id = guard.fill().id.clone();
        if !cacheable(resp.status()) {
            return Started::NotCached(resp);
        }
        let expect = match Expectation::from_headers(resp.headers()) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(image_id = %id, error = %e, "not caching");
                return Started::NotCached(resp);
            }
        };
        let store = &self.inner.store;
        let file = match store.begin_fill(&id, expect.len).await {
            Ok(file) => file,
            // Another process started filling it since this download was
            // asked for: follow that fill, and let this body go.
            Err(NoFill::Busy) if expect.len.is_some() => {
                if let (Some(len), Some(file)) = (expect.len, store.foreign_fill(&id).await) {
                    let head = Head::replayed(resp.status(), resp.headers(), Some(len));
                    let upstream_id = resp.headers().get(REQUEST_ID).cloned();
                    drop(resp);
                    let fill = self.follow_foreign_fill(guard, head, file, len);
                    return Started::Filling(fill, upstream_id);
                }
                tracing::info!(image_id = %id, "not caching: another writer is filling it");
                return Started::NotCached(resp);
            }
            Err(why) => {
                tracing::info!(image_id = %id, %why, "not caching");
                return Started::NotCached(resp);
            }
        };
        let (parts, body) = resp.into_parts();
        let upstream_id = parts.headers.get(REQUEST_ID).cloned();
        let head = Head::replayed(parts.status, &parts.headers, expect.len);
        let fill = guard.started();
        fill.start(
            head,
            Arc::clone(file.file()),
            Continuation::after(from.source),
        );
        tracing::debug!(image_id = %id, len = ?expect.len, "fill started");
        let task = spawn_fill(
            Arc::clone(&fill),
            body,
            from.source,
            Expected {
                response: expect,
                record,
                upstream_md5: from.upstream_md5,
            },
            file,
            store.clone(),
            Arc::clone(&self.inner.fills),
        );
        self.after_fill(id, task, from.source, from.lease);
        Started::Filling(fill, upstream_id)
    }
}

impl GlanceCache {
    /// Starts the fill `guard` leads from another process's fill of the
    /// same image (see [`CacheStore::foreign_fill`](crate::store::CacheStore)):
    /// followers get `head` and read `file` as the other process writes
    /// it; the fill ends when that process commits (then the entry is
    /// complete and verified) or gives up (then whole-image followers
    /// continue from the upstream, verified against the head's `Content-MD5`
    /// before their last byte). No upstream download starts here.
    pub(crate) fn follow_foreign_fill(
        &self,
        guard: LeaderGuard,
        head: Head,
        file: Arc<File>,
        size: u64,
    ) -> Arc<Fill> {
        let fill = guard.started();
        fill.start(head, Arc::clone(&file), Continuation::Verify);
        tracing::info!(image_id = %fill.id, size,
            "following another process's fill of the image");
        spawn_foreign_follow(
            Arc::clone(&fill),
            file,
            size,
            self.inner.store.clone(),
            Arc::clone(&self.inner.fills),
        );
        fill
    }
}
