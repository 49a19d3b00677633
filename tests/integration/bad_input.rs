//! Bad input never touches the filesystem and never breaks the proxy:
//! malformed ids, path tricks, odd headers, a bad checksum header.

use crate::proxy::*;
use glance_cache_support::client::raw_request;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_tricks_and_malformed_ids_are_forwarded_untouched() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    // Something a traversal would hit if ids became paths.
    std::fs::write(dir.path().join("incomplete").join("victim"), b"keep").unwrap();
    let before = files_in(dir.path());
    let long = "a".repeat(4096);
    let paths = [
        "/v2/images/../file".to_string(),
        "/v2/images/%2e%2e/file".to_string(),
        "/v2/images/..%2F..%2Fcache.db/file".to_string(),
        "/v2/images/cache.db/file".to_string(),
        "/v2/images/incomplete/file".to_string(),
        "/v2/images/queue/file".to_string(),
        format!("/v2/images/{PUB}%23/file"),
        format!("/v2/images/{long}/file"),
        "/v2/images/%00/file".to_string(),
        "/v2/images/E9DCFC44-0CC6-4689-AC18-0F5D1BEB6C2C/file".to_string(),
    ];
    for p in &paths {
        let head = raw_request(
            proxy.addr,
            &format!(
                "GET {p} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ADMIN\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        let status: u16 = head[9..12].parse().unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{} -> {}",
            &p[..p.len().min(60)],
            head.lines().next().unwrap_or("")
        );
    }
    for p in ["/v2/images/..", "/v2/images/cache.db", "/v2/images/%2e%2e"] {
        let head = raw_request(
            proxy.addr,
            &format!("DELETE {p} HTTP/1.1\r\nHost: t\r\nX-Auth-Token: ADMIN\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(head.starts_with("HTTP/1.1 4"), "{p}: {head}");
    }
    proxy.settle().await;
    assert_eq!(files_in(dir.path()), before);
    assert_eq!(
        std::fs::read(dir.path().join("incomplete").join("victim")).unwrap(),
        b"keep"
    );
    assert!(files_in(&dir.path().join("invalid")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_request_headers_do_not_break_the_cache_path() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    c.get(&proxy.file_url(PUB), &[("x-auth-token", "MEMBER")])
        .await;
    proxy.settle().await;
    // A garbage Range is still a range: the upstream decides, the cache stays out.
    let ranged = glance.ranged_file_gets(PUB);
    let r = c
        .get(
            &proxy.file_url(PUB),
            &[("x-auth-token", "MEMBER"), ("range", "bytes=banana")],
        )
        .await;
    assert_eq!(
        glance.ranged_file_gets(PUB),
        ranged + 1,
        "forwarded: {}",
        r.status
    );
    // Non-UTF-8 header bytes and a huge request id.
    let head = raw_request(
        proxy.addr,
        &format!(
            "GET /v2/images/{PUB}/file HTTP/1.1\r\nHost: t\r\nX-Auth-Token: MEMBER\r\nX-Weird: \u{fffd}\r\nX-Openstack-Request-Id: {}\r\nConnection: close\r\n\r\n",
            "r".repeat(500)
        ),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let rid = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("x-openstack-request-id"))
        .unwrap();
    assert!(rid.len() < 120, "over-long request ids are replaced: {rid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_checksum_header_is_served_but_not_cached() {
    let glance = fake_glance().await;
    glance.set_behaviour(PUB, Behaviour::default().garbage_content_md5());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let r = Client::new()
        .get(&proxy.file_url(PUB), &[("x-auth-token", "MEMBER")])
        .await;
    assert_eq!(r.body, b"IMAGEDATA");
    proxy.settle().await;
    assert!(!proxy.cached_path(PUB).exists());
    assert!(files_in(&dir.path().join("incomplete")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_and_its_connection_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let glance = glance_cache_support::fixture::fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = crate::proxy::Proxy::start(&glance.url(), dir.path(), Default::default()).await;
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        s.read_to_end(&mut answer),
    )
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(read.is_ok(), "the connection was left open: {text}");
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(glance.calls().is_empty(), "nothing reached the upstream");
}
