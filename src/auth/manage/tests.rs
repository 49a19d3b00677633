//! Management-call authorization against the in-process fake Keystone.

use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;
use glance_cache_support::fake_keystone::{FakeKeystone, FakeUser, RunningFakeKeystone};

async fn keystone() -> RunningFakeKeystone {
    FakeKeystone::builder()
        .standard_users()
        .spawn()
        .await
        .expect("fake keystone starts")
}

fn options(ks: &RunningFakeKeystone) -> KeystoneOptions {
    KeystoneOptions::new(ks.url(), "glance", "glance-secret", "service")
}

fn auth(ks: &RunningFakeKeystone) -> ManagementAuth {
    ManagementAuth::keystone(options(ks)).expect("valid options")
}

fn token(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-auth-token",
        HeaderValue::from_str(value).expect("header"),
    );
    h
}

fn user_token(ks: &RunningFakeKeystone, user: &str) -> HeaderMap {
    token(&ks.token(user).expect("known user"))
}

/// A `127.0.0.1` port nobody listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

// ---- Keystone mode -----------------------------------------------------------

#[tokio::test]
async fn admin_allowed_member_reader_and_unscoped_forbidden() {
    let ks = keystone().await;
    let auth = auth(&ks);
    assert_eq!(auth.mode(), ManagementAuthMode::Keystone);

    let p = auth
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await
        .expect("admin passes");
    assert_eq!(p.user_id, ks.user_id("admin"));
    assert_eq!(p.project_id, ks.project_id_of("admin"));
    assert_eq!(p.roles, ["admin", "manager", "member", "reader"]);
    assert!(!p.static_token);
    // The glance service user is admin in its project, like at Glance.
    auth.check(&user_token(&ks, "glance"), PolicyRule::CacheDelete)
        .await
        .expect("glance passes");

    for user in ["demo", "viewer", "alt", "validator"] {
        let refusal = auth
            .check(&user_token(&ks, user), PolicyRule::CacheImage)
            .await
            .expect_err(user);
        assert_eq!(
            refusal,
            Refusal::Forbidden(PolicyRule::CacheImage),
            "{user}"
        );
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    }
    let unscoped = token(&ks.unscoped_token("admin").expect("user"));
    assert_eq!(
        auth.check(&unscoped, PolicyRule::CacheList).await,
        Err(Refusal::Forbidden(PolicyRule::CacheList))
    );
    // One service token for all of it.
    assert_eq!(ks.issued(), 1);
}

#[tokio::test]
async fn client_identity_headers_are_never_trusted() {
    let ks = keystone().await;
    let auth = auth(&ks);
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("x-roles", "admin"),
        ("x-identity-status", "Confirmed"),
        ("x-tenant-id", "admin"),
        ("x-project-id", "admin"),
        ("x-user-id", "admin"),
        ("x-service-roles", "admin"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    assert_eq!(
        auth.check(&h, PolicyRule::CacheList).await,
        Err(Refusal::Unauthenticated)
    );
    let demo = ks.token("demo").expect("demo");
    h.insert("x-auth-token", HeaderValue::from_str(&demo).expect("hv"));
    assert_eq!(
        auth.check(&h, PolicyRule::CacheList).await,
        Err(Refusal::Forbidden(PolicyRule::CacheList))
    );
    // Nothing was asked of Keystone for the request without a token.
    assert_eq!(ks.validations(), 1);
}

#[tokio::test]
async fn unknown_revoked_expired_and_malformed_tokens_are_401() {
    let ks = keystone().await;
    let auth = auth(&ks);
    let rule = PolicyRule::CacheList;
    assert_eq!(
        auth.check(&token("not-a-token"), rule).await,
        Err(Refusal::Unauthenticated)
    );
    let revoked = ks.token("admin").expect("admin");
    assert!(ks.revoke(&revoked));
    assert_eq!(
        auth.check(&token(&revoked), rule).await,
        Err(Refusal::Unauthenticated)
    );
    let expired = ks.token("admin").expect("admin");
    assert!(ks.expire(&expired));
    assert_eq!(
        auth.check(&token(&expired), rule).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(ks.validations(), 3);
    // Refused locally, without asking Keystone.
    let mut two = token("a");
    two.append("x-auth-token", HeaderValue::from_static("b"));
    for h in [
        HeaderMap::new(),
        token(""),
        token("a b"),
        two,
        token(&"x".repeat(9000)),
    ] {
        assert_eq!(auth.check(&h, rule).await, Err(Refusal::Unauthenticated));
    }
    assert_eq!(ks.validations(), 3);
    assert_eq!(Refusal::Unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn auth_url_with_or_without_v3_and_domains_by_name_or_id() {
    let ks = keystone().await;
    let project_id = ks.project_id_of("glance").expect("project");
    for opts in [
        KeystoneOptions::new(ks.root_url(), "glance", "glance-secret", "service"),
        KeystoneOptions::new(
            format!("{}/", ks.url()),
            "glance",
            "glance-secret",
            "service",
        )
        .with_user_domain(Domain::Name("Default".into()))
        .with_project(Project::Name {
            name: "service".into(),
            domain: Domain::Name("Default".into()),
        }),
        KeystoneOptions::new(ks.url(), "glance", "glance-secret", "x")
            .with_project(Project::Id(project_id.clone())),
    ] {
        let auth = ManagementAuth::keystone(opts).expect("valid");
        auth.check(&user_token(&ks, "admin"), PolicyRule::CacheClean)
            .await
            .expect("admin passes");
    }
    assert_eq!(ks.issued(), 3);
}

#[tokio::test]
async fn successful_validations_are_remembered_per_token() {
    let ks = keystone().await;
    let auth = auth(&ks);
    let admin = user_token(&ks, "admin");
    auth.check(&admin, PolicyRule::CacheList).await.expect("ok");
    auth.check(&admin, PolicyRule::CachePrune)
        .await
        .expect("ok");
    assert_eq!(ks.validations(), 1, "second check from memory");
    // Policy is evaluated on every check, also from memory.
    let demo = user_token(&ks, "demo");
    for _ in 0..2 {
        assert_eq!(
            auth.check(&demo, PolicyRule::CacheList).await,
            Err(Refusal::Forbidden(PolicyRule::CacheList))
        );
    }
    assert_eq!(ks.validations(), 2);
    // Another token of the same user is validated on its own.
    auth.check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await
        .expect("ok");
    assert_eq!(ks.validations(), 3);
    assert_eq!(auth.remembered(), 3);
    // A revoked token stays accepted until its memory runs out (like
    // keystonemiddleware's token_cache_time).
    let t = admin
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .expect("token")
        .to_owned();
    ks.revoke(&t);
    auth.check(&admin, PolicyRule::CacheList)
        .await
        .expect("remembered");
}

#[tokio::test]
async fn failures_are_never_remembered() {
    let ks = keystone().await;
    let auth = auth(&ks);
    for _ in 0..3 {
        assert_eq!(
            auth.check(&token("unknown"), PolicyRule::CacheList).await,
            Err(Refusal::Unauthenticated)
        );
    }
    assert_eq!(ks.validations(), 3);
    // Keystone failing, then back: the failure is not remembered either.
    let admin = user_token(&ks, "admin");
    ks.set_failure(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let r = auth.check(&admin, PolicyRule::CacheList).await;
    assert!(matches!(r, Err(Refusal::Unavailable(_))), "{r:?}");
    ks.set_failure(None);
    auth.check(&admin, PolicyRule::CacheList)
        .await
        .expect("ok now");
    assert_eq!(auth.remembered(), 1);
}

#[tokio::test]
async fn memory_never_outlives_the_token_or_token_cache_time() {
    let ks = keystone().await;
    let auth = auth(&ks).with_token_cache_time(Duration::from_secs(300));
    let short = ks
        .token_with_lifetime("admin", Duration::from_millis(800))
        .expect("admin");
    auth.check(&token(&short), PolicyRule::CacheList)
        .await
        .expect("valid now");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        auth.check(&token(&short), PolicyRule::CacheList).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(ks.validations(), 2);

    // token_cache_time = 0: every check asks Keystone.
    let auth = auth.with_token_cache_time(Duration::ZERO);
    let admin = user_token(&ks, "admin");
    for _ in 0..3 {
        auth.check(&admin, PolicyRule::CacheList).await.expect("ok");
    }
    assert_eq!(ks.validations(), 5);
    assert_eq!(auth.remembered(), 0);
}

#[tokio::test]
async fn concurrent_checks_of_one_token_share_one_validation() {
    let ks = keystone().await;
    ks.set_delay(Duration::from_millis(100));
    let auth = auth(&ks);
    let admin = user_token(&ks, "admin");
    let checks = (0..20).map(|_| {
        let auth = auth.clone();
        let admin = admin.clone();
        tokio::spawn(async move { auth.check(&admin, PolicyRule::CacheList).await })
    });
    for r in futures_util::future::join_all(checks).await {
        r.expect("joined").expect("allowed");
    }
    assert_eq!(ks.validations(), 1);
    assert_eq!(ks.issued(), 1);
}

#[tokio::test]
async fn concurrent_first_checks_issue_one_service_token() {
    let ks = keystone().await;
    ks.set_delay(Duration::from_millis(50));
    let auth = auth(&ks);
    let checks = (0..8).map(|_| {
        let auth = auth.clone();
        let h = user_token(&ks, "demo");
        tokio::spawn(async move { auth.check(&h, PolicyRule::CacheList).await })
    });
    for r in futures_util::future::join_all(checks).await {
        assert_eq!(
            r.expect("joined"),
            Err(Refusal::Forbidden(PolicyRule::CacheList))
        );
    }
    assert_eq!(ks.issued(), 1);
    assert_eq!(ks.validations(), 8);
}

#[tokio::test]
async fn expired_service_token_is_renewed_on_401() {
    let ks = keystone().await;
    let auth = auth(&ks);
    auth.check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await
        .expect("ok");
    assert_eq!(ks.issued(), 1);
    // Keystone now refuses the service token (expired or revoked early).
    ks.expire_all();
    auth.check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await
        .expect("renewed and allowed");
    assert_eq!(ks.issued(), 2);
    // First validation, the refused one, and the retry.
    assert_eq!(ks.validations(), 3);
}

#[tokio::test]
async fn service_token_is_renewed_before_it_expires() {
    let ks = keystone().await;
    ks.set_token_lifetime(Duration::from_millis(1200));
    let auth = auth(&ks);
    let admin = ks
        .token_with_lifetime("admin", Duration::from_secs(60))
        .expect("admin");
    let first = auth
        .service_token()
        .await
        .expect("issued")
        .expect("keystone");
    assert_eq!(
        auth.service_token().await.expect("same").as_deref(),
        Some(first.as_str())
    );
    assert_eq!(ks.issued(), 1);
    // Renewed when three quarters of its lifetime are over, before
    // Keystone would refuse it.
    tokio::time::sleep(Duration::from_millis(950)).await;
    auth.check(&token(&admin), PolicyRule::CacheList)
        .await
        .expect("ok");
    assert_eq!(ks.issued(), 2);
    assert_eq!(ks.validations(), 1, "no refused validation");
    let second = auth.service_token().await.expect("ok").expect("keystone");
    assert_ne!(first, second);
    // The service token is a real admin token of the service user.
    assert_eq!(
        ks.roles_of(&second),
        Some(vec![
            "admin".to_owned(),
            "manager".to_owned(),
            "member".to_owned(),
            "reader".to_owned()
        ])
    );
}

#[tokio::test]
async fn keystone_down_is_503_quickly() {
    let port = closed_port().await;
    let auth = ManagementAuth::keystone(KeystoneOptions::new(
        format!("http://127.0.0.1:{port}/v3"),
        "glance",
        "pw",
        "service",
    ))
    .expect("valid");
    let started = Instant::now();
    let r = auth.check(&token("t"), PolicyRule::CacheList).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let Err(refusal) = r else {
        panic!("expected a refusal, got {r:?}");
    };
    assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
    let Refusal::Unavailable(reason) = refusal else {
        panic!("expected Unavailable, got {refusal:?}");
    };
    assert!(reason.contains("service token"), "{reason}");
    assert!(auth.service_token().await.is_err());
}

#[tokio::test]
async fn keystone_5xx_and_slow_keystone_are_503() {
    let ks = keystone().await;
    let auth = auth(&ks).with_timeout(Duration::from_millis(300));
    ks.set_failure(Some(StatusCode::SERVICE_UNAVAILABLE));
    let r = auth
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await;
    assert!(
        matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("503")),
        "{r:?}"
    );
    ks.set_failure(None);
    // Service token first, then validations fail with 500.
    auth.service_token().await.expect("issued");
    ks.set_failure(Some(StatusCode::INTERNAL_SERVER_ERROR));
    let r = auth
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await;
    assert!(
        matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("500")),
        "{r:?}"
    );
    ks.set_failure(None);

    ks.set_delay(Duration::from_secs(3));
    let started = Instant::now();
    let r = auth
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await;
    assert!(
        matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("no answer within 300 ms")),
        "{r:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn bad_service_credentials_or_roles_are_503_with_a_reason() {
    let ks = keystone().await;
    let wrong =
        ManagementAuth::keystone(KeystoneOptions::new(ks.url(), "glance", "wrong", "service"))
            .expect("valid");
    let r = wrong
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await;
    assert!(
        matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("refused the service credentials")),
        "{r:?}"
    );
    // demo may not validate other users' tokens (Keystone answers 403).
    let member = ManagementAuth::keystone(KeystoneOptions::new(
        ks.url(),
        "demo",
        "demo-secret",
        "demo",
    ))
    .expect("valid");
    let r = member
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await;
    assert!(
        matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("admin or service role")),
        "{r:?}"
    );
    // A user with only the service role may validate.
    let validator = ManagementAuth::keystone(KeystoneOptions::new(
        ks.url(),
        "validator",
        "validator-secret",
        "service",
    ))
    .expect("valid");
    validator
        .check(&user_token(&ks, "admin"), PolicyRule::CacheList)
        .await
        .expect("allowed");
}

#[tokio::test]
async fn role_names_are_compared_in_lower_case_and_policy_is_configurable() {
    let ks = FakeKeystone::builder()
        .standard_users()
        .user(
            FakeUser::new("ops", "ops-secret")
                .project("ops")
                .roles(["Cache_Operator"]),
        )
        .user(
            FakeUser::new("boss", "boss-secret")
                .project("ops")
                .roles(["ADMIN"]),
        )
        .spawn()
        .await
        .expect("starts");
    let policy = CachePolicy::default()
        .with_rule(
            PolicyRule::CacheList,
            RoleRule::any_of(["admin", "cache_operator"]),
        )
        .with_rule(PolicyRule::CacheImage, RoleRule::any_of(["member"]));
    let auth = auth(&ks).with_policy(policy);
    let ops = auth
        .check(&user_token(&ks, "ops"), PolicyRule::CacheList)
        .await
        .expect("operator lists");
    assert_eq!(ops.roles, ["cache_operator"]);
    assert_eq!(
        auth.check(&user_token(&ks, "ops"), PolicyRule::CacheDelete)
            .await,
        Err(Refusal::Forbidden(PolicyRule::CacheDelete))
    );
    auth.check(&user_token(&ks, "boss"), PolicyRule::CacheDelete)
        .await
        .expect("ADMIN is admin");
    auth.check(&user_token(&ks, "demo"), PolicyRule::CacheImage)
        .await
        .expect("member may queue");
    assert_eq!(
        auth.check(&user_token(&ks, "viewer"), PolicyRule::CacheImage)
            .await,
        Err(Refusal::Forbidden(PolicyRule::CacheImage))
    );
}

#[tokio::test]
async fn www_authenticate_and_debug() {
    let ks = keystone().await;
    let auth = auth(&ks);
    assert_eq!(
        auth.www_authenticate().expect("keystone"),
        format!("Keystone uri=\"{}\"", ks.url()).as_str()
    );
    let auth = ManagementAuth::keystone(options(&ks).with_www_authenticate_uri("http://pub:5000"))
        .expect("valid");
    assert_eq!(
        auth.www_authenticate().expect("keystone"),
        "Keystone uri=\"http://pub:5000\""
    );
    let debug = format!("{auth:?}");
    assert!(!debug.contains("glance-secret"), "{debug}");
    assert!(ManagementAuth::open().www_authenticate().is_none());
    let s = ManagementAuth::static_tokens(["tok-secret"]);
    assert!(!format!("{s:?}").contains("tok-secret"));
}

// ---- the other modes ---------------------------------------------------------

#[tokio::test]
async fn static_tokens() {
    let auth = ManagementAuth::static_tokens(["alpha", "beta"]);
    assert_eq!(auth.mode(), ManagementAuthMode::Static);
    let p = auth
        .check(&token("beta"), PolicyRule::ManageImageCache)
        .await
        .expect("beta");
    assert_eq!(
        p,
        Principal {
            user_id: None,
            project_id: None,
            roles: vec!["admin".into()],
            static_token: true
        }
    );
    for h in [
        token("gamma"),
        token("alph"),
        token("Alpha"),
        HeaderMap::new(),
    ] {
        assert_eq!(
            auth.check(&h, PolicyRule::CacheList).await,
            Err(Refusal::Unauthenticated)
        );
    }
    let strict = auth
        .with_policy(CachePolicy::default().with_rule(PolicyRule::CacheDelete, RoleRule::Nobody));
    assert_eq!(
        strict.check(&token("alpha"), PolicyRule::CacheDelete).await,
        Err(Refusal::Forbidden(PolicyRule::CacheDelete))
    );
    assert_eq!(strict.service_token().await.expect("none"), None);
}

#[tokio::test]
async fn open_and_deny() {
    let open = ManagementAuth::open();
    assert_eq!(open.mode(), ManagementAuthMode::Open);
    let p = open
        .check(&HeaderMap::new(), PolicyRule::CachePrune)
        .await
        .expect("open");
    assert_eq!(p.user_id, None);
    assert_eq!(p.roles, ["admin"]);
    assert!(!p.static_token);
    let open = open
        .with_policy(CachePolicy::default().with_rule(PolicyRule::CachePrune, RoleRule::Nobody));
    assert_eq!(
        open.check(&HeaderMap::new(), PolicyRule::CachePrune).await,
        Err(Refusal::Forbidden(PolicyRule::CachePrune))
    );
    let deny = ManagementAuth::deny();
    assert_eq!(deny.mode(), ManagementAuthMode::Deny);
    assert_eq!(
        deny.check(&token("anything"), PolicyRule::CacheList).await,
        Err(Refusal::Unauthenticated)
    );
    assert_eq!(deny.service_token().await.expect("none"), None);
}

#[test]
fn an_auth_url_that_is_not_http_or_https_is_refused_with_a_reason() {
    let e = ManagementAuth::keystone(KeystoneOptions::new("ftp://ks:5000", "g", "p", "s"))
        .expect_err("ftp");
    assert!(e.to_string().contains("http:// or https://"), "{e}");
    assert!(matches!(e, ManagementAuthError::InvalidAuthUrl { .. }));
    ManagementAuth::keystone(KeystoneOptions::new("https://ks:5000", "g", "p", "s"))
        .expect("https is accepted");
}
