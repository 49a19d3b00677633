//! A proxy whose upstream leads back to itself answers `508 Loop Detected`
//! at once instead of multiplying connections until it runs out of file
//! descriptors.

use std::time::Duration;

use glance_cache::auth::manage::ManagementAuth;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::CacheStore;
use glance_cache::{GlanceCache, Stack};
use glance_cache_support::client::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_comes_back_through_the_proxy_is_answered_508() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::builder(dir.path())
        .with_min_free_disk(0)
        .open()
        .await
        .unwrap();
    let cache = GlanceCache::builder(store).build();
    // The upstream is the proxy itself.
    let stack = Stack::builder(&cache)
        .management(ManagementAuth::open())
        .upstream(
            ReverseProxy::new(format!("http://{addr}").parse().unwrap())
                .with_response_timeout(Duration::from_secs(20)),
        )
        .build();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(stack.serve(
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));
    let c = Client::new();
    let started = std::time::Instant::now();
    for path in [
        "/v2/images".to_owned(),
        "/v2/images/11111111-1111-4111-8111-111111111111/file".to_owned(),
    ] {
        let r = c
            .get(&format!("http://{addr}{path}"), &[("x-auth-token", "T")])
            .await;
        assert_eq!(
            r.status,
            508,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(
            String::from_utf8_lossy(&r.body).contains("came back"),
            "{r:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "promptly, not after a timeout"
    );
    assert!(
        cache.store().list().await.unwrap().is_empty(),
        "nothing cached from a loop"
    );
}
