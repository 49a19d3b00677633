//! Responses of the management API, shaped like Glance's (WebOb) ones.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use serde::Serialize;

use super::ManageBody;
use crate::auth::manage::{PolicyRule, Refusal};
use crate::headers::{request_id, REQUEST_ID};

/// Builds responses for one request (its `Accept` and request id).
pub(crate) struct Responder {
    json_errors: bool,
    request_id: HeaderValue,
}

impl Responder {
    pub(crate) fn new(request: &HeaderMap) -> Self {
        let json_errors = request
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json"));
        Responder {
            json_errors,
            request_id: request_id(request),
        }
    }

    fn base<B>(
        &self,
        status: StatusCode,
        content_type: &'static str,
        body: Bytes,
    ) -> Response<ManageBody<B>> {
        let mut resp = Response::new(ManageBody::full(body.clone()));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        h.insert(REQUEST_ID, self.request_id.clone());
        resp
    }

    /// A JSON document with `status`.
    pub(crate) fn json<B, T: Serialize>(
        &self,
        status: StatusCode,
        value: &T,
    ) -> Response<ManageBody<B>> {
        match serde_json::to_vec(value) {
            Ok(body) => self.base(status, "application/json", Bytes::from(body)),
            Err(e) => self.error(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("could not encode the answer: {e}"),
            ),
        }
    }

    /// An empty success (Glance sends `text/html` with `Content-Length: 0`).
    pub(crate) fn empty<B>(&self, status: StatusCode) -> Response<ManageBody<B>> {
        let mut resp = self.base(status, "text/html; charset=UTF-8", Bytes::new());
        if status == StatusCode::NO_CONTENT {
            resp.headers_mut().remove(header::CONTENT_TYPE);
            resp.headers_mut().remove(header::CONTENT_LENGTH);
        }
        resp
    }

    /// A plain-text answer.
    pub(crate) fn text<B>(&self, status: StatusCode, text: String) -> Response<ManageBody<B>> {
        self.base(status, "text/plain; charset=UTF-8", Bytes::from(text))
    }

    /// WebOb's error body: plain text, or JSON when the client accepts it.
    pub(crate) fn error<B>(
        &self,
        status: StatusCode,
        explanation: &str,
    ) -> Response<ManageBody<B>> {
        let title = status.canonical_reason().unwrap_or("Error");
        let code = format!("{} {title}", status.as_u16());
        if self.json_errors {
            let body = serde_json::json!({"message": explanation, "code": code, "title": title});
            let mut resp = self.json(status, &body);
            *resp.status_mut() = status;
            resp
        } else {
            let text = format!("{code}\n\n{explanation}\n\n   ");
            self.base(status, "text/plain; charset=UTF-8", Bytes::from(text))
        }
    }

    pub(crate) fn method_not_allowed<B>(&self, allow: &'static str) -> Response<ManageBody<B>> {
        let mut resp = self.error(
            StatusCode::METHOD_NOT_ALLOWED,
            "The method is not allowed for this resource.",
        );
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        resp
    }

    pub(crate) fn refusal<B>(&self, refusal: &Refusal) -> Response<ManageBody<B>> {
        match refusal {
            Refusal::Unauthenticated => self.error(
                StatusCode::UNAUTHORIZED,
                "This server could not verify that you are authorized to access the document you requested. \
                 Either you supplied the wrong credentials (e.g., bad password), or your browser does not \
                 understand how to supply the credentials required.",
            ),
            Refusal::Forbidden(rule) => self.forbidden(*rule),
            Refusal::Unavailable(_) => {
                // The cause names the identity service and its user: the
                // handler logs it; the client gets a fixed text.
                self.error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The identity service could not be reached to check the token.",
                )
            }
        }
    }

    pub(crate) fn forbidden<B>(&self, rule: PolicyRule) -> Response<ManageBody<B>> {
        self.error(
            StatusCode::FORBIDDEN,
            &format!(
                "You are not authorized to complete {} action.",
                rule.as_str()
            ),
        )
    }

    pub(crate) fn disabled<B>(&self) -> Response<ManageBody<B>> {
        self.error(
            StatusCode::NOT_FOUND,
            "Caching via API is not supported at this site.",
        )
    }

    pub(crate) fn image_not_found<B>(&self, id: &str) -> Response<ManageBody<B>> {
        let shown: String = id.chars().take(64).collect();
        self.error(StatusCode::NOT_FOUND, &format!("Image {shown} not found."))
    }

    pub(crate) fn internal<B>(
        &self,
        what: &str,
        e: &dyn std::fmt::Display,
    ) -> Response<ManageBody<B>> {
        tracing::error!(error = %e, "{what}");
        self.error(StatusCode::INTERNAL_SERVER_ERROR, &format!("{what}: {e}"))
    }
}
