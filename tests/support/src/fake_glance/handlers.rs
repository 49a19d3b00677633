//! Image metadata routes: list, show, create, delete, deactivate/reactivate.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};

use super::behaviour::Behaviour;
use super::image::{FakeImage, ImageStatus, Visibility};
use super::policy::{self, Identity, Rule};
use super::responses::{self, Reply};
use super::routes::Action;
use super::state::{self, lock, Shared};
use crate::BoxError;

/// `GET /v2/images`: every image the caller may see, newest first (no
/// filters or pagination).
pub(crate) fn list(shared: &Arc<Shared>, who: &Identity) -> Reply {
    let mut visible: Vec<_> = lock(&shared.images)
        .values()
        .filter(|r| !r.status.is_deleted())
        .filter(|r| policy::visible(who, r) && Rule::GetImage.allows(who, r))
        .cloned()
        .collect();
    visible.sort_by(|a, b| (&b.created_at, &b.id).cmp(&(&a.created_at, &a.id)));
    let mut body = b"{\"images\": [".to_vec();
    for (i, r) in visible.iter().enumerate() {
        if i > 0 {
            body.extend_from_slice(b", ");
        }
        body.extend_from_slice(&r.to_json(&shared.behaviour(&r.id)));
    }
    body.extend_from_slice(b"], \"first\": \"/v2/images\", \"schema\": \"/v2/schemas/images\"}");
    responses::json(StatusCode::OK, body)
}

/// `GET /v2/images/{id}`.
pub(crate) async fn show(shared: &Arc<Shared>, who: &Identity, id: &str) -> Reply {
    let behaviour = shared.behaviour(id);
    if let Some(d) = behaviour.metadata_delay {
        tokio::time::sleep(d).await;
    }
    if let Some(status) = behaviour.force_metadata_status {
        return responses::forced(status);
    }
    let Some(image) = shared.image(id).filter(|i| policy::visible(who, i)) else {
        return responses::image_not_found(id);
    };
    if let Err(d) = policy::enforce(Rule::GetImage, who, &image) {
        return responses::denied(d);
    }
    responses::json(StatusCode::OK, image.to_json(&behaviour))
}

/// `DELETE /v2/images/{id}`.
pub(crate) fn delete(shared: &Arc<Shared>, who: &Identity, id: &str) -> Reply {
    if let Some(status) = shared.behaviour(id).force_delete_status {
        return responses::forced(status);
    }
    let mut images = lock(&shared.images);
    let Some(image) = images
        .get(id)
        .filter(|i| !i.status.is_deleted() && policy::visible(who, i))
    else {
        return responses::error(
            StatusCode::NOT_FOUND,
            &format!("Failed to find image {id} to delete"),
        );
    };
    if let Err(d) = policy::enforce(Rule::DeleteImage, who, image) {
        return responses::denied(d);
    }
    if image.protected {
        return responses::error(
            StatusCode::FORBIDDEN,
            &format!("Image {id} is protected and cannot be deleted."),
        );
    }
    if let Some(removed) = images.remove(id) {
        state::discard(&removed.data);
    }
    responses::no_content()
}

/// `POST /v2/images/{id}/actions/{deactivate|reactivate}`.
pub(crate) fn action(shared: &Arc<Shared>, who: &Identity, id: &str, action: Action) -> Reply {
    let mut images = lock(&shared.images);
    let Some(image) = images
        .get_mut(id)
        .filter(|i| !i.status.is_deleted() && policy::visible(who, i))
    else {
        return responses::image_not_found(id);
    };
    let (rule, from, to, verb) = match action {
        Action::Deactivate => (
            Rule::Deactivate,
            ImageStatus::Active,
            ImageStatus::Deactivated,
            "deactivate",
        ),
        Action::Reactivate => (
            Rule::Reactivate,
            ImageStatus::Deactivated,
            ImageStatus::Active,
            "reactivate",
        ),
    };
    if let Err(d) = policy::enforce(rule, who, image) {
        return responses::denied(d);
    }
    if image.status == from {
        image.status = to;
        image.touch();
    } else if image.status != to {
        return responses::error(
            StatusCode::FORBIDDEN,
            &format!("Not allowed to {verb} image in status '{}'", image.status),
        );
    }
    responses::no_content()
}

/// The fields of `POST /v2/images` the fake understands (others are ignored).
#[derive(serde::Deserialize)]
struct CreateRequest {
    id: Option<String>,
    name: Option<String>,
    disk_format: Option<String>,
    container_format: Option<String>,
    visibility: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    protected: bool,
}

/// `POST /v2/images`: a queued image owned by the caller's project.
pub(crate) async fn create<B>(
    shared: &Arc<Shared>,
    who: &Identity,
    req: Request<B>,
    host: &str,
) -> Reply
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let malformed = || responses::error(StatusCode::BAD_REQUEST, "Malformed JSON in request body.");
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return malformed(),
    };
    let Ok(fields) = serde_json::from_slice::<CreateRequest>(&body) else {
        return malformed();
    };

    let owner = fields
        .owner
        .clone()
        .or_else(|| who.project().map(str::to_owned));
    if !(who.is_admin() || (who.has_role("member") && owner.as_deref() == who.project())) {
        let text = match &owner {
            Some(o) if owner.as_deref() != who.project() => {
                format!("You are not permitted to create images owned by '{o}'")
            }
            _ => "You are not authorized to complete add_image action.".to_owned(),
        };
        return responses::error(StatusCode::FORBIDDEN, &text);
    }
    let visibility = match fields.visibility.as_deref() {
        None => Visibility::Shared,
        Some(v) => match Visibility::parse(v) {
            Some(v) => v,
            None => {
                return responses::error(
                    StatusCode::BAD_REQUEST,
                    &format!("Provided object does not match schema 'image': '{v}' is not one of ['community', 'public', 'private', 'shared']"),
                )
            }
        },
    };
    if visibility == Visibility::Public && !who.is_admin() {
        return responses::error(
            StatusCode::FORBIDDEN,
            "You are not authorized to complete publicize_image action.",
        );
    }
    let id = match fields.id {
        Some(id) if uuid::Uuid::parse_str(&id).is_err() => {
            return responses::error(
                StatusCode::BAD_REQUEST,
                &format!("Provided object does not match schema 'image': '{id}' is not a 'uuid'"),
            )
        }
        Some(id) => id,
        None => uuid::Uuid::new_v4().to_string(),
    };

    let mut image = FakeImage::new(id.clone())
        .visibility(visibility)
        .protected(fields.protected)
        .created_at(SystemTime::now());
    image.name = fields.name;
    image.disk_format = fields.disk_format;
    image.container_format = fields.container_format;
    image.owner = owner;
    let record = image.into_record(None);
    let doc = record.to_json(&Behaviour::default());
    {
        let mut images = lock(&shared.images);
        if images.contains_key(&id) {
            return responses::error(
                StatusCode::CONFLICT,
                &format!("Image with identifier {id} already exists!"),
            );
        }
        images.insert(id.clone(), record);
    }

    let mut reply = responses::json(StatusCode::CREATED, doc);
    let h = reply.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("http://{host}/v2/images/{id}")) {
        h.insert(header::LOCATION, v);
    }
    h.insert(
        "openstack-image-import-methods",
        HeaderValue::from_static("glance-direct,web-download,copy-image"),
    );
    h.insert("openstack-image-store-ids", HeaderValue::from_static("fs"));
    reply
}
