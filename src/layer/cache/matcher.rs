//! Which requests the cache handles.

use http::header::HeaderMap;
use http::{Method, Uri};

use super::range::{classify, Ranged};
use crate::versioning::v2_rest;
use crate::ImageId;

/// What the cache does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /v2/images/{id}/file`: the whole image (hit, join or fill), or
    /// one range of it the cache answers ([`Ranged`] is never
    /// `Ranged::Upstream` here).
    Download(ImageId, Ranged),
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

/// Classifies a request; ranges are the cache's to answer when
/// `serve_ranges`, else they go upstream. Never touches the filesystem.
pub(crate) fn route(method: &Method, uri: &Uri, headers: &HeaderMap, serve_ranges: bool) -> Route {
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
        // A part is never stored in the cache (LP 1664709); it is served
        // from it when asked to.
        let ranged = match classify(headers) {
            Ranged::Upstream => return Route::Other,
            Ranged::Whole => Ranged::Whole,
            _ if !serve_ranges => return Route::Other,
            other => other,
        };
        return decode_segment(raw).map_or(Route::Other, |id| Route::Download(id, ranged));
    }
    if *method == Method::DELETE && !image.contains('/') {
        return decode_segment(image).map_or(Route::Other, Route::Delete);
    }
    Route::Other
}

#[cfg(test)]
mod tests {
    use super::super::range::ByteRange;
    use super::*;

    const ID: &str = "e9dcfc44-0cc6-4689-ac18-0f5d1beb6c2c";

    fn r(method: Method, path: &str, headers: &[(&'static str, &str)]) -> Route {
        route_with(method, path, headers, true)
    }

    fn route_with(
        method: Method,
        path: &str,
        headers: &[(&'static str, &str)],
        serve_ranges: bool,
    ) -> Route {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, v.parse().unwrap());
        }
        route(&method, &path.parse().unwrap(), &h, serve_ranges)
    }

    fn whole() -> Route {
        Route::Download(id(), Ranged::Whole)
    }

    fn id() -> ImageId {
        ImageId::parse(ID).unwrap()
    }

    #[test]
    fn downloads_and_deletes_under_every_v2_prefix() {
        for prefix in ["/v2", "/v2.0", "/v2.9", "/v2.14", "/v2.18"] {
            let p = format!("{prefix}/images/{ID}/file");
            assert_eq!(r(Method::GET, &p, &[]), whole(), "{p}");
            let d = format!("{prefix}/images/{ID}");
            assert_eq!(r(Method::DELETE, &d, &[]), Route::Delete(id()), "{d}");
        }
        assert_eq!(
            r(Method::GET, &format!("/v2/images/{ID}/file?x=1"), &[]),
            whole()
        );
    }

    #[test]
    fn media_type_versioning() {
        let p = format!("/images/{ID}/file");
        let accept = [("accept", "application/vnd.openstack.images-v2.1")];
        assert_eq!(r(Method::GET, &p, &accept), whole());
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
            r(Method::GET, &file, &[("content-range", "bytes 3-5/*")]),
            Route::Other
        );
        assert_eq!(
            r(Method::GET, &file, &[("range", "bytes=0-1,4-5")]),
            Route::Other
        );
        // Glance refuses an empty Range with a 416: its answer is relayed.
        assert_eq!(r(Method::GET, &file, &[("range", "")]), Route::Other);
    }

    #[test]
    fn single_ranges_are_the_cache_s_when_it_serves_ranges() {
        let file = format!("/v2/images/{ID}/file");
        let range = [("range", "bytes=0-1")];
        assert_eq!(
            r(Method::GET, &file, &range),
            Route::Download(id(), Ranged::Single(ByteRange::FromTo(0, 1)))
        );
        assert_eq!(route_with(Method::GET, &file, &range, false), Route::Other);
        let if_range = [("range", "bytes=0-1"), ("if-range", "\"abc\"")];
        assert_eq!(
            r(Method::GET, &file, &if_range),
            Route::Download(id(), Ranged::IgnoredRange)
        );
        assert_eq!(
            route_with(Method::GET, &file, &if_range, false),
            Route::Other
        );
    }

    #[test]
    fn percent_encoded_uuid_is_decoded() {
        let enc = ID.replacen('e', "%65", 1);
        assert_eq!(
            r(Method::GET, &format!("/v2/images/{enc}/file"), &[]),
            whole()
        );
    }
}
