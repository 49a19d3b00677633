//! Proves the real-Glance harness (`glance_cache_support::real_glance`,
//! `tests/harness/glance.sh`): a real Glance stores an uploaded image and serves it back
//! byte for byte, and its header-auth flavor tells anonymous, member and admin callers
//! apart. Needs the Glance venv (`bash tests/run.sh` makes it); fails without it.

use glance_cache_support::real_glance::{identity_headers, GlanceAuth, RealGlance};
use std::io::Write;
use std::process::Command;

/// Writes `len` bytes of deterministic pseudo-random data (xorshift) to `path`.
fn write_pattern(path: &std::path::Path, len: usize) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).expect("create data file"));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut left = len;
    while left > 0 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let n = left.min(bytes.len());
        file.write_all(&bytes[..n]).expect("write data file");
        left -= n;
    }
    file.flush().expect("flush data file");
}

#[test]
fn real_glance_serves_an_uploaded_image_byte_for_byte() {
    let glance = RealGlance::start(GlanceAuth::NoAuth);
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("three-mib.raw");
    write_pattern(&data, 3 * 1024 * 1024);
    let want_md5 = RealGlance::md5_of(&data);

    let id = glance.create_image(&data);
    let image = glance.image_json(&id, &[]);
    assert_eq!(image["size"], 3 * 1024 * 1024, "{image}");
    assert_eq!(
        image["checksum"].as_str(),
        Some(want_md5.as_str()),
        "{image}"
    );

    let downloaded = dir.path().join("downloaded.raw");
    let status = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o"])
        .arg(&downloaded)
        .args(["-w", "%{http_code}"])
        .arg(format!("{}/v2/images/{id}/file", glance.url))
        .output()
        .expect("run curl");
    assert!(status.status.success(), "curl failed: {status:?}");
    assert_eq!(String::from_utf8_lossy(&status.stdout), "200");
    assert_eq!(
        RealGlance::md5_of(&downloaded),
        want_md5,
        "downloaded bytes differ\n{}",
        glance.log_tail(20)
    );

    // No Glance image cache: the cache API is not there (this project is the cache).
    let (status, _) = glance.curl(&[], &[], "/v2/cache");
    assert_eq!(status, 404);
}

#[test]
fn real_glance_header_auth_tells_callers_apart() {
    let glance = RealGlance::start(GlanceAuth::Headers);
    let (status, body) = glance.curl(&[], &[], "/v2/images");
    assert_eq!(status, 401, "anonymous: {body}");

    let member = identity_headers("member,reader", "user-a", "project-a");
    let (status, body) = glance.curl(&[], &member, "/v2/images");
    assert_eq!(status, 200, "member: {body}");

    // publicizing an image is admin-only under Glance's stock policy
    let body = serde_json::json!({
        "name": "p", "disk_format": "raw", "container_format": "bare", "visibility": "public"
    })
    .to_string();
    let post = [
        "-X",
        "POST",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &body,
    ];
    let (status, text) = glance.curl(&post, &member, "/v2/images");
    assert_eq!(status, 403, "member creating a public image: {text}");
    let (status, text) = glance.curl(&post, &glance.admin_headers(), "/v2/images");
    assert_eq!(status, 201, "admin creating a public image: {text}");
}
