//! The remote tier on a real S3-protocol server (s3s-fs, signatures
//! checked) on 127.0.0.1: uploads after commits, remote hits without an
//! upstream download, corrupt copies caught, a store that is down never in
//! a download's way, fill leases across nodes, the node registry.

use std::sync::Arc;
use std::time::Duration;

use glance_cache::auth::HitAuthorization;
use glance_cache::checksum::{HashAlgorithm, Multihash};
use glance_cache::metrics::RemoteEvent;
use glance_cache::remote::{RemoteImage, RemoteTier, RemoteTierBuilder, S3Options};
use glance_cache::ImageId;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{Behaviour, Gate};
use glance_cache_support::fixture::*;
use glance_cache_support::s3::{Fault, S3Server};
use glance_cache_support::wait::{flip_middle_byte, md5_hex, wait_for};
use http::StatusCode;
use sha2::Digest;

use crate::proxy::*;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");
const OTHER: (&str, &str) = ("x-auth-token", "OTHER");
const ADMIN: (&str, &str) = ("x-auth-token", "ADMIN");

fn options(s3: &S3Server) -> S3Options {
    S3Options::new(format!("s3://{}/cluster", s3.bucket()))
        .with_endpoint(s3.endpoint())
        .with_region("us-east-1")
        .with_credentials(s3.access_key(), s3.secret_key())
        .with_allow_http(true)
}

fn tier(s3: &S3Server) -> RemoteTierBuilder {
    RemoteTier::s3(&options(s3))
        .unwrap()
        .timeout(Duration::from_secs(1))
        .failure_pause(PAUSE)
}

/// How long the store is left alone after a failure, in these tests.
const PAUSE: Duration = Duration::from_secs(1);

fn with_remote(tier: RemoteTierBuilder) -> ProxyOptions {
    ProxyOptions {
        remote: Some(tier),
        ..ProxyOptions::default()
    }
}

fn image_key(id: &str) -> String {
    format!("cluster/images/{id}")
}

async fn node(glance_url: &str, s3: &S3Server) -> (tempfile::TempDir, Proxy) {
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(glance_url, dir.path(), with_remote(tier(s3))).await;
    (dir, proxy)
}

/// A node with the remote tier whose hits ask the upstream nothing
/// (`hit_authorization = none`).
async fn node_asking_nothing(glance_url: &str, s3: &S3Server) -> (tempfile::TempDir, Proxy) {
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        authz: HitAuthorization::None,
        ..with_remote(tier(s3))
    };
    let proxy = Proxy::start(glance_url, dir.path(), opts).await;
    (dir, proxy)
}

/// A node that cached PRIV (as MEMBER) and uploaded it to the remote tier.
async fn node_with_priv_uploaded(glance_url: &str, s3: &S3Server) -> (tempfile::TempDir, Proxy) {
    let (dir, a) = node(glance_url, s3).await;
    assert!(Client::new()
        .get(&a.file_url(PRIV), &[MEMBER])
        .await
        .complete());
    a.settle().await;
    uploaded(s3, PRIV).await;
    (dir, a)
}

/// Waits (bounded) until the remote tier holds `id` with its metadata (the
/// proxy always stores digests with an image; s3s-fs writes its metadata
/// file just after the object's, so the object alone is not yet the upload).
async fn uploaded(s3: &S3Server, id: &str) {
    let key = image_key(id);
    until("the upload", Duration::from_secs(20), || {
        s3.user_metadata(&key).is_some_and(|m| !m.is_empty())
    })
    .await;
}

/// Caches `id` on node `a`, waits for its upload, and flips the middle
/// byte of the remote copy (same size, same metadata).
async fn upload_with_a_flipped_byte(s3: &S3Server, a: &Proxy, id: &str) {
    let r = Client::new().get(&a.file_url(id), &[MEMBER]).await;
    assert!(r.complete());
    a.settle().await;
    uploaded(s3, id).await;
    flip_middle_byte(&s3.object_path(&image_key(id)));
}

/// Waits (bounded) until `cond` holds.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    wait_for(what, limit, || std::future::ready(cond())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_one_node_cached_is_served_by_another_without_an_upstream_download() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    let r = Client::new().get(&a.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet());
    a.settle().await;
    uploaded(&s3, PRIV).await;
    // The object carries the digests it was verified against.
    let meta = s3.user_metadata(&image_key(PRIV)).expect("object metadata");
    assert_eq!(
        meta.get("glance-checksum").map(String::as_str),
        Some(md5_hex(&alphabet()).as_str())
    );
    assert!(meta.contains_key("glance-os-hash-value"), "{meta:?}");

    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    assert_eq!(
        glance.file_gets(PRIV),
        1,
        "one upstream download for two nodes"
    );
    b.settle().await;
    let snapshot = b.cache.metrics().snapshot();
    assert_eq!(snapshot.remote(RemoteEvent::Hit), 1);
    assert_eq!(snapshot.remote_bytes, 26);
    let entry = b.entry(PRIV).await.expect("B cached it locally");
    assert!(entry.verified && entry.multihash.is_some());
    // Both nodes are registered as holders.
    let holders = || async {
        let r = Client::new()
            .get(&format!("{}/v2/cache/nodes/{PRIV}", a.url), &[ADMIN])
            .await;
        assert_eq!(r.status, StatusCode::OK);
        serde_json::from_slice::<Vec<String>>(&r.body).unwrap()
    };
    let mut want = vec![a.url.clone(), b.url.clone()];
    want.sort();
    until("two registry entries", Duration::from_secs(10), || {
        s3.keys("cluster/nodes/").len() == 2
    })
    .await;
    assert_eq!(holders().await, want);
    // Another project's member is refused by the upstream, remote copy or not.
    let (_c_dir, c) = node(&glance.url(), &s3).await;
    let r = Client::new().get(&c.file_url(PRIV), &[OTHER]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(c.entry(PRIV).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_copy_with_a_flipped_byte_is_never_served_complete_and_is_deleted() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    upload_with_a_flipped_byte(&s3, &a, BIG).await;

    let r = Client::new().get(&b.file_url(BIG), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.complete(), "a corrupt remote copy must not end complete");
    b.settle().await;
    let key = image_key(BIG);
    until("the corrupt copy deleted", Duration::from_secs(10), || {
        !s3.keys(&key).contains(&key)
    })
    .await;
    assert!(b.entry(BIG).await.is_none(), "nothing cached from it");
    assert_eq!(b.cache.metrics().snapshot().remote(RemoteEvent::Corrupt), 1);
    // The next download comes from the upstream, right.
    let r = Client::new().get(&b.file_url(BIG), &[MEMBER]).await;
    assert!(r.complete());
    assert_eq!(md5_hex(&r.body), md5_hex(&a_copy(&a, BIG)));
    assert_eq!(glance.file_gets(BIG), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_fill_from_the_remote_tier_is_never_served_before_its_verification() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    upload_with_a_flipped_byte(&s3, &a, BIG).await;
    // The remote tier answers late: the range finds b's fill from it
    // before its first byte.
    s3.set_fault(Fault::Delay(Duration::from_millis(400)));
    let leader = {
        let url = b.file_url(BIG);
        tokio::spawn(async move { Client::new().get(&url, &[MEMBER]).await })
    };
    until("b's fill", Duration::from_secs(10), || {
        b.cache.fills_in_flight() == 1
    })
    .await;
    // The first 32 MiB: the flipped byte is in them, the image's last byte not.
    let range = ("range", "bytes=0-33554431");
    let got = Client::new().get(&b.file_url(BIG), &[MEMBER, range]).await;
    let r = leader.await.unwrap();
    assert!(!r.complete(), "a corrupt remote copy must not end complete");
    let want = Client::new()
        .get(
            &format!("{}/v2/images/{BIG}/file", glance.url()),
            &[MEMBER, range],
        )
        .await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert!(got.complete(), "{:?}", got.error);
    assert!(got.body == want.body, "the range is the upstream's bytes");
    b.settle().await;
    let m = b.cache.metrics().snapshot();
    assert_eq!(
        m.remote(RemoteEvent::Corrupt),
        1,
        "the fill came from the remote copy"
    );
    assert_eq!((m.range_hits, m.range_misses), (0, 1));
}

fn a_copy(proxy: &Proxy, id: &str) -> Vec<u8> {
    std::fs::read(proxy.cached_path(id)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_copy_of_the_wrong_size_is_deleted_and_the_caller_served_from_the_upstream() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    assert!(Client::new()
        .get(&a.file_url(PRIV), &[MEMBER])
        .await
        .complete());
    a.settle().await;
    uploaded(&s3, PRIV).await;
    let object = std::fs::OpenOptions::new()
        .write(true)
        .open(s3.object_path(&image_key(PRIV)))
        .unwrap();
    object.set_len(20).unwrap();

    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    assert_eq!(glance.file_gets(PRIV), 2, "the upstream served it");
    let key = image_key(PRIV);
    b.settle().await;
    // Deleted, then uploaded again whole by B.
    until("the short copy replaced", Duration::from_secs(10), || {
        std::fs::metadata(s3.object_path(&key)).is_ok_and(|m| m.len() == 26)
    })
    .await;
    assert_eq!(b.cache.metrics().snapshot().remote(RemoteEvent::Corrupt), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_copy_whose_own_digests_agree_with_wrong_bytes_is_caught_by_the_upstream_record() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    // Someone with write access to the bucket (not a node) stores other
    // bytes of the same size as the image, with their own MD5 and SHA-512
    // as the copy's metadata: nothing in the bucket contradicts them.
    let wrong = b"abcdefghijklmnopqrstuvwxyz".to_vec();
    let mut file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut file, &wrong).unwrap();
    let image = RemoteImage::new(
        ImageId::parse(PRIV).unwrap(),
        wrong.len() as u64,
        Some(md5_hex(&wrong)),
        Some(Multihash {
            algorithm: HashAlgorithm::Sha512,
            value: hex::encode(sha2::Sha512::digest(&wrong)),
        }),
    );
    let writer = tier(&s3).build();
    assert!(writer.upload(Arc::new(file), &image).await.unwrap());
    uploaded(&s3, PRIV).await;

    // A node that serves without asking the upstream first has no digests
    // of its own to hold the copy to: the image record, asked for
    // alongside, is the upstream's word.
    let (_b_dir, b) = node_asking_nothing(&glance.url(), &s3).await;
    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.complete(), "the wrong copy must not end complete");
    assert!(r.body.len() < wrong.len());
    b.settle().await;
    let key = image_key(PRIV);
    until("the wrong copy deleted", Duration::from_secs(10), || {
        !s3.keys(&key).contains(&key)
    })
    .await;
    assert!(b.entry(PRIV).await.is_none(), "nothing cached from it");
    assert_eq!(b.cache.metrics().snapshot().remote(RemoteEvent::Corrupt), 1);
    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    assert_eq!(glance.file_gets(PRIV), 1, "then the upstream's bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_copy_the_upstream_says_nothing_of_is_not_recorded_as_the_upstreams_checksum() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, _a) = node_with_priv_uploaded(&glance.url(), &s3).await;
    // The image record cannot be had, and the node asks the upstream
    // nothing else before serving: only the copy's own digests check it.
    glance.set_behaviour(
        PRIV,
        Behaviour::default().force_metadata_status(StatusCode::SERVICE_UNAVAILABLE),
    );
    let (_b_dir, b) = node_asking_nothing(&glance.url(), &s3).await;
    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    b.settle().await;
    assert_eq!(b.cache.metrics().snapshot().remote(RemoteEvent::Hit), 1);
    let entry = b.entry(PRIV).await.expect("cached from the copy");
    assert_eq!(
        entry.checksum.as_deref(),
        Some(md5_hex(&alphabet()).as_str())
    );
    assert!(
        !entry.verified,
        "the upstream never vouched for that checksum"
    );
    assert_eq!(glance.file_gets(PRIV), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_store_that_fails_refuses_or_hangs_never_fails_a_download() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_dir, proxy) = node(&glance.url(), &s3).await;
    for (fault, id) in [
        (Fault::Status(500), PRIV),
        (Fault::Delay(Duration::from_secs(30)), PUB),
        (Fault::Refuse, BIG),
    ] {
        s3.set_fault(fault.clone());
        let r = tokio::time::timeout(
            Duration::from_secs(15),
            Client::new().get(&proxy.file_url(id), &[MEMBER]),
        )
        .await
        .unwrap_or_else(|_| panic!("{fault:?}: the download waited for the store"));
        assert!(r.complete(), "{fault:?}: {:?}", r.error);
        assert_eq!(glance.file_gets(id), 1, "{fault:?}");
        proxy.settle().await;
        assert!(
            proxy.entry(id).await.is_some(),
            "{fault:?}: cached locally anyway"
        );
        // The next fault starts from a store that answers again.
        s3.set_fault(Fault::None);
        tokio::time::sleep(PAUSE + Duration::from_millis(200)).await;
    }
    assert!(proxy.cache.metrics().snapshot().remote(RemoteEvent::Error) >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_count_once_and_every_download_is_served() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = RemoteTier::s3(&options(&s3).with_credentials(s3.access_key(), "not-the-secret"))
        .unwrap()
        .failure_pause(Duration::from_secs(60));
    let proxy = Proxy::start(&glance.url(), dir.path(), with_remote(wrong)).await;
    for id in [PRIV, PUB, DEACT] {
        let r = Client::new().get(&proxy.file_url(id), &[MEMBER]).await;
        assert!(r.complete(), "{id}: {:?}", r.error);
    }
    proxy.settle().await;
    // The first refusal pauses the store: one error, not one per request.
    assert_eq!(
        proxy.cache.metrics().snapshot().remote(RemoteEvent::Error),
        1
    );
    assert!(s3.keys("cluster/").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_finds_another_filling_the_image_streams_it_from_that_node() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let gate = Gate::new();
    glance.set_behaviour(BIG, Behaviour::default().hold_after(1 << 20, gate.clone()));
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    let a_client = tokio::spawn({
        let url = a.file_url(BIG);
        async move { Client::new().get(&url, &[MEMBER]).await }
    });
    // A holds the lease once its fill started.
    let lease = format!("cluster/leases/{BIG}");
    until("A's lease", Duration::from_secs(10), || {
        s3.keys(&lease).contains(&lease)
    })
    .await;
    let b_client = tokio::spawn({
        let url = b.file_url(BIG);
        async move { Client::new().get(&url, &[MEMBER]).await }
    });
    // B asks A (a follower of A's fill) before the upstream lets go.
    until("B's fill", Duration::from_secs(10), || {
        b.cache.fills_in_flight() == 1
    })
    .await;
    gate.open();
    let (ra, rb) = (a_client.await.unwrap(), b_client.await.unwrap());
    assert!(
        ra.complete() && rb.complete(),
        "{:?} {:?}",
        ra.error,
        rb.error
    );
    assert_eq!(md5_hex(&ra.body), md5_hex(&rb.body));
    assert_eq!(
        glance.file_gets(BIG),
        1,
        "one upstream download for the cluster"
    );
    let snapshot = b.cache.metrics().snapshot();
    assert_eq!(snapshot.remote(RemoteEvent::LeaseConflict), 1);
    assert_eq!(snapshot.remote(RemoteEvent::PeerStream), 1);
    b.settle().await;
    assert!(b.entry(BIG).await.unwrap().verified);
    // The lease is gone once A's fill and upload are over.
    uploaded(&s3, BIG).await;
    until("the lease released", Duration::from_secs(10), || {
        s3.keys(&lease).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_holder_that_cannot_be_reached_sends_the_fill_upstream() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    // A node that took the lease and died (its URL refuses connections).
    let key = format!("cluster/leases/{PRIV}");
    write_lease(&s3, &key, "http://127.0.0.1:9").await;
    let (_dir, b) = node(&glance.url(), &s3).await;
    let r = Client::new().get(&b.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    assert_eq!(glance.file_gets(PRIV), 1);
}

/// Writes a fresh lease naming `holder` at `key`, as a node would (into
/// the server's directory).
async fn write_lease(s3: &S3Server, key: &str, holder: &str) {
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 60.0;
    let body = serde_json::json!({"holder": holder, "expires": expires}).to_string();
    let path = s3.object_path(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
    assert!(
        s3.keys(key).contains(&key.to_owned()),
        "the lease is visible"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_image_upstream_deletes_its_remote_copy_and_registry_entries() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node_with_priv_uploaded(&glance.url(), &s3).await;
    until("a registry entry", Duration::from_secs(10), || {
        s3.keys("cluster/nodes/").len() == 1
    })
    .await;
    let r = Client::new()
        .delete(&format!("{}/v2/images/{PRIV}", a.url), &[ADMIN])
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(s3.keys("cluster/images/").is_empty(), "remote copy deleted");
    assert!(
        s3.keys("cluster/nodes/").is_empty(),
        "registry entries deleted"
    );
    let r = Client::new()
        .get(&format!("{}/v2/cache/nodes/{PRIV}", a.url), &[ADMIN])
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the image is gone upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_nodes_needs_an_admin_and_a_known_image() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let url = |id: &str| format!("{}/v2/cache/nodes/{id}", a.url);
    let r = Client::new().get(&url(PUB), &[ADMIN]).await;
    assert_eq!((r.status, r.body.as_slice()), (StatusCode::OK, &b"[]"[..]));
    // MEMBER is no management token here (static tokens: ADMIN only).
    let r = Client::new().get(&url(PUB), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = Client::new().get(&url("not-a-uuid"), &[ADMIN]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = Client::new()
        .get(&url("99999999-9999-4999-8999-999999999999"), &[ADMIN])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_listing_says_which_tier_holds_each_image() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    let (_b_dir, b) = node(&glance.url(), &s3).await;
    for id in [PRIV, PUB] {
        assert!(Client::new()
            .get(&a.file_url(id), &[MEMBER])
            .await
            .complete());
    }
    a.settle().await;
    uploaded(&s3, PRIV).await;
    uploaded(&s3, PUB).await;
    assert!(Client::new()
        .get(&b.file_url(PUB), &[MEMBER])
        .await
        .complete());
    b.settle().await;
    let r = Client::new()
        .get(&format!("{}/v2/cache", b.url), &[ADMIN])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let cached = doc["cached_images"].as_array().unwrap();
    assert_eq!(cached.len(), 1);
    assert_eq!(
        (cached[0]["image_id"].as_str(), cached[0]["tier"].as_str()),
        (Some(PUB), Some("both"))
    );
    let remote = doc["remote_images"].as_array().unwrap();
    assert_eq!(remote.len(), 1);
    assert_eq!(
        (remote[0]["image_id"].as_str(), remote[0]["tier"].as_str()),
        (Some(PRIV), Some("remote"))
    );
    assert_eq!(remote[0]["size"], 26);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_remote_tier_is_pruned_least_recently_used_first() {
    let s3 = S3Server::start();
    let glance = fake_glance().await;
    let (_a_dir, a) = node(&glance.url(), &s3).await;
    for id in [PRIV, PUB] {
        assert!(Client::new()
            .get(&a.file_url(id), &[MEMBER])
            .await
            .complete());
        a.settle().await;
        uploaded(&s3, id).await;
        // Upload times one second apart at least (S3 keeps seconds).
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // 26 + 9 bytes over a 30-byte limit: the older one goes.
    let tier = RemoteTier::s3(&options(&s3)).unwrap().max_size(30).build();
    let report = tier.prune().await.unwrap();
    assert!(report.ran);
    assert_eq!((report.deleted, report.freed, report.size), (1, 26, 9));
    assert_eq!(s3.keys("cluster/images/"), [image_key(PUB)]);
    assert_eq!(
        a.cache.metrics().snapshot().remote(RemoteEvent::Pruned),
        0,
        "another tier's counters"
    );
    // Within the limit, nothing more goes.
    assert_eq!(tier.prune().await.unwrap().deleted, 0);
}
