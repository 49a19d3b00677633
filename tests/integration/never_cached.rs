//! What is never cached: ranges, 204, errors.

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use http::StatusCode;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");

fn cache_is_empty(proxy: &Proxy, id: &str) {
    assert!(!proxy.cached_path(id).exists(), "{id} cached");
    assert!(!proxy.incomplete_path(id).exists(), "{id} incomplete");
    assert!(!proxy.invalid_path(id).exists(), "{id} invalid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranged_misses_are_relayed_not_cached() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    for range in [("range", "bytes=3-5"), ("content-range", "bytes 3-5/*")] {
        let r = c.get(&proxy.file_url(PRIV), &[MEMBER, range]).await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range:?}");
        assert_eq!(r.body, b"DEF");
    }
    proxy.settle().await;
    cache_is_empty(&proxy, PRIV);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_without_data_is_relayed_not_cached() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(QUEUED), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    proxy.settle().await;
    cache_is_empty(&proxy, QUEUED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_relayed_not_cached() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let unknown = "66666666-6666-4666-8666-666666666666";
    let r = c.get(&proxy.file_url(unknown), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    for status in [
        StatusCode::FORBIDDEN,
        StatusCode::INTERNAL_SERVER_ERROR,
        StatusCode::NOT_FOUND,
    ] {
        glance.set_behaviour(PUB, Behaviour::default().force_status(status));
        let r = c.get(&proxy.file_url(PUB), &[MEMBER]).await;
        assert_eq!(r.status, status);
        proxy.settle().await;
        cache_is_empty(&proxy, PUB);
    }
    cache_is_empty(&proxy, unknown);
    // Followers of an abandoned fill still get an answer.
    glance.set_behaviour(PUB, Behaviour::default());
    let ok = c.get(&proxy.file_url(PUB), &[MEMBER]).await;
    assert_eq!(ok.body, b"IMAGEDATA");
}
