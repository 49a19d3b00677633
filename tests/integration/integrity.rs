//! Never a wrong image: the multihash checked at fill time, and cached
//! files hashed again when they may have gone bad (changed since verified,
//! rotted in place, adopted without a checksum).

use std::path::Path;
use std::time::Duration;

use glance_cache::auth::HitAuthorization;
use glance_cache::checksum::HashAlgorithm;
use glance_cache::metrics::{FillFailure, IntegrityCheck};
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{Behaviour, FakeImage, RunningFakeGlance, Visibility};
use glance_cache_support::fixture::*;
use glance_cache_support::wait::{flip_middle_byte, wait_for};
use http::StatusCode;

use crate::proxy::*;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");

/// Caches PRIV through `proxy`.
async fn cache_priv(proxy: &Proxy) {
    let r = Client::new().get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    proxy.settle().await;
    assert!(proxy.entry(PRIV).await.is_some(), "PRIV cached");
}

/// The fake Glance, a cache directory and a default proxy with PRIV cached.
async fn with_priv_cached() -> (RunningFakeGlance, tempfile::TempDir, Proxy) {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cache_priv(&proxy).await;
    (glance, dir, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_is_verified_against_the_records_sha512_and_records_it() {
    let (glance, _dir, proxy) = with_priv_cached().await;
    let entry = proxy.entry(PRIV).await.unwrap();
    let multihash = entry.multihash.expect("a multihash is recorded");
    assert_eq!(multihash.algorithm, HashAlgorithm::Sha512);
    let record: serde_json::Value = serde_json::from_slice(
        &Client::new()
            .get(&format!("{}/v2/images/{PRIV}", glance.url()), &[MEMBER])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(multihash.value, record["os_hash_value"].as_str().unwrap());
    assert!(entry.verified && entry.verified_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sha512_mismatch_with_a_correct_md5_ends_truncated_and_quarantined() {
    let glance = fake_glance().await;
    glance.set_behaviour(PRIV, Behaviour::default().metadata_multihash_wrong());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(!r.complete(), "the response must not end complete");
    assert!(
        r.body.len() < 26,
        "never the last byte: {} bytes",
        r.body.len()
    );
    assert_eq!(r.body, alphabet()[..r.body.len()]);
    proxy.settle().await;
    assert!(proxy.entry(PRIV).await.is_none(), "not cached");
    assert!(!proxy.cached_path(PRIV).exists());
    assert!(proxy.invalid_path(PRIV).exists(), "quarantined");
    let m = proxy.cache.metrics().snapshot();
    assert_eq!(m.fill_failures(FillFailure::Verification), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_without_a_multihash_still_fills_with_md5_only() {
    let glance = fake_glance().await;
    glance.set_behaviour(PRIV, Behaviour::default().metadata_multihash_null());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cache_priv(&proxy).await;
    let entry = proxy.entry(PRIV).await.unwrap();
    assert!(entry.verified, "verified against Content-MD5");
    // What was computed is kept, for later checks of the file.
    let multihash = entry.multihash.expect("the computed SHA-512 is recorded");
    assert_eq!(multihash.algorithm, HashAlgorithm::Sha512);
    assert_eq!(multihash.value.len(), 128);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multihash_of_another_algorithm_is_checked_from_the_file() {
    let glance = fake_glance().await;
    glance.set_behaviour(PRIV, Behaviour::default().metadata_multihash_sha256());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cache_priv(&proxy).await;
    let multihash = proxy.entry(PRIV).await.unwrap().multihash.unwrap();
    assert_eq!(multihash.algorithm, HashAlgorithm::Sha256);
    // sha256 of A..Z
    assert_eq!(
        multihash.value,
        "d6ec6898de87ddac6e5b3611708a7aa1c2d298293349cc1a6c299a1db7149d38"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_byte_flipped_by_a_write_is_never_served_complete() {
    let (glance, _dir, proxy) = with_priv_cached().await;
    flip_middle_byte(&proxy.cached_path(PRIV));

    let c = Client::new();
    let r = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), Some("26"));
    assert!(!r.complete(), "a corrupt file is never served complete");
    assert!(r.body.len() < 26);
    wait_for(
        "the corrupt file quarantined",
        Duration::from_secs(10),
        || async { proxy.invalid_path(PRIV).exists() && !proxy.cached_path(PRIV).exists() },
    )
    .await;
    let m = proxy.cache.metrics().snapshot();
    assert_eq!(m.integrity_failures(IntegrityCheck::Hit), 1);

    // The next request fetches the image again; the one after is a hit.
    let again = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert!(again.complete() && again.body == alphabet());
    proxy.settle().await;
    let hit = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert!(hit.complete() && hit.body == alphabet());
    assert_eq!(glance.file_gets(PRIV), 2);
    assert_eq!(proxy.cache.metrics().snapshot().hits, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_touched_but_intact_is_verified_again_and_trusted() {
    let (_glance, _dir, proxy) = with_priv_cached().await;
    let before = proxy.entry(PRIV).await.unwrap();
    // Rewrite the same bytes: the file's identity changes, its content not.
    let path = proxy.cached_path(PRIV);
    std::fs::write(&path, alphabet()).unwrap();
    let r = Client::new().get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet(), "{:?}", r.error);
    wait_for(
        "the new identity recorded",
        Duration::from_secs(10),
        || async { proxy.entry(PRIV).await.unwrap().verified_at != before.verified_at },
    )
    .await;
    assert!(proxy.cached_path(PRIV).exists());
    let m = proxy.cache.metrics().snapshot();
    assert_eq!(m.integrity_failures(IntegrityCheck::Hit), 0);
    assert_eq!(m.hit_verifications, 1, "hashed again once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rot_that_keeps_the_mtime_is_found_by_the_scrubber() {
    let (glance, dir, proxy) = with_priv_cached().await;
    proxy.stop().await;
    let path = dir.path().join(PRIV);
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    flip_middle_byte(&path);
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    // A proxy whose scrubber re-hashes every entry at once.
    let opts = ProxyOptions {
        scrub: Some((64 << 20, Duration::ZERO)),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    // (The maintenance task's clean may remove the quarantined file from
    // invalid/ at any moment: the metric and the entry tell.)
    wait_for(
        "the scrubber to quarantine the file",
        Duration::from_secs(20),
        || async {
            proxy
                .cache
                .metrics()
                .snapshot()
                .integrity_failures(IntegrityCheck::Scrub)
                == 1
        },
    )
    .await;
    assert!(!proxy.cached_path(PRIV).exists());
    assert!(proxy.entry(PRIV).await.is_none());
    let m = proxy.cache.metrics().snapshot();
    assert!(m.scrubbed_bytes >= 26);
    let r = Client::new().get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert!(r.complete() && r.body == alphabet());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrubber_records_intact_files_as_verified() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        scrub: Some((64 << 20, Duration::ZERO)),
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    cache_priv(&proxy).await;
    let committed = proxy.entry(PRIV).await.unwrap().verified_at.unwrap();
    wait_for(
        "a scrub after the commit",
        Duration::from_secs(90),
        || async {
            proxy
                .entry(PRIV)
                .await
                .and_then(|e| e.verified_at)
                .is_some_and(|at| at > committed)
        },
    )
    .await;
    assert!(proxy.cached_path(PRIV).exists());
    assert_eq!(
        proxy
            .cache
            .metrics()
            .snapshot()
            .integrity_failures(IntegrityCheck::Scrub),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_file_of_an_image_without_a_checksum_is_replaced_by_the_upstream_s_bytes() {
    const NOSUM: &str = "5a000000-0000-4000-8000-00000000005a";
    for authz in [HitAuthorization::Probe, HitAuthorization::None] {
        let glance = fake_glance_builder()
            .image(
                FakeImage::new(NOSUM)
                    .bytes("LOCATIONDATA")
                    .visibility(Visibility::Public)
                    .owner("X")
                    .without_checksum(),
            )
            .spawn()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // Same length, other bytes: nothing in the record tells them apart.
        adopt(dir.path(), NOSUM, b"WRONGBYTES!!");
        let opts = ProxyOptions {
            authz,
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
        let c = Client::new();
        let r = c.get(&proxy.file_url(NOSUM), &[MEMBER]).await;
        assert!(r.complete(), "{authz}: {:?}", r.error);
        assert_eq!(r.body, b"LOCATIONDATA", "{authz}: the upstream's bytes");
        assert_eq!(glance.file_gets(NOSUM), 1, "{authz}");
        assert!(proxy.invalid_path(NOSUM).exists(), "{authz}");
        proxy.settle().await;
        let hit = c.get(&proxy.file_url(NOSUM), &[MEMBER]).await;
        assert_eq!(hit.body, b"LOCATIONDATA", "{authz}");
        assert_eq!(glance.file_gets(NOSUM), 1, "{authz}: then a hit");
    }
}

/// Writes `data` as the cached file of `id` in `dir`, as Glance's cache
/// would have left it (no row: the proxy adopts it without a checksum).
fn adopt(dir: &Path, id: &str, data: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(id), data).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_entry_is_verified_against_the_upstream_before_its_first_hit_completes() {
    for authz in [HitAuthorization::Probe, HitAuthorization::None] {
        let glance = fake_glance().await;
        let dir = tempfile::tempdir().unwrap();
        adopt(dir.path(), PUB, b"IMAGEDATA");
        let mut wrong = alphabet();
        wrong[13] = b'!';
        adopt(dir.path(), PRIV, &wrong);
        let opts = ProxyOptions {
            authz,
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
        assert_eq!(proxy.entry(PUB).await.unwrap().checksum, None, "{authz}");
        let c = Client::new();

        let good = c.get(&proxy.file_url(PUB), &[MEMBER]).await;
        assert!(good.complete() && good.body == b"IMAGEDATA", "{authz}");
        assert_eq!(good.header("content-md5"), Some(PUB_MD5), "{authz}");
        wait_for(
            "the adopted entry verified",
            Duration::from_secs(10),
            || async {
                proxy
                    .entry(PUB)
                    .await
                    .is_some_and(|e| e.verified && e.verified_at.is_some())
            },
        )
        .await;
        assert_eq!(
            proxy.entry(PUB).await.unwrap().checksum.as_deref(),
            Some(PUB_MD5)
        );

        let bad = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
        assert_eq!(bad.status, StatusCode::OK, "{authz}");
        assert!(
            !bad.complete(),
            "{authz}: a wrong adopted file is never served complete"
        );
        wait_for(
            "the wrong file quarantined",
            Duration::from_secs(10),
            || async { proxy.invalid_path(PRIV).exists() },
        )
        .await;
        let again = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
        assert!(again.complete() && again.body == alphabet(), "{authz}");
        assert_eq!(glance.file_gets(PUB), 0, "{authz}: the good file was kept");
    }
}
