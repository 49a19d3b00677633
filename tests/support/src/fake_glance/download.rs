//! `GET /v2/images/{id}/file`: Glance's download controller and serializer.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use md5::Digest;

use super::behaviour::Md5Header;
use super::body::{self, FakeBody, StreamPlan};
use super::image::ImageStatus;
use super::policy::{self, Identity, Rule};
use super::range::{self, RangeOutcome};
use super::responses::{self, Reply};
use super::routes::Crash;
use super::state::Shared;

pub(crate) async fn download(
    shared: &Arc<Shared>,
    who: &Identity,
    id: &str,
    headers: &HeaderMap,
) -> Result<Reply, Crash> {
    let behaviour = shared.behaviour(id);
    if let Some(d) = behaviour.header_delay {
        tokio::time::sleep(d).await;
    }
    if let Some(gate) = &behaviour.hold_headers {
        gate.opened().await;
    }
    if let Some(status) = behaviour.force_status {
        return Ok(responses::forced(status));
    }
    let Some(image) = shared.image(id).filter(|i| policy::visible(who, i)) else {
        return Ok(responses::image_not_found(id));
    };
    if image.status == ImageStatus::Deactivated && !who.is_admin() {
        return Ok(responses::error(
            StatusCode::FORBIDDEN,
            "The requested image has been deactivated. Image data download is forbidden.",
        ));
    }
    if let Err(d) = policy::enforce(Rule::DownloadImage, who, &image) {
        return Ok(responses::denied(d));
    }

    let size = image.data.len();
    let (status, offset, len, content_range) = match range::from_headers(headers, size) {
        RangeOutcome::MultipleRanges => {
            return Ok(responses::error(
                StatusCode::BAD_REQUEST,
                range::MULTIPLE_RANGES,
            ))
        }
        RangeOutcome::NotSatisfiable(detail) => {
            return Ok(responses::error_detail(
                StatusCode::RANGE_NOT_SATISFIABLE,
                range::NOT_AVAILABLE,
                &detail,
            ))
        }
        RangeOutcome::Crash => return Err(Crash),
        RangeOutcome::Full => match size {
            // No data: glance_store's NotFound becomes 204.
            None => {
                return Ok(responses::with_status(
                    StatusCode::NO_CONTENT,
                    FakeBody::empty(),
                ))
            }
            Some(size) => (StatusCode::OK, 0, size, None),
        },
        RangeOutcome::Partial { offset, len, last } => (
            StatusCode::PARTIAL_CONTENT,
            offset,
            len,
            Some(format!("bytes {offset}-{last}/{}", size.unwrap_or(0))),
        ),
    };

    let body = if len == 0 {
        FakeBody::empty()
    } else {
        body::stream(
            StreamPlan {
                data: image.data.clone(),
                offset,
                len,
                size: size.unwrap_or(0),
                behaviour: behaviour.clone(),
            },
            Arc::clone(&shared.served),
        )
    };
    let mut reply = responses::with_status(status, body);
    let h = reply.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    let md5 = match (behaviour.content_md5, image.md5()) {
        (Md5Header::Actual, Some(md5)) => Some(md5.to_owned()),
        (Md5Header::Wrong, Some(md5)) => Some(hex::encode(md5::Md5::digest(md5.as_bytes()))),
        (Md5Header::Garbage, _) => Some("not-a-digest".to_owned()),
        _ => None,
    };
    if let Some(v) = md5.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert("content-md5", v);
    }
    if !behaviour.chunked {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
    Ok(reply)
}
