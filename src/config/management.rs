//! Who may call the cache-management API: `[proxy] management_auth`,
//! `admin_tokens`, `[keystone_authtoken]` and `[cache_policy]`, resolved into
//! [`ManagementOptions`] after every option is loaded.

use std::fmt;
use std::time::Duration;

use http::Uri;

use super::error::{ConfigError, ConfigWarning, ConflictError, ValueError, WarningKind};
use super::options::{
    parse_http_url, OptionDef, DEFAULT_SECTION, KEYSTONE_SECTION, PROXY_SECTION, REDACTED,
};
use super::policy::CachePolicy;
use super::raw::Source;
use super::value::match_choice;
use super::Config;

/// How management calls are authenticated: `[proxy] management_auth`
/// after `auto` is resolved.
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
    /// The name used in configuration files.
    pub fn as_str(self) -> &'static str {
        match self {
            ManagementAuthMode::Keystone => "keystone",
            ManagementAuthMode::Static => "static",
            ManagementAuthMode::Open => "open",
            ManagementAuthMode::Deny => "deny",
        }
    }

    /// What to tell the operator at startup about this mode, if anything
    /// (`open` and `deny`).
    pub fn startup_warning(self) -> Option<&'static str> {
        match self {
            ManagementAuthMode::Open => Some(
                "cache-management API is OPEN: every caller is treated as admin ([proxy] \
                 management_auth = open); use this only in a lab or when the proxy listens on \
                 loopback only",
            ),
            ManagementAuthMode::Deny => Some(
                "cache-management API refuses every call with 401: no way to authenticate \
                 callers is configured. To enable it, set [keystone_authtoken] auth_url, \
                 username, password and project_name (tokens validated with Keystone, roles \
                 checked against [cache_policy]), or [proxy] admin_tokens (static admin \
                 tokens), or [proxy] management_auth = open (lab or loopback only)",
            ),
            ManagementAuthMode::Keystone | ManagementAuthMode::Static => None,
        }
    }
}

impl fmt::Display for ManagementAuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything about who may call the cache-management API.
///
/// `Default` is the resolution of an empty configuration: [`ManagementAuthMode::Deny`],
/// no tokens, no Keystone, a 60 s validation cache and Glance's policy
/// (`admin` for every rule). `Debug` never shows the tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct ManagementOptions {
    /// The resolved `[proxy] management_auth`.
    pub auth: ManagementAuthMode,
    /// `[DEFAULT] admin_tokens` and `[proxy] admin_tokens`, merged, without
    /// duplicates (used in [`ManagementAuthMode::Static`]).
    pub admin_tokens: Vec<String>,
    /// The service credentials; `Some` exactly when `auth` is
    /// [`ManagementAuthMode::Keystone`].
    pub keystone: Option<KeystoneOptions>,
    /// `[keystone_authtoken] token_cache_time`: how long a successful
    /// validation is reused (0 = never), at most 300 s. Default 60 s.
    pub token_cache_time: Duration,
    /// `[cache_policy]`.
    pub policy: CachePolicy,
}

impl Default for ManagementOptions {
    fn default() -> Self {
        ManagementOptions {
            auth: ManagementAuthMode::Deny,
            admin_tokens: Vec::new(),
            keystone: None,
            token_cache_time: Duration::from_secs(60),
            policy: CachePolicy::default(),
        }
    }
}

impl fmt::Debug for ManagementOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagementOptions")
            .field("auth", &self.auth)
            .field(
                "admin_tokens",
                &format_args!("<{} redacted>", self.admin_tokens.len()),
            )
            .field("keystone", &self.keystone)
            .field("token_cache_time", &self.token_cache_time)
            .field("policy", &self.policy)
            .finish()
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

/// The service credentials the proxy signs in to Keystone with, to
/// validate the tokens of management calls (`[keystone_authtoken]`).
/// `Debug` never shows the password.
///
/// ```
/// use glance_cache::config::{Domain, KeystoneOptions, Project};
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
}

impl fmt::Debug for KeystoneOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoneOptions")
            .field("auth_url", &self.auth_url)
            .field("username", &self.username)
            .field("password", &REDACTED)
            .field("user_domain", &self.user_domain)
            .field("project", &self.project)
            .field("region_name", &self.region_name)
            .field("www_authenticate_uri", &self.www_authenticate_uri)
            .finish()
    }
}

impl KeystoneOptions {
    /// Credentials of user `username` (in the domain with id `default`),
    /// scoped to project `project_name` (in the domain with id `default`).
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
        }
    }

    /// Sets the domain of the user.
    pub fn with_user_domain(mut self, domain: Domain) -> Self {
        self.user_domain = domain;
        self
    }

    /// Sets the project scope.
    pub fn with_project(mut self, project: Project) -> Self {
        self.project = project;
        self
    }

    /// Sets `region_name`.
    pub fn with_region_name(mut self, region: impl Into<String>) -> Self {
        self.region_name = Some(region.into());
        self
    }

    /// Sets `www_authenticate_uri`.
    pub fn with_www_authenticate_uri(mut self, uri: impl Into<String>) -> Self {
        self.www_authenticate_uri = Some(uri.into());
        self
    }

    /// The identity v3 base URL: `auth_url` with a trailing `/` removed and
    /// `/v3` appended unless it is already there (a trailing `/v2.0` is
    /// replaced). Only `http://` is supported; the error says what is
    /// expected.
    pub fn identity_url(&self) -> Result<Uri, String> {
        identity_url(&self.auth_url)
    }
}

/// See [`KeystoneOptions::identity_url`].
pub(crate) fn identity_url(text: &str) -> Result<Uri, String> {
    if text
        .trim_start()
        .get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    {
        return Err(
            "an http:// URL: https is not supported yet for Keystone (give an http:// \
             endpoint, e.g. the internal one, in a later --config-file, or set [proxy] \
             management_auth to static, open or deny)"
                .to_owned(),
        );
    }
    let uri = parse_http_url(text)?;
    let mut path = uri.path().trim_end_matches('/');
    if let Some(base) = path.strip_suffix("/v2.0") {
        path = base;
    }
    let path = if path.ends_with("/v3") {
        path.to_owned()
    } else {
        format!("{path}/v3")
    };
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
    format!("http://{authority}{path}")
        .parse()
        .map_err(|_| super::options::OptionKind::HttpUrl.to_string())
}

/// The loaded options: each one's text after interpolation and where it
/// came from, plus the errors of `[keystone_authtoken]` options, which only
/// count when Keystone is used.
pub(crate) struct Values<'a> {
    values: &'a [(&'static OptionDef, String, Source)],
    deferred: Vec<(&'static str, ConfigError)>,
}

impl<'a> Values<'a> {
    pub(crate) fn new(
        values: &'a [(&'static OptionDef, String, Source)],
        deferred: Vec<(&'static str, ConfigError)>,
    ) -> Self {
        Values { values, deferred }
    }

    fn get(&self, section: &str, name: &str) -> Option<(&'a str, &'a Source)> {
        self.values
            .iter()
            .find(|(d, _, _)| d.section == section && d.name == name)
            .map(|(_, text, source)| (text.as_str(), source))
    }

    /// The value, unless unset or empty.
    fn non_empty(&self, section: &str, name: &str) -> Option<(&'a str, &'a Source)> {
        self.get(section, name)
            .filter(|(t, _)| !t.trim().is_empty())
    }

    fn keystone(&self, name: &str) -> Option<String> {
        self.non_empty(KEYSTONE_SECTION, name)
            .map(|(t, _)| t.trim().to_owned())
    }
}

/// Resolves `management_auth` and builds the Keystone credentials;
/// returns warnings about options that are set but not used.
pub(crate) fn resolve(
    config: &mut Config,
    mut loaded: Values<'_>,
) -> Result<Vec<ConfigWarning>, ConfigError> {
    let (setting_text, setting_source) = loaded
        .get(PROXY_SECTION, "management_auth")
        .unwrap_or(("auto", &Source::Default));
    let setting =
        match_choice(setting_text, super::options::MANAGEMENT_AUTHS, true).unwrap_or("auto");
    let auth_url = loaded.non_empty(KEYSTONE_SECTION, "auth_url");
    let auth_url_invalid = loaded.deferred.iter().any(|(name, _)| *name == "auth_url");
    let has_tokens = !config.management.admin_tokens.is_empty();
    let mode = match setting {
        "keystone" => ManagementAuthMode::Keystone,
        "static" => ManagementAuthMode::Static,
        "open" => ManagementAuthMode::Open,
        "deny" => ManagementAuthMode::Deny,
        _ if auth_url.is_some() || auth_url_invalid => ManagementAuthMode::Keystone,
        _ if has_tokens => ManagementAuthMode::Static,
        _ => ManagementAuthMode::Deny,
    };
    let conflict = |problem: String| {
        ConfigError::Conflict(Box::new(ConflictError {
            location: setting_source.clone(),
            section: PROXY_SECTION.to_owned(),
            option: "management_auth".to_owned(),
            value: setting_text.to_owned(),
            problem,
        }))
    };
    config.management.auth = mode;
    config.management.keystone = None;
    match mode {
        ManagementAuthMode::Static if !has_tokens => {
            return Err(conflict(
                "static needs at least one token in [proxy] admin_tokens or [DEFAULT] \
                 admin_tokens"
                    .to_owned(),
            ))
        }
        ManagementAuthMode::Keystone => {
            if !loaded.deferred.is_empty() {
                return Err(loaded.deferred.swap_remove(0).1);
            }
            let Some((url, url_source)) = auth_url else {
                return Err(conflict(
                    "keystone needs [keystone_authtoken] auth_url, username, password and \
                     project_name (or project_id)"
                        .to_owned(),
                ));
            };
            let why = if setting == "auto" {
                "management_auth = auto uses Keystone because auth_url is set; set [proxy] \
                 management_auth to static, open or deny to not use it"
            } else {
                "needed for [proxy] management_auth = keystone"
            };
            config.management.keystone = Some(keystone_options(&loaded, url, url_source, why)?);
        }
        _ => {}
    }
    let mut warnings = Vec::new();
    if has_tokens && mode != ManagementAuthMode::Static {
        let at = [PROXY_SECTION, DEFAULT_SECTION]
            .into_iter()
            .filter_map(|s| loaded.get(s, "admin_tokens").map(|(_, src)| (s, src)))
            .find_map(|(s, src)| match src {
                Source::File { path, line } => Some((s, path.clone(), *line)),
                Source::Default | Source::Environment { .. } => None,
            });
        if let Some((section, path, line)) = at {
            warnings.push(ConfigWarning {
                path,
                line,
                kind: WarningKind::IgnoredOption {
                    section: section.to_owned(),
                    option: "admin_tokens".to_owned(),
                    reason: format!(
                        "[proxy] management_auth is {mode}{}; set management_auth = static to \
                         use the tokens",
                        if setting == "auto" && mode == ManagementAuthMode::Keystone {
                            " (auto, because [keystone_authtoken] auth_url is set)"
                        } else {
                            ""
                        }
                    ),
                },
            });
        }
    }
    Ok(warnings)
}

fn keystone_options(
    loaded: &Values<'_>,
    url: &str,
    url_source: &Source,
    why: &str,
) -> Result<KeystoneOptions, ConfigError> {
    let invalid = |name: &str, expected: String| {
        let (value, location) = loaded
            .get(KEYSTONE_SECTION, name)
            .map(|(t, s)| (t.to_owned(), s.clone()))
            .unwrap_or_else(|| (String::new(), Source::Default));
        ConfigError::Value(Box::new(ValueError {
            location,
            section: KEYSTONE_SECTION.to_owned(),
            option: name.to_owned(),
            value,
            expected,
        }))
    };
    let missing = |name: &str| {
        ConfigError::Conflict(Box::new(ConflictError {
            location: url_source.clone(),
            section: KEYSTONE_SECTION.to_owned(),
            option: "auth_url".to_owned(),
            value: url.to_owned(),
            problem: format!("[keystone_authtoken] {name} is not set ({why})"),
        }))
    };
    identity_url(url).map_err(|expected| invalid("auth_url", expected))?;
    if let Some(auth_type) = loaded.keystone("auth_type") {
        if !["password", "v3password"]
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&auth_type))
        {
            return Err(invalid(
                "auth_type",
                format!(
                    "password or v3password: the proxy signs in to Keystone with the service \
                     user's password ({why})"
                ),
            ));
        }
    }
    let username = loaded
        .keystone("username")
        .ok_or_else(|| missing("username"))?;
    // Passwords are used exactly as written (after interpolation).
    let password = loaded
        .non_empty(KEYSTONE_SECTION, "password")
        .map(|(t, _)| t.to_owned())
        .ok_or_else(|| missing("password"))?;
    let default_domain = || {
        loaded
            .keystone("default_domain_id")
            .map(Domain::Id)
            .or_else(|| loaded.keystone("default_domain_name").map(Domain::Name))
            .unwrap_or_default()
    };
    let domain = |id: &str, name: &str| {
        loaded
            .keystone(id)
            .map(Domain::Id)
            .or_else(|| loaded.keystone(name).map(Domain::Name))
            .unwrap_or_else(default_domain)
    };
    let project = match (
        loaded.keystone("project_id"),
        loaded.keystone("project_name"),
    ) {
        (Some(id), _) => Project::Id(id),
        (None, Some(name)) => Project::Name {
            name,
            domain: domain("project_domain_id", "project_domain_name"),
        },
        (None, None) => return Err(missing("project_name (or project_id)")),
    };
    Ok(KeystoneOptions {
        auth_url: url.trim().to_owned(),
        username,
        password,
        user_domain: domain("user_domain_id", "user_domain_name"),
        project,
        region_name: loaded.keystone("region_name"),
        www_authenticate_uri: loaded.keystone("www_authenticate_uri"),
    })
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
        let https = identity_url("https://ks:5000/v3").expect_err("https");
        assert!(https.contains("not supported yet"), "{https}");
        assert!(identity_url("HTTPS://ks").is_err());
        assert!(identity_url("ks:5000").is_err());
        assert!(identity_url("").is_err());
    }

    #[test]
    fn keystone_options_debug_redacts_the_password() {
        let k = KeystoneOptions::new("http://ks", "glance", "hunter2", "service");
        let d = format!("{k:?}");
        assert!(!d.contains("hunter2"), "{d}");
        assert!(d.contains("glance"), "{d}");
    }

    #[test]
    fn management_options_debug_redacts_tokens() {
        let m = ManagementOptions {
            admin_tokens: vec!["tok-1".into(), "tok-2".into()],
            ..ManagementOptions::default()
        };
        let d = format!("{m:?}");
        assert!(!d.contains("tok-"), "{d}");
        assert!(d.contains("<2 redacted>"), "{d}");
    }

    #[test]
    fn startup_warnings() {
        assert!(ManagementAuthMode::Open.startup_warning().is_some());
        let deny = ManagementAuthMode::Deny.startup_warning().expect("warns");
        assert!(
            deny.contains("admin_tokens") && deny.contains("auth_url"),
            "{deny}"
        );
        assert!(ManagementAuthMode::Keystone.startup_warning().is_none());
        assert!(ManagementAuthMode::Static.startup_warning().is_none());
    }
}
