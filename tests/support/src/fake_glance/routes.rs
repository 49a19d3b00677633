//! The request pipeline, in Glance's order: version negotiation (answers
//! `/versions` and unknown versions), authentication (401), the request id,
//! then the v2 router.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body::Body;

use super::responses::{self, Reply};
use super::state::Shared;
use super::{download, handlers, upload, versions};
use crate::BoxError;

/// The fake gives no response at all and drops the connection, like Glance
/// under uWSGI when the app raises an unexpected error.
#[derive(Debug)]
pub(crate) struct Crash;

/// What a (version-stripped) path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route<'a> {
    /// `/v2/images`
    Images,
    /// `/v2/images/{id}`
    Image(&'a str),
    /// `/v2/images/{id}/file`
    File(&'a str),
    /// `/v2/images/{id}/actions/{deactivate|reactivate}`
    Action(&'a str, Action),
    /// Anything else (including trailing slashes).
    Unknown,
}

/// An image action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    Deactivate,
    Reactivate,
}

impl<'a> Route<'a> {
    /// Routes the path that follows the version segment (`/images/...`).
    pub(crate) fn parse(rest: &'a str) -> Route<'a> {
        let Some(rest) = rest.strip_prefix('/') else {
            return Route::Unknown;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["images"] => Route::Images,
            ["images", id] if !id.is_empty() => Route::Image(id),
            ["images", id, "file"] if !id.is_empty() => Route::File(id),
            ["images", id, "actions", "deactivate"] if !id.is_empty() => {
                Route::Action(id, Action::Deactivate)
            }
            ["images", id, "actions", "reactivate"] if !id.is_empty() => {
                Route::Action(id, Action::Reactivate)
            }
            _ => Route::Unknown,
        }
    }

    /// Routes a full request path (version segment included), for the call
    /// log. Media-type versioning is not considered.
    pub(crate) fn classify(path: &'a str) -> Route<'a> {
        match split_version(path) {
            Some((token, rest)) if versions::is_accepted(token) => Route::parse(rest),
            _ => Route::Unknown,
        }
    }
}

/// `/v2.1/images/x` → `("v2.1", "/images/x")`.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.trim_start_matches('/');
    Some(match trimmed.find('/') {
        Some(i) => (&trimmed[..i], &trimmed[i..]),
        None => (trimmed, ""),
    })
}

const VND: &str = "application/vnd.openstack.images-";

/// Answers one request.
pub(crate) async fn respond<B>(shared: &Arc<Shared>, req: Request<B>) -> Result<Reply, Crash>
where
    B: Body<Data = bytes::Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .unwrap_or_else(|| shared.addr.to_string());
    let path = req.uri().path().to_owned();

    // Version negotiation.
    let (token, rest) = split_version(&path).unwrap_or(("", ""));
    if token == "versions" {
        return Ok(responses::versions(StatusCode::OK, &host));
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let (token, rest) = match accept.strip_prefix(VND) {
        Some(t) => (t, path.as_str()),
        None => (token, rest),
    };
    if !versions::is_accepted(token) {
        return Ok(responses::versions(StatusCode::MULTIPLE_CHOICES, &host));
    }

    // Authentication (keystonemiddleware sits before the context filter).
    let Some(who) = shared.identify(req.headers()) else {
        return Ok(responses::unauthorized(&shared.keystone_uri));
    };

    let request_id = request_id(req.headers());
    let method = req.method().clone();
    let mut reply = match Route::parse(rest) {
        Route::Images => match method {
            Method::GET => handlers::list(shared, &who),
            Method::POST => handlers::create(shared, &who, req, &host).await,
            _ => responses::method_not_allowed(&method, "GET, POST"),
        },
        Route::Image(id) => match method {
            Method::GET => handlers::show(shared, &who, id).await,
            Method::DELETE => handlers::delete(shared, &who, id),
            Method::PATCH => responses::error(
                StatusCode::NOT_IMPLEMENTED,
                "The fake Glance does not implement image updates.",
            ),
            _ => responses::method_not_allowed(&method, "GET, PATCH, DELETE"),
        },
        Route::File(id) => match method {
            Method::GET => download::download(shared, &who, id, req.headers()).await?,
            Method::PUT => upload::upload(shared, &who, id, req.into_body()).await?,
            _ => responses::method_not_allowed(&method, "GET, PUT"),
        },
        Route::Action(id, action) => match method {
            Method::POST => handlers::action(shared, &who, id, action),
            _ => responses::method_not_allowed(&method, "POST"),
        },
        Route::Unknown => responses::no_route(),
    };
    reply
        .headers_mut()
        .insert("x-openstack-request-id", request_id);
    Ok(reply)
}

/// The client's `X-Openstack-Request-ID` (with `req-` prepended when
/// missing), or a fresh `req-<uuid4>`.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    if let Some(v) = headers
        .get("x-openstack-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
    {
        let id = if v.starts_with("req-") {
            v.to_owned()
        } else {
            format!("req-{v}")
        };
        if let Ok(h) = HeaderValue::from_str(&id) {
            return h;
        }
    }
    let id = format!("req-{}", uuid::Uuid::new_v4());
    HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("req-unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(Route::parse("/images"), Route::Images);
        assert_eq!(Route::parse("/images/a"), Route::Image("a"));
        assert_eq!(Route::parse("/images/a/file"), Route::File("a"));
        assert_eq!(
            Route::parse("/images/a/actions/deactivate"),
            Route::Action("a", Action::Deactivate)
        );
        for unknown in [
            "",
            "/",
            "/images/",
            "/images/a/file/",
            "/images//file",
            "/cache",
            "/images/a/actions/x",
        ] {
            assert_eq!(Route::parse(unknown), Route::Unknown, "{unknown}");
        }
        assert_eq!(Route::classify("/v2.15/images/a/file"), Route::File("a"));
        assert_eq!(Route::classify("/v2.18/images/a/file"), Route::Unknown);
        assert_eq!(Route::classify("/images/a/file"), Route::Unknown);
    }

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        let fresh = request_id(&h);
        let s = fresh.to_str().unwrap();
        assert!(s.starts_with("req-") && s.len() == 40, "{s}");
        h.insert("x-openstack-request-id", HeaderValue::from_static("abc"));
        assert_eq!(request_id(&h), "req-abc");
        h.insert(
            "x-openstack-request-id",
            HeaderValue::from_static("req-abc"),
        );
        assert_eq!(request_id(&h), "req-abc");
    }
}
