//! `DELETE /v2/images/{id}` invalidation (spec §2; scenarios 16, 17).

mod common;

use std::time::Duration;

use common::fixture::fake_glance;
use common::*;
use glance_cache::fake_glance::Behaviour;
use http::StatusCode;

const ADMIN: [(&str, &str); 1] = [("x-auth-token", "ADMIN")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_16_accepted_delete_removes_the_entry() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &ADMIN).await;
    proxy.settle().await;
    assert!(proxy.cached_path(PUB).exists());
    let del = c
        .delete(&format!("{}/v2/images/{PUB}", proxy.url), &ADMIN)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert!(!proxy.cached_path(PUB).exists());
    assert!(proxy.entry(PUB).await.is_none());
    let after = c.get(&proxy.file_url(PUB), &ADMIN).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_17_refused_delete_keeps_the_entry() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &ADMIN).await;
    proxy.settle().await;
    for status in [StatusCode::FORBIDDEN, StatusCode::CONFLICT] {
        glance.set_behaviour(PUB, Behaviour::default().force_delete_status(status));
        let del = c
            .delete(&format!("{}/v2/images/{PUB}", proxy.url), &ADMIN)
            .await;
        assert_eq!(del.status, status);
        assert!(proxy.cached_path(PUB).exists());
        assert!(proxy.entry(PUB).await.is_some());
    }
    // A member may not delete: the upstream says 403, the entry stays.
    glance.set_behaviour(PUB, Behaviour::default());
    let del = c
        .delete(
            &format!("{}/v2/images/{PUB}", proxy.url),
            &[("x-auth-token", "OTHER")],
        )
        .await;
    assert!(del.status.is_client_error());
    assert!(proxy.cached_path(PUB).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_a_fill_leaves_no_orphan() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(20 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let download = {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get(&url, &ADMIN).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.layer.fills_in_flight() == 1
    })
    .await;
    let del = c
        .delete(&format!("{}/v2/images/{BIG}", proxy.url), &ADMIN)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    let r = download.await.unwrap();
    assert_eq!(r.status, 200);
    proxy.settle().await;
    assert!(
        !proxy.cached_path(BIG).exists(),
        "a deleted image is not committed"
    );
    assert!(proxy.entry(BIG).await.is_none());
    assert!(files_in(&dir.path().join("incomplete")).is_empty());
}
