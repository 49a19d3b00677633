//! Fills that fail: verification, upstream breaks, client aborts, corrupt
//! cache files.

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_mismatch_truncates_every_client_and_quarantines() {
    let glance = fake_glance().await;
    glance.set_behaviour(PUB, Behaviour::default().wrong_content_md5());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(r.status, 200);
    assert!(
        !r.complete(),
        "a corrupt image must end in a broken response"
    );
    assert!(
        r.body.len() < 9,
        "the last byte is held back: got {} bytes",
        r.body.len()
    );
    proxy.settle().await;
    assert!(!proxy.cached_path(PUB).exists());
    assert!(proxy.invalid_path(PUB).exists());
    assert!(proxy.store().list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_bytes_with_a_correct_checksum_header_are_never_served_whole() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().corrupt());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(BIG), &MEMBER).await;
    assert!(!r.complete());
    assert!((r.body.len() as u64) < BIG_SIZE);
    proxy.settle().await;
    assert!(!proxy.cached_path(BIG).exists());
    assert!(proxy.invalid_path(BIG).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_reset_mid_body_truncates_and_caches_nothing() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().reset_after(BIG_SIZE / 2));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(BIG), &MEMBER).await;
    assert!(!r.complete());
    assert!(r.body.len() as u64 <= BIG_SIZE / 2);
    proxy.settle().await;
    assert!(proxy.invalid_path(BIG).exists());
    assert!(!proxy.cached_path(BIG).exists());
    assert!(!proxy.incomplete_path(BIG).exists());
    // The next request starts a fresh fill that succeeds.
    glance.set_behaviour(BIG, Behaviour::default());
    let again = Client::new().get(&proxy.file_url(BIG), &MEMBER).await;
    assert!(again.complete());
    assert_eq!(md5_hex(&again.body), glance.image_md5(BIG).unwrap());
    proxy.settle().await;
    assert!(proxy.cached_path(BIG).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_does_not_stop_the_fill() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(25 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let status = Client::new()
        .get_and_abort(&proxy.file_url(BIG), &MEMBER, 64 * 1024)
        .await;
    assert_eq!(status, 200);
    proxy.settle().await;
    let entry = proxy
        .entry(BIG)
        .await
        .expect("the fill completed without its client");
    assert_eq!(entry.size, BIG_SIZE);
    assert_eq!(entry.checksum.as_deref(), glance.image_md5(BIG).as_deref());
    assert!(files_in(&dir.path().join("incomplete")).is_empty());
    assert!(files_in(&dir.path().join("invalid")).is_empty());
    assert_eq!(glance.file_gets(BIG), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_cached_file_is_quarantined_and_served_from_upstream() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PRIV), &MEMBER).await;
    proxy.settle().await;
    std::fs::write(proxy.cached_path(PRIV), b"ABC").unwrap();
    let r = c.get(&proxy.file_url(PRIV), &MEMBER).await;
    assert!(r.complete());
    assert_eq!(r.body, glance_cache_support::fixture::alphabet());
    assert!(proxy.invalid_path(PRIV).exists(), "bad copy quarantined");
    assert_eq!(glance.file_gets(PRIV), 2);
    proxy.settle().await;
    // ... and the image is cached again, correctly.
    assert_eq!(
        std::fs::read(proxy.cached_path(PRIV)).unwrap(),
        glance_cache_support::fixture::alphabet()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_disagreeing_with_the_image_record_is_quarantined_in_metadata_mode() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        authz: glance_cache::auth::HitAuthorization::Metadata,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &MEMBER).await;
    proxy.settle().await;
    // The image record's checksum no longer matches the digest recorded at
    // fill time: the cached copy is not that image and must not be served.
    glance.set_behaviour(PUB, Behaviour::default().metadata_checksum_wrong());
    let r = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"IMAGEDATA");
    assert!(
        proxy.invalid_path(PUB).exists(),
        "the disagreeing copy was quarantined"
    );
    assert_eq!(glance.file_gets(PUB), 2, "served by the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_disagreeing_with_the_upstreams_md5_is_quarantined_and_never_served() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &MEMBER).await;
    proxy.settle().await;
    // The download probe's Content-MD5 (the image's checksum, as Glance
    // sends it) no longer matches the digest recorded at fill time: the
    // cached copy is not that image. Refetched, the bytes do not match the
    // upstream's MD5 either, so the client gets a truncated response.
    glance.set_behaviour(PUB, Behaviour::default().wrong_content_md5());
    let r = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert!(!r.complete(), "never a complete response with wrong bytes");
    assert!(
        proxy.invalid_path(PUB).exists(),
        "the disagreeing copy was quarantined"
    );
    assert_eq!(glance.file_gets(PUB), 2, "fetched again from the upstream");
}
