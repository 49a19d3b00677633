//! The cache management API answered by the proxy. Authorization here is a static admin
//! token; role-based refusals (403) are tested against Keystone.

use std::time::Duration;

use crate::proxy::*;
use bytes::Bytes;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{FakeImage, RunningFakeGlance, Visibility};
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;
use http::Method;
use serde_json::Value;

const ADMIN: (&str, &str) = ("x-auth-token", "ADMIN");

struct Api {
    c: Client,
    base: String,
}

impl Api {
    fn new(proxy: &Proxy) -> Api {
        Api {
            c: Client::new(),
            base: proxy.url.clone(),
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> glance_cache_support::client::Reply {
        self.c
            .request(
                method,
                &format!("{}{path}", self.base),
                headers,
                Bytes::new(),
            )
            .await
    }

    async fn admin(&self, method: Method, path: &str) -> glance_cache_support::client::Reply {
        self.call(method, path, &[ADMIN]).await
    }

    /// (cached ids, queued ids)
    async fn listing(&self) -> (Vec<String>, Vec<String>) {
        let r = self.admin(Method::GET, "/v2/cache").await;
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let doc: Value = serde_json::from_slice(&r.body).unwrap();
        let cached = doc["cached_images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["image_id"].as_str().unwrap().to_string())
            .collect();
        let queued = doc["queued_images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        (cached, queued)
    }

    async fn download(&self, id: &str) {
        let r = self
            .admin(Method::GET, &format!("/v2/images/{id}/file"))
            .await;
        assert_eq!(r.status, 200);
        assert!(r.complete());
    }
}

fn paused() -> ProxyOptions {
    ProxyOptions {
        prefetch: false,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_listing_and_version_discovery_with_the_cache_versions() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let r = api.admin(Method::GET, "/v2/cache").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.body, br#"{"cached_images":[],"queued_images":[]}"#);
    let r18 = api.admin(Method::GET, "/v2.18/cache").await;
    assert_eq!(r18.body, r.body, "/v2.18/ behaves like /v2/");

    let v = api.call(Method::GET, "/versions", &[]).await;
    assert_eq!(v.status, 200);
    let doc: Value = serde_json::from_slice(&v.body).unwrap();
    let versions = doc["versions"].as_array().unwrap();
    let status = |id: &str| {
        versions
            .iter()
            .find(|v| v["id"] == id)
            .map(|v| v["status"].clone())
    };
    assert_eq!(status("v2.18"), Some("CURRENT".into()));
    for id in ["v2.14", "v2.16", "v2.17"] {
        assert_eq!(status(id), Some("SUPPORTED".into()), "{id}");
    }
    assert!(status("v2.0").is_some(), "the upstream's versions are kept");
    for v in versions {
        let href = v["links"][0]["href"].as_str().unwrap();
        assert_eq!(href, format!("{}/v2/", proxy.url));
    }
    let root = api.call(Method::GET, "/", &[]).await;
    assert_eq!(root.status, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoint_is_the_base_of_version_hrefs() {
    use glance_cache::reverse_proxy::ReverseProxy;
    use glance_cache::{GlanceCache, Stack};

    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let store = glance_cache::store::CacheStore::builder(dir.path())
        .open()
        .await
        .unwrap();
    let cache = GlanceCache::builder(store).build();
    let service = Stack::builder(&cache)
        .management(glance_cache::auth::manage::ManagementAuth::open())
        .public_endpoint(Some("https://images.example.org/".parse().unwrap()))
        .upstream(ReverseProxy::new(glance.url().parse().unwrap()))
        .build();
    let served = serve_service(service).await;
    let v = Client::new()
        .get(&format!("{}/versions", served.url), &[])
        .await;
    let doc: Value = serde_json::from_slice(&v.body).unwrap();
    assert_eq!(
        doc["versions"][0]["links"][0]["href"],
        "https://images.example.org/v2/"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_an_image_caches_it_at_once() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let r = api.admin(Method::PUT, &format!("/v2/cache/{PUB}")).await;
    assert_eq!(r.status, 202);
    assert!(r.body.is_empty());
    wait_for(
        "PUB cached and the queue empty",
        Duration::from_secs(10),
        || async { api.listing().await == (vec![PUB.to_string()], vec![]) },
    )
    .await;
    assert_eq!(glance.file_gets(PUB), 1);
    assert_eq!(std::fs::read(proxy.cached_path(PUB)).unwrap(), b"IMAGEDATA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_unknown_inactive_or_forbidden_images_is_refused() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let unknown = api
        .admin(Method::PUT, "/v2/cache/non-existing-image-id")
        .await;
    assert_eq!(unknown.status, 404);
    let unknown_uuid = api
        .admin(
            Method::PUT,
            "/v2/cache/99999999-9999-4999-8999-999999999999",
        )
        .await;
    assert_eq!(unknown_uuid.status, 404);
    let queued = api.admin(Method::PUT, &format!("/v2/cache/{QUEUED}")).await;
    assert_eq!(queued.status, 400);
    assert!(String::from_utf8_lossy(&queued.body).contains("Only images with status active"));
    let anonymous = api
        .call(Method::PUT, &format!("/v2/cache/{PUB}"), &[])
        .await;
    assert_eq!(anonymous.status, 401);
    assert!(api.listing().await.1.is_empty(), "nothing was queued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_image_stays_queued_when_the_image_is_deleted() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), paused()).await;
    let api = Api::new(&proxy);
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{PUB}"))
            .await
            .status,
        202
    );
    assert_eq!(
        api.admin(Method::DELETE, &format!("/v2/images/{PUB}"))
            .await
            .status,
        204
    );
    assert_eq!(api.listing().await.1, vec![PUB.to_string()]);
    assert_eq!(
        api.admin(Method::DELETE, &format!("/v2/cache/{PUB}"))
            .await
            .status,
        204
    );
    assert!(api.listing().await.1.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_entry() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    api.download(PUB).await;
    proxy.settle().await;
    assert_eq!(api.listing().await.0, vec![PUB.to_string()]);
    let r = api.admin(Method::DELETE, &format!("/v2/cache/{PUB}")).await;
    assert_eq!(r.status, 204);
    assert!(api.listing().await.0.is_empty());
    assert!(!proxy.cached_path(PUB).exists());
    let r = api
        .admin(Method::DELETE, "/v2/cache/non-existing-image-id")
        .await;
    assert_eq!(r.status, 404);
    // An existing image that is not cached: idempotent 204.
    assert_eq!(
        api.admin(Method::DELETE, &format!("/v2/cache/{PRIV}"))
            .await
            .status,
        204
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_the_cache_the_queue_or_both() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), paused()).await;
    let api = Api::new(&proxy);
    api.download(PUB).await;
    proxy.settle().await;
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{PRIV}"))
            .await
            .status,
        202
    );
    let clear = |target: Option<&'static str>| {
        let api = &api;
        async move {
            let mut h = vec![ADMIN];
            if let Some(t) = target {
                h.push(("x-image-cache-clear-target", t));
            }
            api.call(Method::DELETE, "/v2/cache", &h).await
        }
    };
    let bad = clear(Some("both")).await;
    assert_eq!(bad.status, 400);
    assert!(bad
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(
        api.listing().await,
        (vec![PUB.to_string()], vec![PRIV.to_string()]),
        "nothing deleted"
    );

    assert_eq!(clear(Some("queue")).await.status, 204);
    assert_eq!(api.listing().await, (vec![PUB.to_string()], vec![]));
    api.admin(Method::PUT, &format!("/v2/cache/{PRIV}")).await;
    assert_eq!(clear(Some("CACHE")).await.status, 204);
    assert_eq!(api.listing().await, (vec![], vec![PRIV.to_string()]));
    assert!(!proxy.cached_path(PUB).exists());
    api.download(PUB).await;
    proxy.settle().await;
    assert_eq!(clear(None).await.status, 204);
    assert_eq!(api.listing().await, (vec![], vec![]));
    assert!(
        dir.path().join("cache.db").exists(),
        "the index survives a clear"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_and_prune_of_an_empty_cache() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let (x, old, new) = (
        "aaaaaaaa-0000-4000-8000-000000000001",
        "aaaaaaaa-0000-4000-8000-000000000002",
        "aaaaaaaa-0000-4000-8000-000000000003",
    );
    std::fs::write(dir.path().join("invalid").join(x), b"bad").unwrap();
    std::fs::write(dir.path().join("incomplete").join(old), b"old").unwrap();
    std::fs::write(dir.path().join("incomplete").join(new), b"new").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("incomplete").join(old))
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let r = api.admin(Method::POST, "/v2/cache/clean").await;
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert!(!dir.path().join("invalid").join(x).exists());
    assert!(!dir.path().join("incomplete").join(old).exists());
    assert!(dir.path().join("incomplete").join(new).exists());

    let p = api.admin(Method::POST, "/v2/cache/prune").await;
    assert_eq!(p.status, 200);
    let doc: Value = serde_json::from_slice(&p.body).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"total_files_pruned": 0, "total_bytes_pruned": 0})
    );
}

async fn add_images(glance: &RunningFakeGlance, n: u8, size: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let id = format!("bbbbbbbb-0000-4000-8000-0000000000{i:02x}");
        glance
            .add_image(
                FakeImage::new(&id)
                    .bytes(vec![i; size])
                    .visibility(Visibility::Public),
            )
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_the_least_recently_used_first() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        max_size: 5120,
        authz: glance_cache::auth::HitAuthorization::None,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let api = Api::new(&proxy);
    let ids = add_images(&glance, 11, 1024).await;
    let (ten, last) = ids.split_at(10);
    for id in ten {
        api.download(id).await;
        proxy.settle().await;
    }
    for id in ten {
        api.download(id).await; // hits, in order
        let id = id.clone();
        wait_for("hit counted", Duration::from_secs(5), || {
            let p = &proxy;
            let id = id.clone();
            async move { p.entry(&id).await.map(|e| e.hits) == Some(1) }
        })
        .await;
    }
    api.download(&last[0]).await;
    proxy.settle().await;
    let r = api.admin(Method::POST, "/v2/cache/prune").await;
    let doc: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"total_files_pruned": 6, "total_bytes_pruned": 6144})
    );
    let (cached, _) = api.listing().await;
    let mut want: Vec<String> = ids[6..].to_vec();
    want.sort();
    assert_eq!(cached, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_stops_under_the_limit_and_prunes_run_one_at_a_time() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        max_size: 102_400,
        authz: glance_cache::auth::HitAuthorization::None,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let api = Api::new(&proxy);
    for id in add_images(&glance, 15, 10_240).await {
        api.download(&id).await;
        proxy.settle().await;
    }
    // Two prunes at once: one does the work, the other finds nothing to do.
    let (a, b) = tokio::join!(
        api.admin(Method::POST, "/v2/cache/prune"),
        api.admin(Method::POST, "/v2/cache/prune")
    );
    assert_eq!((a.status.as_u16(), b.status.as_u16()), (200, 200));
    let files = |r: &glance_cache_support::client::Reply| {
        serde_json::from_slice::<Value>(&r.body).unwrap()["total_files_pruned"]
            .as_u64()
            .unwrap()
    };
    let bytes = |r: &glance_cache_support::client::Reply| {
        serde_json::from_slice::<Value>(&r.body).unwrap()["total_bytes_pruned"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(files(&a) + files(&b), 5);
    assert_eq!(bytes(&a) + bytes(&b), 51_200);
    assert_eq!(api.listing().await.0.len(), 10);
    assert_eq!(
        files_in(dir.path())
            .iter()
            .filter(|n| n.len() == 36)
            .count(),
        10
    );
    let again = api.admin(Method::POST, "/v2/cache/prune").await;
    assert_eq!(files(&again), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_prune_keeps_the_size_limit_without_cron() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        max_size: 30_000,
        auto_prune: true,
        authz: glance_cache::auth::HitAuthorization::None,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let api = Api::new(&proxy);
    for id in add_images(&glance, 6, 10_240).await {
        api.download(&id).await;
        proxy.settle().await;
    }
    // Prune removes a file, then its row: wait for both views to settle.
    wait_for(
        "the cache back under its limit, files and index",
        Duration::from_secs(30),
        || async {
            proxy.store().cache_size().await.unwrap() <= 30_000 && api.listing().await.0.len() == 2
        },
    )
    .await;
    assert_eq!(proxy.store().cache_size().await.unwrap(), 20_480);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_cache_management_endpoints() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let put = api
        .admin(Method::PUT, &format!("/v2/queued_images/{PUB}"))
        .await;
    assert_eq!(
        (put.status.as_u16(), put.body.as_slice()),
        (200, &b"null"[..])
    );
    let list = api.admin(Method::GET, "/v2/queued_images").await;
    assert_eq!(
        list.body,
        format!(r#"{{"queued_images":["{PUB}"]}}"#).as_bytes()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(glance.file_gets(PUB), 0, "the legacy PUT does not fetch");
    assert_eq!(
        api.admin(Method::DELETE, &format!("/v2/queued_images/{PUB}"))
            .await
            .status,
        200
    );
    api.admin(Method::PUT, &format!("/v2/queued_images/{PUB}"))
        .await;
    api.admin(Method::PUT, &format!("/v2/queued_images/{PRIV}"))
        .await;
    let all = api.admin(Method::DELETE, "/v2/queued_images").await;
    assert_eq!(all.body, br#"{"num_deleted":2}"#);

    api.download(PUB).await;
    proxy.settle().await;
    let cached = api.admin(Method::GET, "/v2/cached_images").await;
    let doc: Value = serde_json::from_slice(&cached.body).unwrap();
    let row = &doc["cached_images"][0];
    assert_eq!(row["image_id"], PUB);
    assert_eq!(row["size"], 9);
    assert!(row["last_accessed"].is_number() && row["last_modified"].is_number());
    assert_eq!(
        api.admin(Method::DELETE, &format!("/v2/cached_images/{PUB}"))
            .await
            .status,
        200
    );
    api.download(PUB).await;
    proxy.settle().await;
    let all = api.admin(Method::DELETE, "/v2/cached_images").await;
    assert_eq!(all.body, br#"{"num_deleted":1}"#);
    // Ids are validated: a file name never reaches the filesystem.
    let bad = api.admin(Method::PUT, "/v2/queued_images/cache.db").await;
    assert_eq!(bad.status, 400);
    assert!(dir.path().join("cache.db").exists());
    let anonymous = api.call(Method::GET, "/v2/cached_images", &[]).await;
    assert_eq!(anonymous.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_wrong_methods_and_request_bodies_answer_as_glance() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    assert_eq!(
        api.admin(Method::GET, &format!("/v2/cache/nodes/{PUB}"))
            .await
            .status,
        409
    );
    for (m, p, allow) in [
        (Method::POST, "/v2/cache".to_string(), "GET, DELETE"),
        (Method::GET, format!("/v2/cache/{PUB}"), "DELETE, PUT"),
        (Method::GET, "/v2/cache/clean".to_string(), "POST"),
        (Method::DELETE, "/v2/cache/prune".to_string(), "POST"),
        (Method::DELETE, format!("/v2/cache/nodes/{PUB}"), "GET"),
    ] {
        let r = api.admin(m.clone(), &p).await;
        assert_eq!(r.status, 405, "{m} {p}");
        assert_eq!(r.header("allow"), Some(allow), "{m} {p}");
    }
    let with_body = |m: Method, p: &'static str, body: &'static str| {
        let api = &api;
        async move {
            api.c
                .request(
                    m,
                    &format!("{}{p}", api.base),
                    &[ADMIN],
                    Bytes::from_static(body.as_bytes()),
                )
                .await
        }
    };
    assert_eq!(with_body(Method::GET, "/v2/cache", "{}").await.status, 400);
    let malformed = with_body(Method::POST, "/v2/cache/prune", "{not json").await;
    assert_eq!(malformed.status, 400);
    assert!(String::from_utf8_lossy(&malformed.body).contains("Malformed JSON"));
    assert_eq!(
        with_body(Method::POST, "/v2/cache/clean", r#"{"a": 1}"#)
            .await
            .status,
        400
    );
    // Without credentials the answer is 401 whatever the body: Glance
    // authenticates before it reads one (a 10 MB body, a malformed one).
    let head = glance_cache_support::client::raw_request(
        proxy.addr,
        "POST /v2/cache/prune HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n",
    )
    .await;
    assert!(
        head.starts_with("HTTP/1.1 401"),
        "answered before the body: {head}"
    );
    let r = api
        .c
        .request(
            Method::POST,
            &format!("{}/v2/cache/prune", api.base),
            &[],
            Bytes::from_static(b"{not json"),
        )
        .await;
    assert_eq!(r.status, 401);
    let json_err = api
        .call(
            Method::GET,
            "/v2/cache/nodes/x",
            &[ADMIN, ("accept", "application/json")],
        )
        .await;
    let doc: Value = serde_json::from_slice(&json_err.body).unwrap();
    assert_eq!(doc["code"], "409 Conflict");
    assert_eq!(api.admin(Method::GET, "/v2/cache/").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_a_cached_image_again_downloads_nothing() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    api.download(PUB).await;
    proxy.settle().await;
    let before = proxy.entry(PUB).await.unwrap();
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{PUB}"))
            .await
            .status,
        202
    );
    wait_for("the queue to drain", Duration::from_secs(10), || async {
        api.listing().await.1.is_empty()
    })
    .await;
    assert_eq!(glance.file_gets(PUB), 1, "no second download");
    let after = proxy.entry(PUB).await.unwrap();
    assert_eq!(
        (after.hits, after.last_modified),
        (before.hits, before.last_modified)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_of_an_image_being_downloaded_joins_its_fill() {
    let glance = fake_glance().await;
    glance.set_behaviour(
        BIG,
        glance_cache_support::fake_glance::Behaviour::default().rate(25 << 20),
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    let client = {
        let c = Client::new();
        let url = proxy.file_url(BIG);
        tokio::spawn(async move { c.get(&url, &[("x-auth-token", "MEMBER")]).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{BIG}"))
            .await
            .status,
        202
    );
    assert!(client.await.unwrap().complete());
    wait_for(
        "BIG cached, queue empty",
        Duration::from_secs(20),
        || async { api.listing().await == (vec![BIG.to_string()], vec![]) },
    )
    .await;
    assert_eq!(
        glance.file_gets(BIG),
        1,
        "one download for the client and the prefetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_prefetch_stays_queued_with_its_error_and_the_worker_lives_on() {
    let glance = fake_glance().await;
    glance.set_behaviour(
        PRIV,
        glance_cache_support::fake_glance::Behaviour::default()
            .force_status(http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{PRIV}"))
            .await
            .status,
        202
    );
    wait_for(
        "the retries to give up",
        Duration::from_secs(20),
        || async {
            let r = api.admin(Method::GET, "/v2/cache").await;
            let doc: Value = serde_json::from_slice(&r.body).unwrap();
            doc["queued_image_errors"][PRIV]
                .as_str()
                .is_some_and(|e| e.contains("gave up after 3 attempts"))
        },
    )
    .await;
    assert_eq!(
        api.listing().await.1,
        vec![PRIV.to_string()],
        "still queued"
    );
    assert_eq!(glance.file_gets(PRIV), 3, "first attempt + 2 retries");
    // The worker still works for the next image.
    assert_eq!(
        api.admin(Method::PUT, &format!("/v2/cache/{PUB}"))
            .await
            .status,
        202
    );
    wait_for("PUB cached", Duration::from_secs(10), || async {
        api.listing().await.0 == vec![PUB.to_string()]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_replayed_at_startup() {
    // Without a service token, replayed entries are fetched anonymously: a
    // no-auth upstream (Keystone-backed replays are tested with Keystone).
    let glance = glance_cache_support::fake_glance::FakeGlance::builder()
        .image(
            FakeImage::new(PUB)
                .bytes("IMAGEDATA")
                .visibility(Visibility::Public),
        )
        .token(
            "ADMIN",
            glance_cache_support::fake_glance::Identity::new("admin").roles(["admin"]),
        )
        .spawn()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let proxy = Proxy::start(&glance.url(), dir.path(), paused()).await;
        assert_eq!(
            Api::new(&proxy)
                .admin(Method::PUT, &format!("/v2/cache/{PUB}"))
                .await
                .status,
            202
        );
        proxy.stop().await;
    }
    assert!(dir.path().join("queue").join(PUB).exists());
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let api = Api::new(&proxy);
    wait_for(
        "the replayed queue to be cached",
        Duration::from_secs(10),
        || async { api.listing().await == (vec![PUB.to_string()], vec![]) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cache_the_cache_api_answers_not_supported() {
    use glance_cache::auth::manage::ManagementAuth;
    use glance_cache::reverse_proxy::ReverseProxy;
    use glance_cache::Stack;

    let glance = fake_glance().await;
    let service = Stack::uncached()
        .management(ManagementAuth::static_tokens(vec!["ADMIN".to_string()]))
        .upstream(ReverseProxy::new(glance.url().parse().unwrap()))
        .build();
    let served = serve_service(service).await;
    let api = Api {
        c: Client::new(),
        base: served.url.clone(),
    };
    for (m, p, target) in [
        (Method::GET, "/v2/cache".to_string(), None),
        (Method::PUT, format!("/v2/cache/{PUB}"), None),
        (Method::DELETE, format!("/v2/cache/{PUB}"), None),
        (Method::DELETE, "/v2/cache".to_string(), None),
        (Method::DELETE, "/v2/cache".to_string(), Some("both")),
        (Method::POST, "/v2/cache/clean".to_string(), None),
        (Method::POST, "/v2/cache/prune".to_string(), None),
    ] {
        let mut h = vec![ADMIN];
        if let Some(t) = target {
            h.push(("x-image-cache-clear-target", t));
        }
        let r = api.call(m.clone(), &p, &h).await;
        assert_eq!(r.status, 404, "{m} {p}");
        assert!(
            String::from_utf8_lossy(&r.body).contains("Caching via API is not supported"),
            "{m} {p}"
        );
        let anonymous = api.call(m.clone(), &p, &[]).await;
        assert_eq!(
            anonymous.status, 401,
            "{m} {p}: policy before the enabled check"
        );
    }
    let v = api.call(Method::GET, "/versions", &[]).await;
    assert!(!String::from_utf8_lossy(&v.body).contains("v2.14"));
    for n in 1..=2 {
        let r = api
            .admin(Method::GET, &format!("/v2/images/{PUB}/file"))
            .await;
        assert_eq!(r.body, b"IMAGEDATA");
        assert_eq!(glance.file_gets(PUB), n, "always from the upstream");
    }
}
