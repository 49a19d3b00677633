//! Transparent caching: miss, tee, hit.

use std::time::Duration;

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];
const ADMIN_TOKEN: [(&str, &str); 1] = [("x-auth-token", "ADMIN")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_relayed_and_cached_then_a_hit_is_served_from_the_cache() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();

    let miss = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(miss.status, 200);
    assert!(miss.complete(), "{:?}", miss.error);
    assert_eq!(miss.body, b"IMAGEDATA");
    assert_eq!(
        miss.header("content-type"),
        Some("application/octet-stream")
    );
    assert_eq!(miss.header("content-md5"), Some(PUB_MD5));
    assert_eq!(miss.header("content-length"), Some("9"));
    proxy.settle().await;
    assert_eq!(std::fs::read(proxy.cached_path(PUB)).unwrap(), b"IMAGEDATA");
    assert!(!proxy.incomplete_path(PUB).exists());
    assert!(!proxy.invalid_path(PUB).exists());
    let entry = proxy.entry(PUB).await.expect("listed after the miss");
    assert_eq!((entry.hits, entry.size), (0, 9));
    assert_eq!(entry.last_accessed, entry.last_modified);
    assert!(entry.verified);
    assert_eq!(glance.file_gets(PUB), 1);

    let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(hit.status, 200);
    assert_eq!(hit.body, b"IMAGEDATA");
    assert_eq!(hit.header("content-type"), Some("application/octet-stream"));
    assert_eq!(hit.header("content-md5"), Some(PUB_MD5));
    assert_eq!(hit.header("content-length"), Some("9"));
    assert!(hit
        .header("x-openstack-request-id")
        .unwrap()
        .starts_with("req-"));
    for absent in [
        "content-range",
        "accept-ranges",
        "etag",
        "last-modified",
        "cache-control",
    ] {
        assert!(hit.header(absent).is_none(), "{absent} on a hit");
    }
    assert_eq!(
        glance.file_gets(PUB),
        1,
        "the hit must not download the image again"
    );
    wait_for("hit counted", Duration::from_secs(5), || async {
        proxy.entry(PUB).await.unwrap().hits == 1
    })
    .await;
    let after = proxy.entry(PUB).await.unwrap();
    assert!(after.last_accessed > entry.last_accessed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_id_is_echoed_with_prefix_on_hits() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &MEMBER).await;
    proxy.settle().await;
    let hit = c
        .get(
            &proxy.file_url(PUB),
            &[
                ("x-auth-token", "MEMBER"),
                ("x-openstack-request-id", "abc-123"),
            ],
        )
        .await;
    assert_eq!(hit.header("x-openstack-request-id"), Some("req-abc-123"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_headers_follow_the_image_record_in_metadata_mode() {
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

    glance.set_behaviour(PUB, Behaviour::default().metadata_checksum_null());
    let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(hit.status, 200);
    assert!(
        hit.header("content-md5").is_none(),
        "checksum null: no Content-MD5"
    );
    assert_eq!(hit.header("content-length"), Some("9"));

    for b in [
        Behaviour::default().metadata_size_null(),
        Behaviour::default().metadata_size_zero(),
    ] {
        glance.set_behaviour(PUB, b);
        let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
        assert_eq!(
            hit.header("content-length"),
            Some("9"),
            "size 0/null: the file's length"
        );
        assert_eq!(hit.body, b"IMAGEDATA");
    }
    assert_eq!(glance.file_gets(PUB), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_headers_follow_the_download_probe() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &MEMBER).await;
    proxy.settle().await;
    let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(
        hit.header("content-md5"),
        Some(PUB_MD5),
        "the probe's Content-MD5"
    );
    // An image without a checksum: Glance sends no Content-MD5, nor does the hit.
    glance.set_behaviour(PUB, Behaviour::default().omit_content_md5());
    let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(hit.status, 200);
    assert!(
        hit.header("content-md5").is_none(),
        "no checksum: no Content-MD5"
    );
    assert_eq!(hit.header("content-length"), Some("9"));
    assert_eq!(hit.body, b"IMAGEDATA");
    assert_eq!(glance.file_gets(PUB), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_not_asking_the_upstream_send_the_checksum_it_announced_and_no_other() {
    for (behaviour, md5) in [
        (Behaviour::default(), Some(PUB_MD5)),
        // An image without a checksum: Glance sends no Content-MD5, and
        // the digest the proxy computed is not the upstream's to announce.
        (Behaviour::default().omit_content_md5(), None),
    ] {
        let glance = fake_glance().await;
        glance.set_behaviour(PUB, behaviour);
        let dir = tempfile::tempdir().unwrap();
        let opts = ProxyOptions {
            authz: glance_cache::auth::HitAuthorization::None,
            ..Default::default()
        };
        let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
        let c = Client::new();
        let miss = c.get(&proxy.file_url(PUB), &MEMBER).await;
        assert_eq!(miss.header("content-md5"), md5);
        proxy.settle().await;
        for range in [None, Some("bytes=2-4")] {
            let headers: Vec<_> = MEMBER
                .iter()
                .copied()
                .chain(range.map(|r| ("range", r)))
                .collect();
            let hit = c.get(&proxy.file_url(PUB), &headers).await;
            assert!(hit.complete(), "{range:?}");
            assert_eq!(hit.header("content-md5"), md5, "{range:?}");
        }
        assert_eq!(glance.file_gets(PUB), 1, "both from the cache");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_without_a_checksum_is_cached_unverified() {
    let glance = fake_glance().await;
    glance.set_behaviour(PUB, Behaviour::default().omit_content_md5());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let miss = Client::new().get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(miss.body, b"IMAGEDATA");
    proxy.settle().await;
    let entry = proxy.entry(PUB).await.expect("cached without verification");
    assert!(!entry.verified);
    assert_eq!(
        entry.checksum.as_deref(),
        Some(PUB_MD5),
        "the digest is still recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upstream_without_length_is_cached_and_hit_has_length() {
    let glance = fake_glance().await;
    glance.set_behaviour(PRIV, Behaviour::default().chunked());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let miss = c.get(&proxy.file_url(PRIV), &MEMBER).await;
    assert!(miss.complete());
    assert_eq!(miss.body, glance_cache_support::fixture::alphabet());
    assert!(miss.header("content-length").is_none());
    proxy.settle().await;
    let hit = c.get(&proxy.file_url(PRIV), &MEMBER).await;
    assert_eq!(hit.header("content-length"), Some("26"));
    assert_eq!(hit.body, glance_cache_support::fixture::alphabet());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_prefixes_glance_knows_behave_like_v2() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let miss = c
        .get(&format!("{}/v2.14/images/{PUB}/file", proxy.url), &MEMBER)
        .await;
    assert_eq!(
        (miss.status.as_u16(), miss.body.as_slice()),
        (200, &b"IMAGEDATA"[..])
    );
    proxy.settle().await;
    let hit = c
        .get(&format!("{}/v2.18/images/{PUB}/file", proxy.url), &MEMBER)
        .await;
    assert_eq!(hit.body, b"IMAGEDATA");
    assert_eq!(glance.file_gets(PUB), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_token_glance_does_not_know_is_left_to_the_upstream_by_cache_and_proxy() {
    // Glance knows v2.5, not v2.05: it answers 300 with its versions
    // document. The cache must not serve (or fill, or invalidate) such a
    // path, and the proxy must forward it unchanged, so the client gets what
    // Glance itself answers.
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &MEMBER).await;
    proxy.settle().await;
    let path = format!("/v2.05/images/{PUB}/file");
    let direct = c.get(&format!("{}{path}", glance.url()), &MEMBER).await;
    let proxied = c.get(&format!("{}{path}", proxy.url), &MEMBER).await;
    assert_eq!(direct.status, 300, "Glance's answer");
    assert_eq!(proxied.status, direct.status, "the proxy's is the same");
    assert_ne!(proxied.body, b"IMAGEDATA", "not served from the cache");
    let forwarded = glance
        .calls()
        .iter()
        .filter(|call| call.path == path)
        .count();
    assert_eq!(
        forwarded, 2,
        "forwarded as it was sent (once direct, once proxied)"
    );
    let delete = c
        .delete(&format!("{}/v2.05/images/{PUB}", proxy.url), &ADMIN_TOKEN)
        .await;
    assert_eq!(delete.status, 300);
    assert!(
        proxy.entry(PUB).await.is_some(),
        "not an image delete: entry kept"
    );
    assert_eq!(glance.file_gets(PUB), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_paths_pass_through_and_touch_nothing() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let before = files_in(dir.path());
    let c = Client::new();
    let head = c
        .request(
            http::Method::HEAD,
            &proxy.file_url(PUB),
            &MEMBER,
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(head.status, 405);
    assert_eq!(head.header("allow"), Some("GET, PUT"));
    let slash = c.get(&format!("{}/", proxy.file_url(PUB)), &MEMBER).await;
    assert_eq!(slash.status, 404);
    let detail = c
        .get(&format!("{}/v2/images/detail/file", proxy.url), &MEMBER)
        .await;
    assert_eq!(detail.status, 404);
    let meta = c
        .get(&format!("{}/v2/images/{PUB}", proxy.url), &MEMBER)
        .await;
    assert_eq!(meta.status, 200);
    proxy.settle().await;
    assert_eq!(files_in(dir.path()), before);
    assert!(files_in(&dir.path().join("incomplete")).is_empty());
    assert!(proxy.store().list().await.unwrap().is_empty());
}
