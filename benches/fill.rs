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

/// The fill's hashing alone, on one core: it bounds any single fill (and a
/// remote hit). RustCrypto's code, and with `--features openssl` the
/// system's libcrypto beside it, the one the proxy binary uses:
/// `cargo bench --bench fill --features openssl -- digest`. Compare a build
/// with `RUSTFLAGS="-C target-cpu=native"`.
fn digests(c: &mut Criterion) {
    use sha2::Digest;
    let buf = vec![7u8; 1 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(64 << 20));
    g.sample_size(10);
    fn rust_crypto<D: Digest>(buf: &[u8]) -> usize {
        let mut h = D::new();
        for _ in 0..64 {
            h.update(buf);
        }
        h.finalize().len()
    }
    g.bench_function("md5_rustcrypto", |b| {
        b.iter(|| rust_crypto::<md5::Md5>(&buf))
    });
    g.bench_function("sha512_rustcrypto", |b| {
        b.iter(|| rust_crypto::<sha2::Sha512>(&buf))
    });
    #[cfg(feature = "openssl")]
    {
        use openssl::hash::{Hasher, MessageDigest};
        fn libcrypto(md: MessageDigest, buf: &[u8]) -> usize {
            let mut h = Hasher::new(md).unwrap();
            for _ in 0..64 {
                h.update(buf).unwrap();
            }
            h.finish().unwrap().len()
        }
        g.bench_function("md5_libcrypto", |b| {
            b.iter(|| libcrypto(MessageDigest::md5(), &buf))
        });
        g.bench_function("sha512_libcrypto", |b| {
            b.iter(|| libcrypto(MessageDigest::sha512(), &buf))
        });
    }
    g.finish();
}

criterion_group!(benches, fill, digests);
criterion_main!(benches);
