//! `DELETE /v2/images/{id}` invalidation, and
//! deletes (of the image or of the cache entry) that race a fill.

use std::time::Duration;

use crate::proxy::*;
use glance_cache::metrics::{FillFailure, Snapshot};
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{Behaviour, Gate};
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;
use http::StatusCode;

const ADMIN: [(&str, &str); 1] = [("x-auth-token", "ADMIN")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_delete_the_upstream_accepts_removes_the_entry() {
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
async fn an_image_delete_the_upstream_refuses_keeps_the_entry() {
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

/// A delete accepted while a fill streams stops the verified fill from being
/// committed (the fill's check before its commit). The upstream keeps
/// sending the whole, correct body: the fake holds the rest of it at a gate
/// until the delete has been answered, so the fill can only end by
/// verifying, and only that check keeps the entry from being committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_during_a_fill_leaves_no_orphan() {
    let glance = fake_glance().await;
    let gate = Gate::new();
    glance.set_behaviour(BIG, Behaviour::default().hold_after(1 << 20, gate.clone()));
    let md5 = glance.image_md5(BIG).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let download = {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get(&url, &ADMIN).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    let del = c
        .delete(&format!("{}/v2/images/{BIG}", proxy.url), &ADMIN)
        .await;
    assert_eq!(del.status, StatusCode::NO_CONTENT);
    assert_eq!(
        proxy.cache.fills_in_flight(),
        1,
        "the delete raced the fill"
    );
    gate.open();

    let r = download.await.unwrap();
    assert_eq!(r.status, 200);
    assert!(r.complete(), "{:?}", r.error);
    assert_eq!(r.body.len() as u64, BIG_SIZE);
    assert_eq!(md5_hex(&r.body), md5);
    proxy.settle().await;
    let m = proxy.store().metrics().snapshot();
    assert_eq!(failures(&m), [0, 0, 0], "the fill verified");
    assert_eq!(m.fills_committed, 0, "a deleted image is not committed");
    assert_no_trace(&proxy, BIG).await;
}

/// A delete that arrives while a verified fill commits (after its last
/// check before the commit, between fsync and rename) still removes the
/// entry once the commit is done: the store holds the commit open until the
/// delete has been answered (with `status`).
async fn delete_in_the_commit_window(path: &str, status: StatusCode) {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let mut hold = proxy.store().hold_commits();
    let c = Client::new();
    let download = {
        let (c, url) = (c.clone(), proxy.file_url(PUB));
        tokio::spawn(async move { c.get(&url, &ADMIN).await })
    };
    let held = tokio::time::timeout(Duration::from_secs(20), hold.reached())
        .await
        .expect("the fill reaches its commit");
    assert_eq!(held.as_str(), PUB);
    let del = c.delete(&format!("{}{path}", proxy.url), &ADMIN).await;
    assert_eq!(del.status, status, "{path}");
    assert_eq!(proxy.cache.fills_in_flight(), 1, "the commit is still held");
    assert!(proxy.incomplete_path(PUB).exists(), "not renamed yet");
    hold.release();

    let r = download.await.unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::OK, &b"IMAGEDATA"[..])
    );
    proxy.settle().await;
    let m = proxy.store().metrics().snapshot();
    assert_eq!(failures(&m), [0, 0, 0]);
    assert_eq!(m.fills_committed, 1, "the commit went through");
    assert_no_trace(&proxy, PUB).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_delete_during_the_commit_leaves_no_entry() {
    delete_in_the_commit_window(&format!("/v2/images/{PUB}"), StatusCode::NO_CONTENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_delete_during_the_commit_leaves_no_entry() {
    delete_in_the_commit_window(&format!("/v2/cache/{PUB}"), StatusCode::NO_CONTENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_delete_during_the_commit_leaves_no_entry() {
    // glance-cache-manage delete-cached-image
    delete_in_the_commit_window(&format!("/v2/cached_images/{PUB}"), StatusCode::OK).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_during_the_commit_leaves_no_entry() {
    // glance cache-clear
    delete_in_the_commit_window("/v2/cache", StatusCode::NO_CONTENT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_clear_during_the_commit_leaves_no_entry() {
    // glance-cache-manage delete-all-cached-images
    delete_in_the_commit_window("/v2/cached_images", StatusCode::OK).await;
}

fn failures(m: &Snapshot) -> [u64; 3] {
    [
        FillFailure::Upstream,
        FillFailure::Verification,
        FillFailure::Local,
    ]
    .map(|reason| m.fill_failures(reason))
}

/// Neither an entry (file or row) nor an incomplete or invalid file.
async fn assert_no_trace(proxy: &Proxy, id: &str) {
    assert!(
        !proxy.cached_path(id).exists(),
        "a deleted image has no file"
    );
    assert!(
        proxy.entry(id).await.is_none(),
        "a deleted image has no row"
    );
    assert!(files_in(&proxy.dir.join("incomplete")).is_empty());
    assert!(files_in(&proxy.dir.join("invalid")).is_empty());
}
