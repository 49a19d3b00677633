//! Header and path rules applied when a request crosses the proxy.
//!
//! * Hop-by-hop headers (RFC 9110 §7.6.1) are removed in both directions,
//!   together with every header the `Connection` header names.
//! * The client's `Host` header is kept: Glance builds the `href`s of its
//!   versions document from it, so clients keep seeing the address they used.
//! * `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` tell the
//!   upstream who asked and how.
//! * A leading `/v2.N` path segment becomes `/v2` ([`crate::versioning`]).

use std::net::SocketAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Sets the forwarding headers on a request bound upstream.
///
/// `host` is the `Host` the client used (if any); the caller has already put
/// the header that goes upstream in place.
pub(crate) fn add_forwarded(
    headers: &mut HeaderMap,
    client: Option<SocketAddr>,
    host: Option<&HeaderValue>,
    https: bool,
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
        let proto = if https { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if let Some(host) = host {
        if !headers.contains_key(&X_FORWARDED_HOST) {
            headers.insert(X_FORWARDED_HOST.clone(), host.clone());
        }
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
    fn forwarded_for_is_appended() {
        let mut h = map(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("x-forwarded-for", "10.0.0.1"),
        ]);
        let host = HeaderValue::from_static("glance.example:9292");
        add_forwarded(
            &mut h,
            Some("192.0.2.7:5000".parse().unwrap()),
            Some(&host),
            false,
        );
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
            false,
        );
        assert_eq!(h[&X_FORWARDED_FOR], "2001:db8::1");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "lb.example");
    }

    #[test]
    fn forwarded_without_client_or_host() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, None, None, false);
        assert!(!h.contains_key(&X_FORWARDED_FOR));
        assert!(!h.contains_key(&X_FORWARDED_HOST));
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn a_request_that_arrived_over_tls_is_forwarded_as_https() {
        let mut h = HeaderMap::new();
        add_forwarded(&mut h, None, None, true);
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
    }
}
