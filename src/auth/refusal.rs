//! The upstream's refusal of a hit, read so that every caller who asked
//! the same question at the same time can be given a copy.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use crate::BoxError;

/// Largest refusal body kept (Glance's are a few hundred bytes of HTML
/// or JSON).
const REFUSAL_LIMIT: usize = 64 * 1024;

/// The upstream's `401`, `403` or `404` to a hit's authorization: its
/// status, headers and (small) body, relayed unchanged to the caller.
#[derive(Clone, Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
}

impl Refusal {
    /// Reads `resp` whole; `None` when its body fails or is larger than a
    /// refusal can be.
    pub(crate) async fn read<B>(resp: Response<B>) -> Option<Refusal>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<BoxError>,
    {
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, REFUSAL_LIMIT).collect().await.ok()?;
        Some(Refusal {
            status: parts.status,
            version: parts.version,
            headers: parts.headers,
            body: body.to_bytes(),
        })
    }

    /// The refusal as a response whose body is its bytes.
    pub(crate) fn into_response(self) -> Response<Bytes> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        *resp.version_mut() = self.version;
        *resp.headers_mut() = self.headers;
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn keeps_status_headers_and_body() {
        let resp = Response::builder()
            .status(StatusCode::FORBIDDEN)
            .header("x-openstack-request-id", "req-1")
            .body(Full::new(Bytes::from_static(b"403 Forbidden")))
            .unwrap();
        let refusal = Refusal::read(resp).await.unwrap();
        let resp = refusal.clone().into_response();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(resp.headers()["x-openstack-request-id"], "req-1");
        assert_eq!(resp.body().as_ref(), b"403 Forbidden");
    }

    #[tokio::test]
    async fn an_oversized_body_is_not_a_refusal() {
        let resp = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from(vec![b'x'; REFUSAL_LIMIT + 1])))
            .unwrap();
        assert!(Refusal::read(resp).await.is_none());
    }
}
