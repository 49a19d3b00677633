//! Management calls authorized by a REAL Keystone (keystone 30 under uWSGI,
//! installed by tests/harness/setup-python.sh --with-keystone): admin
//! allowed, member and reader refused with Glance's 403, unknown and revoked
//! tokens 401. A missing Keystone is a failure.

use crate::proxy::*;
use bytes::Bytes;
use glance_cache::auth::manage::ManagementAuth;
use glance_cache_config::Config;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{AuthMode, FakeGlance, FakeImage, Identity, Visibility};
use glance_cache_support::fixture::*;
use glance_cache_support::real_keystone::RealKeystone;
use http::Method;

struct Setup {
    ks: RealKeystone,
    admin: String,
    demo: String,
    viewer: String,
}

async fn keystone() -> Setup {
    tokio::task::spawn_blocking(|| {
        let ks = RealKeystone::start();
        let (admin, demo, viewer) = (ks.admin_token(), ks.token("demo"), ks.token("viewer"));
        Setup {
            ks,
            admin,
            demo,
            viewer,
        }
    })
    .await
    .unwrap()
}

fn auth_for(ks: &RealKeystone) -> ManagementAuth {
    let glance = ks.user("glance");
    let conf = format!(
        "[proxy]\nmanagement_auth = keystone\n\n[keystone_authtoken]\nauth_type = password\nauth_url = {}\n\
         username = glance\npassword = {}\nproject_name = service\nuser_domain_name = Default\n\
         project_domain_name = Default\n",
        ks.url, glance.password
    );
    let loaded = Config::from_sources(&[("glance-api.conf", &conf)]).expect("config");
    loaded.config.management.auth().expect("keystone auth")
}

/// The fake Glance knows Keystone's tokens as the same identities.
async fn glance_for(s: &Setup) -> glance_cache_support::fake_glance::RunningFakeGlance {
    let demo_project = s.ks.user("demo").project_id;
    FakeGlance::builder()
        .auth(AuthMode::Tokens)
        .token(
            &s.admin,
            Identity::new("admin").roles(["admin", "member", "reader"]),
        )
        .token(
            &s.demo,
            Identity::new(&demo_project).roles(["member", "reader"]),
        )
        .token(&s.viewer, Identity::new(&demo_project).roles(["reader"]))
        .image(
            FakeImage::new(PUB)
                .bytes("IMAGEDATA")
                .visibility(Visibility::Public)
                .owner(&demo_project),
        )
        .image(
            FakeImage::new(PRIV)
                .bytes("PRIVATE")
                .visibility(Visibility::Private)
                .owner("someone-else"),
        )
        .spawn()
        .await
        .unwrap()
}

fn endpoints() -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/v2/cache".into()),
        (Method::PUT, format!("/v2/cache/{PUB}")),
        (Method::DELETE, format!("/v2/cache/{PUB}")),
        (Method::DELETE, "/v2/cache".into()),
        (Method::POST, "/v2/cache/clean".into()),
        (Method::POST, "/v2/cache/prune".into()),
        (Method::GET, format!("/v2/cache/nodes/{PUB}")),
        (Method::GET, "/v2/cached_images".into()),
        (Method::DELETE, "/v2/cached_images".into()),
        (Method::PUT, format!("/v2/queued_images/{PUB}")),
        (Method::GET, "/v2/queued_images".into()),
        (Method::DELETE, format!("/v2/queued_images/{PUB}")),
    ]
}

async fn call(
    c: &Client,
    base: &str,
    m: &Method,
    p: &str,
    token: &str,
) -> glance_cache_support::client::Reply {
    c.request(
        m.clone(),
        &format!("{base}{p}"),
        &[("x-auth-token", token)],
        Bytes::new(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_admins_get_403_and_admins_pass() {
    let s = keystone().await;
    let glance = glance_for(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        auth: auth_for(&s.ks),
        prefetch: false,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    for (m, p) in endpoints() {
        for (who, token) in [("member", &s.demo), ("reader", &s.viewer)] {
            let r = call(&c, &proxy.url, &m, &p, token).await;
            assert_eq!(r.status, 403, "{who}: {m} {p}");
            let text = String::from_utf8_lossy(&r.body);
            assert!(
                text.contains("You are not authorized to complete"),
                "{who}: {m} {p}: {text}"
            );
        }
        let r = call(&c, &proxy.url, &m, &p, &s.admin).await;
        assert!(
            r.status.is_success() || r.status == 409,
            "admin: {m} {p} -> {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    // An image the member cannot see: the lookup (as the caller) comes first.
    for m in [Method::PUT, Method::DELETE] {
        let r = call(&c, &proxy.url, &m, &format!("/v2/cache/{PRIV}"), &s.demo).await;
        assert_eq!(r.status, 404, "{m}");
    }
    // Scenario 21: a member may not queue.
    assert_eq!(
        call(
            &c,
            &proxy.url,
            &Method::PUT,
            &format!("/v2/cache/{PUB}"),
            &s.demo
        )
        .await
        .status,
        403
    );
    // Identity headers are not credentials.
    let forged = c
        .request(
            Method::GET,
            &format!("{}/v2/cache", proxy.url),
            &[("x-roles", "admin"), ("x-identity-status", "Confirmed")],
            Bytes::new(),
        )
        .await;
    assert_eq!(forged.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_revoked_tokens_get_401() {
    let s = keystone().await;
    let glance = glance_for(&s).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        auth: auth_for(&s.ks),
        prefetch: false,
        ..Default::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    assert_eq!(
        call(&c, &proxy.url, &Method::GET, "/v2/cache", "garbage")
            .await
            .status,
        401
    );
    let victim = tokio::task::block_in_place(|| s.ks.token("glance"));
    assert_eq!(
        call(&c, &proxy.url, &Method::GET, "/v2/cache", &victim)
            .await
            .status,
        200
    );
    tokio::task::block_in_place(|| s.ks.revoke(&victim));
    // A revoked token stops working within token_cache_time (60 s): the
    // proxy re-validates after that; a fresh proxy (empty cache) at once.
    let fresh = Proxy::start(
        &glance.url(),
        tempfile::tempdir().unwrap().path(),
        ProxyOptions {
            auth: auth_for(&s.ks),
            prefetch: false,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        call(&c, &fresh.url, &Method::GET, "/v2/cache", &victim)
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_gets_403_even_without_a_cache() {
    use glance_cache::reverse_proxy::ReverseProxy;
    use glance_cache::Stack;

    let s = keystone().await;
    let glance = glance_for(&s).await;
    let service = Stack::uncached()
        .management(auth_for(&s.ks))
        .upstream(ReverseProxy::new(glance.url().parse().unwrap()))
        .build();
    let served = serve_service(service).await;
    let c = Client::new();
    for (m, p) in endpoints()
        .into_iter()
        .filter(|(_, p)| p == "/v2/cache" || p.starts_with("/v2/cache/"))
    {
        assert_eq!(
            call(&c, &served.url, &m, &p, &s.demo).await.status,
            403,
            "member: {m} {p}"
        );
        let admin = call(&c, &served.url, &m, &p, &s.admin).await;
        assert_eq!(admin.status, 404, "admin: {m} {p}");
    }
}
