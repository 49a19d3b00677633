//! End-to-end tests: a real fake on 127.0.0.1 and a hyper-util client.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use md5::Digest;

use super::*;
use crate::BoxError;

type ReqBody = BoxBody<Bytes, BoxError>;

const PUB: &str = "11111111-1111-4111-8111-111111111111";
const PRIV: &str = "22222222-2222-4222-8222-222222222222";
const Q: &str = "33333333-3333-4333-8333-333333333333";
const DEACT: &str = "44444444-4444-4444-8444-444444444444";
const SHARED: &str = "55555555-5555-4555-8555-555555555555";
const BIG: &str = "66666666-6666-4666-8666-666666666666";
const UNKNOWN: &str = "ab658d60-58fa-4ca4-b7b8-c20c5c26aac9";
const AZ: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const BIG_LEN: u64 = (4 << 20) + 123;

fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5::Md5::digest(data))
}

/// The tests' standard images and tokens, plus a shared image and a 4 MiB pattern image.
async fn fixture(auth: AuthMode) -> RunningFakeGlance {
    FakeGlance::builder()
        .auth(auth)
        .token("ADMIN", Identity::new("admin-project").roles(["admin"]))
        .token("MEMBER", Identity::new("X").roles(["member", "reader"]))
        .token("READER", Identity::new("X").roles(["reader"]))
        .token("OTHER", Identity::new("Y").roles(["member"]))
        .token("SHAREE", Identity::new("S").roles(["member"]))
        .image(
            FakeImage::new(PUB)
                .name("pub")
                .bytes("IMAGEDATA")
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .image(
            FakeImage::new(PRIV)
                .bytes(AZ)
                .visibility(Visibility::Private)
                .owner("X"),
        )
        .image(FakeImage::new(Q).visibility(Visibility::Public).owner("X"))
        .image(
            FakeImage::new(DEACT)
                .bytes("IMAGEDATA")
                .status(ImageStatus::Deactivated)
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .image(
            FakeImage::new(SHARED)
                .bytes("SHAREDDATA")
                .visibility(Visibility::Shared)
                .owner("X")
                .member("S"),
        )
        .image(
            FakeImage::new(BIG)
                .pattern(BIG_LEN, 7)
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .spawn()
        .await
        .expect("fake glance starts")
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Vec<u8>,
    /// The body ended with an error (after `body` was received).
    error: Option<String>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> Client<HttpConnector, ReqBody> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn empty() -> ReqBody {
    Empty::new().map_err(|e| match e {}).boxed()
}

fn full(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

async fn try_send(req: Request<ReqBody>) -> Result<Reply, String> {
    let resp = client().request(req).await.map_err(|e| format!("{e:?}"))?;
    let (parts, mut body) = resp.into_parts();
    let mut data = Vec::new();
    let mut error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    data.extend_from_slice(&d);
                }
            }
            Err(e) => {
                error = Some(format!("{e:?}"));
                break;
            }
        }
    }
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body: data,
        error,
    })
}

async fn send(req: Request<ReqBody>) -> Reply {
    try_send(req).await.expect("a response")
}

fn request(
    g: &RunningFakeGlance,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> http::request::Builder {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{}{path}", g.url()));
    if let Some(t) = token {
        b = b.header("x-auth-token", t);
    }
    b
}

async fn get(g: &RunningFakeGlance, path: &str, token: Option<&str>) -> Reply {
    send(request(g, Method::GET, path, token).body(empty()).unwrap()).await
}

async fn get_with(g: &RunningFakeGlance, path: &str, name: &str, value: &str) -> Reply {
    send(
        request(g, Method::GET, path, None)
            .header(name, value)
            .body(empty())
            .unwrap(),
    )
    .await
}

fn file(id: &str) -> String {
    format!("/v2/images/{id}/file")
}

fn assert_request_id(r: &Reply) {
    let id = r.header("x-openstack-request-id").expect("request id");
    assert!(
        id.starts_with("req-") && uuid::Uuid::parse_str(&id[4..]).is_ok(),
        "{id}"
    );
}

#[tokio::test]
async fn versions_document_of_a_glance_without_cache() {
    let g = fixture(AuthMode::Tokens).await;
    let r = get(&g, "/versions", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("x-openstack-request-id").is_none());
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let versions = doc["versions"].as_array().unwrap();
    let href = format!("http://{}/v2/", g.addr());
    assert!(versions
        .iter()
        .all(|v| v["links"][0]["href"] == href.as_str()));
    let current: Vec<_> = versions
        .iter()
        .filter(|v| v["status"] == "CURRENT")
        .collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], "v2.17");
    assert!(!r.text().contains("v2.14") && !r.text().contains("v2.18"));

    for path in [
        "/",
        "/v1/images",
        "/v2.18/images",
        &format!("/v2.14{}", &file(PUB)[3..]),
    ] {
        let r = get(&g, path, None).await;
        assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES, "{path}");
        assert!(r.text().starts_with("{\"versions\": ["));
    }
    // An accepted minor version is routed like /v2.
    let r = get(&g, &format!("/v2.17{}", &file(PUB)[3..]), Some("MEMBER")).await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"IMAGEDATA"[..]));
    // So is media-type versioning.
    let r = send(
        request(
            &g,
            Method::GET,
            &format!("/images/{PUB}/file"),
            Some("MEMBER"),
        )
        .header("accept", "application/vnd.openstack.images-v2")
        .body(empty())
        .unwrap(),
    )
    .await;
    assert_eq!(r.body, b"IMAGEDATA");
}

#[tokio::test]
async fn metadata_in_glance_shape() {
    let g = fixture(AuthMode::NoAuth).await;
    let r = get(&g, &format!("/v2/images/{PUB}"), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_request_id(&r);
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["id"], PUB);
    assert_eq!(v["name"], "pub");
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], 9);
    assert_eq!(v["checksum"], md5_hex(b"IMAGEDATA"));
    assert_eq!(v["os_hash_algo"], "sha512");
    assert_eq!(
        v["os_hash_value"],
        hex::encode(sha2::Sha512::digest(b"IMAGEDATA"))
    );
    assert_eq!(v["visibility"], "public");
    assert_eq!(v["owner"], "X");
    assert_eq!(v["file"], format!("/v2/images/{PUB}/file"));

    let r = get(&g, &format!("/v2/images/{UNKNOWN}"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("content-type"), Some("text/html; charset=UTF-8"));
    assert_eq!(r.body.len(), 181);
    assert!(r
        .text()
        .contains(&format!("No image found with ID {UNKNOWN}")));
    assert_request_id(&r);

    for path in [
        format!("/v2/images/{PUB}/"),
        format!("{}/", file(PUB)),
        "/v2/".into(),
        "/v2/schemas/image".into(),
    ] {
        let r = get(&g, &path, None).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.text().contains("The resource could not be found."));
    }

    let r = get(&g, "/v2/images", None).await;
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn full_download_headers_and_body() {
    let g = fixture(AuthMode::NoAuth).await;
    let r = get(&g, &file(PUB), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "content-md5",
            "content-length",
            "x-openstack-request-id"
        ]
    );
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        r.header("content-md5"),
        Some(md5_hex(b"IMAGEDATA").as_str())
    );
    assert_eq!(r.header("content-length"), Some("9"));
    assert_eq!(r.body, b"IMAGEDATA");
    assert!(r.error.is_none());

    // Pattern data: deterministic, matching its checksum, in 64 KiB chunks.
    let r = get(&g, &file(BIG), None).await;
    assert_eq!(r.body.len() as u64, BIG_LEN);
    assert_eq!(r.body, Pattern::new(7).to_vec(0, BIG_LEN as usize));
    assert_eq!(Some(md5_hex(&r.body)), g.image_md5(BIG));
    assert_eq!(r.header("content-md5"), g.image_md5(BIG).as_deref());
    assert_eq!(
        g.image_sha512(BIG),
        Some(hex::encode(sha2::Sha512::digest(&r.body)))
    );
    assert_eq!(g.bytes_served(), 9 + BIG_LEN);

    let r = get(&g, &file(UNKNOWN), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.text().contains("No image found with ID"));
}

#[tokio::test]
async fn byte_ranges() {
    let g = fixture(AuthMode::NoAuth).await;
    let part = |r: &Reply| {
        (
            r.status,
            r.header("content-range").map(str::to_owned),
            r.text(),
        )
    };
    let az_md5 = md5_hex(AZ);

    let r = get_with(&g, &file(PRIV), "range", "bytes=3-5").await;
    assert_eq!(
        part(&r),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 3-5/26".into()),
            "DEF".into()
        )
    );
    assert_eq!(r.header("content-md5"), Some(az_md5.as_str()));
    assert_eq!(r.header("content-length"), Some("3"));
    let names: Vec<_> = r.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "content-type",
            "content-range",
            "content-md5",
            "content-length",
            "x-openstack-request-id"
        ]
    );

    let r = get_with(&g, &file(PRIV), "content-range", "bytes 3-5/*").await;
    assert_eq!(
        part(&r),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 3-5/26".into()),
            "DEF".into()
        )
    );

    let r = get_with(&g, &file(PRIV), "range", "bytes=-3").await;
    assert_eq!(
        part(&r),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 23-25/26".into()),
            "XYZ".into()
        )
    );

    let r = get_with(&g, &file(PRIV), "range", "bytes=20-").await;
    assert_eq!(
        part(&r),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 20-25/26".into()),
            "UVWXYZ".into()
        )
    );

    let r = get_with(&g, &file(PRIV), "range", "bytes=24-1000").await;
    assert_eq!(
        part(&r),
        (
            StatusCode::PARTIAL_CONTENT,
            Some("bytes 24-25/26".into()),
            "YZ".into()
        )
    );

    // A window of a pattern image crossing chunk boundaries.
    let r = get_with(&g, &file(BIG), "range", "bytes=65530-131080").await;
    assert_eq!(r.body, Pattern::new(7).to_vec(65530, 131080 - 65530 + 1));

    let r = get_with(&g, &file(PRIV), "range", "bytes=26-").await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert!(r
        .text()
        .contains("<title>416 Request Range Not Satisfiable</title>"));
    assert!(r.text().contains(
        "Invalid start position in Range header. Start position MUST be in the inclusive range [0, 25]."
    ));

    let r = get_with(&g, &file(PRIV), "range", "bytes=0-1,5-6").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .text()
        .contains("Requests with multiple ranges are not supported in Glance."));

    assert_eq!(g.file_gets(PRIV), 0);
    assert_eq!(g.ranged_file_gets(PRIV), 7);
}

#[tokio::test]
async fn image_without_data() {
    let g = fixture(AuthMode::NoAuth).await;
    let r = get(&g, &file(Q), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(r.body.is_empty());
    assert!(r.header("content-md5").is_none() && r.header("content-type").is_none());
    assert_request_id(&r);

    // Glance crashes on a ranged GET of an image without data: no response.
    let err = try_send(
        request(&g, Method::GET, &file(Q), None)
            .header("range", "bytes=0-0")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert!(err.is_err(), "expected a dropped connection");
    let last = g.calls().pop().unwrap();
    assert_eq!(last.status, None);
    assert!(last.is_ranged_file_get(Q));
}

#[tokio::test]
async fn head_and_wrong_methods() {
    let g = fixture(AuthMode::NoAuth).await;
    let r = send(
        request(&g, Method::HEAD, &file(PUB), None)
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, PUT"));
    assert_eq!(r.header("content-length"), Some("0"));
    assert_request_id(&r);

    let r = send(
        request(&g, Method::POST, &format!("/v2/images/{PUB}"), None)
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    assert!(r
        .text()
        .contains("The method POST is not allowed for this resource."));
}

#[tokio::test]
async fn authentication() {
    let g = fixture(AuthMode::Tokens).await;
    for token in [None, Some("nope")] {
        let r = get(&g, &file(PUB), token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body.len(), 358);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Keystone uri=\"http://127.0.0.1:5000\"")
        );
        assert!(r.header("x-openstack-request-id").is_none());
    }
    // Unknown routes are behind authentication too; /versions is not.
    assert_eq!(
        get(&g, "/v2/nothing", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(get(&g, "/versions", None).await.status, StatusCode::OK);
    // Tokens can be added at run time.
    g.add_token("LATE", Identity::new("X").roles(["member"]));
    assert_eq!(
        get(&g, &file(PRIV), Some("LATE")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn download_and_metadata_policies() {
    let g = fixture(AuthMode::Tokens).await;
    let status = |r: Reply| r.status;
    let cases: &[(&str, &str, u16, u16)] = &[
        // (token, image, metadata status, file status)
        ("ADMIN", PRIV, 200, 200),
        ("MEMBER", PRIV, 200, 200),
        ("READER", PRIV, 200, 403),
        ("OTHER", PRIV, 404, 404),
        ("OTHER", PUB, 200, 200),
        ("READER", PUB, 200, 403),
        ("SHAREE", SHARED, 200, 200),
        ("OTHER", SHARED, 404, 404),
        ("MEMBER", DEACT, 200, 403),
        ("ADMIN", DEACT, 200, 200),
        ("MEMBER", Q, 200, 204),
    ];
    for &(token, id, meta, data) in cases {
        let m = status(get(&g, &format!("/v2/images/{id}"), Some(token)).await);
        assert_eq!(m.as_u16(), meta, "{token} metadata {id}");
        let f = get(&g, &file(id), Some(token)).await;
        assert_eq!(f.status.as_u16(), data, "{token} file {id}");
        if data == 403 && id != DEACT {
            assert!(f
                .text()
                .contains("You are not authorized to complete download_image action."));
        }
    }
    let r = get(&g, &file(DEACT), Some("MEMBER")).await;
    assert!(r
        .text()
        .contains("The requested image has been deactivated. Image data download is forbidden."));
    let r = get(&g, &file(PRIV), Some("OTHER")).await;
    assert!(r.text().contains(&format!("No image found with ID {PRIV}")));

    // Identity headers from the client are not trusted.
    let r = send(
        request(&g, Method::GET, &file(PRIV), Some("READER"))
            .header("x-roles", "admin,member")
            .header("x-identity-status", "Confirmed")
            .header("x-project-id", "X")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn delete_and_actions() {
    let g = fixture(AuthMode::Tokens).await;
    let call = |method: Method, path: String, token: &'static str| {
        let g = g.clone();
        async move {
            send(
                request(&g, method, &path, Some(token))
                    .body(empty())
                    .unwrap(),
            )
            .await
        }
    };
    let deactivate = format!("/v2/images/{PRIV}/actions/deactivate");
    let reactivate = format!("/v2/images/{PRIV}/actions/reactivate");

    assert_eq!(
        call(Method::POST, deactivate.clone(), "OTHER").await.status,
        StatusCode::NOT_FOUND
    );
    let r = call(Method::POST, deactivate.clone(), "READER").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .contains("You are not authorized to complete deactivate action."));
    // Glance 33 lets a member of the owner project deactivate.
    let r = call(Method::POST, deactivate.clone(), "MEMBER").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(g.image_status(PRIV), Some(ImageStatus::Deactivated));
    assert_eq!(
        get(&g, &file(PRIV), Some("MEMBER")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call(Method::POST, reactivate.clone(), "ADMIN").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(Method::POST, reactivate, "ADMIN").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(g.image_status(PRIV), Some(ImageStatus::Active));
    let r = call(
        Method::POST,
        format!("/v2/images/{Q}/actions/deactivate"),
        "ADMIN",
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r
        .text()
        .contains("Not allowed to deactivate image in status &#x27;queued&#x27;"));

    let r = call(Method::DELETE, format!("/v2/images/{PRIV}"), "OTHER").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r
        .text()
        .contains(&format!("Failed to find image {PRIV} to delete")));
    let r = call(Method::DELETE, format!("/v2/images/{PRIV}"), "READER").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(Method::DELETE, format!("/v2/images/{PUB}"), "OTHER").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(Method::DELETE, format!("/v2/images/{PRIV}"), "MEMBER").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        get(&g, &file(PRIV), Some("ADMIN")).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&g, &format!("/v2/images/{PRIV}"), Some("ADMIN"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // A forced DELETE failure keeps the image.
    g.set_behaviour(
        PUB,
        Behaviour::default().force_delete_status(StatusCode::CONFLICT),
    );
    let r = call(Method::DELETE, format!("/v2/images/{PUB}"), "ADMIN").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        get(&g, &file(PUB), Some("ADMIN")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reset_after_truncates_the_body() {
    let g = fixture(AuthMode::NoAuth).await;
    g.set_behaviour(BIG, Behaviour::default().reset_after(1 << 20));
    let r = get(&g, &file(BIG), None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("content-length"),
        Some(BIG_LEN.to_string().as_str())
    );
    assert!(r.error.is_some(), "the body must fail");
    assert_eq!(r.body.len(), 1 << 20);
    assert_eq!(r.body, Pattern::new(7).to_vec(0, 1 << 20));

    // Also for a chunked body, and on a later request after clearing it.
    g.set_behaviour(BIG, Behaviour::default().reset_after(100_000).chunked());
    let r = get(&g, &file(BIG), None).await;
    assert!(r.header("content-length").is_none());
    assert!(r.error.is_some());
    assert_eq!(r.body.len(), 100_000);
    g.clear_behaviour(BIG);
    let r = get(&g, &file(BIG), None).await;
    assert!(r.error.is_none());
    assert_eq!(r.body.len() as u64, BIG_LEN);
}

#[tokio::test]
async fn header_lies_and_chunked_bodies() {
    let g = fixture(AuthMode::NoAuth).await;
    let real = md5_hex(b"IMAGEDATA");

    g.set_behaviour(PUB, Behaviour::default().wrong_content_md5());
    let r = get(&g, &file(PUB), None).await;
    let sent = r.header("content-md5").unwrap();
    assert_ne!(sent, real);
    assert!(sent.len() == 32 && sent.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(r.body, b"IMAGEDATA");

    g.set_behaviour(PUB, Behaviour::default().omit_content_md5());
    let r = get(&g, &file(PUB), None).await;
    assert!(r.header("content-md5").is_none());
    assert_eq!(r.header("content-length"), Some("9"));

    g.set_behaviour(PUB, Behaviour::default().chunked());
    let r = get(&g, &file(PUB), None).await;
    assert!(r.header("content-length").is_none());
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert_eq!(r.body, b"IMAGEDATA");

    g.set_behaviour(PUB, Behaviour::default().corrupt());
    let r = get(&g, &file(PUB), None).await;
    assert_eq!(r.header("content-md5"), Some(real.as_str()));
    assert_eq!(r.body.len(), 9);
    assert_ne!(md5_hex(&r.body), real);

    g.set_behaviour(
        PUB,
        Behaviour::default().force_status(StatusCode::INTERNAL_SERVER_ERROR),
    );
    let r = get(&g, &file(PUB), None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r
        .text()
        .contains("<title>500 Internal Server Error</title>"));
    assert_request_id(&r);

    g.set_behaviour(
        PUB,
        Behaviour::default()
            .metadata_size_zero()
            .metadata_checksum_null(),
    );
    let v: serde_json::Value =
        serde_json::from_slice(&get(&g, &format!("/v2/images/{PUB}"), None).await.body).unwrap();
    assert_eq!(v["size"], 0);
    assert!(v["checksum"].is_null());

    // The default behaviour applies to images without their own.
    g.set_default_behaviour(Behaviour::default().force_metadata_status(StatusCode::FORBIDDEN));
    assert_eq!(
        get(&g, &format!("/v2/images/{PRIV}"), None).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&g, &format!("/v2/images/{PUB}"), None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn slow_responses() {
    let g = fixture(AuthMode::NoAuth).await;
    g.set_behaviour(
        PUB,
        Behaviour::default().header_delay(Duration::from_millis(300)),
    );
    let t = Instant::now();
    assert_eq!(get(&g, &file(PUB), None).await.body, b"IMAGEDATA");
    assert!(t.elapsed() >= Duration::from_millis(300));

    // 512 KiB at 2 MiB/s: about 250 ms.
    g.set_behaviour(BIG, Behaviour::default().rate(2 << 20));
    let t = Instant::now();
    let r = get_with(&g, &file(BIG), "range", "bytes=0-524287").await;
    assert_eq!(r.body.len(), 512 << 10);
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");

    // A stalled body: the first 64 KiB, then nothing.
    g.set_behaviour(BIG, Behaviour::default().stall_after(64 << 10));
    let resp = client()
        .request(
            request(&g, Method::GET, &file(BIG), None)
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut got = 0;
    while got < (64 << 10) {
        let f = body.frame().await.unwrap().unwrap();
        got += f.into_data().map(|d| d.len()).unwrap_or(0);
    }
    assert_eq!(got, 64 << 10);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), body.frame())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn create_upload_and_download_32_mib() {
    let g = fixture(AuthMode::Tokens).await;
    let r = send(
        request(&g, Method::POST, "/v2/images", Some("MEMBER"))
            .header("content-type", "application/json")
            .body(full(
                r#"{"name": "up", "disk_format": "raw", "container_format": "bare"}"#,
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let id = v["id"].as_str().unwrap().to_owned();
    assert_eq!(v["status"], "queued");
    assert_eq!(v["visibility"], "shared");
    assert_eq!(v["owner"], "X");
    assert!(v["size"].is_null() && v.get("stores").is_none());
    assert_eq!(
        r.header("location"),
        Some(format!("{}/v2/images/{id}", g.url()).as_str())
    );
    assert_eq!(
        get(&g, &file(&id), Some("MEMBER")).await.status,
        StatusCode::NO_CONTENT
    );

    // 32 MiB in 1 MiB chunks, chunked transfer encoding, never in memory whole.
    const LEN: u64 = 32 << 20;
    let pattern = Pattern::new(99);
    let chunks = futures_util::stream::iter((0..32u64).map(move |i| {
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from(
            pattern.to_vec(i << 20, 1 << 20),
        )))
    }));
    let r = send(
        request(&g, Method::PUT, &file(&id), Some("MEMBER"))
            .header("content-type", "application/octet-stream")
            .body(BodyExt::boxed(StreamBody::new(chunks)))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let expected = pattern.digests(LEN);
    assert_eq!(g.image_md5(&id).as_deref(), Some(expected.md5.as_str()));
    assert_eq!(g.image_size(&id), Some(LEN));

    let v: serde_json::Value = serde_json::from_slice(
        &get(&g, &format!("/v2/images/{id}"), Some("MEMBER"))
            .await
            .body,
    )
    .unwrap();
    assert_eq!(v["status"], "active");
    assert_eq!(v["size"], LEN);
    assert_eq!(v["checksum"], expected.md5.as_str());
    assert_eq!(v["os_hash_value"], expected.sha512.as_str());

    // Download it back, hashing as it streams.
    let resp = client()
        .request(
            request(&g, Method::GET, &file(&id), Some("MEMBER"))
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-md5"], expected.md5.as_str());
    let mut body = resp.into_body();
    let mut hasher = md5::Md5::new();
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(d) = frame.unwrap().into_data() {
            hasher.update(&d);
            n += d.len() as u64;
        }
    }
    assert_eq!(n, LEN);
    assert_eq!(hex::encode(hasher.finalize()), expected.md5);
    // And a range of it, served from the file.
    let r = send(
        request(&g, Method::GET, &file(&id), Some("MEMBER"))
            .header("range", "bytes=1048570-1048580")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(r.body, pattern.to_vec(1048570, 11));

    // A second upload is refused.
    let r = send(
        request(&g, Method::PUT, &file(&id), Some("MEMBER"))
            .body(full("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    // Readers may not upload.
    let r = send(
        request(&g, Method::PUT, &file(Q), Some("READER"))
            .body(full("x"))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn create_errors() {
    let g = fixture(AuthMode::Tokens).await;
    let post = |token: &'static str, body: &'static str| {
        let g = g.clone();
        async move {
            send(
                request(&g, Method::POST, "/v2/images", Some(token))
                    .body(full(body))
                    .unwrap(),
            )
            .await
        }
    };
    assert_eq!(
        post("MEMBER", "{not json").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(post("READER", "{}").await.status, StatusCode::FORBIDDEN);
    let r = post("MEMBER", r#"{"visibility": "public"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.text().contains("publicize_image"));
    let r = post(
        "ADMIN",
        r#"{"id": "77777777-7777-4777-8777-777777777777", "visibility": "public"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = post("ADMIN", r#"{"id": "77777777-7777-4777-8777-777777777777"}"#).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        post("ADMIN", r#"{"id": "not-a-uuid"}"#).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn call_log_counts() {
    let g = fixture(AuthMode::NoAuth).await;
    get(&g, &file(PUB), None).await;
    get(&g, &format!("/v2.15/images/{PUB}/file"), None).await;
    get_with(&g, &file(PUB), "range", "bytes=0-0").await;
    get_with(&g, &file(PUB), "content-range", "bytes 0-0/*").await;
    get(&g, &format!("/v2/images/{PUB}"), None).await;
    send(
        request(&g, Method::HEAD, &file(PUB), None)
            .body(empty())
            .unwrap(),
    )
    .await;
    get(&g, &format!("{}?prefer=fs", file(PRIV)), None).await;
    assert_eq!(g.file_gets(PUB), 2);
    assert_eq!(g.ranged_file_gets(PUB), 2);
    assert_eq!(g.metadata_gets(PUB), 1);
    assert_eq!(g.file_gets(PRIV), 1);
    let calls = g.calls();
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[5].method, Method::HEAD);
    assert_eq!(calls[5].status, Some(StatusCode::METHOD_NOT_ALLOWED));
    assert_eq!(calls[6].query.as_deref(), Some("prefer=fs"));
    assert!(calls[0].headers.contains_key(header::HOST));
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(g.bytes_served(), 9 + 9 + 1 + 1 + 26);
    g.clear_calls();
    assert!(g.calls().is_empty());
    assert_eq!(g.file_gets(PUB), 0);
}

#[tokio::test]
async fn runtime_changes_and_shutdown() {
    let g = fixture(AuthMode::NoAuth).await;
    let id = "88888888-8888-4888-8888-888888888888";
    g.add_image(FakeImage::new(id).bytes("LATE")).await.unwrap();
    assert!(matches!(
        g.add_image(FakeImage::new(id)).await,
        Err(FakeGlanceError::DuplicateImage { .. })
    ));
    assert_eq!(get(&g, &file(id), None).await.body, b"LATE");
    assert!(g.set_status(id, ImageStatus::Deleted));
    assert_eq!(get(&g, &file(id), None).await.status, StatusCode::NOT_FOUND);
    assert!(g.remove_image(id));
    assert!(!g.remove_image(id));

    let url = g.url();
    let addr = g.addr();
    g.shutdown().await;
    g.shutdown().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "{url} still accepts"
    );

    // Dropping the last handle stops a server too.
    let g2 = fixture(AuthMode::NoAuth).await;
    let addr2 = g2.addr();
    drop(g2);
    let mut refused = false;
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(addr2).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
}

#[tokio::test]
async fn connection_close_option_and_duplicate_ids() {
    let g = FakeGlance::builder()
        .connection_close(true)
        .image(FakeImage::new(PUB).bytes("IMAGEDATA"))
        .spawn()
        .await
        .unwrap();
    let r = get(&g, &file(PUB), None).await;
    assert_eq!(r.header("connection"), Some("close"));
    assert_eq!(r.body, b"IMAGEDATA");
    let err = FakeGlance::builder()
        .image(FakeImage::new(PUB))
        .image(FakeImage::new(PUB))
        .spawn()
        .await
        .unwrap_err();
    assert!(err.to_string().contains(PUB));
}

#[tokio::test]
async fn hold_after_waits_for_the_gate() {
    let g = fixture(AuthMode::NoAuth).await;
    let gate = Gate::new();
    g.set_behaviour(BIG, Behaviour::default().hold_after(100_000, gate.clone()));
    let resp = client()
        .request(
            request(&g, Method::GET, &file(BIG), None)
                .body(empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    while data.len() < 100_000 {
        let f = body.frame().await.unwrap().unwrap();
        data.extend_from_slice(&f.into_data().unwrap_or_default());
    }
    assert_eq!(data.len(), 100_000, "the body stops exactly at the hold");
    assert!(
        tokio::time::timeout(Duration::from_millis(200), body.frame())
            .await
            .is_err(),
        "nothing more before the gate opens"
    );
    gate.open();
    while let Some(f) = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("the rest after the gate opens")
    {
        data.extend_from_slice(&f.unwrap().into_data().unwrap_or_default());
    }
    assert_eq!(data, Pattern::new(7).to_vec(0, BIG_LEN as usize));

    // An open gate holds nothing.
    let r = get(&g, &file(BIG), None).await;
    assert!(r.error.is_none());
    assert_eq!(r.body.len() as u64, BIG_LEN);
}
