//! A full disk: caching stops, serving continues. The cache directory is a
//! small tmpfs mounted by the test (it needs root, as in CI; without it the
//! tests fail).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::Behaviour;
use glance_cache_support::fixture::*;
use glance_cache_support::wait::*;

const MEMBER: [(&str, &str); 1] = [("x-auth-token", "MEMBER")];

struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache");
        std::fs::create_dir(&path).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "cannot mount a tmpfs for the full-disk tests: they must run as root"
        );
        Tmpfs { path, _dir: dir }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_larger_than_the_free_space_is_relayed_not_cached() {
    let fs = Tmpfs::mount("4m");
    let glance = fake_glance().await;
    let proxy = Proxy::start(&glance.url(), fs.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(BIG), &MEMBER).await;
    assert!(r.complete());
    assert_eq!(md5_hex(&r.body), glance.image_md5(BIG).unwrap());
    proxy.settle().await;
    assert!(!proxy.cached_path(BIG).exists());
    assert!(files_in(&fs.path().join("incomplete")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_filling_up_mid_fill_switches_clients_to_the_upstream() {
    let fs = Tmpfs::mount("4m");
    let glance = fake_glance().await;
    // No Content-Length: the space check cannot refuse the fill up front.
    glance.set_behaviour(BIG, Behaviour::default().chunked());
    let proxy = Proxy::start(&glance.url(), fs.path(), ProxyOptions::default()).await;
    let c = Client::new();
    let downloads: Vec<_> = (0..3)
        .map(|_| {
            let (c, url) = (c.clone(), proxy.file_url(BIG));
            tokio::spawn(async move { c.get(&url, &MEMBER).await })
        })
        .collect();
    let want = glance.image_md5(BIG).unwrap();
    for d in downloads {
        let r = d.await.unwrap();
        assert!(r.complete(), "{:?}", r.error);
        assert_eq!(r.body.len() as u64, BIG_SIZE);
        assert_eq!(md5_hex(&r.body), want);
    }
    proxy.settle().await;
    assert!(!proxy.cached_path(BIG).exists());
    assert!(files_in(&fs.path().join("incomplete")).is_empty());
    assert!(
        glance.ranged_file_gets(BIG) >= 1,
        "followers resumed with ranged requests"
    );
    // The proxy keeps serving and caching what fits.
    let small = c.get(&proxy.file_url(PUB), &MEMBER).await;
    assert_eq!(small.body, b"IMAGEDATA");
}
