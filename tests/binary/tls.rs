//! The binary with TLS on every hop, certificates made by the tests: a REAL Glance behind
//! a REAL HAProxy terminating TLS upstream, the proxy's own HTTPS listener reached by the
//! real `glance` client (`--os-cacert`), curl over HTTP/2 and the operator commands;
//! untrusted certificates, unusable certificate files, and SIGHUP rotation while a download
//! runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::support::*;
use glance_cache_support::fixture::*;
use glance_cache_support::haproxy::Haproxy;
use glance_cache_support::pki::{CertFiles, TestPki};
use glance_cache_support::real_glance::{venv_dir, GlanceAuth, RealGlance};
use glance_cache_support::wait::*;

const TOKEN: &str = "op-s3cret";

/// `[proxy]` lines for a TLS listener with `cert`.
fn listener_tls(cert: &CertFiles) -> String {
    format!(
        "tls_cert_file = {}\ntls_key_file = {}\n",
        cert.cert.display(),
        cert.key.display()
    )
}

/// Runs curl; returns (exit code, stdout, stderr).
fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", "60"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The subject of the certificate a TLS server presents, as curl prints it.
fn served_subject(url: &str, ca: &Path) -> String {
    let (_, _, err) = curl(&[
        "--verbose",
        "--cacert",
        ca.to_str().unwrap(),
        "--output",
        "/dev/null",
        &format!("{url}/versions"),
    ]);
    err.lines()
        .find_map(|l| l.trim_start_matches('*').trim().strip_prefix("subject:"))
        .unwrap_or_else(|| panic!("no certificate subject in curl's output:\n{err}"))
        .trim()
        .to_owned()
}

fn md5_of(path: &Path) -> String {
    RealGlance::md5_of(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_glance_behind_haproxy_tls_served_over_https_to_the_real_glance_client() {
    let glance = tokio::task::spawn_blocking(|| RealGlance::start(GlanceAuth::NoAuth))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("image.raw");
    std::fs::write(
        &image,
        (0..(3usize << 20))
            .map(|i| (i * 31 % 251) as u8)
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let id = tokio::task::block_in_place(|| glance.create_image(&image));

    // TLS from the proxy to Glance: HAProxy terminates it in front of glance-api.
    let upstream_pki = TestPki::new("upstream CA");
    let haproxy = Haproxy::tls_terminator(
        &upstream_pki.server,
        format!("127.0.0.1:{}", glance.port()).parse().unwrap(),
    );
    // TLS from the clients to the proxy, with another CA.
    let pki = TestPki::new("proxy CA");
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &haproxy.url,
        &format!(
            "upstream_ca_file = {}\n{}management_auth = static\nadmin_tokens = {TOKEN}\n",
            upstream_pki.ca.display(),
            listener_tls(&pki.server)
        ),
    );
    let proxy = ProxyProcess::start(&conf, port);
    let url = format!("https://127.0.0.1:{port}");
    let ca = pki.ca.to_str().unwrap();

    // The real glance client downloads through the proxy over https.
    let glance_cli = venv_dir().join("bin").join("glance");
    assert!(glance_cli.is_file(), "python-glanceclient is missing");
    let out = dir.path().join("out.raw");
    let run = |args: &[&str]| {
        let o = Command::new(&glance_cli)
            .args([
                "--os-image-url",
                &url,
                "--os-auth-token",
                TOKEN,
                "--os-cacert",
                ca,
            ])
            .args(args)
            .env_remove("OS_AUTH_URL")
            .env_remove("OS_CLOUD")
            // requests lets these override the client's own --os-cacert.
            .env_remove("REQUESTS_CA_BUNDLE")
            .env_remove("CURL_CA_BUNDLE")
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, o, e) = tokio::task::block_in_place(|| {
        run(&["image-download", "--file", out.to_str().unwrap(), &id])
    });
    assert_eq!(code, 0, "{o}{e}\n{}", proxy.log_text());
    assert_eq!(md5_of(&out), md5_of(&image));
    wait_for("the image cached", Duration::from_secs(30), || async {
        cache.join(&id).is_file()
    })
    .await;
    let (code, o, e) = tokio::task::block_in_place(|| run(&["cache-list"]));
    assert_eq!(code, 0, "{o}{e}");
    let row = o.lines().find(|l| l.contains(&id)).expect("listed");
    assert!(row.contains("cached"), "{row}");

    // With another CA the client refuses the proxy's certificate. (Without any
    // --os-cacert, glanceclient 4 passes verify=None to requests, which then checks
    // nothing: not something the proxy can change.)
    let stranger = TestPki::new("another CA");
    let o = Command::new(&glance_cli)
        .args([
            "--os-image-url",
            &url,
            "--os-auth-token",
            TOKEN,
            "--os-cacert",
        ])
        .arg(&stranger.ca)
        .arg("cache-list")
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(!o.status.success(), "an unknown CA is refused");

    // curl negotiates HTTP/2 with the proxy; the hit is byte-exact.
    let hit = dir.path().join("hit.raw");
    let (code, o, e) = curl(&[
        "--http2",
        "--cacert",
        ca,
        "--output",
        hit.to_str().unwrap(),
        "--write-out",
        "%{http_version} %{http_code}",
        &format!("{url}/v2/images/{id}/file"),
    ]);
    assert_eq!((code, o.as_str()), (0, "2 200"), "{e}");
    assert_eq!(md5_of(&hit), md5_of(&image));

    // The load balancer's health check reaches glance-api through the proxy.
    let (code, o, e) = curl(&[
        "--cacert",
        ca,
        "--write-out",
        " %{http_code}",
        &format!("{url}/healthcheck"),
    ]);
    assert_eq!((code, o.as_str()), (0, "OK 200"), "{e}");

    // The operator commands reach the https proxy with --os-cacert.
    let list = Command::new(BIN)
        .args(["list-cached", "--host", "https://127.0.0.1", "--port"])
        .arg(port.to_string())
        .args([
            "--os-auth-token",
            TOKEN,
            "--os-cacert",
            ca,
            "--format",
            "json",
        ])
        .env_remove("OS_AUTH_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        list.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    assert!(stdout.contains(&id), "{stdout}");
    let refused = Command::new(BIN)
        .args(["list-cached", "--host", "https://127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--os-auth-token", TOKEN])
        .env_remove("OS_CACERT")
        .output()
        .unwrap();
    assert!(
        !refused.status.success(),
        "the system trust store does not know the test CA"
    );
    let insecure = Command::new(BIN)
        .args(["list-cached", "-k", "--host", "https://127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--os-auth-token", TOKEN])
        .output()
        .unwrap();
    assert!(insecure.status.success(), "-k skips the check");
    drop(haproxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_certificate_the_proxy_does_not_trust_is_a_502_with_the_reason_logged() {
    let pki = TestPki::new("unknown CA");
    let glance = fake_glance_builder()
        .tls(pki.server_config(false))
        .spawn()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // No upstream_ca_file: the system trust store, which does not know the test CA.
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache")),
        &glance.url(),
        "",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let (code, o, e) = tokio::task::block_in_place(|| {
        curl(&[
            "--write-out",
            "%{http_code}",
            "--output",
            "/dev/null",
            &format!("{}/v2/images/{PUB}/file", proxy.url),
        ])
    });
    assert_eq!((code, o.as_str()), (0, "502"), "{e}");
    let log = proxy.log_text();
    assert!(
        log.contains("upstream unreachable") && log.contains("UnknownIssuer"),
        "{log}"
    );
    assert_eq!(glance.file_gets(PUB), 0);
}

#[test]
fn unusable_certificate_files_stop_the_proxy_at_startup_naming_the_file() {
    let pki = TestPki::new("CA");
    let dir = tempfile::tempdir().unwrap();
    let other = pki.issue_server("other");
    let missing = dir.path().join("missing.pem");
    for (extra, expected) in [
        (
            format!(
                "tls_cert_file = {}\ntls_key_file = {}\n",
                missing.display(),
                pki.server.key.display()
            ),
            "missing.pem".to_owned(),
        ),
        (
            format!(
                "tls_cert_file = {}\ntls_key_file = {}\n",
                pki.server.cert.display(),
                other.key.display()
            ),
            "does not match".to_owned(),
        ),
        (
            format!("tls_cert_file = {}\n", pki.server.cert.display()),
            "tls_key_file is not".to_owned(),
        ),
        (
            format!("upstream_ca_file = {}\n", missing.display()),
            "missing.pem".to_owned(),
        ),
    ] {
        let port = free_port();
        let upstream = if extra.starts_with("upstream") {
            "https://127.0.0.1:1"
        } else {
            "http://127.0.0.1:1"
        };
        let conf = write_config(dir.path(), port, None, upstream, &extra);
        for command in ["serve", "check-config"] {
            let (code, err) = run(&[command, "--config-file", conf.to_str().unwrap()]);
            assert_eq!(code, Some(1), "{command} {extra}: {err}");
            assert!(err.contains(&expected), "{command} {extra}: {err}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_listener_certificate_while_a_download_runs() {
    let pki = TestPki::new("rotation CA");
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let live = CertFiles {
        cert: dir.path().join("live.pem"),
        key: dir.path().join("live.key"),
    };
    std::fs::copy(&pki.server.cert, &live.cert).unwrap();
    std::fs::copy(&pki.server.key, &live.key).unwrap();
    let port = free_port();
    // The admin endpoint has its own certificate (another file of the same CA).
    let admin = pki.issue_server("admin");
    let admin_port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache")),
        &glance.url(),
        &format!(
            "{}admin_listen = 127.0.0.1:{admin_port}\nadmin_tls_cert_file = {}\nadmin_tls_key_file = {}\n",
            listener_tls(&live),
            admin.cert.display(),
            admin.key.display()
        ),
    );
    let proxy = ProxyProcess::start(&conf, port);
    let url = format!("https://127.0.0.1:{port}");
    let ca = pki.ca.clone();
    assert!(served_subject(&url, &ca).contains("server 127.0.0.1"));
    let admin_url = format!("https://127.0.0.1:{admin_port}");
    let (code, o, e) = curl(&[
        "--cacert",
        ca.to_str().unwrap(),
        &format!("{admin_url}/healthz"),
    ]);
    assert_eq!(
        (code, o.as_str()),
        (0, "ok\n"),
        "the admin endpoint over TLS: {e}"
    );
    assert!(served_subject(&admin_url, &ca).contains("admin 127.0.0.1"));

    // A slow download (50 MiB at 10 MiB/s) on the first certificate.
    let out = dir.path().join("big.raw");
    let download = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--limit-rate",
            "10M",
            "--cacert",
        ])
        .arg(&ca)
        .args(["--header", "x-auth-token: MEMBER", "--output"])
        .arg(&out)
        .args(["--write-out", "%{http_code}"])
        .arg(format!("{url}/v2/images/{BIG}/file"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the download to start", Duration::from_secs(20), || async {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 1 << 20)
    })
    .await;

    // Rotate the files, then SIGHUP.
    let next = pki.issue_server("next");
    std::fs::copy(&next.cert, &live.cert).unwrap();
    std::fs::copy(&next.key, &live.key).unwrap();
    proxy.signal("HUP");
    wait_for(
        "the reload to be logged",
        Duration::from_secs(10),
        || async { proxy.log_text().contains("certificate reloaded") },
    )
    .await;
    assert!(served_subject(&url, &ca).contains("next 127.0.0.1"));
    assert!(
        served_subject(&admin_url, &ca).contains("admin 127.0.0.1"),
        "its own certificate"
    );

    // A broken rotation keeps the certificate in use, and says so.
    std::fs::write(&live.key, "not a key").unwrap();
    proxy.signal("HUP");
    wait_for(
        "the refusal to be logged",
        Duration::from_secs(10),
        || async { proxy.log_text().contains("keeping the certificate in use") },
    )
    .await;
    assert!(served_subject(&url, &ca).contains("next 127.0.0.1"));

    // The download that began on the old certificate completes intact.
    let done = tokio::task::spawn_blocking(move || download.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&done.stdout), "200");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), BIG_SIZE);
    assert_eq!(md5_of(&out), glance.image_md5(BIG).unwrap());
    let _: PathBuf = out;
}

#[test]
fn sighup_without_tls_is_logged_and_the_proxy_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_config(dir.path(), port, None, "http://127.0.0.1:1", "");
    let mut proxy = ProxyProcess::start(&conf, port);
    proxy.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !proxy.log_text().contains("no TLS certificate to reload") {
        assert!(std::time::Instant::now() < deadline, "{}", proxy.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        proxy.wait_exit(Duration::from_millis(500)),
        None,
        "still running"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
}
