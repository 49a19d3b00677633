//! Management-call authorization against a REAL Keystone 30: tokens validated with the
//! proxy's service token, Glance's default cache policy (admin only), revocation, expiry,
//! and service-token renewal. Needs the Keystone venv and memcached (`bash tests/run.sh`
//! makes them); fails without them.

use std::time::{Duration, Instant};

use glance_cache::auth::manage::{ManagementAuth, ManagementAuthMode, PolicyRule, Refusal};
use glance_cache_config::{Config, KeystoneOptions};
use glance_cache_support::real_keystone::{KeystoneOptions as HarnessOptions, RealKeystone};
use http::{HeaderMap, HeaderValue};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn token(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "x-auth-token",
        HeaderValue::from_str(value).expect("header"),
    );
    h
}

/// `[keystone_authtoken]` the way an operator writes it for Glance, with
/// `auth_url` without `/v3`.
fn glance_api_conf(keystone: &RealKeystone, token_cache_time: u64) -> String {
    let glance = keystone.user("glance");
    format!(
        "[keystone_authtoken]\n\
         www_authenticate_uri = {root}\n\
         auth_url = {root}\n\
         auth_type = password\n\
         memcached_servers = 127.0.0.1:11211\n\
         project_domain_name = Default\n\
         user_domain_name = Default\n\
         project_name = {project}\n\
         username = glance\n\
         password = {password}\n\
         region_name = RegionOne\n\
         service_token_roles_required = true\n\
         token_cache_time = {token_cache_time}\n",
        root = keystone.url.trim_end_matches("/v3"),
        project = glance.project_name,
        password = glance.password.replace('$', "$$"),
    )
}

fn from_conf(text: &str) -> ManagementAuth {
    let loaded = Config::from_sources(&[("glance-api.conf", text)]).expect("config loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    loaded.config.management.auth().expect("management auth")
}

#[test]
fn real_keystone_admin_allowed_members_and_readers_forbidden_bad_tokens_401() {
    let keystone = RealKeystone::start();
    let users = ["admin", "glance", "demo", "viewer", "alt", "validator"];
    let tokens: Vec<(&str, String)> = users.iter().map(|u| (*u, keystone.token(u))).collect();
    let revoked = keystone.token("admin");
    keystone.revoke(&revoked);
    let revoked_later = keystone.token("admin");

    let auth = from_conf(&glance_api_conf(&keystone, 0));
    assert_eq!(auth.mode(), ManagementAuthMode::Keystone);
    let admin = keystone.user("admin");
    let rt = runtime();
    rt.block_on(async {
        for (user, t) in &tokens {
            let result = auth.check(&token(t), PolicyRule::CacheList).await;
            match *user {
                "admin" | "glance" => {
                    let p = result.unwrap_or_else(|e| panic!("{user}: {e:?}"));
                    assert!(p.roles.iter().any(|r| r == "admin"), "{user}: {p:?}");
                    assert!(!p.static_token);
                    if *user == "admin" {
                        assert_eq!(p.user_id.as_deref(), Some(admin.user_id.as_str()));
                        assert_eq!(p.project_id.as_deref(), Some(admin.project_id.as_str()));
                        assert_eq!(p.roles.len(), 4, "implied roles expanded: {p:?}");
                    }
                }
                _ => assert_eq!(
                    result,
                    Err(Refusal::Forbidden(PolicyRule::CacheList)),
                    "{user}"
                ),
            }
        }
        for rule in [
            PolicyRule::CacheImage,
            PolicyRule::CacheDelete,
            PolicyRule::ManageImageCache,
        ] {
            assert_eq!(
                auth.check(&token(&tokens[2].1), rule).await,
                Err(Refusal::Forbidden(rule)),
                "demo {rule}"
            );
        }
        for bad in [
            revoked.as_str(),
            "not-a-token",
            "gAAAAABbogusbogusbogusbogusbogusbogusbogusbogusbogusbogusbogusbogus",
        ] {
            assert_eq!(
                auth.check(&token(bad), PolicyRule::CacheList).await,
                Err(Refusal::Unauthenticated),
                "{bad}"
            );
        }
        assert_eq!(
            auth.check(&HeaderMap::new(), PolicyRule::CacheList).await,
            Err(Refusal::Unauthenticated)
        );
        auth.check(&token(&revoked_later), PolicyRule::CacheList)
            .await
            .expect("valid before revocation");
    });
    // token_cache_time = 0: a revocation counts at once.
    keystone.revoke(&revoked_later);
    rt.block_on(async {
        assert_eq!(
            auth.check(&token(&revoked_later), PolicyRule::CacheList)
                .await,
            Err(Refusal::Unauthenticated)
        );
    });

    // The proxy's service token is a real token of the glance user.
    let service = rt
        .block_on(auth.service_token())
        .expect("service token")
        .expect("keystone mode");
    let (status, body) = keystone.validate(&tokens[0].1, &service);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["user"]["name"], "glance");
}

#[test]
fn real_keystone_who_may_validate_tokens() {
    let keystone = RealKeystone::start();
    let admin = keystone.token("admin");
    let user = |name: &str| {
        let u = keystone.user(name);
        KeystoneOptions::new(keystone.url.clone(), name, u.password, u.project_name)
    };
    let rt = runtime();
    rt.block_on(async {
        // Only the service role: may validate (Keystone's service_admin_or_token_subject).
        let validator = ManagementAuth::keystone(user("validator")).expect("valid");
        validator
            .check(&token(&admin), PolicyRule::CachePrune)
            .await
            .expect("admin allowed");
        // A member may not validate other users' tokens: 503, not 401/403.
        let demo = ManagementAuth::keystone(user("demo")).expect("valid");
        let r = demo.check(&token(&admin), PolicyRule::CacheList).await;
        assert!(
            matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("may not validate tokens")),
            "{r:?}"
        );
        // Wrong service password: 503 with the reason.
        let mut wrong = user("glance");
        wrong.password.push('x');
        let wrong = ManagementAuth::keystone(wrong).expect("valid");
        let started = Instant::now();
        let r = wrong.check(&token(&admin), PolicyRule::CacheList).await;
        assert!(
            matches!(&r, Err(Refusal::Unavailable(m)) if m.contains("refused the service credentials")),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

#[test]
fn real_keystone_expired_tokens_401_and_service_token_renewed() {
    let keystone = RealKeystone::start_with(
        HarnessOptions::default().with_token_expiration(Duration::from_secs(6)),
    );
    let early = keystone.token("admin");
    let issued = Instant::now();
    // token_cache_time 300 is capped by the token's own expiry.
    let auth = from_conf(&glance_api_conf(&keystone, 300));
    let rt = runtime();
    rt.block_on(async {
        auth.check(&token(&early), PolicyRule::CacheList)
            .await
            .expect("valid now");
        let first_service = auth.service_token().await.expect("ok").expect("keystone");
        // Past the lifetime of `early` and of the first service token.
        tokio::time::sleep(Duration::from_secs(7).saturating_sub(issued.elapsed())).await;
        assert_eq!(
            auth.check(&token(&early), PolicyRule::CacheList).await,
            Err(Refusal::Unauthenticated),
            "expired token"
        );
        let second_service = auth.service_token().await.expect("ok").expect("keystone");
        assert_ne!(first_service, second_service, "service token renewed");
    });
    // A fresh token validates with the renewed service token.
    let fresh = keystone.token("admin");
    rt.block_on(async {
        auth.check(&token(&fresh), PolicyRule::CacheList)
            .await
            .expect("fresh token valid");
    });
}
