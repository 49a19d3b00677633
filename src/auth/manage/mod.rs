//! Who may call the cache-management API.
//!
//! [`ManagementAuth::check`] authenticates the caller of a management call
//! and evaluates one of Glance's cache policy rules ([`PolicyRule`]):
//!
//! * **keystone**: the caller's `X-Auth-Token` (and nothing else: `X-Roles`,
//!   `X-Identity-Status`, `X-Tenant-Id` and the like are client-supplied and
//!   ignored) is validated with `GET {auth_url}/v3/auth/tokens`, sent with
//!   the proxy's own service token (password authentication with the
//!   `[keystone_authtoken]` credentials, renewed before it expires and
//!   when Keystone refuses it). Roles come from the token document
//!   (implied roles are already expanded there), lower-cased. Successful
//!   validations are remembered per token for `token_cache_time`, never past
//!   the token's expiry; failures are never remembered; concurrent checks of
//!   one token share one Keystone request. Every Keystone exchange has a
//!   timeout (5 s by default), so an unreachable Keystone gives
//!   [`Refusal::Unavailable`] (503) instead of hanging.
//! * **static**: `X-Auth-Token` must be one of the configured admin tokens
//!   (compared in constant time); the caller holds the role `admin`.
//! * **open**: every caller holds the role `admin` (lab setups only).
//! * **deny**: every call is [`Refusal::Unauthenticated`].
//!
//! Policy: a rule passes when the caller holds any of its roles
//! (`[cache_policy]`, `admin` for every rule by default, like Glance). The
//! policy applies in every mode, so a rule set to `!` refuses even static
//! tokens.
//!
//! | outcome | status |
//! |---|---|
//! | no, unknown, revoked or expired token | 401 [`Refusal::Unauthenticated`] |
//! | valid token without a role of the rule | 403 [`Refusal::Forbidden`] |
//! | Keystone unreachable, 5xx, refusing the service credentials | 503 [`Refusal::Unavailable`] |
//!
//! # Example
//!
//! ```
//! use glance_cache::auth::manage::{CachePolicy, ManagementAuth, PolicyRule, Refusal, RoleRule};
//! use http::{HeaderMap, HeaderValue, StatusCode};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let auth = ManagementAuth::static_tokens(["s3cret-admin-token"])
//!     .with_policy(CachePolicy::default().with_rule(PolicyRule::CachePrune, RoleRule::Nobody));
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("x-auth-token", HeaderValue::from_static("s3cret-admin-token"));
//! // Client-supplied identity headers are never trusted.
//! headers.insert("x-roles", HeaderValue::from_static("member"));
//! let principal = auth.check(&headers, PolicyRule::CacheList).await.unwrap();
//! assert!(principal.static_token);
//! assert_eq!(principal.roles, ["admin"]);
//!
//! let refused = auth.check(&headers, PolicyRule::CachePrune).await.unwrap_err();
//! assert_eq!(refused, Refusal::Forbidden(PolicyRule::CachePrune));
//! assert_eq!(refused.status(), StatusCode::FORBIDDEN);
//!
//! let refused = auth.check(&HeaderMap::new(), PolicyRule::CacheList).await.unwrap_err();
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue};
use http::StatusCode;

mod keystone;
mod keystone_options;
mod password;
mod policy;
mod static_tokens;
pub(crate) mod timestamp;
mod validations;

#[cfg(test)]
mod tests;

use crate::tls::TlsError;
use crate::BoxError;
use keystone::{Keystone, Settings, SettingsError};
pub use keystone_options::{Domain, InvalidAuthUrl, KeystoneOptions, ManagementAuthMode, Project};
pub use password::{password_token, PasswordAuthError};
pub use policy::{CachePolicy, InvalidRoleRule, PolicyRule, RoleRule};
use static_tokens::StaticTokens;

/// Default bound on every Keystone exchange.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for remembering successful validations.
const DEFAULT_TOKEN_CACHE_TIME: Duration = Duration::from_secs(60);
/// Longest time a successful validation is remembered.
const MAX_TOKEN_CACHE_TIME: Duration = Duration::from_secs(300);
/// Default number of validations remembered.
const DEFAULT_CAPACITY: usize = 10_000;
/// Longest `X-Auth-Token` looked at (Fernet tokens are under 300 bytes).
const MAX_TOKEN_LEN: usize = 8192;

/// Who made a management call. `Default` is nobody: no user, no roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Principal {
    /// Keystone's user id (`None` for static tokens and the open mode).
    pub user_id: Option<String>,
    /// The project the token is scoped to, if any.
    pub project_id: Option<String>,
    /// The caller's roles, lower case (`["admin"]` for static tokens and the
    /// open mode).
    pub roles: Vec<String>,
    /// Whether the caller presented one of the static admin tokens.
    pub static_token: bool,
}

impl Principal {
    fn admin(static_token: bool) -> Self {
        Principal {
            user_id: None,
            project_id: None,
            roles: vec!["admin".to_owned()],
            static_token,
        }
    }
}

/// Why a management call is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// No valid token: 401.
    #[error("authentication required")]
    Unauthenticated,
    /// A valid token without any role the rule accepts: 403.
    #[error("you are not authorized to complete {0} action")]
    Forbidden(PolicyRule),
    /// Tokens cannot be validated right now (Keystone unreachable, failing,
    /// or refusing the service credentials): 503. The text is for logs.
    #[error("token validation unavailable: {0}")]
    Unavailable(String),
}

impl Refusal {
    /// The HTTP status to answer with: 401, 403 or 503.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Why a [`ManagementAuth`] cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManagementAuthError {
    /// `auth_url` is not a usable URL.
    #[error("[keystone_authtoken] auth_url = {url:?}: expected {problem}")]
    InvalidAuthUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        #[source]
        problem: InvalidAuthUrl,
    },
    /// `cafile`, `certfile` or `keyfile` cannot be used.
    #[error("[keystone_authtoken] TLS settings: {0}")]
    Tls(#[from] TlsError),
}

/// Authentication and policy for management calls. Cheap to clone (the
/// state is shared). See the [module docs](self).
#[derive(Clone)]
pub struct ManagementAuth {
    backend: Backend,
    policy: Arc<CachePolicy>,
    /// Service credentials of a mode that does not validate with Keystone
    /// (static tokens, open): the proxy's own identity upstream.
    service: Option<Arc<Keystone>>,
}

#[derive(Clone)]
enum Backend {
    Open,
    Deny,
    Static(Arc<StaticTokens>),
    Keystone(Arc<Keystone>),
}

impl fmt::Debug for ManagementAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ManagementAuth");
        d.field("mode", &self.mode());
        match &self.backend {
            Backend::Static(t) => {
                d.field("tokens", &t.len());
            }
            Backend::Keystone(k) => {
                d.field("keystone", k);
            }
            Backend::Open | Backend::Deny => {}
        }
        if let Some(k) = &self.service {
            d.field("service", k);
        }
        d.field("policy", &self.policy).finish()
    }
}

impl ManagementAuth {
    /// Validates tokens with Keystone using `options` as the service
    /// credentials. Fails when `auth_url` is not an `http://` or
    /// `https://` URL, or when the TLS files of `options.tls` cannot be
    /// used. Nothing is sent to Keystone before the first check.
    pub fn keystone(options: KeystoneOptions) -> Result<Self, ManagementAuthError> {
        Ok(Self::with_backend(Backend::Keystone(Arc::new(
            Self::keystone_client(options)?,
        ))))
    }

    fn keystone_client(options: KeystoneOptions) -> Result<Keystone, ManagementAuthError> {
        let settings = Settings::new(options).map_err(|e| match e {
            SettingsError::AuthUrl { url, problem } => {
                ManagementAuthError::InvalidAuthUrl { url, problem }
            }
            SettingsError::Tls(e) => ManagementAuthError::Tls(e),
        })?;
        Ok(Keystone::new(Settings {
            timeout: DEFAULT_TIMEOUT,
            cache_time: DEFAULT_TOKEN_CACHE_TIME,
            capacity: DEFAULT_CAPACITY,
            ..settings
        }))
    }

    /// Gives a mode that does not validate tokens with Keystone (static
    /// tokens, open) the proxy's own Keystone service user, so that what
    /// it asks the upstream for such callers (the image lookups of
    /// management calls made with a static admin token, the prefetches
    /// they queue) carries a token a Keystone-protected image service
    /// accepts. In Keystone mode the validating credentials already are
    /// the service credentials, and this changes nothing.
    ///
    /// Fails like [`keystone`](Self::keystone); nothing is sent to Keystone
    /// before the first token is needed.
    ///
    /// ```
    /// use glance_cache::auth::manage::{KeystoneOptions, ManagementAuth};
    ///
    /// let options = KeystoneOptions::new("http://127.0.0.1:5000/v3", "glance", "secret", "service");
    /// let auth = ManagementAuth::static_tokens(["s3cret"])
    ///     .with_service_credentials(options)
    ///     .unwrap();
    /// assert!(auth.has_service_credentials());
    /// ```
    pub fn with_service_credentials(
        mut self,
        options: KeystoneOptions,
    ) -> Result<Self, ManagementAuthError> {
        if !matches!(self.backend, Backend::Keystone(_)) {
            self.service = Some(Arc::new(Self::keystone_client(options)?));
        }
        Ok(self)
    }

    /// Whether the proxy has a service user of its own (Keystone mode, or
    /// [`with_service_credentials`](Self::with_service_credentials)).
    ///
    /// ```
    /// use glance_cache::auth::manage::ManagementAuth;
    /// assert!(!ManagementAuth::static_tokens(["s3cret"]).has_service_credentials());
    /// ```
    pub fn has_service_credentials(&self) -> bool {
        matches!(self.backend, Backend::Keystone(_)) || self.service.is_some()
    }

    /// Whether the request's `X-Auth-Token` is one of the static admin
    /// tokens (a secret of this proxy, which means nothing to a
    /// Keystone-protected upstream).
    pub(crate) fn presents_static_token(&self, headers: &HeaderMap) -> bool {
        match &self.backend {
            Backend::Static(tokens) => {
                subject_token(headers).is_some_and(|t| tokens.contains(t.as_bytes()))
            }
            _ => false,
        }
    }

    /// Accepts exactly these tokens (empty ones are ignored), as admin.
    pub fn static_tokens<I, T>(tokens: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: AsRef<[u8]>,
    {
        Self::with_backend(Backend::Static(Arc::new(StaticTokens::new(tokens))))
    }

    /// Every caller is admin. For labs and loopback-only setups.
    pub fn open() -> Self {
        Self::with_backend(Backend::Open)
    }

    /// Every call is refused with 401.
    pub fn deny() -> Self {
        Self::with_backend(Backend::Deny)
    }

    fn with_backend(backend: Backend) -> Self {
        ManagementAuth {
            backend,
            policy: Arc::new(CachePolicy::default()),
            service: None,
        }
    }

    /// Sets the roles each rule requires (default: `admin` everywhere).
    pub fn with_policy(mut self, policy: CachePolicy) -> Self {
        self.policy = Arc::new(policy);
        self
    }

    /// Keystone mode: how long a successful validation is reused (never
    /// past the token's expiry; at most 300 s; zero turns it off).
    /// Default 60 s. Starts with an empty memory.
    pub fn with_token_cache_time(self, ttl: Duration) -> Self {
        self.reconfigure(|s| s.cache_time = ttl.min(MAX_TOKEN_CACHE_TIME))
    }

    /// Keystone mode: the bound on every Keystone exchange (connecting,
    /// answer headers and body). Default 5 s. Starts with an empty memory.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        self.reconfigure(|s| s.timeout = timeout)
    }

    /// Keystone mode: most validations remembered at once (default
    /// 10 000). Starts with an empty memory.
    pub fn with_cache_capacity(self, capacity: usize) -> Self {
        self.reconfigure(|s| s.capacity = capacity)
    }

    fn reconfigure(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        if let Backend::Keystone(k) = &self.backend {
            let mut settings = k.settings().clone();
            change(&mut settings);
            self.backend = Backend::Keystone(Arc::new(Keystone::new(settings)));
        }
        self
    }

    /// The mode.
    pub fn mode(&self) -> ManagementAuthMode {
        match self.backend {
            Backend::Open => ManagementAuthMode::Open,
            Backend::Deny => ManagementAuthMode::Deny,
            Backend::Static(_) => ManagementAuthMode::Static,
            Backend::Keystone(_) => ManagementAuthMode::Keystone,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &CachePolicy {
        &self.policy
    }

    /// Authenticates the caller, then checks `rule`.
    pub async fn check(&self, headers: &HeaderMap, rule: PolicyRule) -> Result<Principal, Refusal> {
        let principal = self.authenticate(headers).await?;
        self.authorize(&principal, rule)?;
        Ok(principal)
    }

    /// Who the caller is, from its `X-Auth-Token` alone.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, Refusal> {
        match &self.backend {
            Backend::Open => Ok(Principal::admin(false)),
            Backend::Deny => Err(Refusal::Unauthenticated),
            Backend::Static(tokens) => {
                let token = subject_token(headers).ok_or(Refusal::Unauthenticated)?;
                if tokens.contains(token.as_bytes()) {
                    Ok(Principal::admin(true))
                } else {
                    Err(Refusal::Unauthenticated)
                }
            }
            Backend::Keystone(keystone) => {
                let token = subject_token(headers).ok_or(Refusal::Unauthenticated)?;
                keystone.authenticate(token).await
            }
        }
    }

    /// Whether `principal` passes `rule`.
    pub fn authorize(&self, principal: &Principal, rule: PolicyRule) -> Result<(), Refusal> {
        if self.policy.allows(rule, &principal.roles) {
            Ok(())
        } else {
            tracing::debug!(
                rule = rule.as_str(),
                roles = ?principal.roles,
                "management call forbidden by policy"
            );
            Err(Refusal::Forbidden(rule))
        }
    }

    /// The proxy's own token, for its prefetch worker's requests to the
    /// upstream and the image lookups of static-token callers: the service
    /// user's token (issued or renewed as needed) in Keystone mode or with
    /// [`with_service_credentials`](Self::with_service_credentials), else
    /// `None`.
    pub async fn service_token(&self) -> Result<Option<String>, BoxError> {
        match (&self.backend, &self.service) {
            (Backend::Keystone(k), _) | (_, Some(k)) => Ok(Some(k.service_token().await?)),
            _ => Ok(None),
        }
    }

    /// The `WWW-Authenticate` header for 401 answers in Keystone mode,
    /// like keystonemiddleware's: `Keystone uri="<www_authenticate_uri or
    /// auth_url>"`.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let Backend::Keystone(k) = &self.backend else {
            return None;
        };
        let o = &k.settings().options;
        let uri = o.www_authenticate_uri.as_deref().unwrap_or(&o.auth_url);
        HeaderValue::from_str(&format!("Keystone uri=\"{}\"", uri.replace('"', "%22"))).ok()
    }

    /// Keystone mode: how many validations are remembered right now.
    #[cfg(test)]
    fn remembered(&self) -> usize {
        match &self.backend {
            Backend::Keystone(k) => k.remembered(),
            _ => 0,
        }
    }
}

/// The single `X-Auth-Token` of the request, if it is usable: present once
/// (or repeated with the same value), non-empty, printable ASCII, at most
/// 8 KiB.
fn subject_token(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all("x-auth-token").iter();
    let first = values.next()?;
    if values.any(|v| v != first) {
        return None;
    }
    let token = first.to_str().ok()?.trim();
    (!token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token.bytes().all(|b| b.is_ascii_graphic()))
    .then_some(token)
}
