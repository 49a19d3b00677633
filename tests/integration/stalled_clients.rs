//! A client that stops reading is disconnected after the client idle
//! timeout, which lets go of what its download held; a slow client that
//! keeps reading is never cut.

use std::time::{Duration, Instant};

use glance_cache_support::fixture::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proxy::*;

/// Sends a GET of `id` on a raw connection and returns the stream.
async fn raw_get(proxy: &Proxy, id: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(
        format!("GET /v2/images/{id}/file HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Auth-Token: MEMBER\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    s
}

/// Reads until the end (or an error), at most `limit` long; the bytes read.
async fn drain(s: &mut tokio::net::TcpStream, limit: Duration) -> usize {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    let deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline.into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n,
            Err(_) => panic!("still open after {limit:?} ({total} bytes)"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_and_a_slow_one_is_not() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(
        &glance.url(),
        dir.path(),
        ProxyOptions {
            client_idle_timeout: Some(Duration::from_secs(1)),
            ..Default::default()
        },
    )
    .await;
    // Cache BIG first, so the stalled download is a hit holding the file.
    let c = glance_cache_support::client::Client::new();
    assert_eq!(
        c.get(&proxy.file_url(BIG), &[("x-auth-token", "MEMBER")])
            .await
            .body
            .len() as u64,
        BIG_SIZE
    );
    proxy.settle().await;

    // Stops reading: the socket buffers fill, then nothing moves for 1 s.
    let mut stalled = raw_get(&proxy, BIG).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let got = drain(&mut stalled, Duration::from_secs(10)).await;
    assert!(
        (got as u64) < BIG_SIZE,
        "the stalled download was cut ({got} bytes)"
    );

    // Reads slowly but steadily (1 MiB every 300 ms, then the rest): complete.
    let mut slow = raw_get(&proxy, BIG).await;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut chunk = 0;
        while chunk < buf.len() {
            let n = slow.read(&mut buf[chunk..]).await.unwrap();
            assert!(n > 0, "closed early");
            chunk += n;
        }
        total += chunk;
    }
    total += drain(&mut slow, Duration::from_secs(30)).await;
    // The response head is part of what was read.
    assert!(
        total as u64 > BIG_SIZE,
        "the slow reader got everything ({total} bytes)"
    );
}
