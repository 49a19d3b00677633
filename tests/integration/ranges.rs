//! Single ranges answered from the cache with Glance's answers; everything
//! else about ranges left to the upstream; parts never stored.

use std::time::Duration;

use glance_cache::auth::HitAuthorization;
use glance_cache::metrics::IntegrityCheck;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{Behaviour, Gate, RunningFakeGlance};
use glance_cache_support::fixture::*;
use glance_cache_support::wait::{md5_hex, wait_for};
use http::StatusCode;

use crate::proxy::*;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");
const OTHER: (&str, &str) = ("x-auth-token", "OTHER");

/// Ranged downloads of `id` the upstream received, the hit authorization's
/// one-byte probes left out.
fn upstream_ranges(glance: &RunningFakeGlance, id: &str) -> usize {
    glance
        .calls()
        .iter()
        .filter(|c| c.is_ranged_file_get(id))
        .filter(|c| c.headers.get("range").is_none_or(|v| v != "bytes=0-0"))
        .count()
}

/// Headers a range answer is compared on.
const COMPARED: [&str; 4] = [
    "content-type",
    "content-range",
    "content-md5",
    "content-length",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_a_cached_image_answer_as_glance_does() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    // Authorized by the image record: every ranged request the upstream
    // sees is one of the test's.
    let opts = ProxyOptions {
        authz: HitAuthorization::Metadata,
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    proxy.settle().await;
    let direct = format!("{}/v2/images/{PRIV}/file", glance.url());

    // Answered from the cache: start, middle, suffix, 0-0, open-ended; past
    // the end, Glance's own 416 (its text follows the request's Accept).
    for range in [
        "bytes=0-9",
        "bytes=10-19",
        "bytes=20-100",
        "bytes=-5",
        "bytes=-100",
        "bytes=0-0",
        "bytes=25-25",
        "bytes=13-",
        "bytes=26-",
        "bytes=1000-2000",
    ] {
        let before = glance.ranged_file_gets(PRIV);
        let want = c.get(&direct, &[MEMBER, ("range", range)]).await;
        let got = c
            .get(&proxy.file_url(PRIV), &[MEMBER, ("range", range)])
            .await;
        let from_cache = want.status == StatusCode::PARTIAL_CONTENT;
        assert_eq!(
            glance.ranged_file_gets(PRIV),
            before + if from_cache { 1 } else { 2 },
            "{range}: only the direct request reached the upstream, unless past the end"
        );
        assert_eq!(got.status, want.status, "{range}");
        assert_eq!(got.body, want.body, "{range}");
        assert!(got.complete(), "{range}: {:?}", got.error);
        for invented in ["etag", "last-modified", "accept-ranges", "cache-control"] {
            assert_eq!(
                got.header(invented),
                None,
                "{range}: Glance sends no {invented}"
            );
        }
        if got.status == StatusCode::PARTIAL_CONTENT {
            for h in COMPARED {
                assert_eq!(got.header(h), want.header(h), "{range}: {h}");
            }
            let names: Vec<_> = got.headers.keys().map(|k| k.as_str()).collect();
            assert_eq!(
                &names[..4],
                [
                    "content-type",
                    "content-range",
                    "content-md5",
                    "content-length"
                ],
                "{range}: Glance's header order"
            );
        } else {
            assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(got.header("content-type"), want.header("content-type"));
            assert_eq!(got.header("content-range"), Some("bytes */26"), "{range}");
        }
    }
    let m = proxy.cache.metrics().snapshot();
    assert_eq!((m.range_hits, m.range_misses), (8, 2));
    let entry = proxy.entry(PRIV).await.unwrap();
    assert_eq!(
        entry.hits, 0,
        "ranges are not counted as hits (Glance never counts them)"
    );
    assert!(
        entry.last_accessed > entry.last_modified,
        "but they keep the entry in use"
    );

    // Left to the upstream: several ranges, garbage, reversed, Content-Range.
    for header in [
        ("range", "bytes=0-1,5-6"),
        ("range", "bytes=abc"),
        ("range", "bytes=5-2"),
        ("range", "items=0-1"),
        ("content-range", "bytes 3-5/*"),
    ] {
        let before = glance.ranged_file_gets(PRIV);
        let want = c.get(&direct, &[MEMBER, header]).await;
        let got = c.get(&proxy.file_url(PRIV), &[MEMBER, header]).await;
        assert_eq!(
            glance.ranged_file_gets(PRIV),
            before + 2,
            "{header:?}: relayed"
        );
        assert_eq!(
            (got.status, &got.body),
            (want.status, &want.body),
            "{header:?}"
        );
    }
    assert!(
        !proxy.invalid_path(PRIV).exists() && proxy.cached_path(PRIV).exists(),
        "the entry is untouched"
    );
    // HEAD stays Glance's 405, cached or not.
    let head = c
        .request(
            http::Method::HEAD,
            &proxy.file_url(PRIV),
            &[MEMBER],
            bytes::Bytes::new(),
        )
        .await;
    assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(head.header("allow"), Some("GET, PUT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_with_if_range_gets_the_whole_image() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let headers = [MEMBER, ("range", "bytes=0-4"), ("if-range", "\"abc\"")];
    // A miss: the whole image, and it is cached.
    let miss = c.get(&proxy.file_url(PRIV), &headers).await;
    assert_eq!((miss.status, &miss.body), (StatusCode::OK, &alphabet()));
    proxy.settle().await;
    assert!(proxy.entry(PRIV).await.is_some());
    // A hit: the whole image too.
    let hit = c.get(&proxy.file_url(PRIV), &headers).await;
    assert_eq!((hit.status, &hit.body), (StatusCode::OK, &alphabet()));
    assert_eq!(hit.header("content-range"), None);
    assert_eq!(upstream_ranges(&glance, PRIV), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_go_upstream_when_the_cache_does_not_serve_them() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        serve_ranges: false,
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    proxy.settle().await;
    // Altered behind the cache's back: only the upstream has these bytes.
    std::fs::write(proxy.cached_path(PRIV), b"0123456789abcdefghijklmnop").unwrap();
    for range in ["bytes=3-5", "bytes=-3"] {
        let r = c
            .get(&proxy.file_url(PRIV), &[MEMBER, ("range", range)])
            .await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
        let want: &[u8] = if range == "bytes=3-5" { b"DEF" } else { b"XYZ" };
        assert_eq!(r.body, want, "{range}: served by the upstream");
    }
    assert_eq!(upstream_ranges(&glance, PRIV), 2);
    assert_eq!(proxy.cache.metrics().snapshot().range_hits, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_changed_file_that_fails_its_verification_goes_upstream() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let size = c.get(&proxy.file_url(PRIV), &[MEMBER]).await.body.len();
    proxy.settle().await;
    std::fs::write(proxy.cached_path(PRIV), b"0123456789abcdefghijklmnop").unwrap();
    // Past the end: Glance's 416, with the image's size as HTTP asks.
    let past = format!("bytes={size}-");
    let r = c
        .get(&proxy.file_url(PRIV), &[MEMBER, ("range", &past)])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let whole = format!("bytes */{size}");
    assert_eq!(r.header("content-range"), Some(whole.as_str()));

    range_of(&proxy, PRIV, "bytes=3-5", b"DEF").await;
    // Both answered by the upstream (the 416 for its explanation's text).
    assert_eq!(upstream_ranges(&glance, PRIV), 2);
    wait_for(
        "the changed file quarantined",
        Duration::from_secs(10),
        || async { proxy.entry(PRIV).await.is_none() },
    )
    .await;
    let m = proxy.cache.metrics().snapshot();
    assert_eq!(m.integrity_failures(IntegrityCheck::Hit), 1);
    assert_eq!((m.range_hits, m.hit_verifications), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_changed_file_found_intact_in_time_is_served_from_it() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let whole = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    proxy.settle().await;
    // The same bytes written again: right, but changed since verified.
    std::fs::write(proxy.cached_path(PRIV), &whole.body).unwrap();
    range_of(&proxy, PRIV, "bytes=3-5", &whole.body[3..6]).await;
    assert_eq!(upstream_ranges(&glance, PRIV), 0, "from the cached file");
    let m = proxy.cache.metrics().snapshot();
    assert_eq!((m.range_hits, m.hit_verifications), (1, 1));
    assert_eq!(glance.file_gets(PRIV), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_an_adopted_file_is_served_from_it_once_it_matches_the_upstreams_checksum() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    // Left by Glance's own cache: no index row, no digests.
    std::fs::write(dir.path().join(PRIV), alphabet()).unwrap();
    std::fs::write(dir.path().join(PUB), b"IMAGEDAT!").unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;

    range_of(&proxy, PRIV, "bytes=3-5", b"DEF").await;
    assert_eq!(upstream_ranges(&glance, PRIV), 0, "from the adopted file");
    let entry = proxy.entry(PRIV).await.unwrap();
    assert_eq!(
        entry.checksum.as_deref(),
        Some(md5_hex(&alphabet()).as_str())
    );
    assert!(entry.verified, "verified against the upstream's checksum");

    // Same size, one byte wrong: the upstream answers, the file goes.
    range_of(&proxy, PUB, "bytes=7-8", b"TA").await;
    assert_eq!(upstream_ranges(&glance, PUB), 1);
    wait_for(
        "the wrong file quarantined",
        Duration::from_secs(10),
        || async { proxy.entry(PUB).await.is_none() },
    )
    .await;
    assert_eq!(glance.file_gets(PUB) + glance.file_gets(PRIV), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_changed_file_not_verified_in_time_goes_upstream_and_later_ones_come_from_it()
{
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    // Ranges do not wait: the first one cannot have the 50 MiB hashed.
    let proxy = Proxy::start(&glance.url(), dir.path(), waiting(Duration::ZERO)).await;
    let c = Client::new();
    let whole = c.get(&proxy.file_url(BIG), &[MEMBER]).await;
    assert!(whole.complete());
    proxy.settle().await;
    let before = proxy.entry(BIG).await.unwrap();
    std::fs::write(proxy.cached_path(BIG), &whole.body).unwrap();
    let range = ("range", "bytes=1048576-1049599");
    let r = c.get(&proxy.file_url(BIG), &[MEMBER, range]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.body, &whole.body[1 << 20..(1 << 20) + 1024]);
    assert_eq!(upstream_ranges(&glance, BIG), 1, "the upstream answered it");
    // The verification it started goes on without it.
    wait_for("the verification", Duration::from_secs(20), || async {
        proxy.entry(BIG).await.unwrap().verified_at > before.verified_at
    })
    .await;
    let next = c.get(&proxy.file_url(BIG), &[MEMBER, range]).await;
    assert_eq!(next.body, r.body);
    assert_eq!(
        upstream_ranges(&glance, BIG),
        1,
        "the next one from the file"
    );
    assert_eq!(glance.file_gets(BIG), 1, "no second full download");
    let m = proxy.cache.metrics().snapshot();
    assert_eq!(
        (m.range_misses, m.range_hits, m.hit_verifications),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_another_projects_private_image_is_refused_as_a_full_download_is() {
    for authz in [HitAuthorization::Probe, HitAuthorization::Metadata] {
        let glance = fake_glance().await;
        let dir = tempfile::tempdir().unwrap();
        let opts = ProxyOptions {
            authz,
            ..ProxyOptions::default()
        };
        let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
        let c = Client::new();
        c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
        proxy.settle().await;
        let full = c.get(&proxy.file_url(PRIV), &[OTHER]).await;
        let range = c
            .get(&proxy.file_url(PRIV), &[OTHER, ("range", "bytes=0-9")])
            .await;
        assert_eq!(full.status, StatusCode::NOT_FOUND, "{authz}");
        assert_eq!(
            (range.status, &range.body),
            (full.status, &full.body),
            "{authz}"
        );
        // Not even the size leaks through a 416.
        let past = c
            .get(&proxy.file_url(PRIV), &[OTHER, ("range", "bytes=100-")])
            .await;
        assert_eq!(past.status, StatusCode::NOT_FOUND, "{authz}");
        assert_eq!(past.header("content-range"), None);
        assert_eq!(proxy.cache.metrics().snapshot().range_hits, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_during_a_fill_follows_the_growing_file() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(25 << 20));
    let dir = tempfile::tempdir().unwrap();
    // The fill takes two seconds; the ranges wait for it, whatever its pace.
    let proxy = Proxy::start(&glance.url(), dir.path(), waiting(Duration::from_secs(60))).await;
    let c = Client::new();
    let direct = format!("{}/v2/images/{BIG}/file", glance.url());
    let leader = {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get(&url, &[MEMBER]).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    // Other credentials than the leader's: authorized by a probe, then
    // served from the fill: the start at once, the end once verified.
    let ranges = ["bytes=0-1023", "bytes=1048576-2097151", "bytes=-4096"];
    let mut served = Vec::new();
    for range in ranges {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        served.push(tokio::spawn(async move {
            c.get(&url, &[("x-auth-token", "ADMIN"), ("range", range)])
                .await
        }));
    }
    let mut got = Vec::new();
    for s in served {
        got.push(s.await.unwrap());
    }
    assert!(leader.await.unwrap().complete());
    assert_eq!(glance.file_gets(BIG), 1, "one download from the upstream");
    assert_eq!(upstream_ranges(&glance, BIG), 0, "no range went upstream");
    for (range, got) in ranges.iter().zip(got) {
        let want = c.get(&direct, &[MEMBER, ("range", range)]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(got.complete(), "{range}: {:?}", got.error);
        assert_eq!(got.body, want.body, "{range}");
        assert_eq!(
            got.header("content-range"),
            want.header("content-range"),
            "{range}"
        );
        assert_eq!(
            got.header("content-md5"),
            want.header("content-md5"),
            "{range}"
        );
    }
    assert_eq!(proxy.cache.metrics().snapshot().range_hits, 3);
}

/// The default options, with ranges waiting `wait` for a running fill.
fn waiting(wait: Duration) -> ProxyOptions {
    ProxyOptions {
        range_fill_wait: wait,
        ..ProxyOptions::default()
    }
}

/// Asks `proxy` for `range` of image `id` as MEMBER; the answer must be
/// a `206` of `want`.
async fn range_of(proxy: &Proxy, id: &str, range: &str, want: &[u8]) {
    let r = Client::new()
        .get(&proxy.file_url(id), &[MEMBER, ("range", range)])
        .await;
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::PARTIAL_CONTENT, want),
        "{range} of {id}"
    );
}

/// A proxy whose ranges wait 300 ms for a fill, in front of `glance`
/// answering downloads of BIG as `behaviour` says.
async fn proxy_for_big(
    glance: &RunningFakeGlance,
    behaviour: Behaviour,
) -> (tempfile::TempDir, Proxy) {
    glance.set_behaviour(BIG, behaviour);
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(
        &glance.url(),
        dir.path(),
        waiting(Duration::from_millis(300)),
    )
    .await;
    (dir, proxy)
}

/// Starts a whole download of BIG as MEMBER through `proxy`.
fn download_big(proxy: &Proxy) -> tokio::task::JoinHandle<Reply> {
    let url = proxy.file_url(BIG);
    tokio::spawn(async move { Client::new().get(&url, &[MEMBER]).await })
}

/// Starts a whole download of BIG as MEMBER through `proxy` and waits
/// until its fill has written the first MiB (where the upstream holds it).
async fn fill_held_at_one_mib(proxy: &Proxy) -> tokio::task::JoinHandle<Reply> {
    let leader = download_big(proxy);
    let incomplete = proxy.incomplete_path(BIG);
    wait_for("the fill's first MiB", Duration::from_secs(20), || {
        let incomplete = incomplete.clone();
        async move { std::fs::metadata(&incomplete).is_ok_and(|m| m.len() == 1 << 20) }
    })
    .await;
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_the_fill_does_not_bring_in_time_is_answered_by_the_upstream() {
    let glance = fake_glance().await;
    let gate = Gate::new();
    let held = Behaviour::default().hold_after(1 << 20, gate.clone());
    let (_dir, proxy) = proxy_for_big(&glance, held).await;
    let leader = fill_held_at_one_mib(&proxy).await;
    let c = Client::new();
    let direct = format!("{}/v2/images/{BIG}/file", glance.url());
    // On disk already: from the fill. Past what the fill holds: the
    // upstream's answer once the wait runs out, not a 206 that stalls.
    for (range, upstream) in [("bytes=0-1023", 0), ("bytes=-4096", 1)] {
        let got = c
            .get(
                &proxy.file_url(BIG),
                &[("x-auth-token", "ADMIN"), ("range", range)],
            )
            .await;
        let want = c.get(&direct, &[MEMBER, ("range", range)]).await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert!(got.complete(), "{range}: {:?}", got.error);
        assert_eq!(got.body, want.body, "{range}");
        assert_eq!(got.header("content-range"), want.header("content-range"));
        // The comparison's own download is not the proxy's.
        assert_eq!(upstream_ranges(&glance, BIG), 2 * upstream + 1, "{range}");
    }
    let m = proxy.cache.metrics().snapshot();
    assert_eq!((m.range_hits, m.range_misses), (1, 1));
    gate.open();
    assert!(leader.await.unwrap().complete());
    assert_eq!(glance.file_gets(BIG), 1, "one download of the whole image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_of_a_fill_still_waiting_for_its_response_waits_no_longer_than_the_range_wait() {
    let glance = fake_glance().await;
    // The fill's request waits at the upstream for its response; later
    // requests (the range's own) do not.
    let gate = Gate::new();
    let held = Behaviour::default().hold_headers(gate.clone());
    let (_dir, proxy) = proxy_for_big(&glance, held).await;
    let leader = download_big(&proxy);
    wait_for(
        "the fill's request held upstream",
        Duration::from_secs(10),
        || async { gate.waiting() == 1 },
    )
    .await;
    glance.set_behaviour(BIG, Behaviour::default());

    let c = Client::new();
    let range = ("range", "bytes=0-1023");
    let got = tokio::time::timeout(
        Duration::from_secs(10),
        c.get(&proxy.file_url(BIG), &[MEMBER, range]),
    )
    .await
    .expect("the range waited for the fill's response");
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert!(got.complete(), "{:?}", got.error);
    assert_eq!(upstream_ranges(&glance, BIG), 1, "the upstream answered it");
    let direct = format!("{}/v2/images/{BIG}/file", glance.url());
    let want = c.get(&direct, &[MEMBER, range]).await;
    assert_eq!(got.body, want.body);
    gate.open();
    assert!(leader.await.unwrap().complete());
    assert_eq!(glance.file_gets(BIG), 1, "one download of the whole image");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_the_fill_fails_before_reaching_is_answered_by_the_upstream() {
    let glance = fake_glance().await;
    let gate = Gate::new();
    glance.set_behaviour(
        BIG,
        Behaviour::default()
            .hold_after(1 << 20, gate.clone())
            .reset_after(2 << 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), waiting(Duration::from_secs(60))).await;
    let leader = fill_held_at_one_mib(&proxy).await;
    let range = {
        let url = proxy.file_url(BIG);
        tokio::spawn(async move {
            Client::new()
                .get(&url, &[("x-auth-token", "ADMIN"), ("range", "bytes=-4096")])
                .await
        })
    };
    // Its authorization asked: the range has found the fill.
    wait_for(
        "the range's authorization",
        Duration::from_secs(20),
        || async {
            glance.calls().iter().any(|c| {
                c.is_ranged_file_get(BIG)
                    && c.headers.get("range").is_some_and(|v| v == "bytes=0-0")
            })
        },
    )
    .await;
    gate.open();
    let got = range.await.unwrap();
    assert!(
        !leader.await.unwrap().complete(),
        "the upstream broke the fill"
    );
    let want = Client::new()
        .get(
            &format!("{}/v2/images/{BIG}/file", glance.url()),
            &[MEMBER, ("range", "bytes=-4096")],
        )
        .await;
    assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
    assert!(got.complete(), "{:?}", got.error);
    assert_eq!(got.body, want.body);
    assert_eq!(got.header("content-range"), want.header("content-range"));
    let m = proxy.cache.metrics().snapshot();
    assert_eq!((m.range_hits, m.range_misses), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_miss_can_start_a_fill_of_the_whole_image() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        fill_on_range_miss: true,
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    range_of(&proxy, PRIV, "bytes=3-5", b"DEF").await;
    wait_for("the background fill", Duration::from_secs(10), || async {
        proxy
            .cache
            .store()
            .is_cached(&PRIV.parse().unwrap())
            .await
            .unwrap()
    })
    .await;
    // The fill has committed; let it leave the registry too.
    proxy.settle().await;
    let next = c
        .get(&proxy.file_url(PRIV), &[MEMBER, ("range", "bytes=3-5")])
        .await;
    assert_eq!(next.body, b"DEF");
    assert_eq!(
        upstream_ranges(&glance, PRIV),
        1,
        "the second range came from the cache"
    );
    let m = proxy.cache.metrics().snapshot();
    assert_eq!((m.range_misses, m.range_hits), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_miss_is_not_stored_by_default() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new()
        .get(&proxy.file_url(PRIV), &[MEMBER, ("range", "bytes=3-5")])
        .await;
    assert_eq!(r.body, b"DEF");
    proxy.settle().await;
    assert!(proxy.entry(PRIV).await.is_none());
    assert_eq!(glance.file_gets(PRIV), 0);
    assert_eq!(proxy.cache.metrics().snapshot().range_misses, 1);
}
