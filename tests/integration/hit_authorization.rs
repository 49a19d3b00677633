//! Hit authorization against the upstream.

use std::time::Duration;

use crate::proxy::*;
use glance_cache::auth::HitAuthorization;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

fn token(t: &'static str) -> [(&'static str, &'static str); 1] {
    [("x-auth-token", t)]
}

async fn cached(proxy: &Proxy, id: &str) {
    let r = Client::new()
        .get(&proxy.file_url(id), &token("ADMIN"))
        .await;
    assert_eq!(r.status, 200);
    proxy.settle().await;
    assert!(proxy.entry(id).await.is_some(), "{id} cached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_answer_what_the_upstream_would() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cached(&proxy, PRIV).await;
    let c = Client::new();

    let other = c.get(&proxy.file_url(PRIV), &token("OTHER")).await;
    assert_eq!(other.status, 404, "a caller who cannot see the image");
    assert!(
        !other.body.windows(3).any(|w| w == b"ABC"),
        "no image bytes"
    );
    let reader = c.get(&proxy.file_url(PRIV), &token("READER")).await;
    assert_eq!(reader.status, 403, "reader may see but not download");
    let anonymous = c.get(&proxy.file_url(PRIV), &[]).await;
    assert_eq!(anonymous.status, 401);
    let forged = c
        .get(
            &proxy.file_url(PRIV),
            &[("x-roles", "admin"), ("x-identity-status", "Confirmed")],
        )
        .await;
    assert_eq!(forged.status, 401, "identity headers are not credentials");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        proxy.entry(PRIV).await.unwrap().hits,
        0,
        "refusals are not hits"
    );

    let member = c.get(&proxy.file_url(PRIV), &token("MEMBER")).await;
    assert_eq!(member.status, 200);
    assert_eq!(member.body, glance_cache_support::fixture::alphabet());
    assert_eq!(glance.file_gets(PRIV), 1, "served from the cache");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_cached_image_goes_to_the_upstream_in_metadata_mode() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    // The image record says "deactivated": the upstream decides.
    let opts = ProxyOptions {
        authz: HitAuthorization::Metadata,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    cached(&proxy, DEACT).await;
    glance.set_status(
        DEACT,
        glance_cache_support::fake_glance::ImageStatus::Deactivated,
    );
    let c = Client::new();
    let member = c.get(&proxy.file_url(DEACT), &token("MEMBER")).await;
    assert_eq!(member.status, 403, "upstream's answer relayed");
    let before = glance.file_gets(DEACT);
    let admin = c.get(&proxy.file_url(DEACT), &token("ADMIN")).await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.body, b"DEACTDATA");
    assert_eq!(
        glance.file_gets(DEACT),
        before + 1,
        "admin's bytes came from the upstream"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(proxy.entry(DEACT).await.unwrap().hits, 0);
    assert!(
        proxy.cached_path(DEACT).exists(),
        "deactivation does not invalidate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deactivated_cached_image_is_refused_to_members_and_served_to_admins_in_probe_mode() {
    // One round trip: the download probe. Glance refuses it to non-admins
    // (403, relayed); an admin's probe passes, and the admin gets the bytes
    // Glance would send from its store (checked against Glance 33).
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cached(&proxy, DEACT).await;
    glance.set_status(
        DEACT,
        glance_cache_support::fake_glance::ImageStatus::Deactivated,
    );
    let c = Client::new();
    let member = c.get(&proxy.file_url(DEACT), &token("MEMBER")).await;
    assert_eq!(member.status, 403, "upstream's answer relayed");
    assert_ne!(member.body, b"DEACTDATA");
    let before = glance.file_gets(DEACT);
    let admin = c.get(&proxy.file_url(DEACT), &token("ADMIN")).await;
    assert_eq!(admin.status, 200);
    assert_eq!(admin.body, b"DEACTDATA");
    assert_eq!(glance.file_gets(DEACT), before, "served from the cache");
    assert!(
        proxy.cached_path(DEACT).exists(),
        "deactivation does not invalidate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_deleted_through_another_node_is_never_served() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cached(&proxy, PUB).await;
    // Deleted directly at the upstream: this proxy never saw the DELETE.
    let del = Client::new()
        .delete(
            &format!("{}/v2/images/{PUB}", glance.url()),
            &token("ADMIN"),
        )
        .await;
    assert_eq!(del.status, 204);
    let r = Client::new()
        .get(&proxy.file_url(PUB), &token("MEMBER"))
        .await;
    assert_eq!(r.status, 404);
    assert_ne!(r.body, b"IMAGEDATA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_remembered_per_token_only() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        ttl: Duration::from_secs(30),
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    cached(&proxy, PRIV).await;
    let c = Client::new();
    let probes = || glance.ranged_file_gets(PRIV);

    let base = probes();
    assert_eq!(
        c.get(&proxy.file_url(PRIV), &token("MEMBER")).await.status,
        200
    );
    assert_eq!(probes(), base + 1);
    assert_eq!(
        c.get(&proxy.file_url(PRIV), &token("MEMBER")).await.status,
        200
    );
    assert_eq!(probes(), base + 1, "second hit within the TTL asks nothing");
    // Another token never rides on MEMBER's answer.
    assert_eq!(
        c.get(&proxy.file_url(PRIV), &token("OTHER")).await.status,
        404
    );
    assert_eq!(probes(), base + 2);
    assert_eq!(
        c.get(&proxy.file_url(PRIV), &token("OTHER")).await.status,
        404
    );
    assert_eq!(probes(), base + 3, "refusals are not remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_ttl_asks_every_time_and_probe_is_ranged() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    cached(&proxy, PUB).await;
    let c = Client::new();
    let (m0, r0) = (glance.metadata_gets(PUB), glance.ranged_file_gets(PUB));
    for _ in 0..3 {
        assert_eq!(
            c.get(&proxy.file_url(PUB), &token("MEMBER")).await.status,
            200
        );
    }
    assert_eq!(
        glance.metadata_gets(PUB),
        m0,
        "one round trip: no image record"
    );
    assert_eq!(glance.ranged_file_gets(PUB), r0 + 3);
    assert_eq!(glance.file_gets(PUB), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_mode_skips_the_download_probe_and_none_mode_asks_nothing() {
    let glance = fake_glance().await;
    for (mode, metadata, ranged) in [
        (HitAuthorization::Metadata, 1, 0),
        (HitAuthorization::None, 0, 0),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let opts = ProxyOptions {
            authz: mode,
            ..Default::default()
        };
        let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
        cached(&proxy, PUB).await;
        let (m0, r0) = (glance.metadata_gets(PUB), glance.ranged_file_gets(PUB));
        let hit = Client::new()
            .get(&proxy.file_url(PUB), &token("MEMBER"))
            .await;
        assert_eq!(hit.body, b"IMAGEDATA");
        assert_eq!(glance.metadata_gets(PUB) - m0, metadata, "{mode:?}");
        assert_eq!(glance.ranged_file_gets(PUB) - r0, ranged, "{mode:?}");
        if mode == HitAuthorization::None {
            assert_eq!(
                hit.header("content-md5"),
                Some(PUB_MD5),
                "checksum from the index"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_fill_are_authorized_too() {
    let glance = fake_glance().await;
    glance.set_behaviour(
        BIG,
        glance_cache_support::fake_glance::Behaviour::default().rate(20 << 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let leader = {
        let c = c.clone();
        let url = proxy.file_url(BIG);
        tokio::spawn(async move { c.get(&url, &token("MEMBER")).await })
    };
    wait_for("fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    let anonymous = c.get(&proxy.file_url(BIG), &[]).await;
    assert_eq!(
        anonymous.status, 401,
        "joining a fill needs the upstream's consent"
    );
    let leader = leader.await.unwrap();
    assert!(leader.complete());
    assert_eq!(
        leader.body.len() as u64,
        glance_cache_support::fixture::BIG_SIZE
    );
    assert_eq!(glance.file_gets(BIG), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_with_the_leaders_credentials_are_not_asked_again() {
    let glance = fake_glance().await;
    glance.set_behaviour(
        BIG,
        glance_cache_support::fake_glance::Behaviour::default().rate(20 << 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let get = |t: &'static str| {
        let c = c.clone();
        let url = proxy.file_url(BIG);
        tokio::spawn(async move { c.get(&url, &token(t)).await })
    };
    let leader = get("MEMBER");
    wait_for("fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    let same: Vec<_> = (0..3).map(|_| get("MEMBER")).collect();
    let other = get("ADMIN");
    for r in same.into_iter().chain([leader, other]) {
        let r = r.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(r.body.len() as u64, glance_cache_support::fixture::BIG_SIZE);
    }
    assert_eq!(glance.file_gets(BIG), 1, "one upstream download");
    assert_eq!(
        (glance.metadata_gets(BIG), glance.ranged_file_gets(BIG)),
        (1, 1),
        "only the follower with other credentials was authorized (one probe); the leader's \
         fill asked for the image record (its multihash)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_too_slow_or_overloaded_to_authorize_gets_a_prompt_503_never_a_forwarded_download(
) {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(
        &glance.url(),
        dir.path(),
        ProxyOptions {
            ttl: Duration::ZERO,
            authorization_limits: Some((1, Duration::from_secs(1))),
            ..ProxyOptions::default()
        },
    )
    .await;
    cached(&proxy, PUB).await;
    let full_gets = glance.file_gets(PUB);
    let c = Client::new();

    // The probe takes 3 s: past the 1 s bound, every hit is a prompt 503.
    glance.set_behaviour(
        PUB,
        Behaviour::default().header_delay(Duration::from_secs(3)),
    );
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all(["MEMBER", "READER", "ADMIN"].map(|t| {
        let (c, url) = (c.clone(), proxy.file_url(PUB));
        async move { c.get(&url, &token(t)).await }
    }))
    .await;
    for r in &answers {
        assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.header("retry-after"), Some("5"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "before the upstream answered"
    );

    // An upstream that says it is overloaded: the same.
    glance.set_behaviour(
        PUB,
        Behaviour::default().force_status(http::StatusCode::SERVICE_UNAVAILABLE),
    );
    let r = c.get(&proxy.file_url(PUB), &token("MEMBER")).await;
    assert_eq!(r.status, 503);

    // No whole download of the cached image went upstream meanwhile.
    assert_eq!(glance.file_gets(PUB), full_gets);

    // Healthy again: served from the cache.
    glance.clear_behaviour(PUB);
    let r = c.get(&proxy.file_url(PUB), &token("MEMBER")).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_slice()),
        (200, &b"IMAGEDATA"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_hits_with_the_same_credentials_share_one_authorization() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(
        &glance.url(),
        dir.path(),
        ProxyOptions {
            // Nothing remembered: only sharing the question in flight can
            // spare the upstream.
            ttl: Duration::ZERO,
            ..ProxyOptions::default()
        },
    )
    .await;
    cached(&proxy, PRIV).await;
    let probes = glance.ranged_file_gets(PRIV);
    glance.set_behaviour(
        PRIV,
        Behaviour::default().header_delay(Duration::from_millis(500)),
    );
    let c = Client::new();
    let answers = futures_util::future::join_all((0..80).map(|i| {
        let (c, url) = (c.clone(), proxy.file_url(PRIV));
        let t = if i % 2 == 0 { "MEMBER" } else { "OTHER" };
        async move { (t, c.get(&url, &token(t)).await) }
    }))
    .await;
    for (t, r) in &answers {
        match *t {
            "MEMBER" => assert_eq!((r.status.as_u16(), &r.body), (200, &alphabet())),
            _ => {
                // Every refused caller gets the upstream's whole refusal.
                assert_eq!(r.status, 404);
                assert!(!r.body.is_empty(), "the refusal's body is relayed");
            }
        }
    }
    assert_eq!(
        glance.ranged_file_gets(PRIV) - probes,
        2,
        "one probe per credentials, however many hits wait for it"
    );
    assert_eq!(glance.file_gets(PRIV), 1, "no download went upstream");
}
