//! Proves the real-Keystone harness (`glance_cache_support::real_keystone`,
//! `tests/harness/keystone.sh`): a real Keystone issues project-scoped tokens, lets the
//! service users (and nobody else) validate other users' tokens, shows a revoked token as
//! 404 at once on every worker, expires tokens after `--token-expiration`, and leaves no
//! process behind when dropped. Needs the Keystone venv and memcached (`bash tests/run.sh`
//! makes them); fails without them.

use glance_cache_support::real_keystone::{KeystoneOptions, RealKeystone};
use std::time::{Duration, Instant};

fn role_names(body: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = body["token"]["roles"]
        .as_array()
        .map(|roles| {
            roles
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn real_keystone_issues_validates_and_revokes_tokens() {
    let keystone = RealKeystone::start();
    assert!(keystone.url.starts_with("http://127.0.0.1:"));
    assert!(keystone.url.ends_with("/v3"));
    let demo = keystone.user("demo");
    assert_eq!(demo.project_name, "demo");
    assert_eq!(demo.domain, "default");
    assert_eq!(demo.project_id, keystone.project_id("demo"));
    assert_eq!(
        keystone.user_names(),
        ["admin", "alt", "demo", "glance", "validator", "viewer"]
    );

    let demo_token = keystone.token("demo");
    let glance_token = keystone.token("glance");

    // the glance service user validates demo's token: 200, member + implied reader
    let (status, body) = keystone.validate(&glance_token, &demo_token);
    assert_eq!(status, 200, "{body}\n{}", keystone.log_tail(20));
    assert_eq!(role_names(&body), ["member", "reader"], "{body}");
    assert_eq!(body["token"]["user"]["name"], "demo");
    assert_eq!(body["token"]["user"]["id"], demo.user_id.as_str());
    assert_eq!(body["token"]["project"]["id"], demo.project_id.as_str());
    assert_eq!(body["token"]["project"]["name"], "demo");
    // the catalog's identity endpoint is this instance's own URL
    let identity = body["token"]["catalog"]
        .as_array()
        .and_then(|c| c.iter().find(|s| s["type"] == "identity"))
        .unwrap_or_else(|| panic!("no identity service in the catalog: {body}"));
    assert!(
        identity["endpoints"]
            .as_array()
            .is_some_and(|eps| !eps.is_empty() && eps.iter().all(|e| e["url"] == *keystone.url)),
        "{identity}"
    );

    // who may validate: service users yes, a member only its own token
    let viewer_token = keystone.token("viewer");
    let (status, body) = keystone.validate(&keystone.token("validator"), &viewer_token);
    assert_eq!(status, 200, "validator: {body}");
    assert_eq!(role_names(&body), ["reader"], "{body}");
    let (status, _) = keystone.validate(&demo_token, &viewer_token);
    assert_eq!(status, 403, "a member validating another user's token");
    let (status, _) = keystone.validate(&demo_token, &demo_token);
    assert_eq!(status, 200, "a user validating its own token");
    let (status, _) = keystone.validate(&glance_token, "not-a-token");
    assert_eq!(status, 404, "garbage subject token");
    let (status, _) = keystone.validate("not-a-token", &demo_token);
    assert_eq!(status, 401, "garbage caller token");
    let alt = keystone.user("alt");
    let (status, body) = keystone.validate(&glance_token, &keystone.token("alt"));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token"]["project"]["id"], alt.project_id.as_str());

    // revoked: 404 at once, on both workers (they share Keystone's memcached)
    keystone.revoke(&demo_token);
    for attempt in 0..6 {
        let (status, body) = keystone.validate(&glance_token, &demo_token);
        assert_eq!(status, 404, "validation {attempt} after revocation: {body}");
    }
    let resp = keystone.request(
        "GET",
        "/auth/projects",
        &[("X-Auth-Token", &demo_token)],
        None,
    );
    assert_eq!(resp.status, 401, "the revoked token as the caller");
    // other tokens of the same user are unaffected
    let (status, _) = keystone.validate(&glance_token, &keystone.token("demo"));
    assert_eq!(status, 200);

    // dropping it stops uWSGI and memcached
    let pids = keystone.pids();
    assert_eq!(pids.len(), 2, "uWSGI master + memcached: {pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
    let base = keystone.base_dir().to_path_buf();
    drop(keystone);
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "still running after drop: {pids:?}"
    );
    assert!(!base.exists(), "{} kept after drop", base.display());
}

#[test]
fn real_keystone_tokens_expire() {
    let options = KeystoneOptions::default()
        .with_token_expiration(Duration::from_secs(2))
        .with_workers(1);
    let keystone = RealKeystone::start_with(options);
    let demo_token = keystone.token("demo");
    let (status, body) = keystone.validate(&keystone.token("glance"), &demo_token);
    assert_eq!(status, 200, "{body}");

    // expires_at is whole seconds: within ~3 s the token is 404
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let (status, body) = keystone.validate(&keystone.token("glance"), &demo_token);
        if status == 404 {
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(
            Instant::now() < deadline,
            "a 2-second token still valid after 10 s: {body}"
        );
    }
}
