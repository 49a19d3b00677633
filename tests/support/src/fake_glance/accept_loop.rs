//! The serving loop of the in-process fakes (fake Glance, and fake Keystone,
//! which reuses it): accepts connections on a bound `127.0.0.1` listener,
//! serves each over HTTP/1.1 (in TLS when given a configuration) in a task
//! of its own, and stops (cutting every
//! open connection) on [`AcceptLoop::shutdown`] or when dropped.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::BoxError;

/// A spawned accept loop; aborting it aborts every connection it serves.
pub(crate) struct AcceptLoop {
    task: Mutex<Option<JoinHandle<()>>>,
    abort: AbortHandle,
}

impl AcceptLoop {
    /// Spawns the loop: every connection accepted on `listener` is served by
    /// `http` with `handle` answering its requests. `name` prefixes the log
    /// messages (`fake glance`).
    pub(crate) fn spawn<H, F, B, E>(
        listener: TcpListener,
        name: &'static str,
        http: http1::Builder,
        tls: Option<Arc<rustls::ServerConfig>>,
        handle: H,
    ) -> AcceptLoop
    where
        H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Response<B>, E>> + Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
        E: Into<BoxError>,
    {
        let handle = Arc::new(handle);
        let tls = tls.map(tokio_rustls::TlsAcceptor::from);
        let serve = move |stream: TcpStream| {
            let handle = Arc::clone(&handle);
            let http = http.clone();
            let tls = tls.clone();
            async move {
                let service = hyper::service::service_fn(move |req| handle(req));
                let served = match tls {
                    None => http.serve_connection(TokioIo::new(stream), service).await,
                    Some(tls) => match tls.accept(stream).await {
                        Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                        Err(e) => {
                            tracing::debug!(error = %e, "{name}: TLS handshake failed");
                            return;
                        }
                    },
                };
                if let Err(e) = served {
                    tracing::debug!(error = %e, "{name}: connection ended with an error");
                }
            }
        };
        let task = tokio::spawn(accept(listener, name, serve));
        let abort = task.abort_handle();
        AcceptLoop {
            task: Mutex::new(Some(task)),
            abort,
        }
    }

    /// Stops accepting and cuts every open connection; waits until the
    /// listener is closed. Later calls do nothing.
    pub(crate) async fn shutdown(&self) {
        self.abort.abort();
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for AcceptLoop {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// Accepts connections until aborted, each served by `serve` in a task of
/// its own.
async fn accept<S, C>(listener: TcpListener, name: &'static str, serve: S)
where
    S: Fn(TcpStream) -> C,
    C: Future<Output = ()> + Send + 'static,
{
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "{name}: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}
