//! Password authentication for command-line tools: a project-scoped token
//! for a user (`POST /v3/auth/tokens`), as `openstack token issue` gets it.
//!
//! The same request the proxy makes for its own service token (see the
//! [module docs](super)), once, without remembering anything: the user and
//! project come from a [`KeystoneOptions`], `auth_url` with or without
//! `/v3` (http only, like the rest of the Keystone support).
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use glance_cache::auth::manage::{password_token, KeystoneOptions, PasswordAuthError};
//! use glance_cache_support::fake_keystone::{FakeKeystone, FakeUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let keystone = FakeKeystone::builder()
//!     .user(FakeUser::new("glance", "s3cret").project("service").roles(["admin"]))
//!     .spawn()
//!     .await?;
//! let options = KeystoneOptions::new(keystone.root_url(), "glance", "s3cret", "service");
//! let token = password_token(&options, Duration::from_secs(5)).await.expect("issued");
//! assert_eq!(keystone.roles_of(&token).unwrap()[0], "admin");
//!
//! let wrong = KeystoneOptions::new(keystone.url(), "glance", "wrong", "service");
//! let refused = password_token(&wrong, Duration::from_secs(5)).await.unwrap_err();
//! assert!(matches!(refused, PasswordAuthError::Rejected { .. }));
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use super::keystone::{Keystone, ServiceTokenError, Settings, SettingsError};
use super::{InvalidAuthUrl, KeystoneOptions};
use crate::tls::TlsError;

/// Why [`password_token`] got no token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PasswordAuthError {
    /// `auth_url` is not a usable `http://` URL.
    #[error("auth URL {url:?}: expected {problem}")]
    InvalidAuthUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        #[source]
        problem: InvalidAuthUrl,
    },
    /// The TLS files (CA bundle, client certificate) cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// Keystone answered 401: wrong user, password, project or domain, or
    /// no role on the project.
    #[error(
        "Keystone ({url}) refused the credentials of user {user:?} (401): check the user name, \
         password, project and domains"
    )]
    Rejected {
        /// The identity endpoint asked.
        url: String,
        /// The user name.
        user: String,
    },
    /// Keystone could not be reached in time, or answered something else.
    #[error("cannot get a token from Keystone ({url}): {reason}")]
    Unavailable {
        /// The identity endpoint asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// Signs in to Keystone as `options.username` with its password, scoped to
/// `options.project`, and returns the token (`X-Subject-Token`). Every
/// exchange (connecting, the answer's headers and body) is bounded by
/// `timeout`. The password is never logged.
pub async fn password_token(
    options: &KeystoneOptions,
    timeout: Duration,
) -> Result<String, PasswordAuthError> {
    let settings = Settings::new(options.clone()).map_err(|e| match e {
        SettingsError::AuthUrl { url, problem } => {
            PasswordAuthError::InvalidAuthUrl { url, problem }
        }
        SettingsError::Tls(e) => PasswordAuthError::Tls(e),
    })?;
    let keystone = Keystone::new(Settings {
        timeout,
        ..settings
    });
    keystone.service_token().await.map_err(|e| match e {
        ServiceTokenError::Rejected { url, user } => PasswordAuthError::Rejected { url, user },
        ServiceTokenError::Unavailable { url, reason } => {
            PasswordAuthError::Unavailable { url, reason }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::manage::{Domain, Project};
    use glance_cache_support::fake_keystone::{FakeKeystone, RunningFakeKeystone};

    const TIMEOUT: Duration = Duration::from_secs(5);

    async fn keystone() -> RunningFakeKeystone {
        FakeKeystone::builder()
            .standard_users()
            .spawn()
            .await
            .expect("fake keystone starts")
    }

    #[tokio::test]
    async fn issues_a_scoped_token_with_or_without_v3_and_domains_by_name_or_id() {
        let ks = keystone().await;
        for url in [ks.url(), ks.root_url(), format!("{}/", ks.root_url())] {
            let options = KeystoneOptions::new(url, "demo", "demo-secret", "demo");
            let token = password_token(&options, TIMEOUT).await.expect("issued");
            assert_eq!(
                ks.roles_of(&token),
                Some(vec!["member".to_owned(), "reader".to_owned()])
            );
        }
        let by_name = KeystoneOptions::new(ks.url(), "glance", "glance-secret", "service")
            .with_user_domain(Domain::Name("Default".into()))
            .with_project(Project::Name {
                name: "service".into(),
                domain: Domain::Name("Default".into()),
            });
        let token = password_token(&by_name, TIMEOUT).await.expect("issued");
        assert!(ks
            .roles_of(&token)
            .expect("known")
            .contains(&"admin".into()));
        let project_id = ks.project_id_of("glance").expect("project of glance");
        let by_id = by_name.with_project(Project::Id(project_id));
        let token = password_token(&by_id, TIMEOUT).await.expect("issued");
        assert!(ks
            .roles_of(&token)
            .expect("known")
            .contains(&"admin".into()));
        assert_eq!(ks.issued(), 5);
    }

    #[tokio::test]
    async fn wrong_password_is_rejected_and_names_the_user_never_the_password() {
        let ks = keystone().await;
        let options = KeystoneOptions::new(ks.url(), "demo", "hunter2", "demo");
        let e = password_token(&options, TIMEOUT)
            .await
            .expect_err("refused");
        assert!(matches!(e, PasswordAuthError::Rejected { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("\"demo\"") && text.contains("401"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[tokio::test]
    async fn unreachable_keystone_and_bad_urls_are_errors() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let options = KeystoneOptions::new(format!("http://127.0.0.1:{port}"), "demo", "x", "demo");
        let e = password_token(&options, TIMEOUT).await.expect_err("down");
        assert!(matches!(e, PasswordAuthError::Unavailable { .. }), "{e:?}");
        assert!(e.to_string().contains(&port.to_string()), "{e}");

        let ks = keystone().await;
        ks.set_failure(Some(http::StatusCode::INTERNAL_SERVER_ERROR));
        let options = KeystoneOptions::new(ks.url(), "demo", "demo-secret", "demo");
        let e = password_token(&options, TIMEOUT).await.expect_err("500");
        assert!(e.to_string().contains("500"), "{e}");

        for url in ["ftp://ks:5000/v3", "ks:5000", ""] {
            let options = KeystoneOptions::new(url, "demo", "x", "demo");
            let e = password_token(&options, TIMEOUT)
                .await
                .expect_err("bad url");
            assert!(
                matches!(e, PasswordAuthError::InvalidAuthUrl { .. }),
                "{url}: {e:?}"
            );
        }
    }
}
