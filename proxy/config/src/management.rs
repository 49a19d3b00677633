//! Who may call the cache-management API: `[proxy] management_auth`,
//! `admin_tokens`, `[keystone_authtoken]` and `[cache_policy]`, resolved into
//! [`ManagementOptions`] after every option is loaded.

use std::fmt;
use std::time::Duration;

use super::error::{ConfigError, ConfigWarning, ConflictError, ValueError, WarningKind};
use super::options::{parse_http_url, OptionDef, DEFAULT_SECTION, KEYSTONE_SECTION, PROXY_SECTION};
use super::raw::Source;
use super::value::match_choice;
use super::Config;
use glance_cache::auth::manage::{
    CachePolicy, Domain, KeystoneOptions, ManagementAuth, ManagementAuthError, ManagementAuthMode,
    Project,
};
use glance_cache::tls::ClientTls;

/// What to tell the operator at startup about `mode`, if anything (`open`
/// and `deny`).
pub fn startup_warning(mode: ManagementAuthMode) -> Option<&'static str> {
    match mode {
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
    /// The service credentials of `[keystone_authtoken]`: always `Some` when
    /// `auth` is [`ManagementAuthMode::Keystone`] (they validate tokens),
    /// and `Some` in [`ManagementAuthMode::Static`] when `auth_url` is set
    /// (image lookups for static-token calls, and prefetches, run as that
    /// user).
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

/// Why [`ManagementOptions::auth`] cannot build the authorization.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthSettingsError {
    /// Keystone mode without `[keystone_authtoken]` credentials.
    #[error("management_auth is keystone but no [keystone_authtoken] credentials are configured")]
    MissingKeystoneOptions,
    /// Static mode without tokens.
    #[error("management_auth is static but admin_tokens is empty")]
    NoAdminTokens,
    /// The Keystone settings are unusable.
    #[error(transparent)]
    Keystone(#[from] ManagementAuthError),
}

impl ManagementOptions {
    /// The management-call authorization these options describe, with its
    /// policy and token cache time. Logs a warning in the `open` and `deny`
    /// modes.
    pub fn auth(&self) -> Result<ManagementAuth, AuthSettingsError> {
        if let Some(warning) = startup_warning(self.auth) {
            tracing::warn!("{warning}");
        }
        let auth = match self.auth {
            ManagementAuthMode::Keystone => {
                let options = self
                    .keystone
                    .clone()
                    .ok_or(AuthSettingsError::MissingKeystoneOptions)?;
                ManagementAuth::keystone(options)?.with_token_cache_time(self.token_cache_time)
            }
            ManagementAuthMode::Static if self.admin_tokens.is_empty() => {
                return Err(AuthSettingsError::NoAdminTokens)
            }
            ManagementAuthMode::Static => {
                let auth = ManagementAuth::static_tokens(&self.admin_tokens);
                match self.keystone.clone() {
                    Some(options) => auth.with_service_credentials(options)?,
                    None => auth,
                }
            }
            ManagementAuthMode::Open => ManagementAuth::open(),
            ManagementAuthMode::Deny => ManagementAuth::deny(),
        };
        Ok(auth.with_policy(self.policy.clone()))
    }
}

/// `auth_url` checked like any http URL option (for its message), then as
/// Keystone needs it.
fn check_auth_url(text: &str) -> Result<(), String> {
    parse_http_url(text)?;
    KeystoneOptions::new(text, "", "", "")
        .identity_url()
        .map(|_| ())
        .map_err(|e| e.to_string())
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
        // Static tokens are the proxy's own secret: what it asks the upstream
        // for their callers goes as its service user, when one is configured.
        ManagementAuthMode::Static => {
            if !loaded.deferred.is_empty() && auth_url.is_some() {
                return Err(loaded.deferred.swap_remove(0).1);
            }
            if let Some((url, url_source)) = auth_url {
                let why = "the service user that looks images up for calls made with a static \
                           admin token; unset auth_url to look them up anonymously";
                config.management.keystone = Some(keystone_options(&loaded, url, url_source, why)?);
            }
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
    check_auth_url(url).map_err(|expected| invalid("auth_url", expected))?;
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
    // keystonemiddleware's TLS options.
    let mut tls = ClientTls::new();
    if let Some(ca) = loaded.keystone("cafile") {
        tls = tls.with_ca_file(ca);
    }
    match (loaded.keystone("certfile"), loaded.keystone("keyfile")) {
        (Some(cert), Some(key)) => tls = tls.with_client_cert(cert, key),
        (None, None) => {}
        (Some(_), None) => {
            return Err(invalid(
                "certfile",
                "a certificate with its keyfile (keyfile is not set)".into(),
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                "keyfile",
                "a key with its certfile (certfile is not set)".into(),
            ))
        }
    }
    if let Some(text) = loaded.keystone("insecure") {
        let insecure = crate::value::parse_bool(&text).ok_or_else(|| {
            invalid(
                "insecure",
                "a boolean (true/false, 1/0, on/off, yes/no)".into(),
            )
        })?;
        tls = tls.with_insecure(insecure);
    }
    Ok(KeystoneOptions {
        auth_url: url.trim().to_owned(),
        username,
        password,
        user_domain: domain("user_domain_id", "user_domain_name"),
        project,
        region_name: loaded.keystone("region_name"),
        www_authenticate_uri: loaded.keystone("www_authenticate_uri"),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(startup_warning(ManagementAuthMode::Open).is_some());
        let deny = startup_warning(ManagementAuthMode::Deny).expect("warns");
        assert!(
            deny.contains("admin_tokens") && deny.contains("auth_url"),
            "{deny}"
        );
        assert!(startup_warning(ManagementAuthMode::Keystone).is_none());
        assert!(startup_warning(ManagementAuthMode::Static).is_none());
    }
}
