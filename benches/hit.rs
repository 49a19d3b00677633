//! Cache hit body throughput (in process, page cache warm): the bytes a hit
//! hands to hyper per second, with the default 256 KiB reads — next to the
//! reference measured in the same run: the same file read with plain 256 KiB
//! `read`s into one reused buffer (what `cat` does).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SIZE: u64 = 256 << 20;

fn hit(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let id = common::image_id(1);
    let svc = rt.block_on(async {
        let (svc, cache) = common::stack(dir.path(), SIZE).await;
        assert_eq!(common::download(&svc, &id).await, SIZE);
        cache.settled(&id.parse().unwrap()).await;
        svc
    });
    let mut g = c.benchmark_group("hit");
    g.throughput(Throughput::Bytes(SIZE));
    g.sample_size(10);
    g.bench_function("256MiB", |b| {
        b.to_async(&rt)
            .iter(|| async { assert_eq!(common::download(&svc, &id).await, SIZE) })
    });
    let path = dir.path().join(&id);
    g.bench_function("reference_plain_read_256MiB", |b| {
        let mut buf = vec![0u8; 256 << 10];
        b.iter(|| {
            let mut f = std::fs::File::open(&path).unwrap();
            let mut total = 0u64;
            loop {
                let n = std::io::Read::read(&mut f, &mut buf).unwrap();
                if n == 0 {
                    break;
                }
                total += n as u64;
            }
            assert_eq!(total, SIZE);
        })
    });
    g.finish();
}

criterion_group!(benches, hit);
criterion_main!(benches);
