//! A real HAProxy (Debian's `haproxy` package, installed by `.ci/run`) started by a test:
//! a TLS terminator in front of a plain-HTTP service on `127.0.0.1`, speaking HTTP/2 and
//! HTTP/1.1 through ALPN. A missing `haproxy` fails the test, saying how to install it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::CertFiles;

/// A running HAProxy; killed on drop.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

/// The `haproxy` program: `$GLANCE_CACHE_HAPROXY`, else the first on `PATH` or in
/// `/usr/sbin`.
pub fn haproxy_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("GLANCE_CACHE_HAPROXY") {
        return PathBuf::from(path);
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.push("/usr/sbin".into());
    dirs.into_iter()
        .map(|d| d.join("haproxy"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy is not installed (apt-get install haproxy; .ci/run installs it): the \
                 TLS-terminator tests need a real one"
            )
        })
}

impl Haproxy {
    /// Terminates TLS with `cert` on a free port of 127.0.0.1 and forwards to `backend`
    /// (`127.0.0.1:PORT`, plain HTTP/1.1). Waits until it accepts connections.
    pub fn tls_terminator(cert: &CertFiles, backend: SocketAddr) -> Haproxy {
        let dir = tempfile::tempdir().expect("temporary directory");
        // HAProxy takes the certificate and its key in one file.
        let pem = dir.path().join("frontend.pem");
        let mut both = std::fs::read(&cert.cert).expect("certificate");
        both.extend(std::fs::read(&cert.key).expect("key"));
        std::fs::write(&pem, both).expect("write frontend.pem");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 512\n\
                 defaults\n  mode http\n  timeout connect 5s\n  timeout client 120s\n  \
                 timeout server 120s\n  option http-server-close\n\
                 frontend tls\n  bind 127.0.0.1:{port} ssl crt {pem} alpn h2,http/1.1\n  \
                 default_backend service\n\
                 backend service\n  server s1 {backend}\n",
                pem = pem.display()
            ),
        )
        .expect("write haproxy.cfg");
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log");
        let child = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut h = Haproxy {
            child,
            url: format!("https://{addr}"),
            addr,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited ({status}):\n{}", h.log());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen:\n{}",
                h.log()
            );
            std::thread::sleep(Duration::from_millis(25));
        }
        h
    }

    /// What HAProxy printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }

    /// The directory of its configuration.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
