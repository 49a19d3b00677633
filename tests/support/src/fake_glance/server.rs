//! The running server: the call log wrapper around the routes, served by
//! the shared [`AcceptLoop`], and the [`RunningFakeGlance`] handle.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::accept_loop::AcceptLoop;
use super::behaviour::Behaviour;
use super::body::FakeBody;
use super::calls::Call;
use super::error::FakeGlanceError;
use super::image::{FakeImage, ImageStatus};
use super::policy::Identity;
use super::routes::{self, Crash};
use super::state::{self, lock, Shared};

/// A fake Glance serving on `127.0.0.1`. Cheap to clone; the server stops
/// on [`shutdown`](RunningFakeGlance::shutdown) or when the last clone is
/// dropped (open connections are cut).
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct RunningFakeGlance {
    shared: Arc<Shared>,
    /// Stops the accept loop (and with it every connection) when the last
    /// clone is dropped.
    server: Arc<AcceptLoop>,
}

impl std::fmt::Debug for RunningFakeGlance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningFakeGlance")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn start(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> RunningFakeGlance {
    let mut http = hyper::server::conn::http1::Builder::new();
    // uWSGI-served Glance sends no Date header.
    http.auto_date_header(false);
    let state = Arc::clone(&shared);
    let server = AcceptLoop::spawn(listener, "fake glance", http, tls, move |req| {
        let shared = Arc::clone(&state);
        async move { handle(&shared, req).await }
    });
    RunningFakeGlance {
        shared,
        server: Arc::new(server),
    }
}

/// Answers a request and records it in the call log.
async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Result<Response<FakeBody>, Crash> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let headers = req.headers().clone();
    let mut result = routes::respond(shared, req).await;
    match &mut result {
        Ok(r) if shared.connection_close => {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        Ok(_) => {}
        Err(Crash) => {
            tracing::debug!(%method, %path, "fake glance: dropping the connection without a response");
        }
    }
    shared.calls.push(Call {
        method,
        path,
        query,
        headers,
        status: result.as_ref().ok().map(|r| r.status()),
        at: Instant::now(),
    });
    result
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake glance dropped the connection (emulating a Glance crash)")
    }
}

impl std::error::Error for Crash {}

impl RunningFakeGlance {
    /// The base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("{}://{}", self.shared.scheme, self.shared.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// Sets the behaviour of image `id` (replacing the default for it).
    pub fn set_behaviour(&self, id: &str, behaviour: Behaviour) {
        lock(&self.shared.behaviours)
            .per_image
            .insert(id.to_owned(), behaviour);
    }

    /// Makes image `id` follow the default behaviour again.
    pub fn clear_behaviour(&self, id: &str) {
        lock(&self.shared.behaviours).per_image.remove(id);
    }

    /// Sets the behaviour of every image without its own.
    pub fn set_default_behaviour(&self, behaviour: Behaviour) {
        lock(&self.shared.behaviours).default = behaviour;
    }

    /// Registers (or replaces) a token for [`AuthMode::Tokens`](super::AuthMode).
    pub fn add_token(&self, token: impl Into<String>, identity: Identity) {
        lock(&self.shared.tokens).insert(token.into(), identity);
    }

    /// Adds an image while running (its data is hashed on a blocking
    /// thread first). Fails if the id is taken.
    pub async fn add_image(&self, image: FakeImage) -> Result<(), FakeGlanceError> {
        let id = image.id.clone();
        if lock(&self.shared.images).contains_key(&id) {
            return Err(FakeGlanceError::DuplicateImage { id });
        }
        let record = super::builder::prepare(image).await?;
        match lock(&self.shared.images).entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => {
                Err(FakeGlanceError::DuplicateImage {
                    id: e.key().clone(),
                })
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(record);
                Ok(())
            }
        }
    }

    /// Removes an image as if it never existed (no call is logged).
    /// Returns whether it was there.
    pub fn remove_image(&self, id: &str) -> bool {
        match lock(&self.shared.images).remove(id) {
            Some(r) => {
                state::discard(&r.data);
                true
            }
            None => false,
        }
    }

    /// Changes an image's status directly. Returns whether it exists.
    pub fn set_status(&self, id: &str, status: ImageStatus) -> bool {
        match lock(&self.shared.images).get_mut(id) {
            Some(r) => {
                r.status = status;
                r.touch();
                true
            }
            None => false,
        }
    }

    /// The image's status.
    pub fn image_status(&self, id: &str) -> Option<ImageStatus> {
        lock(&self.shared.images).get(id).map(|r| r.status)
    }

    /// The image's MD5 (Glance's `checksum`), lower-case hex.
    pub fn image_md5(&self, id: &str) -> Option<String> {
        lock(&self.shared.images)
            .get(id)
            .and_then(|r| r.md5().map(str::to_owned))
    }

    /// The image's SHA-512 (`os_hash_value`), lower-case hex.
    pub fn image_sha512(&self, id: &str) -> Option<String> {
        lock(&self.shared.images)
            .get(id)
            .and_then(|r| r.digests.as_ref().map(|d| d.sha512.clone()))
    }

    /// The image's data size.
    pub fn image_size(&self, id: &str) -> Option<u64> {
        lock(&self.shared.images).get(id).and_then(|r| r.data.len())
    }

    /// Every call received so far, oldest first.
    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.snapshot()
    }

    /// How many `GET /v2/images/{id}/file` without a range were received.
    pub fn file_gets(&self, id: &str) -> usize {
        self.shared.calls.count(|c| c.is_file_get(id))
    }

    /// How many ranged `GET /v2/images/{id}/file` were received.
    pub fn ranged_file_gets(&self, id: &str) -> usize {
        self.shared.calls.count(|c| c.is_ranged_file_get(id))
    }

    /// How many `GET /v2/images/{id}` were received.
    pub fn metadata_gets(&self, id: &str) -> usize {
        self.shared.calls.count(|c| c.is_metadata_get(id))
    }

    /// Forgets every call logged so far.
    pub fn clear_calls(&self) {
        self.shared.calls.clear();
    }

    /// Image data bytes handed to connections so far (all downloads).
    pub fn bytes_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// Stops accepting and cuts every open connection; waits until the
    /// listener is closed. Later calls do nothing.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}
