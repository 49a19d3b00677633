//! Which requests the cache handles.

use http::header::{HeaderMap, CONTENT_RANGE, RANGE};
use http::{Method, Uri};

use crate::versioning::v2_rest;
use crate::ImageId;

/// What the cache does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /v2/images/{id}/file` without a range: hit, join or fill.
    Download(ImageId),
    /// `DELETE /v2/images/{id}`: invalidate after the upstream agrees.
    Delete(ImageId),
    /// Everything else goes to the inner service untouched.
    Other,
}

fn decode_segment(raw: &str) -> Option<ImageId> {
    if raw.contains('%') {
        // Glance matches on the decoded path; so do we. Anything that does
        // not decode to a canonical UUID is not ours.
        let bytes = raw.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        ImageId::parse(std::str::from_utf8(&out).ok()?).ok()
    } else {
        ImageId::parse(raw).ok()
    }
}

fn has_nonempty(headers: &HeaderMap, name: http::header::HeaderName) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| !v.as_bytes().iter().all(u8::is_ascii_whitespace))
}

/// Classifies a request. Never touches the filesystem.
pub(crate) fn route(method: &Method, uri: &Uri, headers: &HeaderMap) -> Route {
    let Some(rest) = v2_rest(uri.path(), headers) else {
        return Route::Other;
    };
    let Some(image) = rest.strip_prefix("/images/") else {
        return Route::Other;
    };
    if *method == Method::GET {
        let Some(raw) = image.strip_suffix("/file") else {
            return Route::Other;
        };
        if raw.contains('/') {
            return Route::Other;
        }
        // Ranged requests are never served from or stored into the cache (LP 1664709).
        if has_nonempty(headers, RANGE) || has_nonempty(headers, CONTENT_RANGE) {
            return Route::Other;
        }
        return decode_segment(raw).map_or(Route::Other, Route::Download);
    }
    if *method == Method::DELETE && !image.contains('/') {
        return decode_segment(image).map_or(Route::Other, Route::Delete);
    }
    Route::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c";

    fn r(method: Method, path: &str, headers: &[(&'static str, &str)]) -> Route {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        route(&method, &path.parse().unwrap(), &h)
    }

    fn id() -> ImageId {
        ImageId::parse(ID).unwrap()
    }

    #[test]
    fn downloads_and_deletes_under_every_v2_prefix() {
        for prefix in ["/v2", "/v2.0", "/v2.9", "/v2.14", "/v2.18"] {
            let p = format!("{prefix}/images/{ID}/file");
            assert_eq!(r(Method::GET, &p, &[]), Route::Download(id()), "{p}");
            let d = format!("{prefix}/images/{ID}");
            assert_eq!(r(Method::DELETE, &d, &[]), Route::Delete(id()), "{d}");
        }
        assert_eq!(
            r(Method::GET, &format!("/v2/images/{ID}/file?x=1"), &[]),
            Route::Download(id())
        );
    }

    #[test]
    fn media_type_versioning() {
        let p = format!("/images/{ID}/file");
        let accept = [("accept", "application/vnd.openstack.images-v2.1")];
        assert_eq!(r(Method::GET, &p, &accept), Route::Download(id()));
        assert_eq!(r(Method::GET, &p, &[]), Route::Other);
    }

    #[test]
    fn not_cache_relevant() {
        let file = format!("/v2/images/{ID}/file");
        for (m, p) in [
            (Method::HEAD, file.clone()),
            (Method::PUT, file.clone()),
            (Method::GET, format!("{file}/")),
            (Method::GET, format!("/v2/images/{ID}")),
            (Method::GET, "/v2/images/detail/file".to_string()),
            (Method::DELETE, "/v2/images/detail".to_string()),
            (Method::GET, format!("/v1/images/{ID}")),
            (Method::GET, format!("/v2.19/images/{ID}/file")),
            (Method::GET, format!("/v2.05/images/{ID}/file")),
            (Method::DELETE, format!("/v2.05/images/{ID}")),
            (Method::GET, format!("/v3/images/{ID}/file")),
            (Method::GET, "/v2/images/../file".to_string()),
            (Method::GET, "/v2/images/%2e%2e/file".to_string()),
            (Method::GET, "/v2/images/a%2Fb/file".to_string()),
            (Method::GET, "/v2/images/%zz/file".to_string()),
            (Method::GET, format!("/v2/images/{}/file", "a".repeat(4096))),
            (Method::DELETE, format!("/v2/images/{ID}/")),
        ] {
            assert_eq!(r(m.clone(), &p, &[]), Route::Other, "{m} {p}");
        }
        assert_eq!(
            r(Method::GET, &file, &[("range", "bytes=0-1")]),
            Route::Other
        );
        assert_eq!(
            r(Method::GET, &file, &[("content-range", "bytes 3-5/*")]),
            Route::Other
        );
        assert_eq!(
            r(Method::GET, &file, &[("range", "")]),
            Route::Download(id())
        );
    }

    #[test]
    fn percent_encoded_uuid_is_decoded() {
        let enc = ID.replacen('e', "%65", 1);
        assert_eq!(
            r(Method::GET, &format!("/v2/images/{enc}/file"), &[]),
            Route::Download(id())
        );
    }
}
