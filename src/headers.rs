//! Header rules shared by the proxy's parts: Glance's request id, and the
//! hop-by-hop headers that never cross the proxy.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Glance's request id header.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-openstack-request-id");

/// Glance's `max_request_id_length` default.
const MAX_REQUEST_ID: usize = 64;

/// The request id of a request, by Glance's rules: the client's
/// `X-Openstack-Request-ID` (with Glance's `req-` prefix added when it
/// lacks it) when the result is at most 64 printable ASCII characters,
/// otherwise a new `req-<uuid4>`. The one place ids are minted.
pub(crate) fn request_id(request: &HeaderMap) -> HeaderValue {
    if let Some(v) = request.get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        let id = if v.starts_with("req-") {
            v.to_string()
        } else {
            format!("req-{v}")
        };
        if !v.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic()) {
            if let Ok(value) = HeaderValue::from_str(&id) {
                return value;
            }
        }
    }
    HeaderValue::from_str(&format!("req-{}", uuid::Uuid::new_v4()))
        .unwrap_or_else(|_| HeaderValue::from_static("req-unknown"))
}

/// Headers that only concern one connection and are never forwarded.
///
/// `Expect` is answered by our own server (it sends `100 Continue` when the
/// body is first read), so it is not passed on either.
const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "expect",
];

/// Removes the hop-by-hop headers and every header listed in `Connection`.
pub(crate) fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Headers named by `Connection` first, while it is still there.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn request_id_rules() {
        let mut h = HeaderMap::new();
        assert!(request_id(&h).to_str().unwrap().starts_with("req-"));
        h.insert(REQUEST_ID, HeaderValue::from_static("abc"));
        assert_eq!(request_id(&h), "req-abc");
        h.insert(REQUEST_ID, HeaderValue::from_static("req-xyz"));
        assert_eq!(request_id(&h), "req-xyz");
        h.insert(REQUEST_ID, HeaderValue::from_str(&"x".repeat(100)).unwrap());
        assert_ne!(
            request_id(&h),
            HeaderValue::from_str(&format!("req-{}", "x".repeat(100))).unwrap()
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("trailer", "x-checksum"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authorization", "Basic Zm9v"),
            ("expect", "100-continue"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-auth-token", "tok"),
            ("content-length", "10"),
            ("host", "glance:9292"),
        ]);
        remove_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-length", "host", "x-auth-token"]);
    }

    #[test]
    fn bad_connection_tokens_are_ignored() {
        let mut h = map(&[("connection", "close, bad name, ,"), ("x-a", "1")]);
        remove_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
    }
}
