//! `glance-cache-proxy demo`: the proxy's main job, end to end, on one
//! machine with nothing installed: a built-in image service, the caching
//! proxy in front of it, and two downloads of one image.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use glance_cache::auth::manage::ManagementAuth;
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::CacheStore;
use glance_cache::{GlanceCache, ImageId, Stack};
use glance_cache_support::fake_glance::{FakeGlance, FakeImage, Visibility};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::{Digest, Md5};
use tokio::net::TcpListener;

const IMAGE: &str = "c0ffee00-0000-4000-8000-000000000001";

pub(crate) async fn run(size: u64) -> anyhow::Result<()> {
    let work = tempfile::tempdir().context("temporary directory")?;
    let glance = FakeGlance::builder()
        .image(
            FakeImage::new(IMAGE)
                .pattern(size, 7)
                .visibility(Visibility::Public),
        )
        .spawn()
        .await
        .context("starting the built-in image service")?;
    let store = CacheStore::builder(work.path().join("image-cache"))
        .with_min_free_disk(0)
        .open()
        .await
        .context("opening the cache directory")?;
    let cache = GlanceCache::builder(store.clone()).build();
    // The stack `serve` runs; the built-in image service lets anyone
    // download, so the management API is open (on loopback).
    let stack = Stack::builder(&cache)
        .management(ManagementAuth::open())
        .upstream(ReverseProxy::new(glance.url().parse()?))
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(stack.serve(
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));
    let id = ImageId::parse(IMAGE).context("demo image id")?;

    println!("image service (built-in, Glance API):  {}", glance.url());
    println!("caching proxy:                         http://{addr}");
    println!(
        "cache directory:                       {}",
        store.root().display()
    );
    println!(
        "image {IMAGE}: {size} bytes, md5 {}",
        glance.image_md5(IMAGE).unwrap_or_default()
    );
    println!();
    let url = format!("http://{addr}/v2/images/{IMAGE}/file");
    for label in ["miss (first download) ", "hit  (second download)"] {
        let started = Instant::now();
        let (status, len, md5) = download(&url).await?;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        // The fill commits right after its last byte went out.
        cache.settled(&id).await;
        println!(
            "{label}: HTTP {status}, {len} bytes, md5 {md5}, {:>7.1} MiB/s, upstream downloads: {}",
            len as f64 / secs / (1 << 20) as f64,
            glance.file_gets(IMAGE)
        );
    }
    // Stopped (and drained) first, so that the hit has been counted.
    let _ = stop.send(());
    let _ = server.await;
    println!();
    for entry in store.list().await? {
        println!(
            "cached: {}  size {}  hits {}  verified {}",
            entry.image_id, entry.size, entry.hits, entry.verified
        );
    }
    glance.shutdown().await;
    Ok(())
}

/// GETs `url`, hashing the body as it streams (never held in memory).
async fn download(url: &str) -> anyhow::Result<(u16, u64, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.get(url.parse()?).await.context("download")?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut md5 = Md5::new();
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.context("download body")?.into_data() {
            len += data.len() as u64;
            md5.update(&data);
        }
    }
    Ok((status, len, hex::encode(md5.finalize())))
}
