//! Operator visibility of the running binary: `/metrics` and `/healthz` on
//! `[proxy] admin_listen`, request ids on every response, one log line per
//! request, JSON logs, `log_file` and `debug`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::Value;

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::fixture::fake_glance;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");

fn request_id(r: &Reply) -> &str {
    r.header("x-openstack-request-id")
        .unwrap_or_else(|| panic!("no x-openstack-request-id on a {} response", r.status))
}

/// Writes `[DEFAULT]` options to a second config file.
fn defaults(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("[DEFAULT]\n{text}\n")).unwrap();
    path
}

/// Waits (bounded) until `read()` returns something `done` accepts.
fn wait_text(what: &str, mut read: impl FnMut() -> String, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = read();
        if done(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The value of an unlabelled sample in an exposition.
fn sample(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_a_miss_and_a_hit() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let cache = dir.path().join("cache");
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url(),
        &format!("admin_listen = 127.0.0.1:{admin}"),
    );
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let admin_url = format!("http://127.0.0.1:{admin}");

    let health = c.get(&format!("{admin_url}/healthz"), &[]).await;
    assert_eq!(
        (health.status.as_u16(), health.body.as_slice()),
        (200, &b"ok\n"[..])
    );

    let url = format!("{}/v2/images/{PUB}/file", proxy.url);
    assert_eq!(c.get(&url, &[MEMBER]).await.body, b"IMAGEDATA");
    // Committed and over: a request during the commit would join the fill.
    let metrics_url = format!("{admin_url}/metrics");
    wait_for("the fill to commit", Duration::from_secs(10), || async {
        let text = String::from_utf8(c.get(&metrics_url, &[]).await.body).unwrap();
        cache.join(PUB).exists() && sample(&text, "glance_cache_fills_in_flight") == Some(0)
    })
    .await;
    assert_eq!(c.get(&url, &[MEMBER]).await.body, b"IMAGEDATA");
    assert_eq!(glance.file_gets(PUB), 1, "the second download was a hit");

    let scrape = c.get(&format!("{admin_url}/metrics"), &[]).await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        scrape.headers
    );
    let text = String::from_utf8(scrape.body).unwrap();
    assert_eq!(sample(&text, "glance_cache_hits_total"), Some(1), "{text}");
    assert_eq!(
        sample(&text, "glance_cache_misses_total"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        sample(&text, "glance_cache_hit_bytes_total"),
        Some(9),
        "{text}"
    );
    assert_eq!(
        sample(&text, "glance_cache_upstream_bytes_total"),
        Some(9),
        "{text}"
    );
    assert_eq!(sample(&text, "glance_cache_size_bytes"), Some(9), "{text}");
    assert_eq!(sample(&text, "glance_cache_entries"), Some(1), "{text}");
    assert!(text.contains("# TYPE glance_cache_hits_total counter\n"));

    assert_eq!(
        c.get(&format!("{admin_url}/nothing"), &[]).await.status,
        404
    );
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_has_a_request_id_and_json_logs_have_one_line_each() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cache = dir.path().join("cache");
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url(), "");
    let json = defaults(dir.path(), "json.conf", "use_json = true");
    let proxy = ProxyProcess::start_files(&[&conf, &json], port);
    let c = Client::new();
    let url = format!("{}/v2/images/{PUB}/file", proxy.url);

    let miss = c.get(&url, &[MEMBER]).await;
    assert_eq!(miss.status, 200);
    let miss_id = request_id(&miss).to_string();
    wait_for("the fill to commit", Duration::from_secs(10), || async {
        cache.join(PUB).exists()
    })
    .await;
    let hit = c
        .get(
            &url,
            &[MEMBER, ("X-Openstack-Request-ID", "client-chosen-1")],
        )
        .await;
    assert_eq!(hit.body, b"IMAGEDATA");
    assert_eq!(
        request_id(&hit),
        "req-client-chosen-1",
        "a client's id is echoed"
    );
    let unauthorized = c
        .request(
            Method::PUT,
            &format!("{}/v2/cache/{PUB}", proxy.url),
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(unauthorized.status, 401);
    let management_id = request_id(&unauthorized).to_string();
    assert!(management_id.starts_with("req-"), "{management_id}");

    // One JSON object per line; one "request completed" line per request,
    // carrying the id the client saw.
    let log = wait_text(
        "three request lines",
        || proxy.log_text(),
        |t| t.matches("request completed").count() >= 3,
    );
    let mut completed = Vec::new();
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}\n{log}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        if v["message"] == "request completed" {
            completed.push(v);
        }
    }
    assert_eq!(completed.len(), 3, "{log}");
    let ids: Vec<&str> = completed
        .iter()
        .map(|v| v["span"]["request_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"req-client-chosen-1"), "{ids:?}");
    assert!(ids.contains(&management_id.as_str()), "{ids:?}");
    assert!(
        ids.contains(&miss_id.as_str()),
        "our id went upstream: {ids:?}"
    );
    let hit_line = completed
        .iter()
        .find(|v| v["span"]["request_id"] == "req-client-chosen-1")
        .unwrap();
    assert_eq!(hit_line["status"], 200);
    assert_eq!(hit_line["bytes"], 9);
    assert_eq!(hit_line["span"]["method"], "GET");
    assert_eq!(hit_line["span"]["path"], format!("/v2/images/{PUB}/file"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_502_has_a_request_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let conf = write_config(dir.path(), port, None, &dead, "");
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{PUB}/file", proxy.url);
    let r = c.get(&url, &[MEMBER]).await;
    assert_eq!(r.status, 502);
    let id = request_id(&r);
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
    let r = c
        .get(&url, &[MEMBER, ("x-openstack-request-id", "req-mine")])
        .await;
    assert_eq!((r.status.as_u16(), request_id(&r)), (502, "req-mine"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_file_and_debug() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cache = dir.path().join("cache");
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url(), "");
    let log_file = dir.path().join("proxy.log");
    std::fs::write(&log_file, "an earlier line\n").unwrap();
    let extra = defaults(
        dir.path(),
        "log.conf",
        &format!("debug = true\nlog_file = {}", log_file.display()),
    );
    // Without RUST_LOG, so that `debug` decides the level.
    let stderr = dir.path().join("stderr.txt");
    let mut child = Command::new(BIN)
        .args(["serve", "--config-file"])
        .arg(&conf)
        .arg("--config-file")
        .arg(&extra)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    wait_text(
        "the proxy to listen",
        || read(&log_file),
        |t| t.contains("serving"),
    );
    let c = Client::new();
    let url = format!("http://127.0.0.1:{port}/v2/images/{PUB}/file");
    assert_eq!(c.get(&url, &[MEMBER]).await.status, 200);
    let text = wait_text(
        "a request line",
        || read(&log_file),
        |t| t.contains("request completed"),
    );
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.starts_with("an earlier line\n"), "appended:\n{text}");
    assert!(
        text.contains(" DEBUG "),
        "debug = true logs our debug lines:\n{text}"
    );
    assert!(!text.contains('\u{1b}'), "no colours in a file:\n{text}");
    assert!(
        !read(&stderr).contains("request completed"),
        "logs go to the file, not to stderr"
    );
}

#[test]
fn bad_logging_and_admin_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_config(dir.path(), free_port(), None, "http://127.0.0.1:9", "");
    let bad = defaults(dir.path(), "bad.conf", "\nuse_json = maybe");
    let (code, err) = run(&[
        "serve",
        "--config-file",
        conf.to_str().unwrap(),
        "--config-file",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("glance-cache-proxy: error: invalid configuration: ")
            && err.contains("bad.conf:3: [DEFAULT] use_json = \"maybe\": expected a boolean"),
        "{err}"
    );

    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        None,
        "http://127.0.0.1:9",
        "admin_listen = nowhere",
    );
    let (code, err) = run(&["serve", "--config-file", conf.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("[proxy] admin_listen = \"nowhere\": expected host:port"),
        "{err}"
    );
}
