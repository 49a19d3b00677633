//! A real HAProxy (Debian's `haproxy` package, installed by `.ci/run`) started by a test,
//! either
//!
//! * a TLS terminator in front of a plain-HTTP service on `127.0.0.1`, speaking HTTP/2 and
//!   HTTP/1.1 through ALPN ([`Haproxy::tls_terminator`]), or
//! * a plain-HTTP round-robin load balancer over several services on `127.0.0.1`
//!   ([`Haproxy::round_robin`]).
//!
//! A missing `haproxy` fails the test, saying how to install it.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::CertFiles;

/// A running HAProxy; killed on drop.
#[derive(Debug)]
pub struct Haproxy {
    child: Child,
    /// `https://127.0.0.1:PORT` for a TLS terminator, `http://127.0.0.1:PORT` for a load
    /// balancer.
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
                 tests of TLS termination and load balancing need a real one"
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
        let port = free_port();
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
        Haproxy::spawn(dir, &config, port, "https")
    }

    /// A plain-HTTP load balancer on a free port of 127.0.0.1 that sends successive requests
    /// to successive `backends` (`127.0.0.1:PORT`, plain HTTP/1.1), in their order, round
    /// and round. Waits until it accepts connections.
    ///
    /// The configuration, and why:
    ///
    /// * `mode http`, `balance roundrobin`, `option http-server-close`: every request is
    ///   balanced on its own and its server connection closed after the response, so
    ///   consecutive requests, over one client connection or fresh ones, go to successive
    ///   backends, and a backend never holds an idle connection from HAProxy.
    /// * `timeout client 300s`, `timeout server 300s`: a large body streamed slowly (or a
    ///   backend that stalls for a test) is not cut; `timeout connect 2s`.
    /// * A killed backend: `retries 2` with `option redispatch 1` retries a request whose
    ///   connection was refused on another backend at once, so the client does not see the
    ///   failure; `check inter 1s fall 1 rise 1` (a TCP connect, no HTTP request) marks the
    ///   backend down within a second, after which it gets no requests at all, and up again
    ///   within a second of listening again. A slow backend still accepts connections, so
    ///   these checks never mark it down. Only connection failures are retried (HAProxy's
    ///   default `retry-on conn-failure`): a backend killed while answering leaves its
    ///   client with a cut response, as it would in production. Each backend sees a
    ///   connection opened and closed without a request once a second.
    pub fn round_robin(backends: &[SocketAddr]) -> Haproxy {
        assert!(!backends.is_empty(), "a load balancer needs a backend");
        let dir = tempfile::tempdir().expect("temporary directory");
        let port = free_port();
        let servers: String = backends
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("  server b{i} {addr} check inter 1s fall 1 rise 1\n"))
            .collect();
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n  maxconn 4096\n\
                 defaults\n  mode http\n  timeout connect 2s\n  timeout client 300s\n  \
                 timeout server 300s\n  timeout check 2s\n  option http-server-close\n  \
                 option redispatch 1\n  retries 2\n\
                 frontend balancer\n  bind 127.0.0.1:{port}\n  default_backend pool\n\
                 backend pool\n  balance roundrobin\n{servers}"
            ),
        )
        .expect("write haproxy.cfg");
        Haproxy::spawn(dir, &config, port, "http")
    }

    /// Starts `haproxy` on `config` and waits until it listens on `port`.
    fn spawn(dir: tempfile::TempDir, config: &Path, port: u16, scheme: &str) -> Haproxy {
        let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log");
        let child = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start haproxy");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut h = Haproxy {
            child,
            url: format!("{scheme}://{addr}"),
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

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    use super::*;
    use crate::client::Client;

    /// A server on 127.0.0.1 answering every request with `index`; aborting the task
    /// closes its listener.
    /// `n` backends, each answering with its index.
    async fn backends(n: usize) -> (Vec<SocketAddr>, Vec<JoinHandle<()>>) {
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..n {
            let (addr, task) = backend(i).await;
            addrs.push(addr);
            tasks.push(task);
        }
        (addrs, tasks)
    }

    async fn backend(index: usize) -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |_req| async move {
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(
                            index.to_string(),
                        ))))
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (addr, task)
    }

    /// The backends' indexes that answer `n` GETs through `haproxy`, each on a fresh
    /// connection.
    async fn answers(haproxy: &Haproxy, n: usize) -> Vec<usize> {
        let client = Client::new();
        let mut out = Vec::new();
        for _ in 0..n {
            let reply = client.get(&format!("{}/x", haproxy.url), &[]).await;
            assert_eq!(reply.status, 200, "{}", haproxy.log());
            out.push(String::from_utf8(reply.body).unwrap().parse().unwrap());
        }
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn round_robin_sends_successive_requests_to_successive_backends() {
        let (addrs, tasks) = backends(3).await;
        let haproxy = Haproxy::round_robin(&addrs);
        assert!(haproxy.url.starts_with("http://127.0.0.1:"));
        let got = answers(&haproxy, 6).await;
        // Round robin: every backend, in turn, twice (starting wherever HAProxy starts).
        let first = got[0];
        let expected: Vec<usize> = (0..6).map(|i| (first + i) % 3).collect();
        assert_eq!(got, expected, "{}", haproxy.log());
        for task in tasks {
            task.abort();
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn round_robin_skips_a_killed_backend_without_failing_requests() {
        let (addrs, mut tasks) = backends(3).await;
        let haproxy = Haproxy::round_robin(&addrs);
        tasks[1].abort();
        let _ = (&mut tasks[1]).await;
        // At once (before a health check notices): refused connections are redispatched.
        let got = answers(&haproxy, 6).await;
        assert!(!got.contains(&1), "{got:?}");
        assert!(got.contains(&0) && got.contains(&2), "{got:?}");
        for task in tasks {
            task.abort();
        }
    }
}
