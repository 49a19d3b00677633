//! The proxy binary in front of a REAL Glance protected by a REAL Keystone
//! (keystonemiddleware's auth_token in Glance's pipeline), as clouds run
//! it. In CI a missing Glance or Keystone venv fails these tests.

use std::path::Path;
use std::time::Duration;

use http::Method;

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::real_glance::RealGlance;
use glance_cache_support::real_keystone::RealKeystone;
use glance_cache_support::wait::*;

const STATIC_TOKEN: &str = "op-static-s3cret";

fn image_file(dir: &Path, len: usize) -> std::path::PathBuf {
    let path = dir.join("image.raw");
    let data: Vec<u8> = (0..len).map(|i| ((i * 31) % 253) as u8).collect();
    std::fs::write(&path, data).unwrap();
    path
}

/// The service credentials of Glance's own `[keystone_authtoken]`.
fn service_user(ks: &RealKeystone) -> String {
    let glance = ks.user("glance");
    format!(
        "[keystone_authtoken]\nauth_type = password\nauth_url = {}\nusername = glance\n\
         password = {}\nproject_name = service\nuser_domain_name = Default\n\
         project_domain_name = Default\n",
        ks.url, glance.password
    )
}

/// `PUT /v2/cache/{id}` with the static admin token.
async fn queue(c: &Client, proxy: &ProxyProcess, id: &str) -> Reply {
    let admin = [("x-auth-token", STATIC_TOKEN)];
    let url = format!("{}/v2/cache/{id}", proxy.url);
    c.request(Method::PUT, &url, &admin, Default::default())
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_admin_tokens_look_images_up_as_the_service_user_of_a_keystone_protected_glance() {
    let (ks, glance) = tokio::task::spawn_blocking(|| {
        let ks = RealKeystone::start();
        let password = ks.user("glance").password;
        let glance = RealGlance::start_with_keystone(&ks.url, &password, &ks.admin_token());
        (ks, glance)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = image_file(dir.path(), 1 << 20);
    let want = RealGlance::md5_of(&file);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let c = Client::new();
    let admin = [("x-auth-token", STATIC_TOKEN)];

    // Static tokens and the service user: queueing looks the image up as
    // the service user (Glance would refuse the static token with 401), and
    // the prefetch runs as that user too.
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url,
        &format!(
            "management_auth = static\nadmin_tokens = {STATIC_TOKEN}\n\n{}",
            service_user(&ks)
        ),
    );
    let proxy = tokio::task::block_in_place(|| ProxyProcess::start(&conf, port));
    let queued = queue(&c, &proxy, &id).await;
    assert_eq!(
        queued.status,
        202,
        "{} / {}",
        String::from_utf8_lossy(&queued.body),
        glance.log_tail(20)
    );
    wait_for(
        "the queued image to be prefetched as the service user",
        Duration::from_secs(60),
        || async {
            let r = c.get(&format!("{}/v2/cache", proxy.url), &admin).await;
            let list: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            list["cached_images"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["image_id"] == id.as_str()))
        },
    )
    .await;
    // A user's own token still decides the user's download (a hit).
    let demo = ks.token("demo");
    let hit = c
        .get(
            &format!("{}/v2/images/{id}/file", proxy.url),
            &[("x-auth-token", demo.as_str())],
        )
        .await;
    assert_eq!(hit.status, 200);
    assert_eq!(md5_hex(&hit.body), want);
    // The static secret never reached Glance: no token was refused there.
    let glance_log =
        std::fs::read_to_string(glance.base_dir().join("log/glance-api.log")).unwrap_or_default();
    assert!(
        !glance_log.contains("Authorization failed for token")
            && !glance_log.contains("Invalid user token"),
        "Glance saw an invalid token: {}",
        glance.log_tail(20)
    );
    drop(proxy);

    // Static tokens without a service user: a clear error that says what
    // to configure, not Glance's bare 401.
    let cache = dir.path().join("cache-2");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url,
        &format!("management_auth = static\nadmin_tokens = {STATIC_TOKEN}\n"),
    );
    let proxy = tokio::task::block_in_place(|| ProxyProcess::start(&conf, port));
    let refused = queue(&c, &proxy, &id).await;
    let text = String::from_utf8_lossy(&refused.body);
    assert_eq!(refused.status, 502, "{text}");
    assert!(
        text.contains("[keystone_authtoken] auth_url, username, password and project_name"),
        "{text}"
    );
    assert!(
        proxy.log_text().contains("static admin token"),
        "logged: {}",
        proxy.log_text()
    );
}
