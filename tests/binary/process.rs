//! The proxy as a process: graceful shutdown, crash recovery, a dead or
//! slow upstream, streaming uploads with flat memory, the demo.

use std::time::Duration;

use bytes::Bytes;
use glance_cache_support::fake_glance::Behaviour;

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::fixture::*;
use glance_cache_support::fixture::{fake_glance, BIG_SIZE};
use glance_cache_support::wait::*;

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_downloads_finish_then_exits() {
    let glance = fake_glance().await;
    // About 2.5 s for 50 MiB.
    glance.set_behaviour(BIG, Behaviour::default().rate(20 << 20));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cache = dir.path().join("cache");
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url(),
        "shutdown_timeout = 30",
    );
    let mut proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{BIG}/file", proxy.url);
    let download = {
        let c = c.clone();
        tokio::spawn(async move { c.get(&url, &MEMBER).await })
    };
    wait_for("the download to start", Duration::from_secs(10), || async {
        glance.file_gets(BIG) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.signal("TERM");
    let addr = proxy.addr;
    wait_for(
        "the listener to close after SIGTERM",
        Duration::from_secs(10),
        || async move { std::net::TcpStream::connect(addr).is_err() },
    )
    .await;
    let r = download.await.unwrap();
    assert!(r.complete(), "running download was cut: {:?}", r.error);
    assert_eq!(r.body.len() as u64, BIG_SIZE);
    let code = tokio::task::spawn_blocking(move || proxy.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0));
    assert_eq!(
        std::fs::metadata(cache.join(BIG)).unwrap().len(),
        BIG_SIZE,
        "fill committed before exit"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_fill_then_restart_serves_only_verified_data() {
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().rate(10 << 20));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cache = dir.path().join("cache");
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url(), "");
    let proxy = ProxyProcess::start(&conf, port);
    let url = format!("{}/v2/images/{BIG}/file", proxy.url);
    let c = Client::new();
    let pending = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move { c.get(&url, &MEMBER).await })
    };
    let partial = cache.join("incomplete").join(BIG);
    wait_for(
        "a partial fill on disk",
        Duration::from_secs(20),
        || async {
            std::fs::metadata(&partial)
                .map(|m| m.len() > 1 << 20)
                .unwrap_or(false)
        },
    )
    .await;
    proxy.signal("KILL");
    drop(proxy);
    let cut = pending.await.unwrap();
    assert!(!cut.complete(), "the killed proxy cannot have finished");
    assert!(partial.exists(), "kill -9 leaves the partial file behind");
    assert!(!cache.join(BIG).exists());

    glance.set_behaviour(BIG, Behaviour::default());
    let proxy = ProxyProcess::start(&conf, port);
    assert!(
        !partial.exists(),
        "startup removed the stale partial file:\n{}",
        proxy.log_text()
    );
    let r = c.get(&url, &MEMBER).await;
    assert!(r.complete());
    assert_eq!(md5_hex(&r.body), glance.image_md5(BIG).unwrap());
    assert_eq!(glance.file_gets(BIG), 2, "not served from the partial file");
    wait_for(
        "the new fill to commit",
        Duration::from_secs(20),
        || async { cache.join(BIG).exists() },
    )
    .await;
    let hit = c.get(&url, &MEMBER).await;
    assert_eq!(md5_hex(&hit.body), glance.image_md5(BIG).unwrap());
    assert_eq!(glance.file_gets(BIG), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_upstream_is_a_502_and_slow_upstream_a_504() {
    let dir = tempfile::tempdir().unwrap();
    let dead = free_port();
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache")),
        &format!("http://127.0.0.1:{dead}"),
        "upstream_connect_timeout = 2",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    for path in [format!("/v2/images/{PUB}/file"), "/v2/images".to_string()] {
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            c.get(&format!("{}{path}", proxy.url), &MEMBER),
        )
        .await
        .expect("a dead upstream must not hang the proxy");
        assert_eq!(r.status, 502, "{path}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(text.contains(&format!("127.0.0.1:{dead}")), "{text}");
    }
    drop(proxy);

    let glance = fake_glance().await;
    glance.set_behaviour(
        PUB,
        Behaviour::default().header_delay(Duration::from_secs(10)),
    );
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache2")),
        &glance.url(),
        "upstream_timeout = 1",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        c.get(&format!("{}/v2/images/{PUB}/file", proxy.url), &MEMBER),
    )
    .await
    .expect("a slow upstream must not hang the proxy");
    assert_eq!(r.status, 504);
}

/// A body of `total` bytes generated on the fly in 64 KiB frames.
fn generated_body(
    total: u64,
) -> impl http_body::Body<Data = Bytes, Error = std::io::Error> + Send + 'static {
    use futures_util::stream;
    let chunk = Bytes::from(vec![0x5au8; 64 * 1024]);
    let frames = (total / chunk.len() as u64) as usize;
    http_body_util::StreamBody::new(stream::iter(
        (0..frames).map(move |_| Ok::<_, std::io::Error>(http_body::Frame::data(chunk.clone()))),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_stream_through_with_flat_memory() {
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::Client as HyperClient;
    use hyper_util::rt::TokioExecutor;

    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&dir.path().join("cache")),
        &glance.url(),
        "",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let id = "77777777-7777-4777-8777-777777777777";
    let create = Client::new()
        .request(
            http::Method::POST,
            &format!("{}/v2/images", proxy.url),
            &[("x-auth-token", "ADMIN"), ("content-type", "application/json")],
            Bytes::from(format!(r#"{{"id": "{id}", "name": "up", "disk_format": "raw", "container_format": "bare"}}"#)),
        )
        .await;
    assert_eq!(
        create.status,
        201,
        "{}",
        String::from_utf8_lossy(&create.body)
    );

    const TOTAL: u64 = 512 << 20;
    let client = HyperClient::builder(TokioExecutor::new()).build_http();
    let req = http::Request::put(format!("{}/v2/images/{id}/file", proxy.url))
        .header("x-auth-token", "ADMIN")
        .header("content-type", "application/octet-stream")
        .body(generated_body(TOTAL).boxed())
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.status(), 204);
    let rss_mib = proxy.peak_rss_kib() / 1024;
    assert!(
        rss_mib < 64,
        "peak RSS {rss_mib} MiB while relaying a 512 MiB upload"
    );
    let meta = Client::new()
        .get(
            &format!("{}/v2/images/{id}", proxy.url),
            &[("x-auth-token", "ADMIN")],
        )
        .await;
    let json: serde_json::Value = serde_json::from_slice(&meta.body).unwrap();
    assert_eq!(json["size"].as_u64(), Some(TOTAL));
    assert_eq!(json["status"], "active");
}

#[test]
fn demo_shows_a_miss_then_a_hit() {
    let out = std::process::Command::new(BIN)
        .args(["demo", "--image-size", "8388608"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("download 1: HTTP 200, 8388608 bytes"),
        "{text}"
    );
    assert!(
        text.contains("download 2: HTTP 200, 8388608 bytes"),
        "{text}"
    );
    assert_eq!(text.matches("(correct)").count(), 2, "{text}");
    assert!(text.contains("miss: the proxy fetched the image"), "{text}");
    assert!(text.contains("hit: read from the cache file"), "{text}");
    // After the hit, still one whole download from the image service.
    let after_hit = &text[text.find("download 2:").unwrap()..];
    assert!(
        after_hit.contains("image service so far: 1 whole-image download(s)"),
        "{text}"
    );
    assert!(text.contains("hits 1"), "{text}");
    // The results are not interleaved with log lines: the log is quiet by default.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(" INFO "), "{log}");
}

/// Two proxy processes on one cache directory, in front of a fake Glance
/// that sends BIG at `rate` bytes per second.
struct TwoProcesses {
    glance: glance_cache_support::fake_glance::RunningFakeGlance,
    dir: tempfile::TempDir,
    cache: std::path::PathBuf,
    a: ProxyProcess,
    b: ProxyProcess,
}

impl TwoProcesses {
    async fn start(rate: u64) -> TwoProcesses {
        let glance = fake_glance().await;
        glance.set_behaviour(BIG, Behaviour::default().rate(rate));
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let mut procs = [free_port(), free_port()].map(|port| {
            let conf = write_config(dir.path(), port, Some(&cache), &glance.url(), "");
            Some(ProxyProcess::start(&conf, port))
        });
        let (a, b) = (procs[0].take().unwrap(), procs[1].take().unwrap());
        TwoProcesses {
            glance,
            dir,
            cache,
            a,
            b,
        }
    }
}

/// A download of BIG through `proxy`, running.
fn download(c: &Client, proxy: &ProxyProcess) -> tokio::task::JoinHandle<Reply> {
    let (c, url) = (c.clone(), format!("{}/v2/images/{BIG}/file", proxy.url));
    tokio::spawn(async move { c.get(&url, &MEMBER).await })
}

/// Waits until a fill of BIG has written its first MiB.
async fn partial_fill(cache: &std::path::Path) {
    let partial = cache.join("incomplete").join(BIG);
    wait_for("a fill on disk", Duration::from_secs(20), || async {
        std::fs::metadata(&partial).is_ok_and(|m| m.len() > 1 << 20)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_cache_directory_never_corrupt_an_entry() {
    let TwoProcesses {
        glance,
        dir: _dir,
        cache,
        a,
        b,
    } = TwoProcesses::start(40 << 20).await;
    let c = Client::new();
    let downloads: Vec<_> = [&a, &b, &a, &b].iter().map(|p| download(&c, p)).collect();
    let want = glance.image_md5(BIG).unwrap();
    for d in downloads {
        let r = d.await.unwrap();
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(md5_hex(&r.body), want);
    }
    wait_for("one committed entry", Duration::from_secs(30), || async {
        cache.join(BIG).exists() && files_in(&cache.join("incomplete")).is_empty()
    })
    .await;
    assert_eq!(md5_hex(&std::fs::read(cache.join(BIG)).unwrap()), want);
    // Within a process the two clients share one fill; across processes the
    // loser of the exclusive create relays instead of writing a second copy.
    assert!(
        glance.file_gets(BIG) < 4,
        "{} upstream downloads",
        glance.file_gets(BIG)
    );
    // Each process serves the committed entry as a hit.
    let before = glance.file_gets(BIG);
    for p in [&a, &b] {
        let r = c
            .get(&format!("{}/v2/images/{BIG}/file", p.url), &MEMBER)
            .await;
        assert_eq!(md5_hex(&r.body), want);
    }
    assert_eq!(glance.file_gets(BIG), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_process_on_the_directory_follows_the_first_ones_fill() {
    let TwoProcesses {
        glance,
        dir: _dir,
        cache,
        a,
        b,
    } = TwoProcesses::start(20 << 20).await;
    let c = Client::new();
    let want = glance.image_md5(BIG).unwrap();
    let first = download(&c, &a);
    partial_fill(&cache).await;
    // Eight clients of B while A fills: they follow A's file.
    let followers: Vec<_> = (0..8).map(|_| download(&c, &b)).collect();
    for d in std::iter::once(first).chain(followers) {
        let r = d.await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(md5_hex(&r.body), want);
        assert_eq!(r.header("content-md5"), Some(want.as_str()));
    }
    assert_eq!(
        glance.file_gets(BIG),
        1,
        "one upstream download for both processes:\n{}",
        b.log_text()
    );
    assert!(
        b.log_text().contains("following another process's fill"),
        "{}",
        b.log_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_a_process_killed_mid_fill_continue_from_the_upstream() {
    let TwoProcesses {
        glance,
        dir: _dir,
        cache,
        a,
        b,
    } = TwoProcesses::start(10 << 20).await;
    let c = Client::new();
    let first = download(&c, &a);
    partial_fill(&cache).await;
    let follower = download(&c, &b);
    wait_for("B to follow A's fill", Duration::from_secs(20), || async {
        b.log_text().contains("following another process's fill")
    })
    .await;
    a.signal("KILL");
    drop(a);
    assert!(!first.await.unwrap().complete(), "A's own client is cut");
    let r = follower.await.unwrap();
    assert!(r.complete(), "{:?}", r.error);
    assert_eq!(md5_hex(&r.body), glance.image_md5(BIG).unwrap());
    assert_eq!(
        glance.ranged_file_gets(BIG),
        2,
        "B's probe, then the rest of the image from where its client was"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_of_another_process_s_fill_that_fails_verification_are_truncated() {
    let TwoProcesses {
        glance,
        dir: _dir,
        cache,
        a,
        b,
    } = TwoProcesses::start(10 << 20).await;
    // Same length and headers, one byte in the middle inverted.
    glance.set_behaviour(BIG, Behaviour::default().rate(10 << 20).corrupt());
    let c = Client::new();
    let first = download(&c, &a);
    partial_fill(&cache).await;
    let follower = download(&c, &b);
    wait_for("B to follow A's fill", Duration::from_secs(20), || async {
        b.log_text().contains("following another process's fill")
    })
    .await;
    assert!(!first.await.unwrap().complete(), "A's own client is cut");
    let r = follower.await.unwrap();
    assert!(
        !r.complete(),
        "B's client got all {} bytes, though A's were wrong",
        r.body.len()
    );
    assert!(
        b.log_text().contains("do not make the image"),
        "B checked what it sent against the image's Content-MD5:\n{}",
        b.log_text()
    );
}

/// Resident memory of the process in KiB (VmRSS).
fn rss_kib(proxy: &ProxyProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_slow_downloads_hold_bounded_memory_and_give_it_back_afterwards() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(dir.path(), port, Some(&cache), &glance.url(), "");
    let proxy = ProxyProcess::start(&conf, port);
    let url = format!("{}/v2/images/{BIG}/file", proxy.url);
    let c = Client::new();
    assert!(c.get(&url, &MEMBER).await.complete());
    wait_for("BIG cached", Duration::from_secs(30), || async {
        cache.join(BIG).exists()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fresh = rss_kib(&proxy);

    // 300 clients that take the response head and then stop reading: each
    // download fills its socket and whatever the proxy buffers ahead of it.
    let mut stalled = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        let req = format!(
            "GET /v2/images/{BIG}/file HTTP/1.1\r\nHost: x\r\nX-Auth-Token: MEMBER\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        stalled.push(s);
    }
    for s in &mut stalled {
        let mut head = [0u8; 4096];
        let n = s.read(&mut head).await.unwrap();
        assert!(
            head[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &head[..n.min(64)]
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let peak = proxy.peak_rss_kib();
    // The shared read-buffer budget (64 MiB by default) plus a few small
    // buffers per connection; unbounded, each download would hold ~1 MiB.
    assert!(
        peak < fresh + (128 << 10),
        "peak RSS {} MiB with 300 stalled downloads (fresh: {} MiB)",
        peak >> 10,
        fresh >> 10
    );
    drop(stalled);
    // Once the burst is over, the memory goes back to the system.
    wait_for(
        "the proxy's memory to come back down",
        Duration::from_secs(30),
        || async { rss_kib(&proxy) < fresh + (24 << 10) },
    )
    .await;
    assert!(c.get(&url, &MEMBER).await.complete(), "still serving");
}
