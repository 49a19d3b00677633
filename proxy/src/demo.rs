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

    let url = format!("http://{addr}/v2/images/{IMAGE}/file");
    let mut results = Vec::new();
    for _ in 0..2 {
        let started = Instant::now();
        let (status, len, md5) = download(&url).await?;
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        // The fill commits right after its last byte went out.
        cache.settled(&id).await;
        results.push(Download {
            status,
            len,
            md5,
            mib_per_s: len as f64 / secs / (1 << 20) as f64,
            full_downloads: glance.file_gets(IMAGE),
            probes: glance.ranged_file_gets(IMAGE),
        });
    }
    // Stopped (and drained) first, so that the hit has been counted.
    let _ = stop.send(());
    let _ = server.await;
    let entries = store.list().await?;
    let entry = entries.iter().find(|e| e.image_id.as_str() == IMAGE);

    // The results, apart from the log (which goes to stderr).
    let want = glance.image_md5(IMAGE).unwrap_or_default();
    let mut out = String::new();
    out.push_str(&format!(
        "\nglance-cache-proxy demo\n\
         \x20 image service (built-in, Glance's API)  {}\n\
         \x20 caching proxy in front of it           http://{addr}\n\
         \x20 cache directory                        {}\n\
         \x20 image {IMAGE}: {size} bytes, md5 {want}\n\n",
        glance.url(),
        store.root().display()
    ));
    let mut probes_before = 0;
    for (n, d) in results.iter().enumerate() {
        let what = if n == 0 {
            "miss: the proxy fetched the image from the image service once, streaming it to \
             this client while it wrote and verified the cache file"
                .to_owned()
        } else if d.probes > probes_before {
            "hit: read from the cache file; the image service was only asked (one 1-byte \
             request with the caller's credentials) whether this caller may download it"
                .to_owned()
        } else {
            "hit: read from the cache file; the image service was not asked again: this \
             caller's own download a moment ago counts as its permission for \
             authorization_cache_ttl (10 s), after which one 1-byte request with the caller's \
             credentials asks"
                .to_owned()
        };
        probes_before = d.probes;
        out.push_str(&format!(
            "  download {}: HTTP {}, {} bytes, md5 {} ({}), {:.1} MiB/s\n    {what}\n",
            n + 1,
            d.status,
            d.len,
            d.md5,
            if d.md5 == want { "correct" } else { "WRONG" },
            d.mib_per_s,
        ));
        out.push_str(&format!(
            "    image service so far: {} whole-image download(s), {} authorization request(s)\n\n",
            d.full_downloads, d.probes
        ));
    }
    match entry {
        Some(e) => out.push_str(&format!(
            "  cache entry: {} bytes, hits {} (whole downloads served from the cache), \
             verified {} (size, MD5 and SHA-512 checked before the last byte went out)\n",
            e.size, e.hits, e.verified
        )),
        None => out.push_str("  cache entry: none (the image was not cached)\n"),
    }
    out.push_str("\n  RUST_LOG=info glance-cache-proxy demo also shows the proxy's log.\n");
    print!("{out}");
    glance.shutdown().await;
    Ok(())
}

/// One download's outcome, and what the image service had served by then.
struct Download {
    status: u16,
    len: u64,
    md5: String,
    mib_per_s: f64,
    full_downloads: usize,
    probes: usize,
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
