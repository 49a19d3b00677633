//! Header and path rules applied when a request crosses the proxy.
//!
//! * Hop-by-hop headers (RFC 9110 §7.6.1) are removed in both directions,
//!   together with every header the `Connection` header names.
//! * The client's `Host` header is kept: Glance builds the `href`s of its
//!   versions document from it, so clients keep seeing the address they used.
//! * `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` tell the
//!   upstream who asked and how.
//! * A leading `/v2.N` path segment becomes `/v2` (spec §1.2 SIDECAR).

use std::borrow::Cow;
use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The address of the peer that sent a request.
///
/// [`crate::server::serve`] inserts it into every request's extensions;
/// [`ReverseProxy`](super::ReverseProxy) appends it to `X-Forwarded-For`.
/// Requests without it are forwarded without an `X-Forwarded-For` entry of
/// their own.
///
/// ```
/// use glance_cache::reverse_proxy::ClientAddr;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut()
///     .insert(ClientAddr("192.0.2.7:40000".parse().unwrap()));
/// assert_eq!(req.extensions().get::<ClientAddr>().unwrap().0.port(), 40000);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub SocketAddr);

/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

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

/// Sets the forwarding headers on a request bound upstream.
///
/// `host` is the `Host` the client used (if any); the caller has already put
/// the header that goes upstream in place.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: Option<SocketAddr>,
    host: Option<&HeaderValue>,
) {
    if let Some(addr) = client {
        let ip = addr.ip().to_string();
        let mut joined = String::new();
        for value in headers.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = value.to_str() {
                let v = v.trim();
                if !v.is_empty() {
                    joined.push_str(v);
                    joined.push_str(", ");
                }
            }
        }
        joined.push_str(&ip);
        if let Ok(value) = HeaderValue::from_str(&joined) {
            headers.insert(X_FORWARDED_FOR.clone(), value);
        }
    }
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    }
    if let Some(host) = host {
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
    }
}

/// Rewrites a leading `/v2.N` segment (N = 0..=18, written as Glance writes
/// it: no leading zero) to `/v2`; every other path is returned unchanged.
///
/// Glance accepts these tokens only in some configurations (spec §1.2); a
/// non-caching upstream answers 300 to `/v2.14`, `/v2.16` and `/v2.18`, so
/// the proxy forwards every accepted `v2.N` prefix as `/v2`.
pub(crate) fn rewrite_version_prefix(path: &str) -> Cow<'_, str> {
    let Some(rest) = path.strip_prefix("/v2.") else {
        return Cow::Borrowed(path);
    };
    let end = rest.find('/').unwrap_or(rest.len());
    let (minor, tail) = rest.split_at(end);
    let accepted = match minor.as_bytes() {
        [d] => d.is_ascii_digit(),
        [b'1', d] => d.is_ascii_digit() && *d <= b'8',
        _ => false,
    };
    if accepted {
        Cow::Owned(format!("/v2{tail}"))
    } else {
        Cow::Borrowed(path)
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

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        let host = HeaderValue::from_static("glance.example:9292");
        add_forwarded(&mut h, Some("192.0.2.7:5000".parse().unwrap()), Some(&host));
        assert_eq!(h.get_all(&X_FORWARDED_FOR).iter().count(), 1);
        assert_eq!(h[&X_FORWARDED_FOR], "198.51.100.1, 10.0.0.1, 192.0.2.7");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
        assert_eq!(h[&X_FORWARDED_HOST], "glance.example:9292");
    }

    #[test]
    fn forwarded_keeps_existing_proto_and_host() {
        let mut h = map(&[
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "lb.example"),
        ]);
        let host = HeaderValue::from_static("internal:9292");
        add_forwarded(
            &mut h,
            Some("[2001:db8::1]:80".parse().unwrap()),
            Some(&host),
        );
        assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "lb.example");
    }

    #[test]
    fn forwarded_without_client_or_host() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, None, None);
        assert!(!h.contains_key(&X_FORWARDED_FOR));
        assert!(!h.contains_key(&X_FORWARDED_HOST));
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn version_prefixes() {
        for (from, to) in [
            ("/v2.18/cache", "/v2/cache"),
            ("/v2.14/images/x/file", "/v2/images/x/file"),
            ("/v2.0/images", "/v2/images"),
            ("/v2.9", "/v2"),
            ("/v2.10/", "/v2/"),
            ("/v2/images/x/file", "/v2/images/x/file"),
            ("/v2/..%2e/x", "/v2/..%2e/x"),
            ("/v1/images/x", "/v1/images/x"),
            ("/versions", "/versions"),
            ("/", "/"),
            ("/v2.19/images", "/v2.19/images"),
            ("/v2.01/images", "/v2.01/images"),
            ("/v2./images", "/v2./images"),
            ("/v2.1x/images", "/v2.1x/images"),
            ("/v2.100/images", "/v2.100/images"),
            ("/v3.1/images", "/v3.1/images"),
            ("/x/v2.1/images", "/x/v2.1/images"),
        ] {
            assert_eq!(rewrite_version_prefix(from), to, "{from}");
        }
        assert!(matches!(rewrite_version_prefix("/v2/x"), Cow::Borrowed(_)));
    }
}
