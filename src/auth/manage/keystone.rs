//! Validating subject tokens with Keystone (`GET /v3/auth/tokens`), with
//! the proxy's own service token (password authentication,
//! `POST /v3/auth/tokens`).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::ClientConfig;
use serde::Deserialize;
use serde_json::json;

use super::static_tokens::digest;
use super::timestamp;
use super::validations::{TokenKey, Validations};
use super::{Domain, InvalidAuthUrl, KeystoneOptions, Project};
use super::{Principal, Refusal};
use crate::tls::{ClientTls, TlsError};

const X_AUTH_TOKEN: HeaderName = HeaderName::from_static("x-auth-token");
const X_SUBJECT_TOKEN: HeaderName = HeaderName::from_static("x-subject-token");

/// Largest Keystone response body read (token documents without the
/// catalog are about 1 KiB).
const BODY_LIMIT: usize = 1 << 20;

/// Renew the service token this long before it expires (at most a quarter
/// of its lifetime).
const RENEW_MARGIN: Duration = Duration::from_secs(120);

/// Settings of a [`Keystone`] client (everything but its state).
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) options: KeystoneOptions,
    /// The identity v3 base, e.g. `http://127.0.0.1:5000/v3`.
    pub(crate) identity: Uri,
    /// Bound on every Keystone exchange (connect, headers and body).
    pub(crate) timeout: Duration,
    /// How long a successful validation is reused.
    pub(crate) cache_time: Duration,
    /// Most validations remembered.
    pub(crate) capacity: usize,
    /// How Keystone's certificate is checked (`https` identity URLs).
    pub(crate) tls: Arc<ClientConfig>,
}

impl Settings {
    /// Settings for `options`, with the default bounds; fails when the
    /// identity URL or the TLS files cannot be used.
    pub(crate) fn new(options: KeystoneOptions) -> Result<Self, SettingsError> {
        let identity = options
            .identity_url()
            .map_err(|problem| SettingsError::AuthUrl {
                url: options.auth_url.clone(),
                problem,
            })?;
        let tls = if identity.scheme() == Some(&http::uri::Scheme::HTTPS) {
            if options.tls.is_insecure() {
                tracing::warn!(url = %identity, "Keystone's certificate is NOT checked (insecure)");
            }
            options.tls.build()?
        } else {
            ClientTls::no_roots()
        };
        Ok(Settings {
            options,
            identity,
            timeout: Duration::from_secs(5),
            cache_time: Duration::ZERO,
            capacity: 0,
            tls: Arc::new(tls),
        })
    }
}

/// Why [`Settings::new`] failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SettingsError {
    #[error("auth URL {url:?}: expected {problem}")]
    AuthUrl {
        url: String,
        problem: InvalidAuthUrl,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The proxy's own token and when to renew it.
struct ServiceToken {
    value: HeaderValue,
    renew_at: Instant,
}

type Pending = Shared<BoxFuture<'static, Result<Principal, Refusal>>>;

/// A Keystone client that validates tokens, remembers successes and shares
/// concurrent validations of one token.
pub(crate) struct Keystone {
    settings: Settings,
    tokens_url: Uri,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    service: tokio::sync::Mutex<Option<ServiceToken>>,
    validations: Validations,
    pending: Mutex<HashMap<TokenKey, Pending>>,
}

impl fmt::Debug for Keystone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keystone")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why the service token could not be obtained.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServiceTokenError {
    /// Keystone answered password authentication with 401.
    #[error(
        "Keystone ({url}) refused the service credentials of user {user:?} (401); check \
         [keystone_authtoken] username, password, project and domains"
    )]
    Rejected { url: String, user: String },
    /// Keystone could not be asked, or gave an unexpected answer.
    #[error("cannot get a service token from Keystone ({url}): {reason}")]
    Unavailable { url: String, reason: String },
}

/// A Keystone answer, read completely.
struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Keystone {
    pub(crate) fn new(settings: Settings) -> Self {
        let tokens_url = format!(
            "{}/auth/tokens?nocatalog",
            settings.identity.to_string().trim_end_matches('/')
        )
        .parse()
        .unwrap_or_else(|_| settings.identity.clone());
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(settings.timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config((*settings.tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Keystone {
            validations: Validations::new(settings.capacity),
            settings,
            tokens_url,
            client,
            service: tokio::sync::Mutex::new(None),
            pending: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Validates `subject` (an `X-Auth-Token` value), from memory when it
    /// was validated recently; concurrent calls for one token share one
    /// Keystone request.
    pub(crate) async fn authenticate(
        self: &Arc<Self>,
        subject: &str,
    ) -> Result<Principal, Refusal> {
        let key = digest(subject.as_bytes());
        if let Some(p) = self.validations.get(&key) {
            return Ok(p);
        }
        let pending = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(p) = pending.get(&key) {
                p.clone()
            } else {
                // A task, so that the validation finishes (and is
                // remembered, and its entry removed) even when every caller
                // waiting for it goes away.
                let this = Arc::clone(self);
                let subject = subject.to_owned();
                let task = tokio::spawn(async move {
                    let result = this.validate(&subject).await;
                    if let Ok((principal, ttl)) = &result {
                        this.validations.insert(key, principal.clone(), *ttl);
                    }
                    this.pending
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&key);
                    result.map(|(p, _)| p)
                });
                let shared = async move {
                    task.await.unwrap_or_else(|e| {
                        Err(Refusal::Unavailable(format!(
                            "token validation did not finish: {e}"
                        )))
                    })
                }
                .boxed()
                .shared();
                pending.insert(key, shared.clone());
                shared
            }
        };
        pending.await
    }

    /// Number of validations remembered.
    #[cfg(test)]
    pub(crate) fn remembered(&self) -> usize {
        self.validations.len()
    }

    /// Asks Keystone about `subject`; on success, also how long the answer
    /// may be reused. A 401 (the service token expired or was revoked)
    /// renews the service token and asks once more.
    async fn validate(&self, subject: &str) -> Result<(Principal, Duration), Refusal> {
        let Ok(mut subject_value) = HeaderValue::from_str(subject) else {
            return Err(Refusal::Unauthenticated);
        };
        subject_value.set_sensitive(true);
        let mut rejected: Option<HeaderValue> = None;
        for _ in 0..2 {
            let service = self
                .service_token_value(rejected.as_ref())
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let answer = self
                .exchange(
                    Method::GET,
                    &[
                        (X_AUTH_TOKEN, service.clone()),
                        (X_SUBJECT_TOKEN, subject_value.clone()),
                    ],
                    Bytes::new(),
                )
                .await
                .map_err(|reason| unavailable(format!("cannot validate a token: {reason}")))?;
            match answer.status {
                StatusCode::OK => return self.principal(&answer.body),
                // Unknown, revoked or expired subject (and malformed ones).
                StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => {
                    tracing::debug!(status = %answer.status, "Keystone does not accept the token");
                    return Err(Refusal::Unauthenticated);
                }
                StatusCode::UNAUTHORIZED if rejected.is_none() => {
                    tracing::info!("Keystone refused the service token; renewing it");
                    rejected = Some(service);
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(unavailable(
                        "Keystone refused a freshly issued service token (401)".to_owned(),
                    ))
                }
                StatusCode::FORBIDDEN => {
                    return Err(unavailable(format!(
                        "the service user {:?} may not validate tokens (403): it needs the admin \
                         or service role in its project",
                        self.settings.options.username
                    )))
                }
                other => {
                    return Err(unavailable(format!(
                        "Keystone answered token validation with {other}"
                    )))
                }
            }
        }
        Err(unavailable(
            "Keystone refused the service token (401)".to_owned(),
        ))
    }

    /// The principal in a 200 validation document, and how long it may be
    /// remembered: `cache_time`, but never past the token's expiry.
    fn principal(&self, body: &[u8]) -> Result<(Principal, Duration), Refusal> {
        let doc: TokenDocument = serde_json::from_slice(body)
            .map_err(|e| unavailable(format!("Keystone's token document cannot be read: {e}")))?;
        let token = doc.token;
        let Some(expires_at) = timestamp::parse(&token.expires_at) else {
            return Err(unavailable(format!(
                "Keystone's token document has an unreadable expires_at {:?}",
                token.expires_at
            )));
        };
        let Ok(remaining) = expires_at.duration_since(SystemTime::now()) else {
            tracing::debug!("Keystone validated an expired token; refusing it");
            return Err(Refusal::Unauthenticated);
        };
        if remaining.is_zero() {
            return Err(Refusal::Unauthenticated);
        }
        let principal = Principal {
            user_id: token.user.and_then(|u| u.id),
            project_id: token.project.and_then(|p| p.id),
            roles: token
                .roles
                .into_iter()
                .filter_map(|r| r.name)
                .map(|n| n.to_lowercase())
                .collect(),
            static_token: false,
        };
        tracing::debug!(
            user_id = principal.user_id.as_deref().unwrap_or("-"),
            project_id = principal.project_id.as_deref().unwrap_or("-"),
            roles = ?principal.roles,
            "token validated by Keystone"
        );
        Ok((principal, self.settings.cache_time.min(remaining)))
    }

    /// The service token as a string (issuing one when needed).
    pub(crate) async fn service_token(&self) -> Result<String, ServiceTokenError> {
        let value = self.service_token_value(None).await?;
        value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| self.service_unavailable("the token is not ASCII".to_owned()))
    }

    /// The current service token, renewed when it is due or when it is
    /// `rejected` (a token Keystone just refused). One issue at a time.
    async fn service_token_value(
        &self,
        rejected: Option<&HeaderValue>,
    ) -> Result<HeaderValue, ServiceTokenError> {
        let mut current = self.service.lock().await;
        if let Some(t) = current.as_ref() {
            if Instant::now() < t.renew_at && Some(&t.value) != rejected {
                return Ok(t.value.clone());
            }
        }
        *current = None;
        let fresh = self.issue().await?;
        let value = fresh.value.clone();
        *current = Some(fresh);
        Ok(value)
    }

    fn service_unavailable(&self, reason: String) -> ServiceTokenError {
        ServiceTokenError::Unavailable {
            url: self.settings.identity.to_string(),
            reason,
        }
    }

    /// Password authentication, scoped to the configured project.
    async fn issue(&self) -> Result<ServiceToken, ServiceTokenError> {
        let asked = Instant::now();
        let answer = self
            .exchange(
                Method::POST,
                &[(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                Bytes::from(self.auth_body()),
            )
            .await
            .map_err(|reason| self.service_unavailable(reason))?;
        match answer.status {
            StatusCode::CREATED | StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return Err(ServiceTokenError::Rejected {
                    url: self.settings.identity.to_string(),
                    user: self.settings.options.username.clone(),
                })
            }
            other => {
                return Err(
                    self.service_unavailable(format!("password authentication answered {other}"))
                )
            }
        }
        let Some(mut value) = answer.headers.get(&X_SUBJECT_TOKEN).cloned() else {
            return Err(self.service_unavailable(
                "the answer to password authentication has no X-Subject-Token".to_owned(),
            ));
        };
        value.set_sensitive(true);
        let token = serde_json::from_slice::<TokenDocument>(&answer.body)
            .map_err(|e| self.service_unavailable(format!("unreadable token document: {e}")))?
            .token;
        let expires = timestamp::parse(&token.expires_at).ok_or_else(|| {
            self.service_unavailable(format!("unreadable expires_at {:?}", token.expires_at))
        })?;
        // Lifetime from Keystone's own clock (issued_at to expires_at), so
        // that a clock difference between the hosts does not matter.
        let lifetime = token
            .issued_at
            .as_deref()
            .and_then(timestamp::parse)
            .and_then(|issued| expires.duration_since(issued).ok())
            .or_else(|| expires.duration_since(SystemTime::now()).ok())
            .unwrap_or_default();
        let margin = RENEW_MARGIN.min(lifetime / 4);
        tracing::debug!(
            lifetime_s = lifetime.as_secs(),
            "obtained a service token from Keystone"
        );
        Ok(ServiceToken {
            value,
            renew_at: asked + lifetime.saturating_sub(margin),
        })
    }

    /// The password-authentication request body (holds the password: never
    /// logged).
    fn auth_body(&self) -> Vec<u8> {
        let o = &self.settings.options;
        let domain = |d: &Domain| match d {
            Domain::Id(id) => json!({ "id": id }),
            Domain::Name(name) => json!({ "name": name }),
        };
        let project = match &o.project {
            Project::Id(id) => json!({ "id": id }),
            Project::Name { name, domain: d } => json!({ "name": name, "domain": domain(d) }),
        };
        let body = json!({
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": o.username,
                            "domain": domain(&o.user_domain),
                            "password": o.password,
                        }
                    }
                },
                "scope": { "project": project }
            }
        });
        body.to_string().into_bytes()
    }

    /// One request to `{identity}/auth/tokens?nocatalog`, answer read
    /// completely, all within the timeout.
    async fn exchange(
        &self,
        method: Method,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method;
        *req.uri_mut() = self.tokens_url.clone();
        let h = req.headers_mut();
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        h.insert(
            header::USER_AGENT,
            HeaderValue::from_static(concat!("glance-cache/", env!("CARGO_PKG_VERSION"))),
        );
        for (name, value) in headers {
            h.insert(name.clone(), value.clone());
        }
        let timeout = self.settings.timeout;
        let exchange = async {
            let response = self.client.request(req).await.map_err(|e| describe(&e))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, BODY_LIMIT)
                .collect()
                .await
                .map_err(|e| format!("reading the answer failed: {e}"))?
                .to_bytes();
            Ok(Answer {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }
}

fn unavailable(reason: String) -> Refusal {
    tracing::debug!(%reason, "Keystone unavailable for a management call");
    Refusal::Unavailable(reason)
}

/// The error and its sources on one line ("client error (Connect):
/// tcp connect error: Connection refused").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[derive(Deserialize)]
struct TokenDocument {
    token: TokenBody,
}

#[derive(Deserialize)]
struct TokenBody {
    expires_at: String,
    #[serde(default)]
    issued_at: Option<String>,
    #[serde(default)]
    user: Option<Named>,
    #[serde(default)]
    project: Option<Named>,
    #[serde(default)]
    roles: Vec<Named>,
}

#[derive(Deserialize)]
struct Named {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
}
