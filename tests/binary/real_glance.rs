//! The proxy binary in front of a REAL Glance API (glance-api under uWSGI,
//! installed by tests/harness/setup-python.sh). In CI a missing Glance
//! fails these tests; elsewhere they are skipped with a message.

use std::path::Path;
use std::time::Duration;

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::real_glance::{identity_headers, GlanceAuth, RealGlance};
use glance_cache_support::wait::*;

fn image_file(dir: &Path, len: usize) -> std::path::PathBuf {
    let path = dir.join("image.raw");
    let data: Vec<u8> = (0..len).map(|i| ((i * 7919) % 251) as u8).collect();
    std::fs::write(&path, data).unwrap();
    path
}

async fn start_glance(auth: GlanceAuth) -> RealGlance {
    tokio::task::spawn_blocking(move || RealGlance::start(auth))
        .await
        .unwrap()
}

/// The indexed entry, read without adopting or reconciling anything (the
/// proxy process owns the directory).
async fn entry(cache: &Path, id: &str) -> Option<glance_cache::store::CacheEntry> {
    let store = glance_cache::store::CacheStore::builder(cache)
        .with_reconcile(false)
        .open()
        .await
        .unwrap();
    store
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.image_id.as_str() == id)
}

/// Waits until the fill of `id` is committed and indexed, then a little
/// more for the proxy to retire the fill (its last step).
async fn committed(cache: &Path, id: &str) {
    wait_for(
        "the fill to be committed and indexed",
        Duration::from_secs(30),
        || async { entry(cache, id).await.is_some() },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_glance_miss_hit_and_delete_through_the_proxy() {
    let glance = start_glance(GlanceAuth::NoAuth).await;
    let dir = tempfile::tempdir().unwrap();
    let file = image_file(dir.path(), 5 << 20);
    let want = RealGlance::md5_of(&file);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url, "");
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{id}/file", proxy.url);

    let miss = c.get(&url, &[]).await;
    assert_eq!(miss.status, 200, "{}", glance.log_tail(20));
    assert!(miss.complete());
    assert_eq!(md5_hex(&miss.body), want);
    assert_eq!(miss.header("content-md5"), Some(want.as_str()));
    committed(&cache, &id).await;

    let hit = c.get(&url, &[]).await;
    assert_eq!(hit.status, 200);
    assert_eq!(md5_hex(&hit.body), want);
    assert_eq!(
        hit.header("content-md5"),
        Some(want.as_str()),
        "Glance's hit headers"
    );
    assert_eq!(hit.header("content-length"), Some("5242880"));
    assert_eq!(hit.header("content-type"), Some("application/octet-stream"));
    let cached = entry(&cache, &id).await.expect("indexed");
    assert!(cached.verified);
    wait_for("the hit to be counted", Duration::from_secs(10), || async {
        entry(&cache, &id).await.map(|e| e.hits) == Some(1)
    })
    .await;

    // A range of the cached image is answered from the cache.
    let ranged = c.get(&url, &[("range", "bytes=0-99")]).await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body.len(), 100);
    assert_eq!(ranged.header("content-range"), Some("bytes 0-99/5242880"));

    // An accepted delete removes the entry; Glance then answers 404.
    let del = c
        .delete(&format!("{}/v2/images/{id}", proxy.url), &[])
        .await;
    assert_eq!(del.status, 204);
    assert!(!cache.join(&id).exists());
    assert_eq!(c.get(&url, &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_glance_policies_decide_every_hit() {
    let glance = start_glance(GlanceAuth::Headers).await;
    let dir = tempfile::tempdir().unwrap();
    let file = image_file(dir.path(), 1 << 20);
    let want = RealGlance::md5_of(&file);
    let owner = identity_headers("member,reader", "u-member", "project-x");
    let body = serde_json::json!({
        "name": "private", "disk_format": "raw", "container_format": "bare", "visibility": "private"
    });
    let id = tokio::task::block_in_place(|| glance.create_image_with(&file, &body, &owner));
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url, "");
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{id}/file", proxy.url);
    let as_ = |h: &Vec<(String, String)>| {
        h.iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    let get = |h: Vec<(String, String)>| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c.get(&url, &refs).await
        }
    };

    let miss = get(as_(&owner)).await;
    assert_eq!(miss.status, 200);
    assert_eq!(md5_hex(&miss.body), want);
    committed(&cache, &id).await;

    let reader = get(identity_headers("reader", "u-reader", "project-x")).await;
    assert_eq!(
        reader.status, 403,
        "Glance: a reader may see but not download"
    );
    let stranger = get(identity_headers("member,reader", "u-other", "project-y")).await;
    assert_eq!(
        stranger.status, 404,
        "Glance: a private image of another project"
    );
    let anonymous = get(vec![]).await;
    assert_eq!(anonymous.status, 401);
    let again = get(as_(&owner)).await;
    assert_eq!(again.status, 200);
    assert_eq!(md5_hex(&again.body), want);
    wait_for(
        "exactly the owner's hit counted",
        Duration::from_secs(10),
        || async { entry(&cache, &id).await.map(|e| e.hits) == Some(1) },
    )
    .await;
}

/// Hit authorization is one ranged probe; what that tells for a
/// deactivated and for an empty image, checked against Glance itself: a
/// member's hit of a deactivated image is refused as Glance refuses its
/// download (403), an admin's is served (Glance would send the admin the
/// same bytes), and an empty image's hit answers what Glance answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_glance_one_probe_decides_deactivated_and_empty_images() {
    let glance = start_glance(GlanceAuth::Headers).await;
    let dir = tempfile::tempdir().unwrap();
    let admin = glance.admin_headers();
    let public = serde_json::json!({
        "name": "public", "disk_format": "raw", "container_format": "bare", "visibility": "public"
    });
    let file = image_file(dir.path(), 1 << 20);
    let want = RealGlance::md5_of(&file);
    let id = tokio::task::block_in_place(|| glance.create_image_with(&file, &public, &admin));
    let empty_file = dir.path().join("empty.raw");
    std::fs::write(&empty_file, b"").unwrap();
    let empty =
        tokio::task::block_in_place(|| glance.create_image_with(&empty_file, &public, &admin));
    let cache = dir.path().join("cache");
    let port = free_port();
    // Every hit asks (no answer remembered), so the deactivation shows at once.
    let no_memory = "authorization_cache_ttl = 0";
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url, no_memory);
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let member = identity_headers("member,reader", "u-member", "project-x");
    let get = |base: &str, image: &str, h: &Vec<(String, String)>| {
        let (c, url) = (c.clone(), format!("{base}/v2/images/{image}/file"));
        let h = h.clone();
        async move {
            let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            c.get(&url, &refs).await
        }
    };
    for image in [&id, &empty] {
        assert_eq!(get(&proxy.url, image, &member).await.status, 200);
        committed(&cache, image).await;
    }

    // The empty image: the probe is Glance's 416; the hit is Glance's answer.
    let direct = get(&glance.url, &empty, &member).await;
    let hit = get(&proxy.url, &empty, &member).await;
    assert_eq!((hit.status, hit.body.len()), (direct.status, 0));
    assert_eq!(hit.header("content-md5"), direct.header("content-md5"));
    assert_eq!(hit.header("content-length"), Some("0"));

    let (status, _) = tokio::task::block_in_place(|| {
        glance.curl(
            &["-X", "POST"],
            &admin,
            &format!("/v2/images/{id}/actions/deactivate"),
        )
    });
    assert_eq!(status, 204);
    let direct = get(&glance.url, &id, &member).await;
    let refused = get(&proxy.url, &id, &member).await;
    assert_eq!(direct.status, 403, "Glance refuses a member");
    assert_eq!(refused.status, 403, "so does a hit");
    assert!(String::from_utf8_lossy(&refused.body).contains("deactivated"));
    let served = get(&proxy.url, &id, &admin).await;
    assert_eq!(served.status, 200);
    assert!(served.complete());
    assert_eq!(md5_hex(&served.body), want);
}

/// Ranges of a cached image through the proxy answer what Glance itself
/// answers (status, bytes, Content-Range, Content-MD5, Content-Length,
/// Content-Type; the 416's text), and come from the cache; and the fill was
/// checked against Glance's own SHA-512 of the image.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_glance_ranges_through_the_proxy_answer_as_glance_does() {
    let glance = start_glance(GlanceAuth::NoAuth).await;
    let dir = tempfile::tempdir().unwrap();
    let size = 1usize << 20;
    let file = image_file(dir.path(), size);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let cache = dir.path().join("cache");
    let (port, admin) = (free_port(), free_port());
    let extra = format!("admin_listen = 127.0.0.1:{admin}");
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url, &extra);
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{id}/file", proxy.url);
    let direct = format!("{}/v2/images/{id}/file", glance.url);
    assert!(c.get(&url, &[]).await.complete());
    committed(&cache, &id).await;
    let record = tokio::task::block_in_place(|| glance.image_json(&id, &[]));
    let multihash = entry(&cache, &id).await.unwrap().multihash.unwrap();
    assert_eq!(
        multihash.algorithm.name(),
        record["os_hash_algo"].as_str().unwrap()
    );
    assert_eq!(multihash.value, record["os_hash_value"].as_str().unwrap());

    let served_here = [
        "bytes=0-99",
        "bytes=1000-1999",
        "bytes=-10",
        "bytes=-2000000",
        "bytes=0-0",
        "bytes=1048575-",
        "bytes=1048000-2000000",
    ];
    // Past the end: Glance's own 416, whose text follows the Accept header.
    let past_the_end = ["bytes=1048576-", "bytes=2000000-"];
    for range in served_here.into_iter().chain(past_the_end) {
        let want = c.get(&direct, &[("range", range)]).await;
        let got = c.get(&url, &[("range", range)]).await;
        assert_eq!(got.status, want.status, "{range}");
        assert_eq!(got.body, want.body, "{range}");
        for h in ["content-type", "content-md5", "content-length"] {
            assert_eq!(got.header(h), want.header(h), "{range}: {h}");
        }
        if want.status == 206 {
            assert_eq!(
                got.header("content-range"),
                want.header("content-range"),
                "{range}"
            );
        } else {
            assert_eq!(want.status, 416, "{range}");
            assert_eq!(
                got.header("content-range"),
                Some("bytes */1048576"),
                "{range}"
            );
        }
    }
    // Left to Glance: several ranges, garbage.
    for accept in ["text/html", "application/json"] {
        let headers = [("range", "bytes=2000000-"), ("accept", accept)];
        let want = c.get(&direct, &headers).await;
        let got = c.get(&url, &headers).await;
        assert_eq!(
            (got.status, &got.body),
            (want.status, &want.body),
            "{accept}"
        );
        assert_eq!(
            got.header("content-type"),
            want.header("content-type"),
            "{accept}"
        );
    }
    let malformed: [&[(&str, &str)]; 6] = [
        &[("range", "bytes=0-1,5-6")],
        &[("range", "bytes=abc")],
        &[("range", "bytes=5-2")],
        &[("range", "")],
        &[("range", "bytes=\t0-9")],
        &[("range", "bytes=0-1,5-6"), ("if-range", "\"x\"")],
    ];
    for headers in malformed {
        let want = c.get(&direct, headers).await;
        let got = c.get(&url, headers).await;
        assert_eq!(got.status, want.status, "{headers:?}");
        assert!(
            got.body == want.body,
            "{headers:?}: {} bytes, Glance's {}: {:?}",
            got.body.len(),
            want.body.len(),
            String::from_utf8_lossy(&want.body)
        );
    }
    let metrics = c
        .get(&format!("http://127.0.0.1:{admin}/metrics"), &[])
        .await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains(&format!(
            "\nglance_cache_range_hits_total {}\n",
            served_here.len()
        )),
        "{text}"
    );
}
