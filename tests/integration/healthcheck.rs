//! `GET /healthcheck` on the proxy's own listener: 200 `OK` only while the
//! upstream serves and the cache can write and read its index; 503 with the
//! reasons otherwise, without credentials, promptly.

use std::time::Duration;

use glance_cache_support::client::*;
use glance_cache_support::fixture::*;

use crate::proxy::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_only_while_the_upstream_serves_and_the_cache_works() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let url = format!("{}/healthcheck", proxy.url);

    let ok = c.get(&url, &[]).await;
    assert_eq!((ok.status.as_u16(), ok.body.as_slice()), (200, &b"OK"[..]));
    let head = c
        .request(http::Method::HEAD, &url, &[], bytes::Bytes::new())
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    let post = c
        .request(http::Method::POST, &url, &[], bytes::Bytes::new())
        .await;
    assert_eq!(post.status, 405);

    // The cache directory is gone: its node must leave the rotation.
    std::fs::rename(dir.path().join("incomplete"), dir.path().join("gone")).unwrap();
    let broken = c.get(&url, &[]).await;
    assert_eq!(broken.status, 503);
    assert!(
        String::from_utf8_lossy(&broken.body).contains("the cache"),
        "{broken:?}"
    );
    std::fs::rename(dir.path().join("gone"), dir.path().join("incomplete")).unwrap();
    assert_eq!(c.get(&url, &[]).await.status, 200);

    // The upstream is gone: 503 at once, naming it.
    glance.shutdown().await;
    let started = std::time::Instant::now();
    let down = c.get(&url, &[]).await;
    assert_eq!(down.status, 503);
    assert!(
        String::from_utf8_lossy(&down.body).contains("upstream"),
        "{down:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_health_checks_all_pass() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let url = format!("{}/healthcheck", proxy.url);
    let answers = futures_util::future::join_all((0..32).map(|_| c.get(&url, &[]))).await;
    assert!(
        answers.iter().all(|r| r.status == 200),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let left: Vec<_> = std::fs::read_dir(dir.path().join("incomplete"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "no probe file is left behind: {left:?}");
}
