//! The response head of a hit.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::headers::REQUEST_ID;

/// Glance's hit headers: octet-stream, `Content-MD5` from the image's
/// checksum when it has one, `Content-Length`, the request id.
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let h = crate::fill::Head::replayed(http::StatusCode::OK, &up, None).headers;
        assert_eq!(h.len(), 1);
        assert_eq!(h["content-md5"], "abc");
    }
}
