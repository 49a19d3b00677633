//! Cache hit body throughput (in process, page cache warm): the bytes a hit
//! hands to hyper per second, with the default 256 KiB reads.

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: u64 = 256 << 20;

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = common::image_id(1);
    let svc = rt.block_on(async {
        let (svc, store) = common::stack(dir.path(), SIZE).await;
        assert_eq!(common::download(&svc, &id).await, SIZE);
        while store.list().await.unwrap().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        svc
    });
    let mut g = c.benchmark_group("hit");
    g.throughput(Throughput::Bytes(SIZE));
    g.sample_size(10);
    g.bench_function("256MiB", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(common::download(&svc, &id).await, SIZE) })
    });
    g.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
