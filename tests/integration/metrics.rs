//! The cache's Prometheus metrics, in process: what is counted, and the
//! exposition format they render to.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::proxy::*;
use bytes::Bytes;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;
use http::{Method, StatusCode};

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];
const ADMIN: [(&str, &str); 1] = [("x-auth-token", "ADMIN")];
const OTHER: [(&str, &str); 1] = [("x-auth-token", "OTHER")];

/// A parsed exposition: `name{labels}` (labels as written, sorted by the
/// writer) → value, plus each family's type.
#[derive(Debug, Default)]
struct Exposition {
    samples: BTreeMap<String, f64>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    fn get(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in {:#?}", self.samples))
    }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses `{a="x",b="y\"z"}` strictly; returns the rest of the line.
fn parse_labels(text: &str) -> Result<&str, String> {
    let mut rest = text.strip_prefix('{').ok_or("expected {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok(after);
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = &rest[..eq];
        if !valid_name(name) || name.contains(':') {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or("label value not quoted")?;
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((i, '"')) => break i,
                Some(_) => {}
            }
        };
        rest = &rest[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

/// A strict reader of the text format as this crate writes it: every
/// family is `# HELP`, `# TYPE`, then its samples; counters end in `_total`.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let mut family: Option<String> = None;
    let mut help_for: Option<String> = None;
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .ok_or_else(|| err("HELP without text".into()))?;
            if !valid_name(name) || help.is_empty() || help.contains('\n') {
                return Err(err("bad HELP".into()));
            }
            help_for = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .ok_or_else(|| err("TYPE without type".into()))?;
            if help_for.as_deref() != Some(name) {
                return Err(err("TYPE not right after its HELP".into()));
            }
            if !matches!(kind, "counter" | "gauge" | "histogram") {
                return Err(err(format!("unexpected type {kind}")));
            }
            if (kind == "counter") != name.ends_with("_total") {
                return Err(err("counters (and only counters) end in _total".into()));
            }
            if out
                .types
                .insert(name.to_string(), kind.to_string())
                .is_some()
            {
                return Err(err("family declared twice".into()));
            }
            family = Some(name.to_string());
        } else if line.starts_with('#') {
            continue; // a comment
        } else {
            let name_end = line
                .find(['{', ' '])
                .ok_or_else(|| err("sample without value".into()))?;
            let name = &line[..name_end];
            let of_family = |f: &str| {
                name == f
                    || (out.types.get(f).map(String::as_str) == Some("histogram")
                        && ["_bucket", "_sum", "_count"]
                            .iter()
                            .any(|suffix| name.strip_suffix(suffix) == Some(f)))
            };
            if !family.as_deref().is_some_and(of_family) {
                return Err(err("sample outside its family".into()));
            }
            let rest = if line[name_end..].starts_with('{') {
                parse_labels(&line[name_end..]).map_err(err)?
            } else {
                &line[name_end..]
            };
            let value = rest
                .strip_prefix(' ')
                .ok_or_else(|| err("no space before the value".into()))?;
            let value: f64 = value
                .parse()
                .map_err(|_| err("value is not a number".into()))?;
            let series = line[..line.len() - rest.len()].to_string();
            if out.samples.insert(series, value).is_some() {
                return Err(err("series twice".into()));
            }
        }
    }
    Ok(out)
}

async fn scrape(proxy: &Proxy) -> Exposition {
    let text = proxy.cache.metrics_snapshot().await.to_string();
    parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_miss_and_one_hit() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();

    let before = scrape(&proxy).await;
    assert_eq!(before.get("glance_cache_hits_total"), 0.0);
    assert_eq!(before.get("glance_cache_entries"), 0.0);

    let miss = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(
        (miss.status, miss.body.as_slice()),
        (StatusCode::OK, &b"IMAGEDATA"[..])
    );
    proxy.settle().await;
    let hit = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(hit.body, b"IMAGEDATA");
    assert_eq!(glance.file_gets(PUB), 1, "the second download was a hit");

    let m = scrape(&proxy).await;
    assert_eq!(m.get("glance_cache_hits_total"), 1.0);
    assert_eq!(m.get("glance_cache_misses_total"), 1.0);
    assert_eq!(m.get("glance_cache_hit_bytes_total"), 9.0);
    assert_eq!(m.get("glance_cache_upstream_bytes_total"), 9.0);
    assert_eq!(m.get("glance_cache_fills_committed_total"), 1.0);
    assert_eq!(m.get("glance_cache_fills_in_flight"), 0.0);
    assert_eq!(m.get("glance_cache_size_bytes"), 9.0);
    assert_eq!(m.get("glance_cache_entries"), 1.0);
    for reason in ["upstream", "verification", "local"] {
        assert_eq!(
            m.get(&format!(
                "glance_cache_fill_failures_total{{reason=\"{reason}\"}}"
            )),
            0.0
        );
    }
    assert_eq!(m.get("glance_cache_hit_authorization_refusals_total"), 0.0);
    assert_eq!(m.types["glance_cache_size_bytes"], "gauge");
    assert_eq!(m.types["glance_cache_hits_total"], "counter");
    assert_eq!(m.get("glance_cache_max_size_bytes"), (10u64 << 30) as f64);
    // The hit's authorization asked the upstream once (the miss needed none).
    assert_eq!(m.types["glance_cache_authorization_seconds"], "histogram");
    assert_eq!(m.get("glance_cache_authorization_seconds_count"), 1.0);
    assert_eq!(
        m.get("glance_cache_authorization_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(m.get("glance_cache_authorization_seconds_sum") > 0.0);

    // Requests the cache does not handle are neither hits nor misses.
    let listing = c.get(&format!("{}/v2/images", proxy.url), &MEMBER).await;
    assert_eq!(listing.status, 200);
    let after = scrape(&proxy).await;
    assert_eq!(after.get("glance_cache_misses_total"), 1.0);
    assert_eq!(after.get("glance_cache_hits_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_counted_apart_from_hits() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    assert_eq!(c.get(&proxy.file_url(PRIV), &ADMIN).await.body, alphabet());
    proxy.settle().await;
    assert_eq!(c.get(&proxy.file_url(PRIV), &OTHER).await.status, 404);
    assert_eq!(c.get(&proxy.file_url(PRIV), &[]).await.status, 401);
    let m = scrape(&proxy).await;
    assert_eq!(m.get("glance_cache_hit_authorization_refusals_total"), 2.0);
    assert_eq!(m.get("glance_cache_hits_total"), 0.0);
    assert_eq!(m.get("glance_cache_hit_bytes_total"), 0.0);
    assert_eq!(m.get("glance_cache_misses_total"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_failures_by_reason() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();

    glance.set_behaviour(PUB, Behaviour::default().wrong_content_md5());
    let r = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert!(
        !r.complete(),
        "a corrupt image is never a complete response"
    );
    proxy.settle().await;

    glance.set_behaviour(PRIV, Behaviour::default().reset_after(10));
    let r = c.get(&proxy.file_url(PRIV), &MEMBER).await;
    assert!(!r.complete());
    proxy.settle().await;

    let m = scrape(&proxy).await;
    assert_eq!(
        m.get("glance_cache_fill_failures_total{reason=\"verification\"}"),
        1.0
    );
    assert_eq!(
        m.get("glance_cache_fill_failures_total{reason=\"upstream\"}"),
        1.0
    );
    assert_eq!(
        m.get("glance_cache_fill_failures_total{reason=\"local\"}"),
        0.0
    );
    assert_eq!(m.get("glance_cache_fills_committed_total"), 0.0);
    assert_eq!(m.get("glance_cache_entries"), 0.0);
    assert_eq!(m.get("glance_cache_misses_total"), 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fills_in_flight_while_an_image_streams() {
    let glance = fake_glance().await;
    // About 5 s for 50 MiB.
    glance.set_behaviour(BIG, Behaviour::default().rate(10 << 20));
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let download = {
        let (c, url) = (Client::new(), proxy.file_url(BIG));
        tokio::spawn(async move { c.get(&url, &MEMBER).await })
    };
    wait_for("a fill in flight", Duration::from_secs(10), || async {
        proxy.cache.metrics_snapshot().await.fills_in_flight == 1
    })
    .await;
    let during = proxy.cache.metrics_snapshot().await;
    assert!(during.upstream_bytes < BIG_SIZE, "counted while streaming");
    let r = download.await.unwrap();
    assert_eq!(r.body.len() as u64, BIG_SIZE);
    proxy.settle().await;
    let after = proxy.cache.metrics_snapshot().await;
    assert_eq!(after.fills_in_flight, 0);
    assert_eq!(after.upstream_bytes, BIG_SIZE);
    assert_eq!(after.cache_size_bytes, Some(BIG_SIZE));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_counts_evictions() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let opts = ProxyOptions {
        max_size: 30,
        ..ProxyOptions::default()
    };
    let proxy = Proxy::start(&glance.url(), dir.path(), opts).await;
    let c = Client::new();
    for id in [PUB, PRIV] {
        assert_eq!(c.get(&proxy.file_url(id), &MEMBER).await.status, 200);
        proxy.settle().await;
    }
    assert_eq!(scrape(&proxy).await.get("glance_cache_size_bytes"), 35.0);
    let report = proxy.store().prune().await.unwrap();
    assert_eq!((report.files, report.bytes), (1, 9));
    let m = scrape(&proxy).await;
    assert_eq!(m.get("glance_cache_evictions_total"), 1.0);
    assert_eq!(m.get("glance_cache_evicted_bytes_total"), 9.0);
    assert_eq!(m.get("glance_cache_size_bytes"), 26.0);
    assert_eq!(m.get("glance_cache_entries"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_results() {
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let put = |id: &str| {
        let url = format!("{}/v2/cache/{id}", proxy.url);
        let c = c.clone();
        async move { c.request(Method::PUT, &url, &ADMIN, Bytes::new()).await }
    };
    assert_eq!(put(PUB).await.status, 202);
    // PRIV is active, but its download is refused: a permanent failure.
    glance.set_behaviour(
        PRIV,
        Behaviour::default().force_status(StatusCode::FORBIDDEN),
    );
    assert_eq!(put(PRIV).await.status, 202);
    wait_for(
        "both prefetch jobs to end",
        Duration::from_secs(20),
        || async {
            let s = proxy.cache.metrics_snapshot().await;
            s.prefetch_successes + s.prefetch_failures == 2
        },
    )
    .await;
    let m = scrape(&proxy).await;
    assert_eq!(
        m.get("glance_cache_prefetches_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        m.get("glance_cache_prefetches_total{result=\"failure\"}"),
        1.0
    );
    assert_eq!(m.get("glance_cache_entries"), 1.0);
}

#[test]
fn the_reader_rejects_what_the_format_forbids() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert_eq!(parse(ok).unwrap().get("a_total{x=\"1\\\"\"}"), 3.0);
    for bad in [
        "a_total 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1",
        "# HELP a A.\n# TYPE a counter\na 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=1} 1\n",
        "# HELP a_total A.\n# TYPE a_total counter\na_total x\n",
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

/// Every `expr` string anywhere in a Grafana dashboard.
fn exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_names_only_metrics_the_proxy_exports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("etc/grafana/glance-cache-proxy.json");
    let text = std::fs::read_to_string(&path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Hit ratio",
        "Bytes by source",
        "Fills in flight",
        "Failures by reason",
        "Cache size vs limit",
        "Hit authorization latency",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no {wanted:?} panel in {titles:?}"
        );
    }
    let ids: std::collections::BTreeSet<u64> =
        panels.iter().filter_map(|p| p["id"].as_u64()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");

    // What a running proxy exports, every family present.
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&glance.url(), dir.path(), ProxyOptions::default()).await;
    let exported = scrape(&proxy).await;
    let series: std::collections::BTreeSet<String> = exported
        .types
        .iter()
        .flat_map(|(name, kind)| {
            let mut names = vec![name.clone()];
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            names
        })
        .collect();
    let mut all = Vec::new();
    exprs(&dashboard, &mut all);
    assert!(all.len() >= 20, "{all:?}");
    let mut used = std::collections::BTreeSet::new();
    for expr in &all {
        let mut rest = expr.as_str();
        while let Some(at) = rest.find("glance_cache_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            assert!(
                series.contains(name),
                "{name} (in {expr:?}) is not exported; exported: {series:?}"
            );
            used.insert(name.to_owned());
            rest = &tail[end..];
        }
    }
    for family in [
        "glance_cache_hits_total",
        "glance_cache_max_size_bytes",
        "glance_cache_authorization_seconds_bucket",
    ] {
        assert!(used.contains(family), "the dashboard does not use {family}");
    }
}
