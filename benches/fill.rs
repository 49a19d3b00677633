//! A miss: the fill streams the upstream body to disk with MD5 verification
//! (writer and hasher on their own threads) while the client follows it.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: u64 = 128 << 20;

fn fill(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (svc, cache) = rt.block_on(common::stack(dir.path(), SIZE));
    let next = AtomicU64::new(1);
    let mut g = c.benchmark_group("miss");
    g.throughput(Throughput::Bytes(SIZE));
    g.sample_size(10);
    g.bench_function("128MiB_verified", |b| {
        b.to_async(&rt).iter(|| async {
            let id = common::image_id(next.fetch_add(1, Ordering::Relaxed));
            assert_eq!(common::download(&svc, &id).await, SIZE);
            // Keep the disk from filling up across iterations.
            let parsed = id.parse().unwrap();
            cache.settled(&parsed).await;
            assert!(cache.invalidate(&parsed).await.unwrap(), "it was committed");
        })
    });
    g.finish();
}

/// The fill's hashing alone, on one core: it bounds any single fill. Compare
/// a build with `RUSTFLAGS="-C target-cpu=native"`.
fn md5(c: &mut Criterion) {
    use md5::{Digest, Md5};
    let buf = vec![7u8; 1 << 20];
    let mut g = c.benchmark_group("md5");
    g.throughput(Throughput::Bytes(64 << 20));
    g.sample_size(10);
    g.bench_function("64MiB", |b| {
        b.iter(|| {
            let mut h = Md5::new();
            for _ in 0..64 {
                h.update(&buf);
            }
            h.finalize()
        })
    });
    g.finish();
}

criterion_group!(benches, fill, md5);
criterion_main!(benches);
