//! The service credentials the proxy signs in to Keystone with.

use std::fmt;

use http::Uri;

use crate::tls::ClientTls;

/// How management calls are authenticated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManagementAuthMode {
    /// `X-Auth-Token` is validated with Keystone; roles come from the token.
    Keystone,
    /// `X-Auth-Token` must be one of the configured admin tokens.
    Static,
    /// Every caller counts as admin (lab or loopback-only setups).
    Open,
    /// Every management call is refused with 401.
    Deny,
}

impl ManagementAuthMode {
    /// The mode's name (`keystone`, `static`, `open`, `deny`).
    ///
    /// ```
    /// use glance_cache::auth::manage::ManagementAuthMode;
    /// assert_eq!(ManagementAuthMode::Static.as_str(), "static");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ManagementAuthMode::Keystone => "keystone",
            ManagementAuthMode::Static => "static",
            ManagementAuthMode::Open => "open",
            ManagementAuthMode::Deny => "deny",
        }
    }
}

impl fmt::Display for ManagementAuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Keystone domain, by id or by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Domain {
    /// `{"id": ...}`.
    Id(String),
    /// `{"name": ...}`.
    Name(String),
}

impl Default for Domain {
    /// keystoneauth's fallback: the domain id `default`.
    fn default() -> Self {
        Domain::Id("default".to_owned())
    }
}

/// The project a service token is scoped to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Project {
    /// By id (no domain needed).
    Id(String),
    /// By name, in a domain.
    Name {
        /// The project name.
        name: String,
        /// Its domain.
        domain: Domain,
    },
}

/// Why a Keystone `auth_url` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidAuthUrl {
    /// Not an absolute `http://` or `https://` URL with a host (and without
    /// a query or credentials).
    #[error(
        "an absolute http:// or https:// URL with a host, e.g. https://keystone:5000 \
         (a path prefix is allowed; no query)"
    )]
    NotHttp,
}

/// The service credentials the proxy signs in to Keystone with, to
/// validate the tokens of management calls (Glance's `[keystone_authtoken]`).
/// `Debug` never shows the password.
///
/// ```
/// use glance_cache::auth::manage::{Domain, KeystoneOptions, Project};
///
/// let ks = KeystoneOptions::new("http://127.0.0.1:5000", "glance", "secret", "service")
///     .with_user_domain(Domain::Name("Default".into()));
/// assert_eq!(ks.identity_url().unwrap(), "http://127.0.0.1:5000/v3");
/// assert_eq!(
///     ks.project,
///     Project::Name { name: "service".into(), domain: Domain::Id("default".into()) }
/// );
/// assert!(!format!("{ks:?}").contains("secret"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeystoneOptions {
    /// `auth_url` as configured: Keystone's endpoint, with or without
    /// `/v3` (see [`KeystoneOptions::identity_url`]).
    pub auth_url: String,
    /// `username`.
    pub username: String,
    /// `password`.
    pub password: String,
    /// `user_domain_id` / `user_domain_name` (default: id `default`).
    pub user_domain: Domain,
    /// `project_id`, or `project_name` with its domain.
    pub project: Project,
    /// `region_name`.
    pub region_name: Option<String>,
    /// `www_authenticate_uri`: the Keystone URL for `WWW-Authenticate`
    /// headers (default: `auth_url`).
    pub www_authenticate_uri: Option<String>,
    /// `cafile`, `certfile`/`keyfile`, `insecure`: how an `https://`
    /// Keystone is checked, and the client certificate shown to it.
    pub tls: ClientTls,
}

impl fmt::Debug for KeystoneOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneOptions")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("user_domain", &self.user_domain)
            .field("project", &self.project)
            .field("region_name", &self.region_name)
            .field("www_authenticate_uri", &self.www_authenticate_uri)
            .field("tls", &self.tls)
            .finish()
    }
}

impl KeystoneOptions {
    /// Credentials of user `username` (in the domain with id `default`),
    /// scoped to project `project_name` (in the domain with id `default`).
    ///
    /// ```
    /// use glance_cache::auth::manage::KeystoneOptions;
    /// let ks = KeystoneOptions::new("http://127.0.0.1:5000/v3", "glance", "secret", "service");
    /// assert_eq!(ks.username, "glance");
    /// ```
    pub fn new(
        auth_url: impl Into<String>,
        username: impl Into<String>,
        password: impl Into<String>,
        project_name: impl Into<String>,
    ) -> Self {
        KeystoneOptions {
            auth_url: auth_url.into(),
            username: username.into(),
            password: password.into(),
            user_domain: Domain::default(),
            project: Project::Name {
                name: project_name.into(),
                domain: Domain::default(),
            },
            region_name: None,
            www_authenticate_uri: None,
            tls: ClientTls::new(),
        }
    }

    /// Sets the domain of the user.
    ///
    /// ```
    /// use glance_cache::auth::manage::{Domain, KeystoneOptions};
    /// let ks = KeystoneOptions::new("http://k:5000", "glance", "s", "service")
    ///     .with_user_domain(Domain::Name("Default".into()));
    /// assert_eq!(ks.user_domain, Domain::Name("Default".into()));
    /// ```
    pub fn with_user_domain(mut self, domain: Domain) -> Self {
        self.user_domain = domain;
        self
    }

    /// Sets the project scope.
    ///
    /// ```
    /// use glance_cache::auth::manage::{KeystoneOptions, Project};
    /// let ks = KeystoneOptions::new("http://k:5000", "glance", "s", "service")
    ///     .with_project(Project::Id("p1".into()));
    /// assert_eq!(ks.project, Project::Id("p1".into()));
    /// ```
    pub fn with_project(mut self, project: Project) -> Self {
        self.project = project;
        self
    }

    /// Sets `region_name`.
    ///
    /// ```
    /// use glance_cache::auth::manage::KeystoneOptions;
    /// let ks = KeystoneOptions::new("http://k:5000", "glance", "s", "service").with_region_name("RegionOne");
    /// assert_eq!(ks.region_name.as_deref(), Some("RegionOne"));
    /// ```
    pub fn with_region_name(mut self, region: impl Into<String>) -> Self {
        self.region_name = Some(region.into());
        self
    }

    /// Sets `www_authenticate_uri`.
    ///
    /// ```
    /// use glance_cache::auth::manage::KeystoneOptions;
    /// let ks = KeystoneOptions::new("http://k:5000", "glance", "s", "service")
    ///     .with_www_authenticate_uri("https://keystone.example.org");
    /// assert!(ks.www_authenticate_uri.is_some());
    /// ```
    pub fn with_www_authenticate_uri(mut self, uri: impl Into<String>) -> Self {
        self.www_authenticate_uri = Some(uri.into());
        self
    }

    /// How an `https://` Keystone's certificate is checked
    /// (keystonemiddleware's `cafile`, `certfile`, `keyfile`, `insecure`).
    /// Default: the system's trust store, no client certificate.
    ///
    /// ```
    /// use glance_cache::auth::manage::KeystoneOptions;
    /// use glance_cache::tls::ClientTls;
    /// let ks = KeystoneOptions::new("https://k:5000", "glance", "s", "service")
    ///     .with_tls(ClientTls::new().with_ca_file("/etc/ssl/private-ca.pem"));
    /// assert!(ks.tls.ca_file().is_some());
    /// ```
    pub fn with_tls(mut self, tls: ClientTls) -> Self {
        self.tls = tls;
        self
    }

    /// The identity v3 base URL: `auth_url` with a trailing `/` removed and
    /// `/v3` appended unless it is already there (a trailing `/v2.0` is
    /// replaced).
    ///
    /// ```
    /// use glance_cache::auth::manage::{InvalidAuthUrl, KeystoneOptions};
    /// let url = |u: &str| KeystoneOptions::new(u, "glance", "s", "service").identity_url();
    /// assert_eq!(url("http://k:5000/identity/").unwrap(), "http://k:5000/identity/v3");
    /// assert_eq!(url("http://k:5000/v2.0").unwrap(), "http://k:5000/v3");
    /// assert_eq!(url("https://k:5000").unwrap(), "https://k:5000/v3");
    /// assert_eq!(url("ftp://k"), Err(InvalidAuthUrl::NotHttp));
    /// ```
    pub fn identity_url(&self) -> Result<Uri, InvalidAuthUrl> {
        identity_url(&self.auth_url)
    }
}

fn identity_url(text: &str) -> Result<Uri, InvalidAuthUrl> {
    let text = text.trim();
    let uri: Uri = text.parse().map_err(|_| InvalidAuthUrl::NotHttp)?;
    let (scheme, authority) = match (uri.scheme_str(), uri.authority()) {
        (Some(scheme @ ("http" | "https")), Some(a))
            if !a.host().is_empty()
                && !a.as_str().contains('@')
                && a.port_u16() != Some(0)
                && uri.query().is_none()
                && !text.contains('#') =>
        {
            (scheme, a.as_str())
        }
        _ => return Err(InvalidAuthUrl::NotHttp),
    };
    let mut path = uri.path().trim_end_matches('/');
    if let Some(base) = path.strip_suffix("/v2.0") {
        path = base;
    }
    let path = if path.ends_with("/v3") {
        path.to_owned()
    } else {
        format!("{path}/v3")
    };
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|_| InvalidAuthUrl::NotHttp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_urls() {
        for (given, expected) in [
            ("http://ks:5000", "http://ks:5000/v3"),
            ("http://ks:5000/", "http://ks:5000/v3"),
            ("http://ks:5000/v3", "http://ks:5000/v3"),
            ("http://ks:5000/v3/", "http://ks:5000/v3"),
            ("http://ks/identity", "http://ks/identity/v3"),
            ("http://ks/identity/v3", "http://ks/identity/v3"),
            ("http://ks:5000/v2.0", "http://ks:5000/v3"),
            ("HTTP://[::1]:5000", "http://[::1]:5000/v3"),
        ] {
            assert_eq!(
                identity_url(given).map(|u| u.to_string()),
                Ok(expected.to_owned()),
                "{given}"
            );
        }
        assert_eq!(
            identity_url("https://ks:5000/v3").map(|u| u.to_string()),
            Ok("https://ks:5000/v3".to_owned())
        );
        assert_eq!(
            identity_url("HTTPS://ks").map(|u| u.to_string()),
            Ok("https://ks/v3".to_owned())
        );
        assert!(identity_url("ftp://ks").is_err());
        assert!(identity_url("ks:5000").is_err());
        assert!(identity_url("").is_err());
        assert!(identity_url("http://user:pw@ks:5000").is_err());
        assert!(identity_url("http://ks:5000/v3?x=1").is_err());
    }

    #[test]
    fn keystone_options_debug_redacts_the_password() {
        let k = KeystoneOptions::new("http://ks", "glance", "hunter2", "service");
        let d = format!("{k:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("glance"), "{d}");
    }
}
