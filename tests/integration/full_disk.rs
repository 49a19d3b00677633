//! A full disk: caching stops, serving continues. The cache directory is a
//! small tmpfs mounted by the test (it needs root, as in CI; without it the
//! tests fail).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proxy::*;
use glance_cache_support::client::*;
use glance_cache_support::fake_glance::{
    Behaviour, FakeImage, Gate, RunningFakeGlance, Visibility,
};
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

/// Bytes of disk the file at `path` occupies.
fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// A public 5 MiB image with the given id, added to `glance`.
async fn add_five_mib_image(glance: &RunningFakeGlance, id: &str, seed: u64) {
    glance
        .add_image(
            FakeImage::new(id)
                .pattern(5 << 20, seed)
                .visibility(Visibility::Public)
                .owner("X"),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_reserves_the_whole_image_while_its_length_stays_what_was_written() {
    let fs = Tmpfs::mount("64m");
    let glance = fake_glance().await;
    let gate = Gate::new();
    glance.set_behaviour(BIG, Behaviour::default().hold_after(1 << 20, gate.clone()));
    let proxy = Proxy::start(&glance.url(), fs.path(), ProxyOptions::default()).await;
    let download = {
        let url = proxy.file_url(BIG);
        tokio::spawn(async move { Client::new().get(&url, &MEMBER).await })
    };
    let incomplete = proxy.incomplete_path(BIG);
    wait_for(
        "the fill to write its first MiB",
        Duration::from_secs(20),
        || {
            let incomplete = incomplete.clone();
            async move { std::fs::metadata(&incomplete).is_ok_and(|m| m.len() == 1 << 20) }
        },
    )
    .await;
    // Followers see the written length; the disk already holds the rest.
    assert_eq!(std::fs::metadata(&incomplete).unwrap().len(), 1 << 20);
    assert!(
        allocated(&incomplete) >= BIG_SIZE,
        "{} bytes allocated for a {BIG_SIZE}-byte fill",
        allocated(&incomplete)
    );
    gate.open();
    let r = download.await.unwrap();
    assert!(r.complete(), "{:?}", r.error);
    assert_eq!(md5_hex(&r.body), glance.image_md5(BIG).unwrap());
    proxy.settle().await;
    let cached = proxy.cached_path(BIG);
    assert_eq!(std::fs::metadata(&cached).unwrap().len(), BIG_SIZE);
    assert!(allocated(&cached) <= BIG_SIZE.next_multiple_of(4096));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_fills_that_start_together_the_one_that_does_not_fit_stops_at_once() {
    const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const B: &str = "aaaaaaaa-0000-4000-8000-000000000002";
    // Room for one 5 MiB image, not for two; both fills pass the free-space
    // check before either has written much (the upstream is slow). Without
    // reservations both would write until the disk is full, and fail.
    let fs = Tmpfs::mount("8m");
    let glance = fake_glance().await;
    add_five_mib_image(&glance, A, 1).await;
    add_five_mib_image(&glance, B, 2).await;
    glance.set_default_behaviour(Behaviour::default().rate(8 << 20));
    let proxy = Proxy::start(&glance.url(), fs.path(), ProxyOptions::default()).await;
    let downloads: Vec<_> = [A, B]
        .into_iter()
        .map(|id| {
            let url = proxy.file_url(id);
            tokio::spawn(async move { Client::new().get(&url, &MEMBER).await })
        })
        .collect();
    for (d, id) in downloads.into_iter().zip([A, B]) {
        let r = d.await.unwrap();
        assert!(r.complete(), "{id}: {:?}", r.error);
        assert_eq!(md5_hex(&r.body), glance.image_md5(id).unwrap(), "{id}");
    }
    proxy.settle().await;
    let cached: Vec<_> = [A, B]
        .into_iter()
        .filter(|id| proxy.cached_path(id).exists())
        .collect();
    assert_eq!(cached.len(), 1, "exactly one of the two fits");
    assert_eq!(proxy.cache.metrics().snapshot().fills_committed, 1);
    // The other stopped at once: its client continued from the upstream
    // after its first bytes (or was relayed from the start, when the first
    // fill had reserved before the second was claimed), not after half the
    // disk was written.
    let stopped = if cached[0] == A { B } else { A };
    let resumed_at: Vec<u64> = glance
        .calls()
        .iter()
        .filter(|c| c.is_ranged_file_get(stopped))
        .map(|c| {
            let range = c.headers["range"].to_str().unwrap();
            let start = range.trim_start_matches("bytes=").split('-').next();
            start.unwrap().parse().unwrap()
        })
        .collect();
    assert!(
        resumed_at.iter().all(|&at| at <= 1 << 20),
        "the stopped fill's client resumed at {resumed_at:?}"
    );
    assert!(files_in(&fs.path().join("incomplete")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_cut_short_is_quarantined_without_its_reserved_space() {
    let fs = Tmpfs::mount("64m");
    let glance = fake_glance().await;
    glance.set_behaviour(BIG, Behaviour::default().reset_after(1 << 20));
    let proxy = Proxy::start(&glance.url(), fs.path(), ProxyOptions::default()).await;
    let r = Client::new().get(&proxy.file_url(BIG), &MEMBER).await;
    assert!(!r.complete(), "the upstream broke the body off");
    proxy.settle().await;
    let invalid = proxy.invalid_path(BIG);
    let len = std::fs::metadata(&invalid).unwrap().len();
    assert!(len < BIG_SIZE, "{len} bytes kept");
    assert!(
        allocated(&invalid) <= len.next_multiple_of(4096),
        "{} bytes still allocated for a {len}-byte file",
        allocated(&invalid)
    );
}
