//! Reverse proxy passthrough throughput: one image download through
//! [`ReverseProxy`](glance_cache::reverse_proxy::ReverseProxy) against the
//! same download straight from its upstream. Both run in process over
//! loopback HTTP/1.1 on kept-alive connections; `passthrough/proxied`
//! divided by `passthrough/direct` is the share of the direct throughput
//! the proxy keeps.

mod common;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use glance_cache::reverse_proxy::ReverseProxy;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

const SIZE: u64 = 256 << 20;

/// GETs `uri`, counting the body's bytes without keeping them.
async fn get(client: &Client<HttpConnector, Empty<Bytes>>, uri: http::Uri) -> u64 {
    let mut body = client.get(uri).await.unwrap().into_body();
    let mut n = 0;
    while let Some(frame) = body.frame().await {
        n += frame.unwrap().into_data().map_or(0, |d| d.len() as u64);
    }
    n
}

fn passthrough(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (direct, proxied) = rt.block_on(async {
        let upstream = common::http_upstream(SIZE).await;
        let proxy = ReverseProxy::<Incoming>::new(format!("http://{upstream}").parse().unwrap());
        (upstream, common::serve_local(proxy).await)
    });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut g = c.benchmark_group("passthrough");
    g.throughput(Throughput::Bytes(SIZE));
    g.sample_size(10);
    for (name, addr) in [("direct", direct), ("proxied", proxied)] {
        let uri: http::Uri = format!("http://{addr}/v2/images/x/file").parse().unwrap();
        g.bench_function(name, |b| {
            b.to_async(&rt)
                .iter(|| async { assert_eq!(get(&client, uri.clone()).await, SIZE) })
        });
    }
    g.finish();
}

criterion_group!(benches, passthrough);
criterion_main!(benches);
