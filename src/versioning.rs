//! Glance's version negotiation, as one rule for every part of the proxy.
//!
//! Glance takes the first path segment as the API version token and
//! answers `300 Multiple Choices` for a token it does not know. It knows
//! `v2` and `v2.0` to `v2.18` exactly as written (some only with its own
//! cache or multi-store enabled): `v2.05`, `V2` or `v2.19` are unknown. A
//! request can also name its version in `Accept:
//! application/vnd.openstack.images-<token>`.
//!
//! The proxy applies that rule once: the cache and the management API
//! match their routes on the path below an accepted token
//! ([`v2_rest`]), and the reverse proxy forwards an accepted `/v2.N` prefix
//! as `/v2` ([`forwarded_path`]), because an upstream Glance without a
//! cache would answer `300` for the cache API versions `v2.14`, `v2.16` and
//! `v2.18`. A path with an unknown token is neither matched nor rewritten:
//! the upstream gives its own `300`.

use std::borrow::Cow;

use http::header::{HeaderMap, ACCEPT};

/// The highest minor version of the v2 API that Glance accepts.
const MAX_MINOR: u8 = 18;

/// Whether Glance accepts `token` as a v2 API version: `v2`, or `v2.N` with
/// `N` in `0..=18` written without leading zeros.
pub(crate) fn is_v2_token(token: &str) -> bool {
    match token.strip_prefix("v2") {
        Some("") => true,
        Some(minor) => minor.strip_prefix('.').is_some_and(is_minor),
        None => false,
    }
}

fn is_minor(text: &str) -> bool {
    let canonical = match text.as_bytes() {
        [d] => d.is_ascii_digit(),
        [first, rest @ ..] => {
            *first != b'0' && !rest.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
        }
        [] => false,
    };
    canonical && text.parse::<u8>().is_ok_and(|n| n <= MAX_MINOR)
}

/// The path below the API version (`/images/X/file`), after Glance's
/// version negotiation: an accepted `/v2[.N]` path prefix, or media-type
/// versioning through `Accept: application/vnd.openstack.images-v2...`
/// (then the whole path). `None`: not the v2 API.
pub(crate) fn v2_rest<'a>(path: &'a str, headers: &HeaderMap) -> Option<&'a str> {
    let trimmed = path.strip_prefix('/')?;
    let (token, rest) = match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    };
    if is_v2_token(token) {
        return Some(rest);
    }
    let accept = headers.get(ACCEPT)?.to_str().ok()?;
    let token = accept.strip_prefix("application/vnd.openstack.images-")?;
    is_v2_token(token).then_some(path)
}

/// The path to send upstream: an accepted `/v2.N` prefix becomes `/v2`;
/// anything else is kept as it is.
pub(crate) fn forwarded_path(path: &str) -> Cow<'_, str> {
    let Some(after) = path.strip_prefix('/') else {
        return Cow::Borrowed(path);
    };
    let end = after.find('/').unwrap_or(after.len());
    let (token, rest) = after.split_at(end);
    if token != "v2" && is_v2_token(token) {
        Cow::Owned(format!("/v2{rest}"))
    } else {
        Cow::Borrowed(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_glance_accepts() {
        for ok in ["v2", "v2.0", "v2.1", "v2.9", "v2.10", "v2.14", "v2.18"] {
            assert!(is_v2_token(ok), "{ok}");
        }
        // Glance answers 300 for each of these (checked against Glance 33).
        for bad in [
            "v2.05", "v2.010", "v2.19", "v2.", "V2", "v2.1a", "v2.-1", "v3", "v1", "v2.00", "",
        ] {
            assert!(!is_v2_token(bad), "{bad}");
        }
    }

    #[test]
    fn rest_of_the_path_below_the_version() {
        let none = HeaderMap::new();
        assert_eq!(
            v2_rest("/v2.14/images/x/file", &none),
            Some("/images/x/file")
        );
        assert_eq!(v2_rest("/v2", &none), Some(""));
        assert_eq!(v2_rest("/v2.05/images/x/file", &none), None);
        let mut accept = HeaderMap::new();
        accept.insert(
            ACCEPT,
            "application/vnd.openstack.images-v2.1".parse().unwrap(),
        );
        assert_eq!(v2_rest("/images/x/file", &accept), Some("/images/x/file"));
        accept.insert(
            ACCEPT,
            "application/vnd.openstack.images-v2.05".parse().unwrap(),
        );
        assert_eq!(v2_rest("/images/x/file", &accept), None);
    }

    #[test]
    fn forwarded_paths() {
        for (given, sent) in [
            ("/v2.14/images/x/file", "/v2/images/x/file"),
            ("/v2.0/images", "/v2/images"),
            ("/v2.18", "/v2"),
            ("/v2/images", "/v2/images"),
            ("/v2.05/images/x/file", "/v2.05/images/x/file"),
            ("/v2.19/images", "/v2.19/images"),
            ("/v1/images", "/v1/images"),
            ("/versions", "/versions"),
            ("/", "/"),
            ("/v2.1x/images", "/v2.1x/images"),
        ] {
            assert_eq!(forwarded_path(given), sent, "{given}");
        }
    }

    #[test]
    fn matching_and_forwarding_agree_on_every_token() {
        let none = HeaderMap::new();
        for minor in ["", ".0", ".5", ".05", ".18", ".19", ".180", ".x"] {
            let path = format!("/v2{minor}/images/x/file");
            let matched = v2_rest(&path, &none).is_some();
            let rewritten = forwarded_path(&path) == "/v2/images/x/file";
            assert_eq!(matched, rewritten, "{path}");
        }
    }

    #[test]
    fn version_prefixes_the_reverse_proxy_rewrote() {
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
            assert_eq!(forwarded_path(from), to, "{from}");
        }
        assert!(matches!(forwarded_path("/v2/x"), Cow::Borrowed(_)));
    }
}
