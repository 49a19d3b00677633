//! Shared pieces of the criterion benches: an in-memory "upstream" that
//! streams a generated image with its Content-MD5, and a cache stack over it.
#![allow(dead_code)]

use std::convert::Infallible;

use bytes::Bytes;
use glance_cache::auth::HitAuthorization;
use glance_cache::store::CacheStore;
use glance_cache::{GlanceCache, RequestBody, Stack};
use http::{Request, Response};
use http_body_util::{BodyExt, Full, StreamBody};
use md5::{Digest, Md5};
use tower::ServiceExt;

pub type Upstream = tower::util::BoxCloneSyncService<
    Request<RequestBody>,
    Response<http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>>,
    Infallible,
>;

/// 64 KiB frames of a fixed pattern, `size` bytes in all (never one buffer).
pub fn upstream(size: u64) -> Upstream {
    let chunk = Bytes::from((0..64 * 1024).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let mut md5 = Md5::new();
    let full = size / chunk.len() as u64;
    for _ in 0..full {
        md5.update(&chunk);
    }
    let md5 = hex::encode(md5.finalize());
    let svc = tower::service_fn(move |_req: Request<RequestBody>| {
        let (chunk, md5) = (chunk.clone(), md5.clone());
        async move {
            let frames = futures_util::stream::iter(
                (0..full).map(move |_| Ok::<_, Infallible>(http_body::Frame::data(chunk.clone()))),
            );
            let resp = Response::builder()
                .header("content-md5", md5)
                .header("content-length", full * 64 * 1024)
                .body(StreamBody::new(frames).boxed_unsync())
                .unwrap();
            Ok::<_, Infallible>(resp)
        }
    });
    tower::util::BoxCloneSyncService::new(svc)
}

/// The stack that ships over [`upstream`], with hit authorization off.
pub async fn stack(dir: &std::path::Path, size: u64) -> (Stack<Upstream>, GlanceCache) {
    let store = CacheStore::builder(dir)
        .with_min_free_disk(0)
        .with_max_size(u64::MAX)
        .open()
        .await
        .unwrap();
    let cache = GlanceCache::builder(store)
        .hit_authorization(HitAuthorization::None)
        .build();
    let stack = Stack::builder(&cache).upstream(upstream(size)).build();
    (stack, cache)
}

/// GETs the image through `svc`, counting bytes without keeping them.
pub async fn download(svc: &Stack<Upstream>, id: &str) -> u64 {
    let req = Request::get(format!("/v2/images/{id}/file"))
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = svc.clone().oneshot(req).await.unwrap();
    let mut body = resp.into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        n += frame
            .unwrap()
            .into_data()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    n
}

pub fn image_id(n: u64) -> String {
    format!(
        "{:08x}-0000-4000-8000-{:012x}",
        n >> 48,
        n & 0xffff_ffff_ffff
    )
}

/// `size` bytes of a fixed pattern as 64 KiB frames (the last one shorter),
/// generated as they are sent.
pub fn pattern_body(size: u64) -> http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible> {
    const FRAME: u64 = 64 * 1024;
    let chunk = Bytes::from((0..FRAME).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let frames = (0..size.div_ceil(FRAME)).map(move |n| {
        let len = (size - n * FRAME).min(FRAME) as usize;
        Ok::<_, Infallible>(http_body::Frame::data(chunk.slice(..len)))
    });
    StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
}

/// An HTTP upstream on 127.0.0.1:0, served on the current runtime until it
/// ends: every request gets `size` bytes ([`pattern_body`]) with their
/// Content-Length.
pub async fn http_upstream(size: u64) -> std::net::SocketAddr {
    let svc = tower::service_fn(move |_req: Request<hyper::body::Incoming>| async move {
        let resp = Response::builder()
            .header("content-length", size)
            .body(pattern_body(size))
            .unwrap();
        Ok::<_, Infallible>(resp)
    });
    serve_local(svc).await
}

/// Serves `service` on 127.0.0.1:0 on the current runtime until it ends.
pub async fn serve_local<S, B>(service: S) -> std::net::SocketAddr
where
    S: tower::Service<Request<hyper::body::Incoming>, Response = Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<glance_cache::BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<glance_cache::BoxError>,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(glance_cache::server::serve(
        listener,
        service,
        std::future::pending(),
        std::time::Duration::from_secs(1),
    ));
    addr
}
