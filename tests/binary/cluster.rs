//! A cluster of real `glance-cache-proxy` processes sharing one bucket of a
//! real S3-protocol server (s3s-fs, started by the test), behind a real
//! HAProxy (round robin), in front of a real Glance: a cold image costs one
//! upstream download for the whole cluster, every node knows who holds it,
//! and a node killed mid-burst loses only its own clients, truncated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::glanceclient::{glance_cli, Cli};
use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::haproxy::Haproxy;
use glance_cache_support::real_glance::{GlanceAuth, RealGlance};
use glance_cache_support::s3::S3Server;
use glance_cache_support::wait::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "cluster-admin";

/// A proxy node of the cluster: its own port, cache directory and
/// `worker_self_reference_url`, the shared bucket.
fn start_node(dir: &Path, glance: &str, s3: &S3Server) -> (ProxyProcess, PathBuf) {
    let port = free_port();
    let cache = dir.join(format!("cache-{port}"));
    let extra = format!(
        "management_auth = static\nadmin_tokens = {TOKEN}\n\
         remote_store_url = s3://{bucket}/cluster\nremote_store_endpoint = {endpoint}\n\
         remote_store_access_key_id = {key}\nremote_store_secret_access_key = {secret}\n\
         remote_store_allow_http = true\n\
         [DEFAULT]\nworker_self_reference_url = http://127.0.0.1:{port}\n",
        bucket = s3.bucket(),
        endpoint = s3.endpoint(),
        key = s3.access_key(),
        secret = s3.secret_key(),
    );
    let conf = write_config(dir, port, Some(&cache), glance, &extra);
    (ProxyProcess::start(&conf, port), cache)
}

/// A file of `len` pseudo-random bytes (an image to upload).
fn image_file(dir: &Path, name: &str, len: usize, seed: u64) -> (PathBuf, Vec<u8>) {
    let mut x = seed;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// Waits until Glance's request log stops growing, then counts the whole
/// downloads of `id` in it.
async fn settled_downloads(glance: &RealGlance, id: &str) -> usize {
    let mut last = usize::MAX;
    for _ in 0..50 {
        let now = glance.file_downloads(id);
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_clients_through_haproxy_cost_one_upstream_download_for_three_proxies() {
    let s3 = S3Server::start();
    let glance = tokio::task::spawn_blocking(|| RealGlance::start(GlanceAuth::NoAuth))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = image_file(dir.path(), "cold.raw", 24 << 20, 7);
    let want = md5_hex(&bytes);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let nodes: Vec<(ProxyProcess, PathBuf)> = (0..3)
        .map(|_| start_node(dir.path(), &glance.url, &s3))
        .collect();
    let lb = Haproxy::round_robin(&nodes.iter().map(|(p, _)| p.addr).collect::<Vec<_>>());

    let url = format!("{}/v2/images/{id}/file", lb.url);
    let clients: Vec<_> = (0..30)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Client::new().get(&url, &[]).await })
        })
        .collect();
    for client in clients {
        let r = client.await.unwrap();
        assert_eq!(r.status, 200, "{:?}", r.error);
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(md5_hex(&r.body), want);
    }
    assert_eq!(
        settled_downloads(&glance, &id).await,
        1,
        "one upstream download for the cluster: {}",
        glance.log_tail(40)
    );

    // Every node holds it and says so; the bucket holds it once.
    let key = format!("cluster/images/{id}");
    wait_for("the upload", Duration::from_secs(30), || async {
        s3.keys(&key).contains(&key)
    })
    .await;
    wait_for(
        "three registry entries",
        Duration::from_secs(30),
        || async { s3.keys(&format!("cluster/nodes/{id}/")).len() == 3 },
    )
    .await;
    let mut holders: Vec<String> = nodes.iter().map(|(p, _)| p.url.clone()).collect();
    holders.sort();
    for (node, _) in &nodes {
        let r = Client::new()
            .get(
                &format!("{}/v2/cache/nodes/{id}", node.url),
                &[("x-auth-token", TOKEN)],
            )
            .await;
        assert_eq!(r.status, 200);
        let listed: Vec<String> = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(listed, holders, "node {}", node.url);
    }
    // The real glance client shows each node's own cache.
    let bin = glance_cli();
    for (node, _) in &nodes {
        let cli = Cli {
            bin: bin.clone(),
            url: node.url.clone(),
        };
        let (code, out, err) = cli.run_with(TOKEN, &["cache-list"]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            out.lines().any(|l| l.contains(&id) && l.contains("cached")),
            "{}: {out}",
            node.url
        );
    }

    // A node that never saw the image serves it from the bucket.
    let (fourth, _) = start_node(dir.path(), &glance.url, &s3);
    let r = Client::new()
        .get(&format!("{}/v2/images/{id}/file", fourth.url), &[])
        .await;
    assert!(r.complete(), "{:?}", r.error);
    assert_eq!(md5_hex(&r.body), want);
    assert_eq!(
        settled_downloads(&glance, &id).await,
        1,
        "served from the bucket"
    );
}

/// What a slow client received: the status, how many body bytes, whether
/// every byte matched `want` at its offset, and whether the body was whole.
#[derive(Debug)]
struct Received {
    status: u16,
    len: usize,
    right: bool,
    whole: bool,
}

/// `GET path` through `addr`, reading at about `rate` bytes per second
/// (bounded: 60 s at most), each byte checked against `want`.
async fn slow_get(addr: std::net::SocketAddr, path: &str, want: &[u8], rate: usize) -> Received {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut body_start = None;
    while body_start.is_none() {
        let n = s.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        body_start = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|p| p + 4);
    }
    let Some(start) = body_start else {
        return Received {
            status: 0,
            len: 0,
            right: true,
            whole: false,
        };
    };
    let text = String::from_utf8_lossy(&head[..start]).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut got = head[start..].to_vec();
    let mut right = got.as_slice() == &want[..got.len().min(want.len())];
    let mut len = got.len();
    got.clear();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let chunk = Duration::from_secs_f64(buf.len() as f64 / rate as f64);
    while tokio::time::Instant::now() < deadline {
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        right &= len + n <= want.len() && buf[..n] == want[len..len + n];
        len += n;
        tokio::time::sleep(chunk.mul_f64(n as f64 / buf.len() as f64)).await;
    }
    Received {
        status,
        len,
        right,
        whole: len == want.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_one_proxy_mid_burst_truncates_only_its_own_clients() {
    let s3 = S3Server::start();
    let glance = tokio::task::spawn_blocking(|| RealGlance::start(GlanceAuth::NoAuth))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (file, bytes) = image_file(dir.path(), "burst.raw", 32 << 20, 11);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let mut nodes: Vec<(ProxyProcess, PathBuf)> = (0..3)
        .map(|_| start_node(dir.path(), &glance.url, &s3))
        .collect();
    let lb = Haproxy::round_robin(&nodes.iter().map(|(p, _)| p.addr).collect::<Vec<_>>());
    let want = std::sync::Arc::new(bytes);
    let path = format!("/v2/images/{id}/file");
    // 30 clients at 8 MiB/s each: about 4 s per download.
    let clients: Vec<_> = (0..30)
        .map(|_| {
            let (want, path, addr) = (want.clone(), path.clone(), lb.addr);
            tokio::spawn(async move { slow_get(addr, &path, &want, 8 << 20).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut killed, _) = nodes.remove(1);
    killed.signal("KILL");
    killed.wait_exit(Duration::from_secs(5));
    let mut truncated = 0;
    for client in clients {
        let r = client.await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.right, "a client received a wrong byte: {r:?}");
        assert!(r.len <= want.len(), "{r:?}");
        if !r.whole {
            truncated += 1;
        }
    }
    assert!(
        (1..=10).contains(&truncated),
        "only the killed node's clients (a third) end truncated, and they do: {truncated}"
    );
    drop(nodes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_cut_by_kill_9_leaves_no_object_in_the_bucket() {
    use glance_cache_support::s3::{Fault, S3Op};
    let s3 = S3Server::start();
    let glance = tokio::task::spawn_blocking(|| RealGlance::start(GlanceAuth::NoAuth))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Six 8 MiB parts: a multipart upload.
    let (file, bytes) = image_file(dir.path(), "upload.raw", 48 << 20, 13);
    let id = tokio::task::block_in_place(|| glance.create_image(&file));
    let (mut node, _cache) = start_node(dir.path(), &glance.url, &s3);
    // Every store request takes a second: the upload is caught mid-way.
    s3.set_fault(Fault::Delay(Duration::from_secs(1)));
    let r = Client::new()
        .get(&format!("{}/v2/images/{id}/file", node.url), &[])
        .await;
    assert!(r.complete() && r.body == bytes, "{:?}", r.error);
    let key = format!("cluster/images/{id}");
    wait_for(
        "the upload's second part",
        Duration::from_secs(60),
        || async { s3.count(S3Op::UploadPart, &key) >= 2 },
    )
    .await;
    node.signal("KILL");
    node.wait_exit(Duration::from_secs(5));
    s3.set_fault(Fault::None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s3.count(S3Op::CompleteMultipartUpload, &key), 0);
    assert!(
        s3.keys("cluster/images/").is_empty(),
        "an interrupted upload is invisible: {:?}",
        s3.keys("cluster/")
    );
}
