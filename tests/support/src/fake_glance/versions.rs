//! Version discovery of a Glance *without* an image cache (and with
//! multiple stores enabled, like the reference peer): `v2.17` is CURRENT and
//! `v2.14`, `v2.16`, `v2.18` (the cache API versions) do not exist.

use serde::Serialize;

use super::json;

/// `(version, status)` in the order Glance lists them.
const VERSIONS: &[(&str, &str)] = &[
    ("2.15", "SUPPORTED"),
    ("2.13", "SUPPORTED"),
    ("2.12", "SUPPORTED"),
    ("2.11", "SUPPORTED"),
    ("2.10", "SUPPORTED"),
    ("2.9", "SUPPORTED"),
    ("2.8", "SUPPORTED"),
    ("2.17", "CURRENT"),
    ("2.7", "SUPPORTED"),
    ("2.6", "SUPPORTED"),
    ("2.5", "SUPPORTED"),
    ("2.4", "SUPPORTED"),
    ("2.3", "SUPPORTED"),
    ("2.2", "SUPPORTED"),
    ("2.1", "SUPPORTED"),
    ("2.0", "SUPPORTED"),
];

/// Whether `token` (the first path segment, or the rest of a
/// `application/vnd.openstack.images-` Accept header) selects API v2.
pub(crate) fn is_accepted(token: &str) -> bool {
    token == "v2"
        || token
            .strip_prefix('v')
            .is_some_and(|v| VERSIONS.iter().any(|(n, _)| *n == v))
}

#[derive(Serialize)]
struct Doc<'a> {
    versions: Vec<Version<'a>>,
}

#[derive(Serialize)]
struct Version<'a> {
    id: String,
    status: &'a str,
    links: [Link; 1],
}

#[derive(Serialize)]
struct Link {
    rel: &'static str,
    href: String,
}

/// The versions document; hrefs are `http://<host>/v2/`.
pub(crate) fn document(host: &str) -> Vec<u8> {
    let href = format!("http://{host}/v2/");
    let versions = VERSIONS
        .iter()
        .map(|(n, status)| Version {
            id: format!("v{n}"),
            status,
            links: [Link {
                rel: "self",
                href: href.clone(),
            }],
        })
        .collect();
    json::to_vec(&Doc { versions })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_as_the_reference_peer() {
        // Peer C (cache off) answered 1682 bytes for Host 127.0.0.1:9397.
        let doc = document("127.0.0.1:9397");
        assert_eq!(doc.len(), 1682);
        let text = String::from_utf8(doc).unwrap();
        assert!(text.starts_with(r#"{"versions": [{"id": "v2.15", "status": "SUPPORTED", "links": [{"rel": "self", "href": "http://127.0.0.1:9397/v2/"}]}, {"id": "v2.13""#));
        for absent in ["v2.14", "v2.16", "v2.18"] {
            assert!(!text.contains(absent), "{absent}");
        }
        assert!(text.contains(r#"{"id": "v2.17", "status": "CURRENT""#));
    }

    #[test]
    fn accepted_tokens() {
        for ok in ["v2", "v2.0", "v2.7", "v2.8", "v2.13", "v2.15", "v2.17"] {
            assert!(is_accepted(ok), "{ok}");
        }
        for no in [
            "v1", "v2.14", "v2.16", "v2.18", "v3", "", "2", "images", "v2.1x",
        ] {
            assert!(!is_accepted(no), "{no}");
        }
    }
}
