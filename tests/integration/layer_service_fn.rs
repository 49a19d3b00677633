//! `CacheLayer` composes over any tower service, here a `service_fn`
//! standing in for the image API (no network, no proxy).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use glance_cache::auth::HitAuthorization;
use glance_cache::store::CacheStore;
use glance_cache::{CacheLayer, GlanceCache, RequestBody};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, ServiceBuilder, ServiceExt};

const ID: &str = "88888888-8888-4888-8888-888888888888";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_layer_over_a_service_fn() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::builder(dir.path())
        .with_min_free_disk(0)
        .open()
        .await
        .unwrap();
    let downloads = Arc::new(AtomicUsize::new(0));
    let probes = Arc::new(AtomicUsize::new(0));
    let records = Arc::new(AtomicUsize::new(0));
    let (d, p, m) = (downloads.clone(), probes.clone(), records.clone());
    let upstream = service_fn(move |req: Request<RequestBody>| {
        let (d, p, m) = (d.clone(), p.clone(), m.clone());
        async move {
            let path = req.uri().path().to_string();
            let resp = if path.ends_with("/file") && req.headers().contains_key("range") {
                p.fetch_add(1, Ordering::SeqCst);
                // Glance's answer: the whole image's size and MD5 in the head.
                Response::builder()
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header("content-range", "bytes 0-0/9")
                    .header("content-md5", "0fc85dbea99575776296eaaa1d314eb1")
                    .body(Full::new(Bytes::from_static(b"I")))
            } else if path.ends_with("/file") {
                d.fetch_add(1, Ordering::SeqCst);
                Response::builder()
                    .header("content-md5", "0fc85dbea99575776296eaaa1d314eb1")
                    .header("content-length", "9")
                    .body(Full::new(Bytes::from_static(b"IMAGEDATA")))
            } else {
                m.fetch_add(1, Ordering::SeqCst);
                Response::builder().body(Full::new(Bytes::from(format!(
                    r#"{{"id": "{ID}", "status": "active", "size": 9, "checksum": "0fc85dbea99575776296eaaa1d314eb1"}}"#
                ))))
            };
            Ok::<_, Infallible>(resp.unwrap())
        }
    });
    let cache = GlanceCache::builder(store.clone())
        .hit_authorization(HitAuthorization::Probe)
        .build();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::new(cache))
        .service(upstream);
    let url = format!("/v2/images/{ID}/file");

    let miss = svc
        .clone()
        .oneshot(Request::get(&url).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert!(!miss.body().is_hit());
    assert_eq!(
        miss.into_body().collect().await.unwrap().to_bytes(),
        "IMAGEDATA"
    );
    for _ in 0..200 {
        if !store.list().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Another caller: the upstream is asked before the hit is served.
    let hit = svc
        .clone()
        .oneshot(
            Request::get(&url)
                .header("x-auth-token", "OTHER")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(hit.body().is_hit());
    assert_eq!(
        hit.headers()["content-md5"],
        "0fc85dbea99575776296eaaa1d314eb1"
    );
    assert_eq!(
        hit.into_body().collect().await.unwrap().to_bytes(),
        "IMAGEDATA"
    );
    assert_eq!(downloads.load(Ordering::SeqCst), 1);
    assert_eq!(
        probes.load(Ordering::SeqCst),
        1,
        "one ranged probe before the hit (it carries the size and MD5)"
    );
    assert_eq!(
        records.load(Ordering::SeqCst),
        1,
        "the fill asked for the image record (its multihash) alongside the download"
    );
    // The caller whose download filled the cache was just served the image
    // by the upstream: within the TTL its hit asks nothing.
    let again = svc
        .clone()
        .oneshot(Request::get(&url).body(Full::default()).unwrap())
        .await
        .unwrap();
    assert!(again.body().is_hit());
    assert_eq!(probes.load(Ordering::SeqCst), 1, "no new probe");

    // Other requests pass straight through.
    let other = svc
        .oneshot(Request::get("/v2/images").body(Full::default()).unwrap())
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}
