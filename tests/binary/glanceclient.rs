//! The REAL `glance` command-line client (python-glanceclient, installed by
//! tests/harness/setup-python.sh) driving the proxy's cache API, with a real
//! Glance behind the proxy. CI=true turns a missing client into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::real_glance::{venv_dir, GlanceAuth, RealGlance};
use glance_cache_support::wait::*;

const TOKEN: &str = "op-s3cret";

/// The real `glance` command (python-glanceclient) from the Glance venv.
pub(crate) fn glance_cli() -> PathBuf {
    let bin = venv_dir().join("bin").join("glance");
    assert!(
        bin.is_file(),
        "python-glanceclient is missing at {} (bash tests/run.sh installs it)",
        bin.display()
    );
    bin
}

pub(crate) struct Cli {
    pub(crate) bin: PathBuf,
    pub(crate) url: String,
}

impl Cli {
    pub(crate) fn run_with(&self, token: &str, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(&self.bin)
            .args(["--os-image-url", &self.url, "--os-auth-token", token])
            .args(args)
            .env_remove("OS_AUTH_URL")
            .env_remove("OS_CLOUD")
            .env_remove("OS_USERNAME")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_with(TOKEN, args)
    }

    /// (cached ids, queued ids) as `glance cache-list` prints them.
    fn list(&self) -> (Vec<String>, Vec<String>) {
        let (code, out, err) = self.run(&["cache-list"]);
        assert_eq!(code, 0, "cache-list failed: {out}{err}");
        let (mut cached, mut queued) = (Vec::new(), Vec::new());
        for line in out.lines() {
            let cols: Vec<&str> = line.split('|').map(str::trim).collect();
            if cols.len() > 3 && cols[1].len() == 36 {
                match cols[2] {
                    "cached" => cached.push(cols[1].to_string()),
                    "queued" => queued.push(cols[1].to_string()),
                    other => panic!("unexpected state {other:?} in {line}"),
                }
            }
        }
        (cached, queued)
    }
}

fn image_file(dir: &Path, name: &str, len: usize, seed: u8) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        (0..len)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_glance_client_manages_the_proxy_cache() {
    let bin = glance_cli();
    let glance = tokio::task::spawn_blocking(|| RealGlance::start(GlanceAuth::NoAuth))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        image_file(dir.path(), "a.raw", 2 << 20, 3),
        image_file(dir.path(), "b.raw", 1 << 20, 5),
    );
    let ida = tokio::task::block_in_place(|| glance.create_image(&a));
    let idb = tokio::task::block_in_place(|| glance.create_image(&b));
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url,
        &format!("management_auth = static\nadmin_tokens = {TOKEN}\nprefetch_retry_delay = 1"),
    );
    let proxy = ProxyProcess::start(&conf, port);
    let cli = Cli {
        bin,
        url: proxy.url.clone(),
    };

    // Empty cache: the table has a header and no rows.
    let (code, out, err) = cli.run(&["cache-list"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Last Accessed (UTC)"), "{out}");
    assert_eq!(cli.list(), (vec![], vec![]));

    // A download through the proxy caches image A.
    let c = Client::new();
    let r = c
        .get(&format!("{}/v2/images/{ida}/file", proxy.url), &[])
        .await;
    assert_eq!(r.status, 200);
    wait_for("A listed as cached", Duration::from_secs(30), || async {
        tokio::task::block_in_place(|| cli.list()).0.contains(&ida)
    })
    .await;
    let (code, out, _) = cli.run(&["cache-list"]);
    assert_eq!(code, 0);
    let row = out.lines().find(|l| l.contains(&ida)).expect("A listed");
    assert!(row.contains("cached") && row.contains("2097152"), "{row}");

    // cache-queue: silent, and the proxy caches B at once.
    let (code, out, err) = cli.run(&["cache-queue", &idb]);
    assert_eq!(
        (code, out.trim(), err.trim()),
        (0, "", ""),
        "cache-queue prints nothing"
    );
    wait_for("B prefetched", Duration::from_secs(30), || async {
        tokio::task::block_in_place(|| cli.list()).0.len() == 2
    })
    .await;
    assert!(cache.join(&idb).exists());

    // cache-delete removes one entry.
    let (code, _, err) = cli.run(&["cache-delete", &ida]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cli.list().0, vec![idb.clone()]);
    assert!(!cache.join(&ida).exists());

    // cache-clear --target queue / cache / both.
    std::fs::write(cache.join("queue").join(&ida), b"").unwrap();
    assert_eq!(cli.list(), (vec![idb.clone()], vec![ida.clone()]));
    assert_eq!(cli.run(&["cache-clear", "--target", "queue"]).0, 0);
    assert_eq!(cli.list(), (vec![idb.clone()], vec![]));
    std::fs::write(cache.join("queue").join(&ida), b"").unwrap();
    assert_eq!(cli.run(&["cache-clear", "--target", "cache"]).0, 0);
    assert_eq!(cli.list(), (vec![], vec![ida.clone()]));
    assert!(!cache.join(&idb).exists());
    let r = c
        .get(&format!("{}/v2/images/{idb}/file", proxy.url), &[])
        .await;
    assert_eq!(r.status, 200);
    wait_for(
        "B listed as cached again",
        Duration::from_secs(30),
        || async { tokio::task::block_in_place(|| cli.list()).0.contains(&idb) },
    )
    .await;
    assert_eq!(cli.run(&["cache-clear", "--target", "both"]).0, 0);
    assert_eq!(cli.list(), (vec![], vec![]));
    assert!(cache.join("cache.db").exists());

    // A token the proxy does not know: the client reports the refusal.
    let (code, out, err) = cli.run_with("not-an-admin", &["cache-list"]);
    assert_ne!(code, 0);
    // glanceclient's wording for a 401.
    assert!(
        format!("{out}{err}").contains("Invalid OpenStack Identity credentials"),
        "{out}{err}"
    );
}
