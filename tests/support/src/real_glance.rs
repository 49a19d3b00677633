//! A REAL OpenStack Glance API for integration tests.
//!
//! [`RealGlance::start`] runs `tests/harness/glance.sh start` (glance 33.0.0 under uWSGI,
//! sqlite DB, filesystem store, no image cache) on a free 127.0.0.1 port with its state in a
//! temporary directory; dropping the [`RealGlance`] stops it and deletes that directory.
//! Glance also stops, and the directory goes, when the test process dies without dropping it
//! (killed, or `std::process::exit`): the script watches the test's pid.
//!
//! The Python side comes from `tests/harness/setup-python.sh` (run by `tests/run.sh`) and is
//! found through `GLANCE_CACHE_VENV`, else `$HOME/.cache/glance-cache/venv`. When it is
//! missing, `start` panics: a test that needs a real Glance fails without one, it never
//! skips.
//!
//! Setup calls use `curl` (blocking, via `std::process`); call them before a runtime starts or
//! from `tokio::task::spawn_blocking`, not on an async worker thread under load.
//!
//! # Example
//! ```no_run
//! use glance_cache_support::real_glance::{GlanceAuth, RealGlance};
//!
//! fn downloads_from_real_glance() {
//!     let glance = RealGlance::start(GlanceAuth::NoAuth);
//!     let id = glance.create_image(std::path::Path::new("/tmp/some-file"));
//!     let url = format!("{}/v2/images/{id}/file", glance.url);
//!     // ... point the code under test at `glance.url` ...
//! }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::{self, run, unavailable, HarnessProcess, HarnessScript};

/// How the real Glance authenticates requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlanceAuth {
    /// Glance's unauthenticated-context pipeline with a policy override: every request is
    /// admin, no headers needed.
    NoAuth,
    /// Keystone-less header auth: Glance trusts `X-Identity-Status: Confirmed`, `X-Roles`,
    /// `X-User-Id` and `X-Project-Id` (stock policy). Requests without them get 401. Use
    /// [`identity_headers`] to act as a member, reader or admin.
    Headers,
    /// keystonemiddleware's `auth_token` first in the pipeline, as clouds run Glance: every
    /// `X-Auth-Token` is validated with a real Keystone (stock policy). Started with
    /// [`RealGlance::start_with_keystone`].
    Keystone,
}

impl GlanceAuth {
    fn flag(self) -> &'static str {
        match self {
            GlanceAuth::NoAuth => "noauth",
            GlanceAuth::Headers => "headers",
            GlanceAuth::Keystone => "keystone",
        }
    }
}

/// The user id the harness acts as for its own setup calls in [`GlanceAuth::Headers`] mode.
pub const ADMIN_USER_ID: &str = "harness-admin";
/// The project id the harness acts in for its own setup calls in [`GlanceAuth::Headers`] mode.
pub const ADMIN_PROJECT_ID: &str = "harness-admin-project";

/// The headers Glance's header-auth pipeline ([`GlanceAuth::Headers`]) turns into a request
/// context: `roles` is a comma-separated list such as `"member,reader"` or `"admin"`.
pub fn identity_headers(roles: &str, user_id: &str, project_id: &str) -> Vec<(String, String)> {
    vec![
        ("X-Identity-Status".to_string(), "Confirmed".to_string()),
        ("X-Roles".to_string(), roles.to_string()),
        ("X-User-Id".to_string(), user_id.to_string()),
        ("X-Project-Id".to_string(), project_id.to_string()),
    ]
}

/// A running real Glance API on `127.0.0.1`; dropping it stops Glance and removes its state.
#[derive(Debug)]
pub struct RealGlance {
    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub url: String,
    /// The authentication flavor it runs with.
    pub auth: GlanceAuth,
    /// [`GlanceAuth::Keystone`]: the admin token the harness's own setup calls send.
    admin_token: Option<String>,
    process: HarnessProcess,
}

impl RealGlance {
    /// Starts a real Glance with `auth`, 2 uWSGI workers, and waits until every worker serves.
    ///
    /// Panics when the Glance venv is missing (saying how to make it), and whenever Glance
    /// does not come up (with the tail of its logs).
    pub fn start(auth: GlanceAuth) -> RealGlance {
        assert!(
            auth != GlanceAuth::Keystone,
            "a Keystone-protected Glance is started with RealGlance::start_with_keystone"
        );
        Self::launch(auth, Vec::new(), None)
    }

    /// Starts a real Glance whose `auth_token` middleware validates tokens with the Keystone
    /// at `keystone_url` (its `/v3` URL) as the service user `glance` of project `service`
    /// (password `glance_password`); the harness's own setup calls send `admin_token`.
    ///
    /// Panics like [`start`](Self::start).
    pub fn start_with_keystone(
        keystone_url: &str,
        glance_password: &str,
        admin_token: &str,
    ) -> RealGlance {
        let extra = [
            "--keystone-url",
            keystone_url,
            "--keystone-password",
            glance_password,
        ]
        .map(String::from)
        .to_vec();
        Self::launch(GlanceAuth::Keystone, extra, Some(admin_token.to_owned()))
    }

    fn launch(auth: GlanceAuth, more: Vec<String>, admin_token: Option<String>) -> RealGlance {
        let script = harness_script();
        let venv = script.venv();
        if !(venv.join("bin/uwsgi").is_file() && venv.join("bin/glance-manage").is_file()) {
            let why = format!(
                "no real-Glance venv at {} (set GLANCE_CACHE_VENV, or run `bash tests/harness/setup-python.sh`, \
                 which `bash tests/run.sh` does)",
                venv.display()
            );
            unavailable("Glance", &why);
        }
        let mut extra = ["--auth", auth.flag(), "--workers", "2"]
            .map(String::from)
            .to_vec();
        extra.extend(more);
        let process = script.start(&extra, "");
        RealGlance {
            url: process.url().to_string(),
            auth,
            admin_token,
            process,
        }
    }

    /// The TCP port Glance listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// Glance's state directory (`etc/`, `data/images/`, `log/`, `glance.sqlite`).
    pub fn base_dir(&self) -> &Path {
        self.process.base_dir()
    }

    /// The venv Glance runs from (its `bin/glance` is python-glanceclient).
    pub fn venv(&self) -> &Path {
        self.process.venv()
    }

    /// Headers the harness sends on its own setup calls: none for [`GlanceAuth::NoAuth`],
    /// an admin identity for [`GlanceAuth::Headers`], the admin token for
    /// [`GlanceAuth::Keystone`].
    pub fn admin_headers(&self) -> Vec<(String, String)> {
        match self.auth {
            GlanceAuth::NoAuth => Vec::new(),
            GlanceAuth::Keystone => vec![(
                "X-Auth-Token".to_owned(),
                self.admin_token.clone().unwrap_or_default(),
            )],
            GlanceAuth::Headers => {
                identity_headers("admin,member,reader", ADMIN_USER_ID, ADMIN_PROJECT_ID)
            }
        }
    }

    /// Creates a public raw/bare image named after the file, uploads `data_path`, waits until
    /// it is `active` and returns its id. Panics on any failure.
    pub fn create_image(&self, data_path: &Path) -> String {
        let name = data_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".to_string());
        let body = serde_json::json!({
            "name": name,
            "disk_format": "raw",
            "container_format": "bare",
            "visibility": "public",
        });
        self.create_image_with(data_path, &body, &self.admin_headers())
    }

    /// Creates an image with the given create-request JSON `body` as the identity in
    /// `headers`, uploads `data_path`, waits until it is `active` and returns its id.
    pub fn create_image_with(
        &self,
        data_path: &Path,
        body: &serde_json::Value,
        headers: &[(String, String)],
    ) -> String {
        let (status, created) = self.curl(
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &body.to_string(),
            ],
            headers,
            "/v2/images",
        );
        assert_eq!(status, 201, "POST /v2/images answered {status}: {created}");
        let id = serde_json::from_str::<serde_json::Value>(&created)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("POST /v2/images answered no id: {created}"));

        let file = data_path.to_string_lossy();
        let (status, text) = self.curl(
            &[
                "-X",
                "PUT",
                "-H",
                "Content-Type: application/octet-stream",
                "-T",
                &file,
            ],
            headers,
            &format!("/v2/images/{id}/file"),
        );
        assert_eq!(
            status, 204,
            "PUT /v2/images/{id}/file answered {status}: {text}"
        );

        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let image = self.image_json(&id, headers);
            match image["status"].as_str() {
                Some("active") => return id,
                Some("queued" | "saving" | "importing" | "uploading")
                    if Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => panic!("image {id} did not become active: {image}"),
            }
        }
    }

    /// `GET /v2/images/{id}` as JSON (panics unless 200).
    pub fn image_json(&self, id: &str, headers: &[(String, String)]) -> serde_json::Value {
        let (status, text) = self.curl(&[], headers, &format!("/v2/images/{id}"));
        assert_eq!(status, 200, "GET /v2/images/{id} answered {status}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("GET /v2/images/{id}: bad JSON ({e}): {text}"))
    }

    /// Runs `curl` against `self.url + path` with extra curl `args` and request `headers`;
    /// returns the HTTP status and the response body as text. For small (JSON) responses.
    pub fn curl(&self, args: &[&str], headers: &[(String, String)], path: &str) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "120", "-w", "\n%{http_code}"]);
        for (name, value) in headers {
            cmd.arg("-H").arg(format!("{name}: {value}"));
        }
        cmd.args(args).arg(format!("{}{}", self.url, path));
        let out = run(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", text.as_ref()));
        let status = code
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("curl {path}: no HTTP status in its output: {text}"));
        (status, body.to_string())
    }

    /// How many whole downloads of image `id` (`GET /v2/images/{id}/file`
    /// answered `200`; ranged probes answered `206` are not counted)
    /// Glance's uWSGI request log holds so far.
    pub fn file_downloads(&self, id: &str) -> usize {
        let log = self.base_dir().join("log").join("uwsgi.log");
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let request = format!("GET /v2/images/{id}/file");
        text.lines()
            .filter(|l| l.contains(&request) && l.contains(" => generated "))
            .filter(|l| l.contains("(HTTP/1.1 200)") || l.contains("(HTTP/1.0 200)"))
            .count()
    }

    /// The last `lines` lines of Glance's uWSGI and API logs (for assertion messages).
    pub fn log_tail(&self, lines: usize) -> String {
        self.process
            .log_tail(&["uwsgi.log", "glance-api.log"], lines)
    }

    /// Stops Glance now (also done on drop). Panics if the stop script fails.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Hex MD5 of a file (Glance's `checksum`), via coreutils `md5sum`.
    pub fn md5_of(path: &Path) -> String {
        let out = run(Command::new("md5sum").arg(path));
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .next()
            .filter(|h| h.len() == 32)
            .unwrap_or_else(|| panic!("md5sum {}: unexpected output {text}", path.display()))
            .to_string()
    }
}

/// `GLANCE_CACHE_VENV`, else `$HOME/.cache/glance-cache/venv`.
pub fn venv_dir() -> PathBuf {
    harness::venv_dir("GLANCE_CACHE_VENV", "venv")
}

/// `tests/harness/glance.sh` with the Glance venv.
fn harness_script() -> HarnessScript {
    HarnessScript::new("glance.sh", "Glance", "GLANCE_CACHE_VENV", "venv")
}
