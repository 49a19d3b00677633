//! `glance-cache-proxy demo`: the proxy's main job, end to end, on one
//! machine with nothing installed: a built-in image service, the caching
//! proxy in front of it, and two downloads of one image.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use glance_cache::layer::cache::{CacheLayer, RequestBody};
use glance_cache::reverse_proxy::ReverseProxy;
use glance_cache::store::CacheStore;
use glance_cache_support::fake_glance::{FakeGlance, FakeImage, Visibility};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::{Digest, Md5};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

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
    let layer = CacheLayer::new(store.clone());
    let upstream = ReverseProxy::<RequestBody<Incoming>>::new(glance.url().parse()?);
    let service = ServiceBuilder::new().layer(layer.clone()).service(upstream);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(glance_cache::server::serve(
        listener,
        service,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(5),
    ));

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
        for _ in 0..500 {
            if layer.fills_in_flight() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "{label}: HTTP {status}, {len} bytes, md5 {md5}, {:>7.1} MiB/s, upstream downloads: {}",
            len as f64 / secs / (1 << 20) as f64,
            glance.file_gets(IMAGE)
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!();
    for entry in store.list().await? {
        println!(
            "cached: {}  size {}  hits {}  verified {}",
            entry.image_id, entry.size, entry.hits, entry.verified
        );
    }
    let _ = stop.send(());
    let _ = server.await;
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
