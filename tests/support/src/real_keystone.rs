//! A REAL OpenStack Keystone (identity API v3) for integration tests.
//!
//! [`RealKeystone::start`] runs `tests/harness/keystone.sh start` (keystone 30.0.0 under
//! uWSGI, sqlite DB, fernet tokens, a private memcached as Keystone's cache) on a free
//! 127.0.0.1 port with its state in a temporary directory; dropping the [`RealKeystone`]
//! stops uWSGI and memcached and deletes that directory. Keystone also stops, and the
//! directory goes, when the test process dies without dropping it (the script watches the
//! test's pid).
//!
//! Every instance has these users, all in domain `default` (see [`RealKeystone::user`]):
//!
//! | user        | project   | role assigned | token roles                   |
//! |-------------|-----------|---------------|-------------------------------|
//! | `admin`     | `admin`   | admin         | admin, manager, member, reader |
//! | `glance`    | `service` | admin         | admin, manager, member, reader |
//! | `validator` | `service` | service       | service                       |
//! | `demo`      | `demo`    | member        | member, reader                |
//! | `viewer`    | `demo`    | reader        | reader                        |
//! | `alt`       | `alt`     | member        | member, reader                |
//!
//! `glance` (admin) and `validator` (service) may validate anybody's token; `demo`, `viewer`
//! and `alt` only their own (403 otherwise). Revocation is visible at once: every uWSGI worker
//! shares the memcached, so a revoked token validates as 404 on the next request.
//!
//! The Python side comes from `tests/harness/setup-python.sh --with-keystone` (run by
//! `tests/run.sh`) and is found through `GLANCE_CACHE_KEYSTONE_VENV`, else
//! `$HOME/.cache/glance-cache/keystone-venv`; `memcached` must be on `PATH`. When either is
//! missing, `start` panics: a test that needs a real Keystone fails without one, it never
//! skips.
//!
//! All calls use `curl` (blocking, via `std::process`); call them before a runtime starts or
//! from `tokio::task::spawn_blocking`, not on an async worker thread under load.
//!
//! # Example
//! ```no_run
//! use glance_cache_support::real_keystone::RealKeystone;
//!
//! fn validates_a_real_token() {
//!     let keystone = RealKeystone::start();
//!     let demo = keystone.token("demo");
//!     let (status, body) = keystone.validate(&keystone.token("glance"), &demo);
//!     assert_eq!(status, 200);
//!     assert_eq!(body["token"]["project"]["id"], keystone.user("demo").project_id);
//!     keystone.revoke(&demo);
//!     assert_eq!(keystone.validate(&keystone.token("glance"), &demo).0, 404);
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::{self, run, unavailable, HarnessProcess, HarnessScript};

/// A user of the test Keystone, as `tests/harness/keystone.sh` wrote it to `users.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoneUser {
    /// User name (`demo`, `glance`, ...).
    pub name: String,
    /// Its password.
    pub password: String,
    /// Keystone's id of the user.
    pub user_id: String,
    /// The project its tokens are scoped to by [`RealKeystone::token`].
    pub project_name: String,
    /// Keystone's id of that project.
    pub project_id: String,
    /// Domain of the user and of the project: always `default`.
    pub domain: String,
    /// The roles assigned on that project (tokens also carry the implied ones, e.g.
    /// `member` implies `reader`).
    pub roles: Vec<String>,
}

/// How to start a [`RealKeystone`]; `Default` is Keystone's 1-hour tokens and 2 workers.
#[derive(Debug, Clone, Default)]
pub struct KeystoneOptions {
    token_expiration: Option<Duration>,
    workers: Option<u32>,
}

impl KeystoneOptions {
    /// Lifetime of issued tokens (`[token] expiration`, whole seconds, at least 1).
    pub fn with_token_expiration(mut self, expiration: Duration) -> Self {
        self.token_expiration = Some(expiration);
        self
    }

    /// Number of uWSGI worker processes (default 2).
    pub fn with_workers(mut self, workers: u32) -> Self {
        self.workers = Some(workers);
        self
    }
}

/// An HTTP response from Keystone: status, headers (names lower-cased) and body.
#[derive(Debug, Clone)]
pub struct KeystoneResponse {
    /// HTTP status code.
    pub status: u16,
    /// Response headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// Response body as text.
    pub body: String,
}

impl KeystoneResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON (`Value::Null` when empty or not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// A running real Keystone on `127.0.0.1`; dropping it stops Keystone (uWSGI and its
/// memcached) and removes its state.
#[derive(Debug)]
pub struct RealKeystone {
    /// Identity API URL, `http://127.0.0.1:PORT/v3` (no trailing slash).
    pub url: String,
    users: serde_json::Value,
    process: HarnessProcess,
}

impl RealKeystone {
    /// Starts a real Keystone with the default [`KeystoneOptions`] and waits until every
    /// worker serves.
    ///
    /// Panics when the Keystone venv or `memcached` is missing (saying how to get them), and
    /// whenever Keystone does not come up (with the tail of its logs).
    pub fn start() -> RealKeystone {
        RealKeystone::start_with(KeystoneOptions::default())
    }

    /// Like [`RealKeystone::start`], with `options`.
    pub fn start_with(options: KeystoneOptions) -> RealKeystone {
        let script = harness_script();
        let venv = script.venv();
        let mut missing = Vec::new();
        if !(venv.join("bin/uwsgi").is_file() && venv.join("bin/keystone-manage").is_file()) {
            missing.push(format!(
                "no real-Keystone venv at {} (set GLANCE_CACHE_KEYSTONE_VENV)",
                venv.display()
            ));
        }
        let memcached = Command::new("memcached")
            .arg("-V")
            .stdin(Stdio::null())
            .output();
        if !matches!(memcached, Ok(ref out) if out.status.success()) {
            missing.push("no memcached on PATH".to_string());
        }
        if !missing.is_empty() {
            let why = format!(
                "{}; run `bash tests/harness/setup-python.sh --with-keystone` (`bash tests/run.sh` does)",
                missing.join(", ")
            );
            unavailable("Keystone", &why);
        }

        let mut extra: Vec<String> = Vec::new();
        if let Some(expiration) = options.token_expiration {
            extra.push("--token-expiration".into());
            extra.push(expiration.as_secs().max(1).to_string());
        }
        extra.push("--workers".into());
        extra.push(options.workers.unwrap_or(2).max(1).to_string());
        let process = script.start(&extra, "/v3");
        let users_path = process.base_dir().join("users.json");
        let users = std::fs::read_to_string(&users_path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| panic!("unreadable {}", users_path.display()));
        RealKeystone {
            url: process.url().to_string(),
            users,
            process,
        }
    }

    /// The TCP port Keystone listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Keystone's state directory (`etc/`, `log/`, `keystone.sqlite`, `users.json`).
    pub fn base_dir(&self) -> &Path {
        self.process.base_dir()
    }

    /// The venv Keystone runs from.
    pub fn venv(&self) -> &Path {
        self.process.venv()
    }

    /// The names of all users (`admin`, `alt`, `demo`, `glance`, `validator`, `viewer`).
    pub fn user_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.users["users"]
            .as_object()
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    /// The user called `name` (see the module docs). Panics for an unknown name.
    pub fn user(&self, name: &str) -> KeystoneUser {
        let user = &self.users["users"][name];
        let field = |key: &str| -> String {
            user[key]
                .as_str()
                .unwrap_or_else(|| panic!("users.json: user {name:?} has no {key:?}: {user}"))
                .to_string()
        };
        KeystoneUser {
            name: field("name"),
            password: field("password"),
            user_id: field("user_id"),
            project_name: field("project_name"),
            project_id: field("project_id"),
            domain: field("domain"),
            roles: user["roles"]
                .as_array()
                .map(|roles| {
                    roles
                        .iter()
                        .filter_map(|r| r.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The id of project `name` (`admin`, `service`, `demo`, `alt`). Panics if unknown.
    pub fn project_id(&self, name: &str) -> String {
        self.users["projects"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no project {name:?} in users.json"))
            .to_string()
    }

    /// The id of role `name` (`admin`, `manager`, `member`, `reader`, `service`).
    pub fn role_id(&self, name: &str) -> String {
        self.users["roles"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no role {name:?} in users.json"))
            .to_string()
    }

    /// A new token of `user`, scoped to its project: `POST /v3/auth/tokens` with its
    /// password. Panics unless Keystone answers 201 with an `X-Subject-Token`.
    pub fn token(&self, user: &str) -> String {
        let u = self.user(user);
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": u.name, "domain": {"id": u.domain}, "password": u.password}}},
            "scope": {"project": {"name": u.project_name, "domain": {"id": u.domain}}},
        }});
        let resp = self.request("POST", "/auth/tokens?nocatalog", &[], Some(&body));
        assert_eq!(
            resp.status, 201,
            "POST /v3/auth/tokens for {user} answered {}: {}",
            resp.status, resp.body
        );
        resp.header("x-subject-token")
            .unwrap_or_else(|| panic!("POST /v3/auth/tokens for {user}: no X-Subject-Token"))
            .to_string()
    }

    /// A new project-scoped token of `admin` (project `admin`).
    pub fn admin_token(&self) -> String {
        self.token("admin")
    }

    /// `GET /v3/auth/tokens` (with the catalog) with `X-Auth-Token: caller_token` and
    /// `X-Subject-Token: subject_token`: the status (200 valid, 404 invalid/revoked/expired
    /// subject, 401 invalid caller, 403 caller may not validate others' tokens) and the body
    /// as JSON (`Null` when empty).
    pub fn validate(&self, caller_token: &str, subject_token: &str) -> (u16, serde_json::Value) {
        let resp = self.request(
            "GET",
            "/auth/tokens",
            &[
                ("X-Auth-Token", caller_token),
                ("X-Subject-Token", subject_token),
            ],
            None,
        );
        (resp.status, resp.json())
    }

    /// Revokes `token`: `DELETE /v3/auth/tokens` with a fresh admin token. Panics unless
    /// Keystone answers 204. Validating it afterwards answers 404 at once.
    pub fn revoke(&self, token: &str) {
        let admin = self.admin_token();
        let resp = self.request(
            "DELETE",
            "/auth/tokens",
            &[("X-Auth-Token", &admin), ("X-Subject-Token", token)],
            None,
        );
        assert_eq!(
            resp.status, 204,
            "DELETE /v3/auth/tokens answered {}: {}",
            resp.status, resp.body
        );
    }

    /// Sends `method` to `self.url + path` (`path` starts after `/v3`, e.g. `/auth/tokens`)
    /// with `headers` and an optional JSON `body`, via `curl` (no proxy). For small responses.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> KeystoneResponse {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "-i", "--noproxy", "*", "--max-time", "60"])
            .args(["-X", method]);
        for (name, value) in headers {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        if let Some(body) = body {
            cmd.args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        cmd.arg(format!("{}{}", self.url, path));
        let out = run(&mut cmd);
        parse_response(&String::from_utf8_lossy(&out.stdout))
            .unwrap_or_else(|| panic!("curl {method} {path}: unparsable response"))
    }

    /// Pids of the uWSGI master and of the private memcached, while they run.
    pub fn pids(&self) -> Vec<u32> {
        ["keystone.pid", "memcached.pid"]
            .iter()
            .filter_map(|name| {
                std::fs::read_to_string(self.base_dir().join("run").join(name))
                    .ok()
                    .and_then(|text| text.trim().parse().ok())
            })
            .collect()
    }

    /// The last `lines` lines of Keystone's uWSGI and API logs (for assertion messages).
    pub fn log_tail(&self, lines: usize) -> String {
        self.process.log_tail(&["uwsgi.log", "keystone.log"], lines)
    }

    /// Stops Keystone and its memcached now (also done on drop). Panics if the stop fails.
    pub fn stop(&mut self) {
        self.process.stop();
    }
}

/// `GLANCE_CACHE_KEYSTONE_VENV`, else `$HOME/.cache/glance-cache/keystone-venv`.
pub fn venv_dir() -> PathBuf {
    harness::venv_dir("GLANCE_CACHE_KEYSTONE_VENV", "keystone-venv")
}

/// `tests/harness/keystone.sh` with the Keystone venv.
fn harness_script() -> HarnessScript {
    HarnessScript::new(
        "keystone.sh",
        "Keystone",
        "GLANCE_CACHE_KEYSTONE_VENV",
        "keystone-venv",
    )
}

/// Splits `curl -i` output (headers, blank line, body) into a [`KeystoneResponse`].
fn parse_response(text: &str) -> Option<KeystoneResponse> {
    let (head, body) = text
        .split_once("\r\n\r\n")
        .or_else(|| text.split_once("\n\n"))
        .unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some(KeystoneResponse {
        status,
        headers,
        body: body.to_string(),
    })
}
