//! An S3-protocol server embedded in the test process (feature `s3`): [s3s] speaking the
//! protocol, checking AWS signatures (V4 and V2) and storing objects on disk through
//! [s3s_fs], behind a fault-injecting front ([`Fault`]) that also counts every request
//! ([`S3Call`]).
//!
//! [`S3Server::start`] runs it on a thread of its own with its own multi-thread tokio
//! runtime, so it serves the same from `#[test]`, `#[tokio::test]` and
//! `#[tokio::test(flavor = "multi_thread")]`, and keeps serving while the test's runtime
//! blocks. It listens on a free port of 127.0.0.1 and holds one bucket, [`BUCKET`], whose
//! credentials are [`ACCESS_KEY`] / [`SECRET_KEY`] (region [`REGION`]; requests are path-style:
//! `http://127.0.0.1:PORT/glance-cache/<key>`).
//!
//! # What s3s-fs stores where
//!
//! Under [`S3Server::root`]:
//!
//! * `glance-cache/<key>`: an object's bytes, nothing else ([`S3Server::object_path`]); a
//!   key with `/` makes directories. A PUT writes `.tmp.<n>.internal.part` in the root and
//!   renames it into place, so a reader never sees a partial object file.
//! * `.bucket-<b64(bucket)>.object-<b64(key)>.metadata.json` (base64url, no padding): the
//!   user metadata (`x-amz-meta-*`, as `{"user_metadata":{"name":"value"}}`, names lower
//!   case without the prefix) and the content headers (`content_type`, ...)
//!   ([`S3Server::user_metadata`]).
//! * `.bucket-<b64(bucket)>.object-<b64(key)>.internal.json`: the ETag (`{"e_tag":"..."}`,
//!   the MD5 of the bytes, or `<md5 of the parts' md5s>-<parts>` after a multipart upload)
//!   and any checksums the client sent. GET and HEAD answer this stored ETag, so a test that
//!   flips a byte of [`S3Server::object_path`] gets the changed bytes with the original
//!   ETag, as from a disk that rotted ([`S3Server::etag`]).
//! * A multipart upload in progress: `.upload-<uuid>.json` (the access key that started it),
//!   `.bucket-…object-….upload-<uuid>.metadata.json`, and one `.upload_id-<uuid>.part-<n>`
//!   per part, all in the root, none under the bucket: the key appears only when
//!   CompleteMultipartUpload concatenates the parts (into a temporary file renamed into
//!   place). An abandoned upload's files stay until AbortMultipartUpload.
//! * DeleteObject removes the object's bytes and leaves its two JSON files (a later PUT
//!   rewrites them).
//!
//! # Conditional writes
//!
//! s3s-fs answers `412 Precondition Failed` to a PutObject or CompleteMultipartUpload with
//! `If-None-Match: *` when the key exists, and to `If-Match: <etag>` when the ETag differs.
//! Its check runs before it writes, without a lock, so two concurrent creates of one key
//! could both succeed; this server therefore serializes, per key, the requests that carry
//! `If-None-Match` or `If-Match` (the whole request, body included), which makes
//! create-if-absent atomic as on AWS: exactly one of concurrent creates wins. It also reads
//! such a request's body whole before s3s sees it, so that a refused create is answered
//! `412` after its body, as S3 does, and not cut off while its client still sends.
//!
//! # Object bodies
//!
//! s3s-fs reads an object for GetObject 4 KiB per blocking call, which caps a download at
//! about 90 MiB/s on a machine whose disk and loopback move GB/s: slower than any S3
//! service an operator runs, so a benchmark of a client would measure s3s-fs. Once s3s has
//! checked the signature and answered 200 or 206 with its headers, this server sends the
//! body itself from the same file, the same byte range, in reads of up to 1 MiB.
//!
//! # Example
//!
//! ```
//! use glance_cache_support::s3::{Fault, S3Server};
//!
//! let s3 = S3Server::start();
//! assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
//! // A file under the bucket's directory is an object.
//! let path = s3.object_path("images/a");
//! std::fs::create_dir_all(path.parent().unwrap()).unwrap();
//! std::fs::write(&path, b"bytes").unwrap();
//! assert_eq!(s3.keys("images/"), ["images/a"]);
//! s3.set_fault(Fault::Status(503));
//! s3.set_fault(Fault::None);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::BoxError;

/// The one bucket the server holds.
pub const BUCKET: &str = "glance-cache";
/// The access key id the server accepts.
pub const ACCESS_KEY: &str = "glance-cache-test";
/// The secret key that goes with [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "glance-cache-secret";
/// The region clients sign for (s3s accepts any).
pub const REGION: &str = "us-east-1";

/// What the server does to the requests it receives, switched at run time by
/// [`S3Server::set_fault`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Fault {
    /// Serve normally.
    #[default]
    None,
    /// Answer every request with this status and an S3 XML error body (`<Error><Code>…`,
    /// the code S3 uses for the status: `InternalError` for 500, `SlowDown` for 503,
    /// `AccessDenied` for 403, …), without passing it on; the request body is read and
    /// discarded first, so the client sees the status rather than a connection cut while
    /// it sends. Such requests are counted, with [`S3Call::faulted`] set.
    Status(u16),
    /// Wait this long before passing each request on (nothing of the request body is read
    /// meanwhile); requests already being served are not affected.
    Delay(Duration),
    /// Close the listening socket, so new connections are refused (`ECONNREFUSED`), and cut
    /// every open connection, requests in flight included: what a client sees of a server
    /// that died. Any other fault opens the listener again on the same port (with
    /// `SO_REUSEADDR`, retrying for up to 5 s should the port be busy meanwhile: it is not
    /// reserved while closed, so another socket could take it, which on loopback with the
    /// kernel's ephemeral port allocation is unlikely; [`S3Server::set_fault`] panics if it
    /// happens).
    Refuse,
}

/// The S3 operation of a request, as the server classifies it from its method, path and
/// query (path-style requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum S3Op {
    /// `GET /bucket/key`.
    GetObject,
    /// `HEAD /bucket/key`.
    HeadObject,
    /// `PUT /bucket/key` (neither a part nor a copy).
    PutObject,
    /// `PUT /bucket/key` with `x-amz-copy-source`.
    CopyObject,
    /// `POST /bucket/key?uploads`.
    CreateMultipartUpload,
    /// `PUT /bucket/key?partNumber=N&uploadId=U`.
    UploadPart,
    /// `POST /bucket/key?uploadId=U`.
    CompleteMultipartUpload,
    /// `DELETE /bucket/key?uploadId=U`.
    AbortMultipartUpload,
    /// `GET /bucket/key?uploadId=U`.
    ListParts,
    /// `DELETE /bucket/key`.
    DeleteObject,
    /// `POST /bucket?delete`.
    DeleteObjects,
    /// `GET /bucket` (ListObjects or ListObjectsV2).
    ListObjects,
    /// Anything else (bucket operations, ListBuckets, ListMultipartUploads, …).
    Other,
}

/// One request the server received, in arrival order ([`S3Server::calls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Call {
    /// Its operation.
    pub op: S3Op,
    /// Its method.
    pub method: Method,
    /// The bucket named by its path (empty for ListBuckets).
    pub bucket: String,
    /// The object key named by its path, percent-decoded; `None` for bucket operations.
    pub key: Option<String>,
    /// Its query string (empty when none).
    pub query: String,
    /// The status it was answered with; `None` while it is being served, or when the
    /// connection ended first (a cut connection, a [`Fault::Refuse`]).
    pub status: Option<u16>,
    /// Whether a [`Fault::Status`] answered it.
    pub faulted: bool,
}

/// An S3 server on `127.0.0.1` (see the [module documentation](self)); dropping it stops
/// the server, cuts its connections and removes its directory.
pub struct S3Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    control: mpsc::UnboundedSender<Command>,
    thread: Option<std::thread::JoinHandle<()>>,
    // Dropped after `thread` is joined (see `Drop`), so nothing writes there any more.
    root: tempfile::TempDir,
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("addr", &self.addr)
            .field("root", &self.root.path())
            .field("fault", &*lock(&self.shared.fault))
            .finish_non_exhaustive()
    }
}

/// The state the front service and the test share.
#[derive(Default)]
struct Shared {
    fault: Mutex<Fault>,
    requests: AtomicU64,
    calls: Mutex<Vec<S3Call>>,
    /// One lock per `bucket/key` for conditional writes (see the module documentation).
    conditional: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The bucket's directory, where GetObject bodies are read from (see the module
    /// documentation).
    bucket_dir: PathBuf,
}

enum Command {
    SetFault(Fault, std::sync::mpsc::Sender<Result<(), String>>),
    Shutdown,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl S3Server {
    /// Starts a server: a temporary directory holding the bucket [`BUCKET`], a thread with a
    /// two-worker tokio runtime, a listener on a free port of 127.0.0.1 (accepting
    /// HTTP/1.1 and cleartext HTTP/2), requests signed with [`ACCESS_KEY`] /
    /// [`SECRET_KEY`] only. Returns once it accepts connections; panics if it cannot start.
    /// A plain `fn`: call it from any test, async or not.
    pub fn start() -> S3Server {
        let root = tempfile::Builder::new()
            .prefix("glance-cache-s3-")
            .tempdir()
            .expect("temporary directory for the S3 server");
        std::fs::create_dir(root.path().join(BUCKET)).expect("create the bucket directory");
        let fs = s3s_fs::FileSystem::new(root.path())
            .map_err(|e| format!("{e:?}"))
            .expect("s3s-fs on the temporary directory");
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let shared = Arc::new(Shared {
            bucket_dir: root.path().join(BUCKET),
            ..Shared::default()
        });
        let (control, commands) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("s3-server".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("s3-server-worker")
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("tokio runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listener = match TcpListener::bind(("127.0.0.1", 0)).await {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("bind 127.0.0.1:0: {e}")));
                            return;
                        }
                    };
                    let addr = match listener.local_addr() {
                        Ok(a) => a,
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("local address: {e}")));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(addr));
                    serve(listener, addr, service, thread_shared, commands).await;
                });
                // Blocking-pool work (s3s-fs's file operations) gets a moment to finish.
                runtime.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawn the S3 server thread");
        let addr = match ready_rx.recv() {
            Ok(Ok(addr)) => addr,
            Ok(Err(e)) => panic!("the S3 server did not start: {e}"),
            Err(_) => panic!("the S3 server thread ended before it listened"),
        };
        S3Server {
            addr,
            shared,
            control,
            thread: Some(thread),
            root,
        }
    }

    /// `http://127.0.0.1:PORT`, what a client takes as its endpoint (path-style requests).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where it listens (the same port across [`Fault::Refuse`]).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bucket's name, [`BUCKET`].
    pub fn bucket(&self) -> &'static str {
        BUCKET
    }

    /// The access key id it accepts, [`ACCESS_KEY`].
    pub fn access_key(&self) -> &'static str {
        ACCESS_KEY
    }

    /// The secret key it accepts, [`SECRET_KEY`].
    pub fn secret_key(&self) -> &'static str {
        SECRET_KEY
    }

    /// The region to sign for, [`REGION`].
    pub fn region(&self) -> &'static str {
        REGION
    }

    /// The directory s3s-fs stores everything in (the bucket is its subdirectory
    /// [`BUCKET`]; see the module documentation for the layout). Removed on drop.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The file holding the bytes of the object `key` (`root/glance-cache/<key>`), whether
    /// or not it (or, for a key with `/`, its directory) exists. A test may flip a byte of
    /// it or truncate it: GET then serves the file as it is (its length as
    /// `Content-Length`) with the ETag stored at upload ([`etag`](Self::etag)). It may also
    /// write one directly: s3s-fs computes the ETag of such an object from its bytes,
    /// unless the key once held an object deleted through S3, whose stored ETag it keeps
    /// answering.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The keys of the objects in the bucket that start with `prefix`, read from the disk,
    /// sorted. Parts of multipart uploads not yet completed are not objects and are not
    /// listed (they live outside the bucket's directory), nor are "directory" keys that end
    /// in `/`. s3s-fs writes an object's file before its metadata and ETag files, so a key
    /// listed here may not have them yet: wait on [`S3Server::user_metadata`] for those.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let bucket = self.root.path().join(BUCKET);
        let mut keys = Vec::new();
        let mut dirs = vec![bucket.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("read {}: {e}", dir.display()),
            };
            for entry in entries {
                let entry = entry.expect("directory entry");
                let kind = entry.file_type().expect("file type");
                if kind.is_dir() {
                    dirs.push(entry.path());
                } else if kind.is_file() {
                    let path = entry.path();
                    let relative = path.strip_prefix(&bucket).expect("under the bucket");
                    let key = relative
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    if key.starts_with(prefix) {
                        keys.push(key);
                    }
                }
            }
        }
        keys.sort();
        keys
    }

    /// The user metadata (`x-amz-meta-*`: names without the prefix, lower case) stored
    /// with the object `key`, from s3s-fs's metadata file; `None` when the object does not
    /// exist. An object written with none has an empty map.
    pub fn user_metadata(&self, key: &str) -> Option<BTreeMap<String, String>> {
        if !self.object_path(key).is_file() {
            return None;
        }
        let json = self.side_file(key, "metadata").unwrap_or_default();
        Some(
            json.get("user_metadata")
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// The ETag s3s-fs stored for the object `key` (without quotes), the one GET and HEAD
    /// answer whatever the file holds now; `None` when the object does not exist or was
    /// written behind s3s-fs's back.
    pub fn etag(&self, key: &str) -> Option<String> {
        if !self.object_path(key).is_file() {
            return None;
        }
        self.side_file(key, "internal")?
            .get("e_tag")?
            .as_str()
            .map(str::to_owned)
    }

    /// Reads `.bucket-<b64>.object-<b64>.<kind>.json`.
    fn side_file(
        &self,
        key: &str,
        kind: &str,
    ) -> Option<serde_json::Map<String, serde_json::Value>> {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let name = format!(".bucket-{}.object-{}.{kind}.json", b64(BUCKET), b64(key));
        let bytes = std::fs::read(self.root.path().join(name)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Switches the fault (see [`Fault`]); it applies to every request that arrives after
    /// this returns. Blocks until the listener is closed or open again as `fault` wants
    /// (with [`Fault::Refuse`], also until every open connection is cut); panics if the
    /// port cannot be bound again within 5 s.
    pub fn set_fault(&self, fault: Fault) {
        let (reply_tx, reply_rx) = std::sync::mpsc::channel();
        self.control
            .send(Command::SetFault(fault, reply_tx))
            .expect("the S3 server is running");
        match reply_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("S3 server: {e}"),
            Err(_) => panic!("the S3 server stopped"),
        }
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        lock(&self.shared.fault).clone()
    }

    /// How many HTTP requests it has received (faulted ones included), since the start or
    /// the last [`reset_calls`](Self::reset_calls).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Every request it has received, in arrival order.
    pub fn calls(&self) -> Vec<S3Call> {
        lock(&self.shared.calls).clone()
    }

    /// How many requests of operation `op` it received for keys starting with `prefix`
    /// (bucket operations such as [`S3Op::ListObjects`] count for the prefix `""` only).
    pub fn count(&self, op: S3Op, prefix: &str) -> u64 {
        let calls = lock(&self.shared.calls);
        let n = calls
            .iter()
            .filter(|c| c.op == op)
            .filter(|c| match &c.key {
                Some(key) => key.starts_with(prefix),
                None => prefix.is_empty(),
            })
            .count();
        n as u64
    }

    /// How many GetObject requests it received for keys starting with `prefix`.
    pub fn gets(&self, prefix: &str) -> u64 {
        self.count(S3Op::GetObject, prefix)
    }

    /// How many HeadObject requests it received for keys starting with `prefix`.
    pub fn heads(&self, prefix: &str) -> u64 {
        self.count(S3Op::HeadObject, prefix)
    }

    /// How many PutObject requests (single-part uploads) it received for keys starting with
    /// `prefix`.
    pub fn puts(&self, prefix: &str) -> u64 {
        self.count(S3Op::PutObject, prefix)
    }

    /// Forgets the requests counted so far ([`requests`](Self::requests),
    /// [`calls`](Self::calls) and the counts start again from zero).
    pub fn reset_calls(&self) {
        let mut calls = lock(&self.shared.calls);
        calls.clear();
        self.shared.requests.store(0, Ordering::SeqCst);
    }

    /// The environment a child process needs to reach this server through `object_store`'s
    /// `AmazonS3Builder::from_env` (or the AWS SDKs): `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION=us-east-1` and `AWS_ALLOW_HTTP=true`. The
    /// bucket ([`BUCKET`]) is not among them.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.control.send(Command::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // `root` (the temporary directory) is removed when the fields drop, after this.
    }
}

/// The accept loop: serves each connection in a task of `connections`, obeys the test's
/// commands, ends on [`Command::Shutdown`] (or when the server handle is gone), cutting
/// every connection.
async fn serve(
    listener: TcpListener,
    addr: SocketAddr,
    service: s3s::service::S3Service,
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None | Some(Command::Shutdown) => break,
                Some(Command::SetFault(fault, reply)) => {
                    let opened = if fault == Fault::Refuse {
                        listener = None;
                        connections.abort_all();
                        while connections.join_next().await.is_some() {}
                        Ok(())
                    } else if listener.is_none() {
                        rebind(addr).await.map(|l| listener = Some(l))
                    } else {
                        Ok(())
                    };
                    if opened.is_ok() {
                        *lock(&shared.fault) = fault;
                    }
                    let _ = reply.send(opened);
                }
            },
            accepted = accept(listener.as_ref()) => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let http = http.clone();
                    let service = service.clone();
                    let shared = Arc::clone(&shared);
                    connections.spawn(async move {
                        let front = hyper::service::service_fn(move |req| {
                            front(service.clone(), Arc::clone(&shared), req)
                        });
                        if let Err(e) = http.serve_connection(TokioIo::new(stream), front).await {
                            tracing::debug!(error = %e, "s3 server: connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "s3 server: accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Accepts on `listener`, or waits forever when it is closed.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Listens on `addr` again after [`Fault::Refuse`].
async fn rebind(addr: SocketAddr) -> Result<TcpListener, String> {
    let mut last = String::new();
    for _ in 0..50 {
        let bound = (|| {
            let socket = TcpSocket::new_v4()?;
            socket.set_reuseaddr(true)?;
            socket.bind(addr)?;
            socket.listen(1024)
        })();
        match bound {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("cannot listen on {addr} again: {last}"))
}

/// The front service: counts the request, applies the fault, serializes conditional
/// writes per key, and passes the request on to s3s.
async fn front(
    service: s3s::service::S3Service,
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<s3s::Body>, BoxError> {
    let fault = lock(&shared.fault).clone();
    let (op, bucket, key) = classify(
        req.method(),
        req.uri().path(),
        req.uri().query(),
        req.headers(),
    );
    let faulted = matches!(fault, Fault::Status(_));
    let index = {
        let mut calls = lock(&shared.calls);
        calls.push(S3Call {
            op,
            method: req.method().clone(),
            bucket: bucket.clone(),
            key: key.clone(),
            query: req.uri().query().unwrap_or_default().to_owned(),
            status: None,
            faulted,
        });
        shared.requests.fetch_add(1, Ordering::SeqCst);
        calls.len() - 1
    };
    let record = |status: StatusCode| {
        let mut calls = lock(&shared.calls);
        // `reset_calls` may have emptied the list meanwhile.
        if let Some(call) = calls.get_mut(index) {
            call.status = Some(status.as_u16());
        }
    };

    match fault {
        Fault::Status(code) => {
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                frame?;
            }
            let response = error_response(code);
            record(response.status());
            return Ok(response);
        }
        Fault::Delay(delay) => tokio::time::sleep(delay).await,
        Fault::None | Fault::Refuse => {}
    }

    let conditional = matches!(*req.method(), Method::PUT | Method::POST)
        && (req.headers().contains_key(http::header::IF_NONE_MATCH)
            || req.headers().contains_key(http::header::IF_MATCH));
    let key_lock = match (&key, conditional) {
        (Some(key), true) => Some(Arc::clone(
            lock(&shared.conditional)
                .entry(format!("{bucket}/{key}"))
                .or_default(),
        )),
        _ => None,
    };
    let _guard = match &key_lock {
        Some(l) => Some(l.lock().await),
        None => None,
    };
    let req = if conditional {
        // Read whole before s3s sees it: s3s-fs answers 412 without reading the body,
        // and hyper then closes the connection under a client still sending it, which
        // gets a broken pipe instead of the 412. S3 answers after the body. Conditional
        // bodies are small (leases, multipart completions) or a test's own.
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await?.to_bytes();
        Request::from_parts(parts, s3s::Body::from(bytes))
    } else {
        req.map(s3s::Body::from)
    };
    let mut response = service.call(req).await.map_err(BoxError::from)?;
    record(response.status());
    if op == S3Op::GetObject && bucket == BUCKET {
        if let Some(key) = &key {
            let path = shared.bucket_dir.join(key);
            if let Some(body) = object_body(path, response.status(), response.headers()).await {
                *response.body_mut() = body;
            }
        }
    }
    Ok(response)
}

/// The largest read of an object's file for a GetObject body.
const OBJECT_READ: usize = 1 << 20;

/// The body of a GetObject that s3s answered with `status` and `headers`, read from
/// `path` in reads of up to [`OBJECT_READ`] (see the module documentation): the range its
/// `Content-Range` names, or the whole object, `Content-Length` bytes in all, ending short
/// if the file does. `None` (s3s's own body stays) for any other answer, or when the file
/// cannot be opened and positioned.
async fn object_body(path: PathBuf, status: StatusCode, headers: &HeaderMap) -> Option<s3s::Body> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

    if status != StatusCode::OK && status != StatusCode::PARTIAL_CONTENT {
        return None;
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let length: u64 = text(http::header::CONTENT_LENGTH)?.parse().ok()?;
    let start: u64 = match text(http::header::CONTENT_RANGE) {
        // `bytes FIRST-LAST/SIZE`
        Some(range) => range
            .strip_prefix("bytes ")?
            .split_once('-')?
            .0
            .parse()
            .ok()?,
        None => 0,
    };
    let mut file = tokio::fs::File::open(&path).await.ok()?;
    file.seek(std::io::SeekFrom::Start(start)).await.ok()?;
    let chunks = futures_util::stream::try_unfold(
        (file.take(length), length),
        |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let mut buf = bytes::BytesMut::with_capacity(OBJECT_READ.min(left as usize));
            let n = file.read_buf(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            let frame = http_body::Frame::data(buf.freeze());
            Ok::<_, std::io::Error>(Some((frame, (file, left - n as u64))))
        },
    );
    Some(s3s::Body::http_body(http_body_util::StreamBody::new(
        chunks,
    )))
}

/// An S3 error response with `code`'s status.
fn error_response(code: u16) -> Response<s3s::Body> {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let s3_code = match status.as_u16() {
        400 => "InvalidRequest",
        403 => "AccessDenied",
        404 => "NoSuchKey",
        409 => "OperationAborted",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        500 => "InternalError",
        501 => "NotImplemented",
        503 => "SlowDown",
        _ => "InjectedFault",
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{s3_code}</Code>\
         <Message>fault injected by the test S3 server: status {code}</Message>\
         <RequestId>glance-cache-s3-fault</RequestId></Error>"
    );
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/xml")
        .header("x-amz-request-id", "glance-cache-s3-fault")
        .body(s3s::Body::from(body))
        .expect("a valid response")
}

/// The operation, bucket and key of a path-style request.
fn classify(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> (S3Op, String, Option<String>) {
    let path = path.strip_prefix('/').unwrap_or(path);
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) => (bucket, Some(key).filter(|k| !k.is_empty())),
        None => (path, None),
    };
    let key = key.map(percent_decode);
    let query = query.unwrap_or_default();
    let has = |name: &str| query.split('&').any(|p| p.split('=').next() == Some(name));
    let op = if bucket.is_empty() {
        S3Op::Other
    } else {
        match (method, key.is_some()) {
            (&Method::GET, false) if !has("uploads") && !has("location") => S3Op::ListObjects,
            (&Method::POST, false) if has("delete") => S3Op::DeleteObjects,
            (&Method::GET, true) if has("uploadId") => S3Op::ListParts,
            (&Method::GET, true) => S3Op::GetObject,
            (&Method::HEAD, true) => S3Op::HeadObject,
            (&Method::PUT, true) if has("partNumber") && has("uploadId") => S3Op::UploadPart,
            (&Method::PUT, true) if headers.contains_key("x-amz-copy-source") => S3Op::CopyObject,
            (&Method::PUT, true) => S3Op::PutObject,
            (&Method::POST, true) if has("uploads") => S3Op::CreateMultipartUpload,
            (&Method::POST, true) if has("uploadId") => S3Op::CompleteMultipartUpload,
            (&Method::DELETE, true) if has("uploadId") => S3Op::AbortMultipartUpload,
            (&Method::DELETE, true) => S3Op::DeleteObject,
            _ => S3Op::Other,
        }
    };
    (op, percent_decode(bucket), key)
}

/// Decodes `%XX` escapes (a malformed escape stays as it is).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
