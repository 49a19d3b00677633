//! Management-call authorization built from the configuration, against the
//! in-process fake Keystone.

use glance_cache::auth::manage::{ManagementAuthMode, PolicyRule, Refusal};
use glance_cache_support::fake_keystone::{FakeKeystone, RunningFakeKeystone};
use http::{HeaderMap, HeaderValue};

use crate::{AuthSettingsError, Config, ManagementOptions};

async fn keystone() -> RunningFakeKeystone {
    FakeKeystone::builder()
        .standard_users()
        .spawn()
        .await
        .expect("fake keystone starts")
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

#[tokio::test]
async fn from_loaded_configuration() {
    let ks = keystone().await;
    let text = format!(
        "[keystone_authtoken]\nauth_url = {}\nusername = glance\npassword = glance-secret\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n\
         token_cache_time = 0\n[cache_policy]\ncache_list = admin, member\n",
        ks.root_url()
    );
    let config = Config::from_sources(&[("glance-api.conf", &text)])
        .expect("loads")
        .config;
    let auth = config.management.auth().expect("builds");
    assert_eq!(auth.mode(), ManagementAuthMode::Keystone);
    let demo = user_token(&ks, "demo");
    auth.check(&demo, PolicyRule::CacheList)
        .await
        .expect("member lists");
    auth.check(&demo, PolicyRule::CacheList)
        .await
        .expect("again");
    assert_eq!(ks.validations(), 2, "token_cache_time = 0");
    assert_eq!(
        auth.check(&demo, PolicyRule::CacheDelete).await,
        Err(Refusal::Forbidden(PolicyRule::CacheDelete))
    );

    let cfg = |text: &str| {
        Config::from_sources(&[("glance-api.conf", text)])
            .expect("loads")
            .config
            .management
    };
    let s = cfg("[proxy]\nadmin_tokens = t1\n").auth().expect("static");
    assert_eq!(s.mode(), ManagementAuthMode::Static);
    s.check(&token("t1"), PolicyRule::CacheList)
        .await
        .expect("t1");
    let o = cfg("[proxy]\nmanagement_auth = open\n")
        .auth()
        .expect("open");
    assert_eq!(o.mode(), ManagementAuthMode::Open);
    let d = cfg("").auth().expect("deny");
    assert_eq!(d.mode(), ManagementAuthMode::Deny);
}

#[test]
fn from_hand_built_options_errors() {
    let m = ManagementOptions {
        auth: ManagementAuthMode::Keystone,
        ..ManagementOptions::default()
    };
    assert!(matches!(
        m.auth(),
        Err(AuthSettingsError::MissingKeystoneOptions)
    ));
    let m = ManagementOptions {
        auth: ManagementAuthMode::Static,
        ..ManagementOptions::default()
    };
    assert!(matches!(m.auth(), Err(AuthSettingsError::NoAdminTokens)));
}
