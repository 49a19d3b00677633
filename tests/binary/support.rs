//! Running the real `glance-cache-proxy` binary in tests.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_glance-cache-proxy");

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes a proxy config file and returns its path.
pub fn write_config(
    dir: &Path,
    port: u16,
    cache: Option<&Path>,
    upstream: &str,
    extra: &str,
) -> PathBuf {
    let cache_line = cache
        .map(|c| format!("image_cache_dir = {}\n", c.display()))
        .unwrap_or_default();
    let text = format!(
        "[DEFAULT]\nbind_host = 127.0.0.1\nbind_port = {port}\n{cache_line}\n[proxy]\nupstream_url = {upstream}\n{extra}\n"
    );
    let path = dir.join(format!("proxy-{port}.conf"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A running proxy process; killed on drop.
pub struct ProxyProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub url: String,
    log: PathBuf,
}

impl ProxyProcess {
    /// Starts `glance-cache-proxy serve --config-file <config>` and waits
    /// until it accepts connections.
    pub fn start(config: &Path, port: u16) -> ProxyProcess {
        Self::start_files(&[config], port)
    }

    /// Starts with several `--config-file`s (later ones override).
    pub fn start_files(configs: &[&Path], port: u16) -> ProxyProcess {
        let log = configs[configs.len() - 1].with_extension("log");
        let err = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        for c in configs {
            cmd.arg("--config-file").arg(c);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("spawn glance-cache-proxy");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut p = ProxyProcess {
            child,
            addr,
            url: format!("http://{addr}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("proxy exited early ({status}):\n{}", p.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not listen:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        p
    }

    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Peak resident memory of the process in KiB (VmHWM).
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary to completion with `args`; returns (exit code, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run glance-cache-proxy");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
