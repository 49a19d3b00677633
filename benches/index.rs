//! The index with 10,000 entries: a lookup, the full listing, and
//! `GET /v2/cache` answered by the management layer (target: < 50 ms).

mod common;

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use glance_cache::auth::manage::ManagementAuth;
use glance_cache::store::CacheStore;
use glance_cache::{GlanceCache, RequestBody, Stack};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::ServiceExt;

const ENTRIES: u64 = 10_000;

fn index(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for n in 0..ENTRIES {
        std::fs::write(dir.path().join(common::image_id(n)), b"x").unwrap();
    }
    // Opening adopts every file without a row: 10,000 rows.
    let store = rt
        .block_on(CacheStore::builder(dir.path()).with_min_free_disk(0).open())
        .unwrap();
    assert_eq!(rt.block_on(store.list()).unwrap().len() as u64, ENTRIES);
    let probe = common::image_id(ENTRIES / 2).parse().unwrap();
    c.bench_function("index/lookup_of_10k", |b| {
        b.to_async(&rt)
            .iter(|| async { store.lookup(&probe).await.unwrap().unwrap() })
    });
    c.bench_function("index/list_10k", |b| {
        b.to_async(&rt)
            .iter(|| async { store.list().await.unwrap().len() })
    });
    let cache = GlanceCache::builder(store.clone()).build();
    let upstream = tower::service_fn(|_req: Request<RequestBody>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    });
    let svc = Stack::builder(&cache)
        .management(ManagementAuth::open())
        .upstream(upstream)
        .build();
    c.bench_function("manage/get_v2_cache_10k", |b| {
        b.to_async(&rt).iter(|| async {
            let req = Request::get("/v2/cache")
                .body(Full::<Bytes>::default())
                .unwrap();
            let resp = svc.clone().oneshot(req).await.unwrap();
            resp.into_body().collect().await.unwrap().to_bytes().len()
        })
    });
}

criterion_group!(benches, index);
criterion_main!(benches);
