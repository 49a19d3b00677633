//! An S3-protocol server for scripts: the test support's embedded [`S3Server`] (s3s-fs on a
//! temporary directory, one bucket, fixed credentials) as a process of its own.
//!
//! ```text
//! cargo build --release -p glance-cache-support --features s3 --example s3-server
//! target/release/examples/s3-server
//! ```
//!
//! It listens on a free port of 127.0.0.1, prints ONE line of JSON on stdout once it
//! accepts connections:
//!
//! ```text
//! {"endpoint":"http://127.0.0.1:PORT","bucket":"glance-cache","access_key_id":"…",
//!  "secret_access_key":"…","region":"us-east-1","root":"/tmp/glance-cache-s3-…","pid":N}
//! ```
//!
//! (`root` is the directory s3s-fs keeps everything in: the object `KEY` is the file
//! `root/BUCKET/KEY`), and serves until it receives SIGTERM or SIGINT, or until its stdin
//! reaches end-of-file (so a script that starts it with a pipe on its stdin stops it by
//! exiting, even when killed). It then stops and removes its directory. The directory is made
//! under `$TMPDIR` (default `/tmp`). Requests are path-style (`endpoint/bucket/key`), signed
//! with the printed keys (AWS signature V4 or V2); plain HTTP only.

use std::io::{Read, Write};

use glance_cache_support::s3::S3Server;
use tokio::signal::unix::{signal, SignalKind};

fn main() {
    let server = S3Server::start();
    let line = serde_json::json!({
        "endpoint": server.endpoint(),
        "bucket": server.bucket(),
        "access_key_id": server.access_key(),
        "secret_access_key": server.secret_key(),
        "region": server.region(),
        "root": server.root(),
        "pid": std::process::id(),
    });
    {
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            // Nobody reads the endpoint: nothing to serve.
            drop(server);
            std::process::exit(1);
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let why = runtime.block_on(async {
        let (eof_tx, eof_rx) = tokio::sync::oneshot::channel::<()>();
        // A plain thread: a blocked read of stdin must not hold up the runtime's shutdown.
        std::thread::Builder::new()
            .name("stdin-watch".into())
            .spawn(move || {
                let mut stdin = std::io::stdin().lock();
                let mut buf = [0u8; 4096];
                loop {
                    match stdin.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
                let _ = eof_tx.send(());
            })
            .expect("spawn the stdin thread");
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = eof_rx => "end of stdin",
        }
    });
    eprintln!("s3-server: {why}: stopping");
    drop(server);
    // The stdin thread may still be blocked in read(2): end the process without waiting.
    std::process::exit(0);
}
