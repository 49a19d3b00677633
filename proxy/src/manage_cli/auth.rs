//! From the authentication options to the token sent as `X-Auth-Token`,
//! the way `glance-cache-manage` decides:
//!
//! 1. a token (`--os-auth-token`, `OS_AUTH_TOKEN`) is used as it is;
//! 2. otherwise, with an auth URL (or `-S keystone`), Keystone password
//!    authentication: user, password and project are required; domains
//!    default to `--os-domain-id` (`default`);
//! 3. otherwise no token is sent (a proxy with `management_auth = open`).
//!
//! Empty values count as absent, as with Glance's `env()`.

use std::fmt;
use std::time::Duration;

use glance_cache::auth::manage::{password_token, KeystoneOptions, PasswordAuthError};
use glance_cache_config::{Domain, Project};

use super::options::{AuthArgs, Strategy};

/// Bound on each exchange with Keystone.
const KEYSTONE_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the token comes from.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Credentials {
    /// A token given directly.
    Token(String),
    /// Password authentication with Keystone.
    Keystone(Box<KeystoneOptions>),
    /// No token at all.
    Anonymous,
}

/// Why no credentials could be put together or no token obtained.
#[derive(Debug)]
pub(crate) enum AuthError {
    /// Keystone was selected but a credential is missing (Glance's words).
    Missing(&'static str),
    /// Keystone gave no token.
    Keystone(PasswordAuthError),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::Missing(what) => write!(f, "Missing required credential: {what}"),
            AuthError::Keystone(PasswordAuthError::InvalidAuthUrl { url, problem }) => write!(
                f,
                "auth URL {url:?} (--os-auth-url or OS_AUTH_URL): expected {problem} (or give \
                 a token with --os-auth-token)"
            ),
            AuthError::Keystone(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AuthError {}

fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl AuthArgs {
    /// The credentials these options describe.
    pub(crate) fn credentials(&self) -> Result<Credentials, AuthError> {
        if let Some(token) = given(&self.token) {
            return Ok(Credentials::Token(token.to_owned()));
        }
        let auth_url = given(&self.auth_url);
        if auth_url.is_none() && self.strategy != Some(Strategy::Keystone) {
            return Ok(Credentials::Anonymous);
        }
        let auth_url = auth_url.ok_or(AuthError::Missing(
            "auth URL (--os-auth-url or OS_AUTH_URL)",
        ))?;
        let username = given(&self.username).ok_or(AuthError::Missing(
            "username (--os-username or OS_USERNAME)",
        ))?;
        // A password may legitimately be surrounded by spaces: not trimmed.
        let password =
            self.password
                .as_deref()
                .filter(|p| !p.is_empty())
                .ok_or(AuthError::Missing(
                    "password (--os-password or OS_PASSWORD)",
                ))?;
        let fallback = || match self.domain_id.trim() {
            "" => Domain::default(),
            id => Domain::Id(id.to_owned()),
        };
        let domain = |id: &Option<String>, name: &Option<String>| match (given(id), given(name)) {
            (Some(id), _) => Domain::Id(id.to_owned()),
            (None, Some(name)) => Domain::Name(name.to_owned()),
            (None, None) => fallback(),
        };
        let project = match (given(&self.project_id), given(&self.project_name)) {
            (Some(id), _) => Project::Id(id.to_owned()),
            (None, Some(name)) => Project::Name {
                name: name.to_owned(),
                domain: domain(&self.project_domain_id, &self.project_domain_name),
            },
            (None, None) => {
                return Err(AuthError::Missing(
                    "project (--os-project-name or OS_PROJECT_NAME, or --os-project-id or \
                     OS_PROJECT_ID)",
                ))
            }
        };
        let mut options = KeystoneOptions::new(auth_url, username, password, "")
            .with_user_domain(domain(&self.user_domain_id, &self.user_domain_name))
            .with_project(project);
        if let Some(region) = given(&self.region_name) {
            options = options.with_region_name(region);
        }
        Ok(Credentials::Keystone(Box::new(options)))
    }
}

impl Credentials {
    /// Keystone is reached with these TLS settings.
    pub(crate) fn with_tls(self, tls: glance_cache::tls::ClientTls) -> Self {
        match self {
            Credentials::Keystone(options) => {
                Credentials::Keystone(Box::new(options.with_tls(tls)))
            }
            other => other,
        }
    }

    /// The token to send: the given one, or a fresh one from Keystone.
    pub(crate) async fn token(&self, debug: bool) -> Result<Option<String>, AuthError> {
        match self {
            Credentials::Token(t) => Ok(Some(t.clone())),
            Credentials::Anonymous => Ok(None),
            Credentials::Keystone(options) => {
                if debug {
                    eprintln!(
                        "DEBUG: password authentication with Keystone at {} as user {:?}, \
                         project {:?}",
                        options.auth_url, options.username, options.project
                    );
                }
                password_token(options, KEYSTONE_TIMEOUT)
                    .await
                    .map(Some)
                    .map_err(AuthError::Keystone)
            }
        }
    }

    /// Why a 401 happened with these credentials, for its error message
    /// (never the secrets).
    pub(crate) fn unauthenticated_reason(&self) -> String {
        match self {
            Credentials::Token(_) => "the proxy does not accept the token given \
                                      (--os-auth-token or OS_AUTH_TOKEN)"
                .into(),
            Credentials::Keystone(o) => format!(
                "the proxy does not accept the token Keystone issued to user {:?}",
                o.username
            ),
            Credentials::Anonymous => "no token was sent: give --os-auth-token (or \
                                       OS_AUTH_TOKEN), or Keystone credentials (OS_AUTH_URL, \
                                       OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME)"
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        auth: AuthArgs,
    }

    /// Parses `args` with the `OS_*` variables switched off, so that the
    /// tests do not depend on the environment they run in.
    fn parse(args: &[&str]) -> AuthArgs {
        let command = Cli::command().mut_args(|a| a.env(None));
        let matches = command
            .try_get_matches_from(std::iter::once("x").chain(args.iter().copied()))
            .expect("parses");
        Cli::from_arg_matches(&matches).expect("valid").auth
    }

    #[test]
    fn a_token_wins_over_everything() {
        let a = parse(&[
            "-A",
            "tok",
            "--os-auth-url",
            "http://ks",
            "--os-username",
            "u",
        ]);
        assert_eq!(
            a.credentials().expect("ok"),
            Credentials::Token("tok".into())
        );
        for flag in ["--os-auth-token", "--os_auth_token", "--auth_token"] {
            assert_eq!(
                parse(&[flag, "t2"]).credentials().expect("ok"),
                Credentials::Token("t2".into())
            );
        }
    }

    #[test]
    fn keystone_credentials_with_domain_fallbacks() {
        let a = parse(&[
            "-N",
            "http://ks:5000",
            "-I",
            "glance",
            "-K",
            " pw ",
            "-T",
            "service",
            "--os-user-domain-name",
            "Default",
            "--os-domain-id",
            "d0",
            "-R",
            "RegionOne",
        ]);
        let Credentials::Keystone(o) = a.credentials().expect("ok") else {
            panic!("keystone expected");
        };
        assert_eq!(o.auth_url, "http://ks:5000");
        assert_eq!(o.username, "glance");
        assert_eq!(o.password, " pw ");
        assert_eq!(o.user_domain, Domain::Name("Default".into()));
        assert_eq!(
            o.project,
            Project::Name {
                name: "service".into(),
                domain: Domain::Id("d0".into())
            }
        );
        assert_eq!(o.region_name.as_deref(), Some("RegionOne"));

        let a = parse(&[
            "--os-auth-url",
            "http://ks",
            "--os-username",
            "u",
            "--os-password",
            "p",
            "--os-project-id",
            "p-id",
            "--os-project-name",
            "ignored",
        ]);
        let Credentials::Keystone(o) = a.credentials().expect("ok") else {
            panic!("keystone expected");
        };
        assert_eq!(o.project, Project::Id("p-id".into()));
        assert_eq!(o.user_domain, Domain::Id("default".into()));
    }

    #[test]
    fn missing_credentials_are_named() {
        let missing = |args: &[&str]| parse(args).credentials().expect_err("missing").to_string();
        assert!(missing(&["-N", "http://ks"]).contains("username"));
        assert!(missing(&["-N", "http://ks", "-I", "u"]).contains("password"));
        assert!(missing(&["-N", "http://ks", "-I", "u", "-K", "p"]).contains("project"));
        assert!(missing(&["-S", "keystone"]).contains("auth URL"));
        let text = missing(&["-N", "http://ks"]);
        assert!(text.starts_with("Missing required credential: "), "{text}");
    }

    #[tokio::test]
    async fn unusable_auth_urls_get_a_command_line_hint() {
        let a = parse(&["-N", "ftp://ks:5000", "-I", "u", "-K", "p", "-T", "x"]);
        let e = a
            .credentials()
            .expect("credentials")
            .token(false)
            .await
            .expect_err("ftp");
        let text = e.to_string();
        assert!(text.contains("\"ftp://ks:5000\""), "{text}");
        assert!(
            text.contains("http:// or https://") && text.contains("--os-auth-token"),
            "{text}"
        );
    }

    #[test]
    fn nothing_or_empty_values_or_noauth_mean_no_token() {
        assert_eq!(
            parse(&[]).credentials().expect("ok"),
            Credentials::Anonymous
        );
        assert_eq!(
            parse(&["--os-auth-token", "", "--os-auth-url", " "])
                .credentials()
                .expect("ok"),
            Credentials::Anonymous
        );
        assert_eq!(
            parse(&["-S", "noauth", "-I", "u"])
                .credentials()
                .expect("ok"),
            Credentials::Anonymous
        );
    }
}
