//! Beyond Glance: N concurrent first downloads cost one upstream download,
//! streamed to all N while it fills.

use std::time::Duration;

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_misses_cost_one_upstream_download() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(100 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let downloads: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            let url = proxy.file_url(BIG);
            tokio::spawn(async move { c.get(&url, &MEMBER).await })
        })
        .collect();
    let want = glance.image_md5(BIG).unwrap();
    for d in downloads {
        let r = d.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(r.body.len() as u64, BIG_SIZE);
        assert_eq!(md5_hex(&r.body), want);
    }
    assert_eq!(glance.file_gets(BIG), 1, "exactly one upstream download");
    proxy.settle().await;
    assert_eq!(
        md5_hex(&std::fs::read(proxy.cached_path(BIG)).unwrap()),
        want
    );
    assert!(files_in(&dir.path().join("incomplete")).is_empty());
    assert!(files_in(&dir.path().join("invalid")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_receive_bytes_while_the_fill_runs() {
    let glance = fake_glance().await;
    // 50 MiB at 10 MiB/s: about five seconds of fill.
    glance.set_behaviour(BIG, Behaviour::default().rate(10 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let first = {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get(&url, &MEMBER).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    // A second client gets its first megabyte long before the fill ends.
    let status = c
        .get_and_abort(&proxy.file_url(BIG), &MEMBER, 1 << 20)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        proxy.cache.fills_in_flight(),
        1,
        "bytes arrived while the fill was still running"
    );
    let first = first.await.unwrap();
    assert!(first.complete());
    assert_eq!(glance.file_gets(BIG), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_client_leaving_fails_nobody() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(50 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let leader = {
        let (c, url) = (c.clone(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get_and_abort(&url, &MEMBER, 1).await })
    };
    wait_for("the fill to start", Duration::from_secs(10), || async {
        proxy.cache.fills_in_flight() == 1
    })
    .await;
    let followers: Vec<_> = (0..3)
        .map(|_| {
            let (c, url) = (c.clone(), proxy.file_url(BIG));
            tokio::spawn(async move { c.get(&url, &MEMBER).await })
        })
        .collect();
    assert_eq!(leader.await.unwrap(), 200);
    let want = glance.image_md5(BIG).unwrap();
    for f in followers {
        let r = f.await.unwrap();
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(md5_hex(&r.body), want);
    }
    assert_eq!(glance.file_gets(BIG), 1);
}

/// A client that reads slowly: the fill must finish long before it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_client_never_slows_the_fill() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let mut sock = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let req =
        format!("GET /v2/images/{BIG}/file HTTP/1.1\r\nHost: t\r\nX-Auth-Token: MEMBER\r\n\r\n");
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Read nothing more: the socket buffers fill and the client stalls.
    wait_for(
        "the fill to commit while the client stalls",
        Duration::from_secs(30),
        || async { proxy.entry(BIG).await.is_some() },
    )
    .await;
    assert_eq!(proxy.entry(BIG).await.unwrap().size, BIG_SIZE);
    drop(sock);
}
