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
//! missing, `start` returns `None` and the test should return early (skip) — except when the
//! environment variable `CI` is `true`: there a test that needs a real service fails, it never
//! skips.
//!
//! Setup calls use `curl` (blocking, via `std::process`); call them before a runtime starts or
//! from `tokio::task::spawn_blocking`, not on an async worker thread under load.
//!
//! # Example
//! ```ignore
//! mod common {
//!     pub mod real_glance;
//! }
//! use common::real_glance::{GlanceAuth, RealGlance};
//!
//! #[test]
//! fn downloads_from_real_glance() {
//!     let Some(glance) = RealGlance::start(GlanceAuth::NoAuth) else {
//!         return; // skipped: no Glance venv (never in CI)
//!     };
//!     let id = glance.create_image(std::path::Path::new("/tmp/some-file"));
//!     let url = format!("{}/v2/images/{id}/file", glance.url);
//!     // ... point the code under test at `glance.url` ...
//! }
//! ```
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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
}

impl GlanceAuth {
    fn flag(self) -> &'static str {
        match self {
            GlanceAuth::NoAuth => "noauth",
            GlanceAuth::Headers => "headers",
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
    base: tempfile::TempDir,
    port: u16,
    script: PathBuf,
    venv: PathBuf,
    stopped: bool,
}

/// Exit status of `glance.sh start` when the port was taken before uWSGI could bind it.
const EXIT_PORT_IN_USE: i32 = 3;
/// How often `start` retries with another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

impl RealGlance {
    /// Starts a real Glance with `auth`, 2 uWSGI workers, and waits until every worker serves.
    ///
    /// Returns `None` (after printing why) when the Glance venv is missing, so the calling
    /// test can skip. Panics when the venv is missing and `CI=true`, and whenever Glance does
    /// not come up (with the tail of its logs).
    pub fn start(auth: GlanceAuth) -> Option<RealGlance> {
        let venv = venv_dir();
        let ready = venv.join("bin/uwsgi").is_file() && venv.join("bin/glance-manage").is_file();
        if !ready {
            let why = format!(
                "no real-Glance venv at {} (set GLANCE_CACHE_VENV, or run `bash tests/harness/setup-python.sh`, \
                 which `bash tests/run.sh` does)",
                venv.display()
            );
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{why}; CI=true: a test that needs a real Glance fails instead of skipping");
            }
            eprintln!("SKIPPED (real Glance unavailable): {why}");
            return None;
        }
        let script = find_script();
        let base = tempfile::Builder::new()
            .prefix("real-glance-")
            .tempdir()
            .unwrap_or_else(|e| panic!("cannot create a temporary directory for Glance: {e}"));

        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let out = Command::new("bash")
                .arg(&script)
                .arg("start")
                .args(["--port", &port.to_string()])
                .arg("--base")
                .arg(base.path())
                .args(["--auth", auth.flag()])
                .args(["--workers", "2"])
                .args(["--watch-pid", &std::process::id().to_string()])
                .arg("--purge-with-owner")
                .env("GLANCE_CACHE_VENV", &venv)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
            match out.status.code() {
                Some(0) => {
                    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    assert_eq!(
                        url,
                        format!("http://127.0.0.1:{port}"),
                        "unexpected output from glance.sh start"
                    );
                    return Some(RealGlance {
                        url,
                        auth,
                        base,
                        port,
                        script,
                        venv,
                        stopped: false,
                    });
                }
                Some(EXIT_PORT_IN_USE) if attempt < PORT_ATTEMPTS => continue,
                _ => panic!(
                    "real Glance did not start ({}), base {}:\n{}",
                    out.status,
                    base.path().display(),
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }

    /// The TCP port Glance listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Glance's state directory (`etc/`, `data/images/`, `log/`, `glance.sqlite`).
    pub fn base_dir(&self) -> &Path {
        self.base.path()
    }

    /// The venv Glance runs from (its `bin/glance` is python-glanceclient).
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// Headers the harness sends on its own setup calls: none for [`GlanceAuth::NoAuth`],
    /// an admin identity for [`GlanceAuth::Headers`].
    pub fn admin_headers(&self) -> Vec<(String, String)> {
        match self.auth {
            GlanceAuth::NoAuth => Vec::new(),
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

    /// The last `lines` lines of Glance's uWSGI and API logs (for assertion messages).
    pub fn log_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["uwsgi.log", "glance-api.log"] {
            let path = self.base.path().join("log").join(name);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            out.push_str(&format!("---- {} ----\n", path.display()));
            for line in &all[all.len().saturating_sub(lines)..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    /// Stops Glance now (also done on drop). Panics if the stop script fails.
    pub fn stop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            if let Err(e) = self.run_stop() {
                panic!("{e}");
            }
        }
    }

    fn run_stop(&self) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg("stop")
            .arg("--base")
            .arg(self.base.path())
            .env("GLANCE_CACHE_VENV", &self.venv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bash {} stop: {e}", self.script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "stopping real Glance in {} failed ({}): {}",
                self.base.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
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

impl Drop for RealGlance {
    fn drop(&mut self) {
        if !self.stopped {
            self.stopped = true;
            // Never panic in drop (it may run while a test is already panicking).
            if let Err(e) = self.run_stop() {
                eprintln!("warning: {e}");
            }
        }
    }
}

/// `GLANCE_CACHE_VENV`, else `$HOME/.cache/glance-cache/venv`.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("GLANCE_CACHE_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/glance-cache/venv")
        }
    }
}

/// `tests/harness/glance.sh`, found from this crate's manifest dir upwards (so that a member
/// crate of the workspace can include this module too).
fn find_script() -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    start
        .ancestors()
        .map(|dir| dir.join("tests/harness/glance.sh"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tests/harness/glance.sh not found above {}",
                start.display()
            )
        })
}

/// A port that was free a moment ago (the kernel's pick for 127.0.0.1:0).
fn free_port() -> u16 {
    let listener =
        TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"))
        .port()
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
