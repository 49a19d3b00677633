//! Version discovery with the cache API versions merged in.
//!
//! glanceclient refuses every `cache-*` command unless `GET /versions`
//! lists `v2.14` (and `v2.18` for clean/prune). An upstream Glance without
//! its own cache lists neither, so the proxy rewrites the document: the
//! cache versions first (`v2.18` CURRENT, `v2.17`…`v2.14` SUPPORTED), then
//! the upstream's other versions, every `href` pointing at the proxy.

use serde_json::{json, Value};

const CACHE_VERSIONS: [&str; 5] = ["v2.18", "v2.17", "v2.16", "v2.15", "v2.14"];

/// What a single-store Glance without a cache lists besides the cache versions.
const FALLBACK: [&str; 9] = [
    "v2.9", "v2.7", "v2.6", "v2.5", "v2.4", "v2.3", "v2.2", "v2.1", "v2.0",
];

fn entry(id: &str, status: &str, href: &str) -> Value {
    json!({"id": id, "status": status, "links": [{"rel": "self", "href": href}]})
}

/// The merged document; `upstream` is the upstream's own (if it had one),
/// `base` the proxy's URL as the client sees it (`http://host:port`).
pub(crate) fn merged(upstream: Option<&Value>, base: &str) -> Value {
    let href = format!("{}/v2/", base.trim_end_matches('/'));
    let mut versions: Vec<Value> = Vec::new();
    for (i, id) in CACHE_VERSIONS.iter().enumerate() {
        versions.push(entry(
            id,
            if i == 0 { "CURRENT" } else { "SUPPORTED" },
            &href,
        ));
    }
    let others: Vec<String> = upstream
        .and_then(|doc| doc.get("versions"))
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|v| v.get("id").and_then(Value::as_str))
                .filter(|id| !CACHE_VERSIONS.contains(id))
                .map(str::to_owned)
                .collect()
        })
        .filter(|list: &Vec<String>| !list.is_empty())
        .unwrap_or_else(|| FALLBACK.iter().map(|s| s.to_string()).collect());
    for id in others {
        versions.push(entry(&id, "SUPPORTED", &href));
    }
    json!({ "versions": versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_versions_first_and_hrefs_rewritten() {
        let up = json!({"versions": [
            {"id": "v2.15", "status": "SUPPORTED", "links": [{"rel": "self", "href": "http://up:9191/v2/"}]},
            {"id": "v2.9", "status": "SUPPORTED", "links": []},
            {"id": "v2.17", "status": "CURRENT", "links": []},
            {"id": "v2.7", "status": "SUPPORTED", "links": []},
        ]});
        let doc = merged(Some(&up), "http://proxy:9292");
        let list = doc["versions"].as_array().unwrap();
        let ids: Vec<&str> = list.iter().map(|v| v["id"].as_str().unwrap()).collect();
        assert_eq!(
            ids,
            ["v2.18", "v2.17", "v2.16", "v2.15", "v2.14", "v2.9", "v2.7"]
        );
        assert_eq!(list[0]["status"], "CURRENT");
        assert!(list[1..].iter().all(|v| v["status"] == "SUPPORTED"));
        assert!(list
            .iter()
            .all(|v| v["links"][0]["href"] == "http://proxy:9292/v2/"));
    }

    #[test]
    fn without_an_upstream_document_a_full_list_is_served() {
        let doc = merged(None, "http://p");
        assert_eq!(doc["versions"].as_array().unwrap().len(), 14);
    }
}
