//! The running server: the request handler, served by the fake Glance's
//! [`AcceptLoop`], and the [`RunningFakeKeystone`] handle.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::net::TcpListener;

use super::state::{lock, State};
use crate::fake_glance::accept_loop::AcceptLoop;

/// Largest request body read (password authentication is under 1 KiB).
const BODY_LIMIT: usize = 64 * 1024;

/// A fake Keystone serving on `127.0.0.1`. Cheap to clone; the server stops
/// on [`shutdown`](RunningFakeKeystone::shutdown) or when the last clone is
/// dropped (open connections are cut).
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct RunningFakeKeystone {
    state: Arc<State>,
    /// Stops the accept loop (and with it every connection) when the last
    /// clone is dropped.
    server: Arc<AcceptLoop>,
    /// `http` or `https`.
    scheme: &'static str,
}

impl std::fmt::Debug for RunningFakeKeystone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningFakeKeystone")
            .field("addr", &self.state.addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn start(
    state: Arc<State>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> RunningFakeKeystone {
    let http = hyper::server::conn::http1::Builder::new();
    let shared = Arc::clone(&state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = AcceptLoop::spawn(listener, "fake keystone", http, tls, move |req| {
        let state = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&state, req).await) }
    });
    RunningFakeKeystone {
        state,
        server: Arc::new(server),
        scheme,
    }
}

async fn handle(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let delay = *lock(&state.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, BODY_LIMIT).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
            return r;
        }
    };
    state.respond(&parts.method, parts.uri.path(), &parts.headers, &body)
}

impl RunningFakeKeystone {
    /// The identity endpoint, `http://127.0.0.1:PORT/v3` (`https` when
    /// served over TLS).
    pub fn url(&self) -> String {
        format!("{}://{}/v3", self.scheme, self.state.addr)
    }

    /// The root URL, `http://127.0.0.1:PORT` (an `auth_url` without `/v3`).
    pub fn root_url(&self) -> String {
        format!("{}://{}", self.scheme, self.state.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// A fresh token of `user`, scoped to its project, living the
    /// configured lifetime (issued directly, not counted as a password
    /// authentication). `None` for an unknown user.
    pub fn token(&self, user: &str) -> Option<String> {
        let lifetime = *lock(&self.state.lifetime);
        self.token_with_lifetime(user, lifetime)
    }

    /// Like [`token`](Self::token), living `lifetime`.
    pub fn token_with_lifetime(&self, user: &str, lifetime: Duration) -> Option<String> {
        let index = self.state.user_index(user)?;
        Some(self.state.issue(index, true, lifetime))
    }

    /// An unscoped token of `user` (no project, no roles).
    pub fn unscoped_token(&self, user: &str) -> Option<String> {
        let index = self.state.user_index(user)?;
        let lifetime = *lock(&self.state.lifetime);
        Some(self.state.issue(index, false, lifetime))
    }

    /// Revokes `token`. Returns whether it was known.
    pub fn revoke(&self, token: &str) -> bool {
        match lock(&self.state.tokens).get_mut(token) {
            Some(t) => {
                t.revoked = true;
                true
            }
            None => false,
        }
    }

    /// Makes `token` expired now. Returns whether it was known.
    pub fn expire(&self, token: &str) -> bool {
        match lock(&self.state.tokens).get_mut(token) {
            Some(t) => {
                t.expires_at = std::time::SystemTime::now() - Duration::from_secs(1);
                true
            }
            None => false,
        }
    }

    /// Expires every token issued so far (for example the proxy's service
    /// token).
    pub fn expire_all(&self) {
        let past = std::time::SystemTime::now() - Duration::from_secs(1);
        for t in lock(&self.state.tokens).values_mut() {
            t.expires_at = past;
        }
    }

    /// Roles in the document of `token` (implied roles included), if it is
    /// a known scoped token.
    pub fn roles_of(&self, token: &str) -> Option<Vec<String>> {
        let t = lock(&self.state.tokens).get(token).cloned()?;
        t.scoped.then(|| self.state.users[t.user].roles.clone())
    }

    /// The id of user `name`.
    pub fn user_id(&self, name: &str) -> Option<String> {
        let i = self.state.user_index(name)?;
        Some(self.state.users[i].id.clone())
    }

    /// The id of the project of user `name`.
    pub fn project_id_of(&self, name: &str) -> Option<String> {
        let i = self.state.user_index(name)?;
        Some(self.state.users[i].project_id.clone())
    }

    /// Sets the lifetime of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        *lock(&self.state.lifetime) = lifetime;
    }

    /// Answers every request with `status` (a JSON error body) until set
    /// back to `None`.
    pub fn set_failure(&self, status: Option<StatusCode>) {
        *lock(&self.state.failure) = status;
    }

    /// Waits `delay` before answering every request (zero: no delay).
    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    /// Successful password authentications (`POST /v3/auth/tokens`).
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::Relaxed)
    }

    /// Validation requests received (`GET`/`HEAD /v3/auth/tokens`).
    pub fn validations(&self) -> usize {
        self.state.validations.load(Ordering::Relaxed)
    }

    /// Requests received, of any kind.
    pub fn requests(&self) -> usize {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting and cuts every open connection; waits until the
    /// listener is closed. Later calls do nothing.
    pub async fn shutdown(&self) {
        self.server.shutdown().await;
    }
}
