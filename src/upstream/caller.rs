//! [`Caller`]: whom the upstream is asked on behalf of, with their own
//! credentials.

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{PathAndQuery, Uri};
use http::{Extensions, Method, Request, Version};

/// Headers that never travel with an authorization probe or a resume
/// request: they describe the original request's body or its range, not
/// the caller.
const NOT_FORWARDED: [HeaderName; 7] = [
    header::RANGE,
    header::CONTENT_RANGE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::EXPECT,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
];

/// Headers that vary between requests of one caller and play no part in
/// who the caller is; everything else is part of the identity key.
const NOT_IDENTITY: [&str; 7] = [
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "x-openstack-request-id",
    "traceparent",
    "tracestate",
];

/// The credentials (and the rest of the request head) that questions to the
/// upstream carry: a client's, or the ones a background job uses.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl Caller {
    /// The client of `parts`.
    pub(crate) fn new(parts: &http::request::Parts) -> Self {
        Caller {
            uri: parts.uri.clone(),
            version: parts.version,
            headers: Self::forwardable(parts.headers.clone()),
            extensions: parts.extensions.clone(),
        }
    }

    /// A caller presenting `headers` (an operator's saved request headers,
    /// a service token, or none at all).
    pub(crate) fn from_headers(headers: HeaderMap) -> Self {
        Caller {
            uri: Uri::from_static("/"),
            version: Version::HTTP_11,
            headers: Self::forwardable(headers),
            extensions: Extensions::new(),
        }
    }

    fn forwardable(mut headers: HeaderMap) -> HeaderMap {
        for name in NOT_FORWARDED {
            headers.remove(name);
        }
        headers.remove(header::IF_MODIFIED_SINCE);
        headers.remove(header::IF_UNMODIFIED_SINCE);
        headers.remove(header::IF_RANGE);
        headers
    }

    /// The caller's headers, without those that describe the original
    /// request's body or range.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A GET of `path` on the same upstream, with the caller's headers.
    pub(crate) fn get<B>(&self, path: &str, body: B) -> Request<B> {
        let mut uri = self.uri.clone().into_parts();
        uri.path_and_query = PathAndQuery::try_from(path).ok();
        let uri = Uri::from_parts(uri).unwrap_or_else(|_| Uri::from_static("/"));
        let mut req = Request::new(body);
        *req.method_mut() = Method::GET;
        *req.uri_mut() = uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        *req.extensions_mut() = self.extensions.clone();
        req
    }

    /// Exact bytes of every identity-bearing header (sorted), so that two
    /// callers share a cached decision only when they present the same
    /// credentials.
    pub(crate) fn identity_key(&self) -> Vec<u8> {
        let mut pairs: Vec<(&str, &[u8])> = self
            .headers
            .iter()
            .filter(|(name, _)| !NOT_IDENTITY.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
            .collect();
        pairs.sort();
        let mut key = Vec::new();
        for (name, value) in pairs {
            key.extend_from_slice(name.as_bytes());
            key.push(0);
            key.extend_from_slice(value);
            key.push(0);
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(headers: &[(&str, &str)]) -> Caller {
        let mut req = Request::get("http://p:1/v2/images/x/file?y=1")
            .body(())
            .unwrap();
        for (k, v) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Caller::new(&req.into_parts().0)
    }

    #[test]
    fn probe_keeps_credentials_and_drops_range() {
        let c = caller(&[
            ("x-auth-token", "T1"),
            ("range", "bytes=0-1"),
            ("cookie", "s=1"),
        ]);
        let req = c.get("/v2/images/x", ());
        assert_eq!(req.uri(), "http://p:1/v2/images/x");
        assert_eq!(req.headers()["x-auth-token"], "T1");
        assert_eq!(req.headers()["cookie"], "s=1");
        assert!(req.headers().get("range").is_none());
    }

    #[test]
    fn identity_differs_by_token_not_by_user_agent() {
        let a = caller(&[("x-auth-token", "T1"), ("user-agent", "curl")]);
        let b = caller(&[
            ("x-auth-token", "T1"),
            ("user-agent", "python-glanceclient"),
        ]);
        let c = caller(&[("x-auth-token", "T2")]);
        let d = caller(&[("x-auth-token", "T1"), ("x-roles", "admin")]);
        assert_eq!(a.identity_key(), b.identity_key());
        assert_ne!(a.identity_key(), c.identity_key());
        assert_ne!(a.identity_key(), d.identity_key());
    }
}
