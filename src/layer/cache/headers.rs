//! Response heads the cache writes itself.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Glance's request id header.
pub(crate) const REQUEST_ID: HeaderName = HeaderName::from_static("x-openstack-request-id");

/// Glance's `max_request_id_length` default.
const MAX_REQUEST_ID: usize = 64;

/// The request id for a response the cache answers itself: the client's
/// `X-Openstack-Request-ID` (with Glance's `req-` prefix), or a new one.
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

/// Glance's hit headers (spec §1.5): octet-stream, `Content-MD5` from the
/// image's checksum when it has one, `Content-Length`.
pub(crate) fn hit_headers(size: u64, md5: Option<&str>, request_id: HeaderValue) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(4);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(md5) = md5.filter(|m| !m.is_empty()) {
        if let Ok(v) = HeaderValue::from_str(md5) {
            h.insert(HeaderName::from_static("content-md5"), v);
        }
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(REQUEST_ID, request_id);
    h
}

/// The upstream head to replay to followers: end-to-end headers only,
/// without the upstream's request id (each follower gets its own).
pub(crate) fn replayable(upstream: &HeaderMap) -> HeaderMap {
    let mut h = upstream.clone();
    crate::reverse_proxy::remove_hop_by_hop(&mut h);
    h.remove(REQUEST_ID);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn hit_headers_follow_glance() {
        let h = hit_headers(9, Some("abc"), HeaderValue::from_static("req-1"));
        assert_eq!(h["content-type"], "application/octet-stream");
        assert_eq!(h["content-md5"], "abc");
        assert_eq!(h["content-length"], "9");
        assert!(hit_headers(9, None, HeaderValue::from_static("req-1"))
            .get("content-md5")
            .is_none());
        assert!(hit_headers(9, Some(""), HeaderValue::from_static("req-1"))
            .get("content-md5")
            .is_none());
    }

    #[test]
    fn replay_drops_hop_by_hop_and_request_id() {
        let mut up = HeaderMap::new();
        up.insert("connection", HeaderValue::from_static("close, x-private"));
        up.insert("x-private", HeaderValue::from_static("1"));
        up.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        up.insert("content-md5", HeaderValue::from_static("abc"));
        up.insert(REQUEST_ID, HeaderValue::from_static("req-up"));
        let h = replayable(&up);
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-md5"], "abc");
    }
}
