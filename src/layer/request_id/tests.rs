use std::convert::Infallible;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

use super::RequestIdLayer;
use crate::headers::REQUEST_ID;

/// Echoes the request id it received in `x-seen-id`; answers `body`.
async fn echo(
    req: Request<Full<Bytes>>,
    body: &'static str,
    set: Option<&'static str>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    if let Some(seen) = req.headers().get(REQUEST_ID) {
        resp.headers_mut().insert("x-seen-id", seen.clone());
    }
    if let Some(id) = set {
        resp.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static(id));
    }
    Ok(resp)
}

fn get(id: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get("/v2/images").body(Full::default()).unwrap();
    if let Some(id) = id {
        req.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_str(id).unwrap());
    }
    req
}

#[tokio::test]
async fn inner_id_is_kept() {
    let svc = RequestIdLayer::new().layer(service_fn(|r| echo(r, "x", Some("req-upstream"))));
    let resp = svc.oneshot(get(Some("mine"))).await.unwrap();
    assert_eq!(resp.headers()[REQUEST_ID], "req-upstream");
    // The client's header went on untouched.
    assert_eq!(resp.headers()["x-seen-id"], "mine");
}

#[tokio::test]
async fn client_id_is_echoed_with_prefix() {
    let svc = RequestIdLayer::new().layer(service_fn(|r| echo(r, "x", None)));
    let resp = svc.clone().oneshot(get(Some("abc"))).await.unwrap();
    assert_eq!(resp.headers()[REQUEST_ID], "req-abc");
    let resp = svc.oneshot(get(Some("req-def"))).await.unwrap();
    assert_eq!(resp.headers()[REQUEST_ID], "req-def");
}

#[tokio::test]
async fn new_id_is_generated_and_sent_on() {
    let svc = RequestIdLayer::new().layer(service_fn(|r| echo(r, "x", None)));
    let resp = svc.oneshot(get(None)).await.unwrap();
    let id = resp.headers()[REQUEST_ID].to_str().unwrap();
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
    assert!(uuid::Uuid::parse_str(&id[4..]).is_ok(), "{id}");
    assert_eq!(
        resp.headers()["x-seen-id"],
        id,
        "the inner service saw the same id"
    );
}

#[tokio::test]
async fn oversized_client_id_gets_a_new_one_but_is_passed_on() {
    let long = "x".repeat(80);
    let svc = RequestIdLayer::new().layer(service_fn(|r| echo(r, "x", None)));
    let resp = svc.oneshot(get(Some(&long))).await.unwrap();
    let id = resp.headers()[REQUEST_ID].to_str().unwrap();
    assert!(id.starts_with("req-") && id.len() == 40, "{id}");
    // Glance decides what to do with it (431), not us.
    assert_eq!(resp.headers()["x-seen-id"], long.as_str());
}

/// An event's message and its other fields, `Debug`-formatted.
type Captured = (String, Vec<(String, String)>);

/// Records the `message` and the other fields of every event.
#[derive(Clone, Default)]
struct Capture {
    events: Arc<Mutex<Vec<Captured>>>,
    next: Arc<AtomicU64>,
}

struct Fields(String, Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        } else {
            self.1
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut f = Fields(String::new(), Vec::new());
        event.record(&mut f);
        self.events.lock().unwrap().push((f.0, f.1));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

impl Capture {
    fn lines(&self, message: &str) -> Vec<Vec<(String, String)>> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, _)| m.starts_with(message))
            .map(|(_, f)| f.clone())
            .collect()
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {fields:?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn one_line_per_request_when_the_body_ends() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let svc = RequestIdLayer::new().layer(service_fn(|r| echo(r, "IMAGEDATA", None)));

    let resp = svc.clone().oneshot(get(None)).await.unwrap();
    assert!(
        capture.lines("request").is_empty(),
        "not before the body is sent"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "IMAGEDATA");
    let done = capture.lines("request completed");
    assert_eq!(done.len(), 1);
    assert_eq!(field(&done[0], "status"), "200");
    assert_eq!(field(&done[0], "bytes"), "9");

    // A client that goes away: one "ended before" line, at drop.
    let resp = svc.clone().oneshot(get(None)).await.unwrap();
    drop(resp);
    assert_eq!(capture.lines("request ended before").len(), 1);

    // HEAD: no body will be polled, the line is written at once.
    let mut head = get(None);
    *head.method_mut() = Method::HEAD;
    let resp = svc.oneshot(head).await.unwrap();
    assert_eq!(capture.lines("request completed").len(), 2);
    drop(resp);
    assert_eq!(capture.lines("request").len(), 3, "exactly one line each");
}

#[tokio::test(flavor = "current_thread")]
async fn a_different_inner_id_is_logged() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let svc = RequestIdLayer::new().layer(service_fn(|_r: Request<Full<Bytes>>| async {
        let mut resp = Response::new(Full::<Bytes>::default());
        *resp.status_mut() = StatusCode::NOT_FOUND;
        resp.headers_mut()
            .insert(REQUEST_ID, HeaderValue::from_static("req-other"));
        Ok::<_, Infallible>(resp)
    }));
    let resp = svc.oneshot(get(Some("mine"))).await.unwrap();
    drop(resp); // empty body: logged at once
    let done = capture.lines("request completed");
    assert_eq!(done.len(), 1);
    assert_eq!(field(&done[0], "status"), "404");
    assert_eq!(field(&done[0], "response_request_id"), "\"req-other\"");
}
