//! Which requests the management API answers: Glance's cache API, its
//! legacy `cachemanagement` routes, version discovery and the health check.

use http::{HeaderMap, Method};

use crate::versioning::v2_rest;

/// A management endpoint, with the raw (undecoded) image id where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    CacheList,
    CacheClear,
    CacheQueue(String),
    CacheDelete(String),
    CachedNodes(String),
    Clean,
    Prune,
    LegacyListCached,
    LegacyDeleteCached(String),
    LegacyDeleteAllCached,
    LegacyQueue(String),
    LegacyListQueued,
    LegacyDeleteQueued(String),
    LegacyDeleteAllQueued,
    /// `GET /versions` (200) or `GET /` (300).
    Versions {
        multiple_choices: bool,
    },
    /// `GET` or `HEAD /healthcheck`: the proxy's and its upstream's health.
    Healthcheck,
    MethodNotAllowed(&'static str),
    NotFound,
}

impl Endpoint {
    pub(crate) fn is_legacy(&self) -> bool {
        matches!(
            self,
            Endpoint::LegacyListCached
                | Endpoint::LegacyDeleteCached(_)
                | Endpoint::LegacyDeleteAllCached
                | Endpoint::LegacyQueue(_)
                | Endpoint::LegacyListQueued
                | Endpoint::LegacyDeleteQueued(_)
                | Endpoint::LegacyDeleteAllQueued
        )
    }
}

fn single_segment(s: &str) -> Option<String> {
    (!s.is_empty() && !s.contains('/')).then(|| s.to_string())
}

/// `None`: not a management request; it goes to the inner service.
pub(crate) fn route(method: &Method, path: &str, headers: &HeaderMap) -> Option<Endpoint> {
    if path == "/healthcheck" {
        return Some(if *method == Method::GET || *method == Method::HEAD {
            Endpoint::Healthcheck
        } else {
            Endpoint::MethodNotAllowed("GET, HEAD")
        });
    }
    if *method == Method::GET && (path == "/" || path == "/versions") {
        return Some(Endpoint::Versions {
            multiple_choices: path == "/",
        });
    }
    let rest = v2_rest(path, headers)?;
    use Endpoint::*;
    let m = method;
    let ep = match rest {
        "/cache" => match *m {
            Method::GET => CacheList,
            Method::DELETE => CacheClear,
            _ => MethodNotAllowed("GET, DELETE"),
        },
        "/cache/" => NotFound,
        "/cache/clean" => {
            if *m == Method::POST {
                Clean
            } else {
                MethodNotAllowed("POST")
            }
        }
        "/cache/prune" => {
            if *m == Method::POST {
                Prune
            } else {
                MethodNotAllowed("POST")
            }
        }
        "/cached_images" => match *m {
            Method::GET => LegacyListCached,
            Method::DELETE => LegacyDeleteAllCached,
            _ => return None,
        },
        "/queued_images" => match *m {
            Method::GET => LegacyListQueued,
            Method::DELETE => LegacyDeleteAllQueued,
            _ => return None,
        },
        _ => {
            if let Some(id) = rest.strip_prefix("/cache/nodes/") {
                let id = single_segment(id)?;
                if *m == Method::GET {
                    CachedNodes(id)
                } else {
                    MethodNotAllowed("GET")
                }
            } else if let Some(id) = rest.strip_prefix("/cache/") {
                let id = single_segment(id)?;
                match *m {
                    Method::DELETE => CacheDelete(id),
                    Method::PUT => CacheQueue(id),
                    _ => MethodNotAllowed("DELETE, PUT"),
                }
            } else if let Some(id) = rest.strip_prefix("/cached_images/") {
                let id = single_segment(id)?;
                if *m == Method::DELETE {
                    LegacyDeleteCached(id)
                } else {
                    return None;
                }
            } else if let Some(id) = rest.strip_prefix("/queued_images/") {
                let id = single_segment(id)?;
                match *m {
                    Method::PUT => LegacyQueue(id),
                    Method::DELETE => LegacyDeleteQueued(id),
                    _ => return None,
                }
            } else {
                return None;
            }
        }
    };
    Some(ep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Endpoint::*;

    fn r(m: Method, p: &str) -> Option<Endpoint> {
        route(&m, p, &HeaderMap::new())
    }

    #[test]
    fn routing_table_and_quirks() {
        assert_eq!(r(Method::GET, "/v2/cache"), Some(CacheList));
        assert_eq!(r(Method::GET, "/v2.18/cache"), Some(CacheList));
        assert_eq!(
            r(Method::POST, "/v2/cache"),
            Some(MethodNotAllowed("GET, DELETE"))
        );
        assert_eq!(
            r(Method::GET, "/v2/cache/abc"),
            Some(MethodNotAllowed("DELETE, PUT"))
        );
        assert_eq!(
            r(Method::PUT, "/v2/cache/abc"),
            Some(CacheQueue("abc".into()))
        );
        assert_eq!(
            r(Method::GET, "/v2/cache/clean"),
            Some(MethodNotAllowed("POST"))
        );
        assert_eq!(
            r(Method::DELETE, "/v2/cache/clean"),
            Some(MethodNotAllowed("POST"))
        );
        assert_eq!(
            r(Method::PUT, "/v2/cache/prune"),
            Some(MethodNotAllowed("POST"))
        );
        assert_eq!(
            r(Method::DELETE, "/v2/cache/nodes/x"),
            Some(MethodNotAllowed("GET"))
        );
        assert_eq!(
            r(Method::GET, "/v2/cache/nodes/x"),
            Some(CachedNodes("x".into()))
        );
        assert_eq!(
            r(Method::DELETE, "/v2/cache/nodes"),
            Some(CacheDelete("nodes".into()))
        );
        assert_eq!(r(Method::GET, "/v2/cache/"), Some(NotFound));
        assert_eq!(r(Method::GET, "/v2/cached_images"), Some(LegacyListCached));
        assert_eq!(
            r(Method::PUT, "/v2/queued_images/x"),
            Some(LegacyQueue("x".into()))
        );
        assert_eq!(r(Method::POST, "/v2/queued_images"), None);
        assert_eq!(r(Method::GET, "/v2/images"), None);
        assert_eq!(
            r(Method::GET, "/versions"),
            Some(Versions {
                multiple_choices: false
            })
        );
        assert_eq!(
            r(Method::GET, "/"),
            Some(Versions {
                multiple_choices: true
            })
        );
        assert_eq!(r(Method::GET, "/v2/cache/a/b"), None);
    }
}
