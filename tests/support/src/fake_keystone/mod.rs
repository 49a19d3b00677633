//! An in-process fake of Keystone's token API, for
//! tests of management-call authorization.
//!
//! It answers like Keystone 30 (as recorded in the project's Keystone
//! transcripts), on `127.0.0.1`:
//!
//! | request | answer |
//! |---|---|
//! | `GET /v3` | 200 version document |
//! | `POST /v3/auth/tokens` (password, project-scoped by id or name+domain, or unscoped) | 201 + `X-Subject-Token` + token document; 401 for wrong credentials or a project without a role |
//! | `GET`/`HEAD /v3/auth/tokens` | 401 bad caller token; 403 caller neither `admin` nor `service` (and not the subject); 404 missing, unknown, revoked or expired subject; 200 token document |
//! | `DELETE /v3/auth/tokens` | 204 revoked; 404 unknown |
//! | anything else | 404 |
//!
//! Roles are expanded like Keystone's default implied roles (`admin` ⇒
//! `manager`, `member`, `reader`; `manager` ⇒ `member`, `reader`;
//! `member` ⇒ `reader`). It can be made to fail ([`RunningFakeKeystone::set_failure`])
//! or to answer slowly ([`RunningFakeKeystone::set_delay`]), and counts password
//! authentications and validations.
//!
//! # Example
//!
//! ```
//! use glance_cache_support::fake_keystone::{FakeKeystone, FakeUser};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let keystone = FakeKeystone::builder()
//!     .user(FakeUser::new("glance", "glance-secret").project("service").roles(["admin"]))
//!     .user(FakeUser::new("demo", "demo-secret").project("demo").roles(["member"]))
//!     .spawn()
//!     .await?;
//! assert!(keystone.url().ends_with("/v3"));
//! let token = keystone.token("demo").expect("known user");
//! assert_eq!(keystone.roles_of(&token), Some(vec!["member".to_owned(), "reader".to_owned()]));
//! assert!(keystone.revoke(&token));
//! # Ok(())
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

mod server;
mod state;

pub use server::RunningFakeKeystone;

/// A user of the fake Keystone: in the domain `default` (name `Default`),
/// with roles on one project.
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub(crate) name: String,
    pub(crate) password: String,
    pub(crate) project: String,
    pub(crate) roles: Vec<String>,
}

impl FakeUser {
    /// User `name` with `password`, member of a project named like the user
    /// with no roles.
    pub fn new(name: impl Into<String>, password: impl Into<String>) -> Self {
        let name = name.into();
        FakeUser {
            project: name.clone(),
            name,
            password: password.into(),
            roles: Vec::new(),
        }
    }

    /// The project the user has its roles on.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.project = project.into();
        self
    }

    /// The user's roles on its project, as assigned (implied roles are
    /// added in tokens).
    pub fn roles<I, S>(mut self, roles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

/// Builds a fake Keystone; see the [module docs](self).
#[derive(Debug)]
pub struct FakeKeystone {
    users: Vec<FakeUser>,
    token_lifetime: Duration,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl FakeKeystone {
    /// No users; tokens live one hour.
    pub fn builder() -> Self {
        FakeKeystone {
            users: Vec::new(),
            token_lifetime: Duration::from_secs(3600),
            tls: None,
        }
    }

    /// Adds a user (a later user with the same name replaces it).
    pub fn user(mut self, user: FakeUser) -> Self {
        self.users.retain(|u| u.name != user.name);
        self.users.push(user);
        self
    }

    /// The users of the project's Keystone transcripts, each with the
    /// password `<name>-secret`: `admin` (admin on project admin), `glance`
    /// (admin on service), `validator` (service on service), `demo`
    /// (member on demo), `viewer` (reader on demo), `alt` (member on alt).
    pub fn standard_users(self) -> Self {
        [
            ("admin", "admin", "admin"),
            ("glance", "service", "admin"),
            ("validator", "service", "service"),
            ("demo", "demo", "member"),
            ("viewer", "demo", "reader"),
            ("alt", "alt", "member"),
        ]
        .into_iter()
        .fold(self, |b, (name, project, role)| {
            b.user(
                FakeUser::new(name, format!("{name}-secret"))
                    .project(project)
                    .roles([role]),
            )
        })
    }

    /// How long issued tokens live (default one hour).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// Serves HTTPS with this configuration (e.g.
    /// [`TestPki::server_config`](crate::pki::TestPki::server_config)).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds `127.0.0.1:0` and starts serving.
    pub async fn spawn(self) -> std::io::Result<RunningFakeKeystone> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(state::State::new(addr, self.users, self.token_lifetime));
        tracing::info!(%addr, "fake keystone listening");
        Ok(server::start(state, listener, self.tls))
    }
}
