//! The call log: every request the fake received, with the status it sent.

use std::sync::Mutex;
use std::time::Instant;

use http::{header, HeaderMap, Method, StatusCode};

use super::routes::Route;

/// One request received by the fake.
#[derive(Clone, Debug)]
pub struct Call {
    /// The request method.
    pub method: Method,
    /// The request path as sent (before version negotiation).
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The request headers.
    pub headers: HeaderMap,
    /// The response status; `None` when the fake dropped the connection
    /// without answering (as Glance does for a ranged GET of an image
    /// without data).
    pub status: Option<StatusCode>,
    /// When the response headers were ready (or the connection dropped).
    pub at: Instant,
}

impl Call {
    /// The route the path names once its version prefix is removed.
    pub(crate) fn route(&self) -> Route<'_> {
        Route::classify(&self.path)
    }

    /// Whether the call asked for a byte range (`Range`, or Glance's
    /// non-standard `Content-Range` request header).
    pub fn is_ranged(&self) -> bool {
        self.headers.contains_key(header::RANGE) || self.headers.contains_key(header::CONTENT_RANGE)
    }

    /// A `GET /v2/images/{id}/file` without a range.
    pub fn is_file_get(&self, id: &str) -> bool {
        self.method == Method::GET && self.route() == Route::File(id) && !self.is_ranged()
    }

    /// A `GET /v2/images/{id}/file` with a range.
    pub fn is_ranged_file_get(&self, id: &str) -> bool {
        self.method == Method::GET && self.route() == Route::File(id) && self.is_ranged()
    }

    /// A `GET /v2/images/{id}`.
    pub fn is_metadata_get(&self, id: &str) -> bool {
        self.method == Method::GET && self.route() == Route::Image(id)
    }
}

/// Thread-safe, append-only (until cleared) list of calls.
#[derive(Debug, Default)]
pub(crate) struct CallLog {
    calls: Mutex<Vec<Call>>,
}

impl CallLog {
    pub(crate) fn push(&self, call: Call) {
        self.lock().push(call);
    }

    pub(crate) fn snapshot(&self) -> Vec<Call> {
        self.lock().clone()
    }

    pub(crate) fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.lock().iter().filter(|c| pred(c)).count()
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: Method, path: &str, range: bool) -> Call {
        let mut headers = HeaderMap::new();
        if range {
            headers.insert(header::RANGE, "bytes=0-0".parse().unwrap());
        }
        Call {
            method,
            path: path.into(),
            query: None,
            headers,
            status: Some(StatusCode::OK),
            at: Instant::now(),
        }
    }

    #[test]
    fn classification() {
        let log = CallLog::default();
        log.push(call(Method::GET, "/v2/images/a/file", false));
        log.push(call(Method::GET, "/v2.17/images/a/file", false));
        log.push(call(Method::GET, "/v2/images/a/file", true));
        log.push(call(Method::HEAD, "/v2/images/a/file", false));
        log.push(call(Method::GET, "/v2/images/a/file/", false));
        log.push(call(Method::GET, "/v2/images/a", false));
        log.push(call(Method::GET, "/v2/images/b/file", false));
        assert_eq!(log.count(|c| c.is_file_get("a")), 2);
        assert_eq!(log.count(|c| c.is_ranged_file_get("a")), 1);
        assert_eq!(log.count(|c| c.is_metadata_get("a")), 1);
        log.clear();
        assert!(log.snapshot().is_empty());
    }
}
