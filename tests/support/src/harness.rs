//! A runner for a harness script (`tests/harness/<name>.sh`) that starts a real service on
//! a free `127.0.0.1` port, prints its URL and must be stopped again: the part that
//! [`real_glance`](super::real_glance) and [`real_keystone`](super::real_keystone) share.
//!
//! [`HarnessScript::start`] runs `<script> start --port PORT --base DIR ... --watch-pid PID
//! --purge-with-owner` with `DIR` a new temporary directory, retrying with another port when
//! the script exits with status 3 (the port was taken meanwhile). The [`HarnessProcess`] it
//! returns runs `<script> stop --base DIR` when stopped or dropped, then deletes `DIR`.
//! [`unavailable`] is the rule for a missing Python side: the test fails, saying how to
//! set it up (`bash tests/run.sh` does). A test that needs a real service never passes
//! without it.
//!
//! # Example
//! ```ignore
//! let script = HarnessScript::new("glance.sh", "Glance", "GLANCE_CACHE_VENV", "venv");
//! let process = script.start(&["--workers".into(), "2".into()], "");
//! assert!(process.url().starts_with("http://127.0.0.1:"));
//! ```

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Exit status of `<script> start` when the port was taken before uWSGI could bind it.
const EXIT_PORT_IN_USE: i32 = 3;
/// How often `start` retries with another port when the chosen one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A harness script, the service it runs and the venv it runs it from.
#[derive(Debug, Clone)]
pub struct HarnessScript {
    /// File name under `tests/harness/` (`glance.sh`).
    file: &'static str,
    /// The service's name in messages (`Glance`).
    service: &'static str,
    /// The environment variable that passes the venv to the script.
    venv_var: &'static str,
    venv: PathBuf,
}

impl HarnessScript {
    /// `tests/harness/<file>` for `service`, with the venv from [`venv_dir`]`(venv_var,
    /// default_venv)`.
    pub fn new(
        file: &'static str,
        service: &'static str,
        venv_var: &'static str,
        default_venv: &str,
    ) -> Self {
        HarnessScript {
            file,
            service,
            venv_var,
            venv: venv_dir(venv_var, default_venv),
        }
    }

    /// The venv the service runs from.
    pub fn venv(&self) -> &Path {
        &self.venv
    }

    /// Starts the service with the script's `extra` start options and waits for the script
    /// to print its URL, which must be `http://127.0.0.1:PORT` followed by `url_suffix`.
    /// Panics (with the script's stderr) when it does not come up.
    pub fn start(self, extra: &[String], url_suffix: &str) -> HarnessProcess {
        let script = find_script(self.file);
        let base = tempfile::Builder::new()
            .prefix(&format!("real-{}-", self.service.to_ascii_lowercase()))
            .tempdir()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a temporary directory for {}: {e}",
                    self.service
                )
            });
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let out = Command::new("bash")
                .arg(&script)
                .arg("start")
                .args(["--port", &port.to_string()])
                .arg("--base")
                .arg(base.path())
                .args(extra)
                .args(["--watch-pid", &std::process::id().to_string()])
                .arg("--purge-with-owner")
                .env(self.venv_var, &self.venv)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run bash {}: {e}", script.display()));
            match out.status.code() {
                Some(0) => {
                    let url = String::from_utf8_lossy(&out.stdout).trim().to_string();
                    assert_eq!(
                        url,
                        format!("http://127.0.0.1:{port}{url_suffix}"),
                        "unexpected output from {} start",
                        self.file
                    );
                    return HarnessProcess {
                        url,
                        port,
                        base,
                        script,
                        harness: self,
                        stopped: false,
                    };
                }
                Some(EXIT_PORT_IN_USE) if attempt < PORT_ATTEMPTS => continue,
                _ => panic!(
                    "real {} did not start ({}), base {}:\n{}",
                    self.service,
                    out.status,
                    base.path().display(),
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
        }
        unreachable!("the last attempt either returns or panics")
    }
}

/// A service started by a [`HarnessScript`]; dropping it stops the service and removes its
/// state directory.
#[derive(Debug)]
pub struct HarnessProcess {
    url: String,
    port: u16,
    base: tempfile::TempDir,
    script: PathBuf,
    harness: HarnessScript,
    stopped: bool,
}

impl HarnessProcess {
    /// The URL the script printed.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The TCP port the service listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The service's state directory.
    pub fn base_dir(&self) -> &Path {
        self.base.path()
    }

    /// The venv the service runs from.
    pub fn venv(&self) -> &Path {
        &self.harness.venv
    }

    /// The last `lines` lines of each of the logs `log/<name>` (for assertion messages).
    pub fn log_tail(&self, names: &[&str], lines: usize) -> String {
        let mut out = String::new();
        for name in names {
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

    /// Stops the service now (also done on drop). Panics if the stop script fails.
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
            .env(self.harness.venv_var, &self.harness.venv)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run bash {} stop: {e}", self.script.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "stopping real {} in {} failed ({}): {}",
                self.harness.service,
                self.base.path().display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for HarnessProcess {
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

/// Fails the calling test: the real `service` it needs is unavailable, for reason `why`.
pub fn unavailable(service: &str, why: &str) -> ! {
    panic!("this test needs a real {service}, which is unavailable: {why}");
}

/// `$venv_var`, else `$HOME/.cache/glance-cache/<default>`.
pub fn venv_dir(venv_var: &str, default: &str) -> PathBuf {
    match std::env::var_os(venv_var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home)
                .join(".cache/glance-cache")
                .join(default)
        }
    }
}

/// `tests/harness/<file>`, found from this crate's manifest dir upwards (so that a member
/// crate of the workspace can include these modules too).
fn find_script(file: &str) -> PathBuf {
    let start = Path::new(env!("CARGO_MANIFEST_DIR"));
    let relative = Path::new("tests/harness").join(file);
    start
        .ancestors()
        .map(|dir| dir.join(&relative))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{} not found above {}", relative.display(), start.display()))
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

/// Runs `cmd` (stdin closed) and returns its output; panics unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
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
