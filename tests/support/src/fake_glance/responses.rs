//! Building Glance-shaped responses (header order as on the wire).

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::FakeBody;
use super::html;
use super::policy::Denial;

pub(crate) type Reply = Response<FakeBody>;

pub(crate) const TEXT_HTML: &str = "text/html; charset=UTF-8";

/// A response with no headers yet; webob's reason phrase where it differs
/// from hyper's.
pub(crate) fn with_status(status: StatusCode, body: FakeBody) -> Reply {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let reason = html::reason(status);
    if Some(reason) != status.canonical_reason() {
        r.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(reason.as_bytes()));
    }
    r
}

fn sized(status: StatusCode, content_type: &'static str, body: Bytes) -> Reply {
    let len = body.len();
    let mut r = with_status(status, FakeBody::full(body));
    let h = r.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// webob's HTML error page.
pub(crate) fn error(status: StatusCode, explanation: &str) -> Reply {
    sized(
        status,
        TEXT_HTML,
        html::error_page(status, explanation, None),
    )
}

/// webob's HTML error page with a detail line.
pub(crate) fn error_detail(status: StatusCode, explanation: &str, detail: &str) -> Reply {
    sized(
        status,
        TEXT_HTML,
        html::error_page(status, explanation, Some(detail)),
    )
}

/// A status forced by a [`Behaviour`](super::Behaviour).
pub(crate) fn forced(status: StatusCode) -> Reply {
    if status == StatusCode::NO_CONTENT {
        return with_status(status, FakeBody::empty());
    }
    error(status, html::default_explanation(status))
}

/// "No image found with ID {id}" (the database lookup failed).
pub(crate) fn image_not_found(id: &str) -> Reply {
    error(
        StatusCode::NOT_FOUND,
        &format!("No image found with ID {id}"),
    )
}

/// A policy denial: 404 with webob's default text, or 403 naming the rule.
pub(crate) fn denied(d: Denial) -> Reply {
    match d {
        Denial::NotFound => error(StatusCode::NOT_FOUND, "The resource could not be found."),
        Denial::Forbidden(rule) => error(
            StatusCode::FORBIDDEN,
            &format!("You are not authorized to complete {} action.", rule.name()),
        ),
    }
}

/// 404 for a path no route matches.
pub(crate) fn no_route() -> Reply {
    error(StatusCode::NOT_FOUND, "The resource could not be found.")
}

/// 405 with `Allow`; HEAD gets an empty body.
pub(crate) fn method_not_allowed(method: &http::Method, allow: &'static str) -> Reply {
    if method == http::Method::HEAD {
        let mut r = with_status(StatusCode::METHOD_NOT_ALLOWED, FakeBody::empty());
        let h = r.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_HTML));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
        h.insert(header::ALLOW, HeaderValue::from_static(allow));
        return r;
    }
    let page = html::method_not_allowed_page(method.as_str());
    let len = page.len();
    let mut r = with_status(StatusCode::METHOD_NOT_ALLOWED, FakeBody::full(page));
    let h = r.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(allow));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_HTML));
    r
}

/// 204 as Glance's write actions send it (`text/html`, empty).
pub(crate) fn no_content() -> Reply {
    let mut r = with_status(StatusCode::NO_CONTENT, FakeBody::empty());
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_HTML));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    r
}

/// A JSON document (`Content-Length` first, as Glance orders them).
pub(crate) fn json(status: StatusCode, body: Vec<u8>) -> Reply {
    sized(status, "application/json", Bytes::from(body))
}

/// The versions document (no request id: Glance answers it before its
/// context middleware).
pub(crate) fn versions(status: StatusCode, host: &str) -> Reply {
    let body = Bytes::from(super::versions::document(host));
    let mut r = with_status(status, FakeBody::empty());
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    *r.body_mut() = FakeBody::full(body);
    r
}

/// keystonemiddleware's 401 (no request id).
pub(crate) fn unauthorized(keystone_uri: &str) -> Reply {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        html::default_explanation(StatusCode::UNAUTHORIZED),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Keystone uri=\"{keystone_uri}\"")) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    r
}
