//! The offline maintenance commands (`prune`, `clean`, `prefetch`,
//! `verify`, `install-links`) and Glance's command names, run as processes on a
//! cache directory, alone or beside a serving proxy.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use glance_cache::store::CacheStore;
use glance_cache_support::fake_glance::{Behaviour, FakeGlance, FakeImage, RunningFakeGlance};
use glance_cache_support::fake_keystone::{FakeKeystone, FakeUser};

use super::support::*;
use glance_cache_support::client::*;
use glance_cache_support::wait::*;

const A: &str = "a0000000-0000-4000-8000-00000000000a";
const B: &str = "b0000000-0000-4000-8000-00000000000b";
const C: &str = "c0000000-0000-4000-8000-00000000000c";
const D: &str = "d0000000-0000-4000-8000-00000000000d";
const UNKNOWN: &str = "e0000000-0000-4000-8000-00000000000e";
const NO_DATA: &str = "f0000000-0000-4000-8000-00000000000f";

/// What a finished command left behind.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `program` (the binary or a link to it) with `args` to completion.
fn run_program(program: &Path, args: &[&str]) -> Run {
    let out = Command::new(program)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run glance-cache-proxy");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs the binary off the async workers (the fake Glance must keep serving).
async fn offline(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_program(Path::new(BIN), &args)
    })
    .await
    .unwrap()
}

/// A configuration for the offline commands (and a proxy on `port`).
fn config(
    dir: &Path,
    cache: &Path,
    upstream: &str,
    default_extra: &str,
    proxy_extra: &str,
) -> PathBuf {
    let path = dir.join("glance-cache.conf");
    std::fs::write(
        &path,
        format!(
            "[DEFAULT]\nimage_cache_dir = {}\n{default_extra}\n\n[proxy]\nupstream_url = {upstream}\n\
             min_free_disk = 0\n{proxy_extra}\n",
            cache.display()
        ),
    )
    .unwrap();
    path
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn set_age(path: &Path, age: Duration) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// Queues `ids`, oldest first, as `PUT /v2/cache/{id}` would.
fn queue(cache: &Path, ids: &[&str]) {
    let dir = cache.join("queue");
    std::fs::create_dir_all(&dir).unwrap();
    for (n, id) in ids.iter().enumerate() {
        let marker = dir.join(id);
        std::fs::write(&marker, b"").unwrap();
        set_age(&marker, Duration::from_secs(100 - n as u64));
    }
}

fn queued(cache: &Path) -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(cache.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    ids.sort();
    ids
}

fn file_md5(path: &Path) -> String {
    md5_hex(&std::fs::read(path).unwrap())
}

fn line_of<'a>(out: &'a str, id: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("no line for {id} in:\n{out}"))
}

async fn glance_with(images: Vec<FakeImage>) -> RunningFakeGlance {
    let mut builder = FakeGlance::builder();
    for image in images {
        builder = builder.image(image);
    }
    builder.spawn().await.expect("start fake glance")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_least_recently_used_entries_down_to_the_configured_size() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    // Four 1 KiB entries, last used 4, 3, 2 and 1 hours ago.
    for (n, id) in [A, B, C, D].iter().enumerate() {
        let path = cache.join(id);
        std::fs::write(&path, vec![b'x'; 1024]).unwrap();
        set_age(&path, Duration::from_secs(3600 * (4 - n as u64)));
    }
    // Index them (last_accessed = mtime), as a proxy does at startup.
    let store = CacheStore::builder(&cache).open().await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 4);
    drop(store);

    let conf = config(
        dir.path(),
        &cache,
        "http://127.0.0.1:9",
        "image_cache_max_size = 2560",
        "",
    );
    let r = offline(&["prune", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout,
        "pruned 2 files, 2048 bytes (cache now 2048 of 2560 bytes)\n"
    );
    assert!(
        !cache.join(A).exists() && !cache.join(B).exists(),
        "the two oldest went"
    );
    assert!(cache.join(C).exists() && cache.join(D).exists());

    let again = offline(&["prune", "--config-file", path_str(&conf)]).await;
    assert_eq!(
        again.stdout, "pruned 0 files, 0 bytes (cache now 2048 of 2560 bytes)\n",
        "{again:?}"
    );
}

#[test]
fn clean_removes_invalid_and_stalled_incomplete_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    for sub in ["invalid", "incomplete", "queue"] {
        std::fs::create_dir_all(cache.join(sub)).unwrap();
    }
    let invalid = cache.join("invalid").join(A);
    std::fs::write(&invalid, b"bad").unwrap();
    let stalled = cache.join("incomplete").join(B);
    std::fs::write(&stalled, b"old").unwrap();
    set_age(&stalled, Duration::from_secs(2 * 86_400));
    let fresh = cache.join("incomplete").join(C);
    std::fs::write(&fresh, b"new").unwrap();
    // Old, but a writer (this test, standing in for a fill) holds it.
    let held = cache.join("incomplete").join(D);
    std::fs::write(&held, b"live").unwrap();
    set_age(&held, Duration::from_secs(2 * 86_400));
    let writer = File::options().write(true).open(&held).unwrap();
    writer.lock().unwrap();
    let marker = cache.join("queue").join(A);
    std::fs::write(&marker, b"").unwrap();

    let conf = config(
        dir.path(),
        &cache,
        "http://127.0.0.1:9",
        "image_cache_stall_time = 86400",
        "",
    );
    let r = run_program(Path::new(BIN), &["clean", "--config-file", path_str(&conf)]);
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        r.stdout,
        "removed 1 invalid and 1 stalled incomplete files\n"
    );
    assert!(!invalid.exists());
    assert!(!stalled.exists());
    assert!(fresh.exists(), "younger than image_cache_stall_time");
    assert!(held.exists(), "a live writer's file is never removed");
    assert!(marker.exists(), "the queue is not touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_caches_the_queue_and_reports_each_failure() {
    let glance = glance_with(vec![
        FakeImage::new(A).pattern(3 << 20, 1),
        FakeImage::new(B).bytes("IMAGEDATA"),
        FakeImage::new(C).pattern(1 << 20, 3),
        FakeImage::new(NO_DATA).no_data(),
    ])
    .await;
    glance.set_behaviour(C, Behaviour::default().corrupt());
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    queue(&cache, &[A, UNKNOWN, B, NO_DATA, C]);
    let conf = config(dir.path(), &cache, &glance.url(), "", "");

    let r = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stdout
            .ends_with("cached 2 of 5 queued images (3 failed)\n"),
        "{r:?}"
    );
    assert!(
        line_of(&r.stdout, A).contains("cached 3145728 bytes"),
        "{r:?}"
    );
    assert!(line_of(&r.stdout, B).contains("cached 9 bytes"), "{r:?}");
    assert!(
        line_of(&r.stdout, UNKNOWN)
            .contains("failed: image lookup: the image service answered 404"),
        "{r:?}"
    );
    assert!(
        line_of(&r.stdout, NO_DATA).contains("failed: image status is \"queued\", not active"),
        "{r:?}"
    );
    assert!(
        line_of(&r.stdout, C).contains("failed: download broke off")
            && line_of(&r.stdout, C).contains("verification failed"),
        "{r:?}"
    );
    assert!(
        r.stderr
            .contains("glance-cache-proxy: error: 3 of 5 queued images could not be cached"),
        "{r:?}"
    );

    assert_eq!(file_md5(&cache.join(A)), glance.image_md5(A).unwrap());
    assert_eq!(file_md5(&cache.join(B)), glance.image_md5(B).unwrap());
    assert!(
        !cache.join(C).exists(),
        "a corrupt image is never committed"
    );
    assert!(cache.join("invalid").join(C).exists(), "kept for clean");
    let mut failed = vec![C.to_string(), UNKNOWN.to_string(), NO_DATA.to_string()];
    failed.sort();
    assert_eq!(queued(&cache), failed, "failures stay queued");
    // Committed by a verified fill: the index has their checksums.
    let store = CacheStore::builder(&cache).open().await.unwrap();
    let entries = store.list().await.unwrap();
    let checksum = |id: &str| {
        entries
            .iter()
            .find(|e| e.image_id.as_str() == id)
            .and_then(|e| e.checksum.clone())
    };
    assert_eq!(checksum(A), glance.image_md5(A));
    assert_eq!(checksum(B), glance.image_md5(B));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_of_an_already_cached_image_downloads_nothing() {
    let glance = glance_with(vec![FakeImage::new(A).pattern(1 << 20, 1)]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let conf = config(dir.path(), &cache, &glance.url(), "", "");
    queue(&cache, &[A]);
    let first = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(first.code, Some(0), "{first:?}");
    assert_eq!(glance.file_gets(A), 1);

    queue(&cache, &[A]);
    let again = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(again.code, Some(0), "{again:?}");
    assert_eq!(
        again.stdout,
        format!("{A}: already cached\ncached 1 of 1 queued images (0 failed)\n")
    );
    assert_eq!(glance.file_gets(A), 1, "no second download");
    assert!(queued(&cache).is_empty(), "dequeued");

    // An index row whose file was removed behind its back is not a cached image.
    std::fs::remove_file(cache.join(A)).unwrap();
    queue(&cache, &[A]);
    let refetch = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(refetch.code, Some(0), "{refetch:?}");
    assert!(
        line_of(&refetch.stdout, A).contains("cached 1048576 bytes"),
        "{refetch:?}"
    );
    assert_eq!(glance.file_gets(A), 2);
    assert_eq!(file_md5(&cache.join(A)), glance.image_md5(A).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_beside_a_serving_proxy_never_duplicates_or_corrupts() {
    const SIZE: u64 = 8 << 20;
    let glance = glance_with(vec![
        FakeImage::new(A).pattern(SIZE, 7),
        FakeImage::new(B).pattern(1 << 20, 8),
    ])
    .await;
    // About 3 s for A.
    glance.set_behaviour(A, Behaviour::default().rate(SIZE / 3));
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url(),
        "min_free_disk = 0",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();

    // A client download makes the proxy fill A ...
    let url = format!("{}/v2/images/{A}/file", proxy.url);
    let download = {
        let (c, url) = (c.clone(), url.clone());
        tokio::spawn(async move { c.get(&url, &[]).await })
    };
    let partial = cache.join("incomplete").join(A);
    wait_for("the proxy's fill", Duration::from_secs(20), || async {
        partial.exists()
    })
    .await;
    // ... while the queue asks for A and B.
    queue(&cache, &[A, B]);
    let r = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(1), "{r:?}\n{}", proxy.log_text());
    assert!(line_of(&r.stdout, A).contains("failed: busy"), "{r:?}");
    assert!(line_of(&r.stdout, B).contains("cached"), "{r:?}");
    assert!(
        r.stdout
            .ends_with("cached 1 of 2 queued images (1 failed)\n"),
        "{r:?}"
    );

    let got = download.await.unwrap();
    assert!(got.complete(), "{:?}", got.error);
    assert_eq!(md5_hex(&got.body), glance.image_md5(A).unwrap());
    wait_for("the proxy's commit", Duration::from_secs(20), || async {
        cache.join(A).exists()
    })
    .await;
    assert_eq!(file_md5(&cache.join(A)), glance.image_md5(A).unwrap());
    assert_eq!(
        glance.file_gets(A),
        1,
        "the prefetch did not download A again"
    );
    assert!(queued(&cache).is_empty(), "the proxy's commit dequeued A");

    // B, committed by the prefetch, is a hit for the proxy.
    let hit = c
        .get(&format!("{}/v2/images/{B}/file", proxy.url), &[])
        .await;
    assert!(hit.complete());
    assert_eq!(md5_hex(&hit.body), glance.image_md5(B).unwrap());
    assert_eq!(file_md5(&cache.join(B)), glance.image_md5(B).unwrap());
    assert_eq!(glance.file_gets(B), 1, "served from the prefetched file");
}

/// Flips the byte in the middle of `path` in place, then puts its mtime
/// back with `touch -d`, as rot that changes no metadata a scan looks at.
fn rot_keeping_mtime(path: &Path) {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let meta = std::fs::metadata(path).unwrap();
    let stamp = format!("@{}.{:09}", meta.mtime(), meta.mtime_nsec());
    let file = File::options().read(true).write(true).open(path).unwrap();
    let middle = meta.len() / 2;
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, middle).unwrap();
    file.write_all_at(&[!byte[0]], middle).unwrap();
    drop(file);
    let touched = Command::new("touch")
        .args(["-d", &stamp])
        .arg(path)
        .status()
        .expect("run touch (coreutils)");
    assert!(touched.success());
    let after = std::fs::metadata(path).unwrap();
    assert_eq!(
        (after.mtime(), after.mtime_nsec(), after.len()),
        (meta.mtime(), meta.mtime_nsec(), meta.len())
    );
}

/// A cache with A (`a_size` bytes) and B (256 KiB) prefetched from a fake
/// Glance: the Glance, the test's directory, the cache and the configuration.
async fn a_and_b_prefetched(
    a_size: u64,
) -> (RunningFakeGlance, tempfile::TempDir, PathBuf, PathBuf) {
    let glance = glance_with(vec![
        FakeImage::new(A).pattern(a_size, 1),
        FakeImage::new(B).pattern(256 << 10, 2),
    ])
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let conf = config(dir.path(), &cache, &glance.url(), "", "");
    queue(&cache, &[A, B]);
    let fetched = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(fetched.code, Some(0), "{fetched:?}");
    (glance, dir, cache, conf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_rot_that_keeps_the_mtime_and_quarantines_it() {
    let (_glance, _dir, cache, conf) = a_and_b_prefetched(3 << 20).await;
    // C was left by Glance's own cache: no recorded checksum.
    std::fs::write(cache.join(C), b"GLANCEDATA").unwrap();
    let store = CacheStore::builder(&cache).open().await.unwrap();
    assert_eq!(store.list().await.unwrap().len(), 3);
    drop(store);

    let clean = offline(&["verify", "--config-file", path_str(&conf)]).await;
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert_eq!(line_of(&clean.stdout, A), format!("{A} intact"));

    rot_keeping_mtime(&cache.join(A));
    let r = offline(&["verify", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        line_of(&r.stdout, A).starts_with(&format!("{A} CORRUPT (MD5 of the bytes is ")),
        "{r:?}"
    );
    assert_eq!(line_of(&r.stdout, B), format!("{B} intact"));
    assert!(line_of(&r.stdout, C).starts_with(&format!("{C} not verified: no recorded checksum")));
    assert!(
        r.stdout.ends_with(
            "verified 3 images: 1 intact, 1 corrupt (quarantined), 1 without a recorded checksum\n"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("1 corrupt cached images quarantined"),
        "{r:?}"
    );
    assert!(!cache.join(A).exists() && cache.join("invalid").join(A).exists());

    // Named images only; one not cached any more; one not an id at all.
    let b = offline(&["verify", "--config-file", path_str(&conf), B]).await;
    assert_eq!(
        (b.code, b.stdout.lines().next()),
        (Some(0), Some(format!("{B} intact").as_str())),
        "{b:?}"
    );
    let a = offline(&["verify", "--config-file", path_str(&conf), A]).await;
    assert_eq!(a.code, Some(1), "{a:?}");
    assert_eq!(line_of(&a.stdout, A), format!("{A} not cached"));
    let bad = offline(&["verify", "--config-file", path_str(&conf), "../etc"]).await;
    assert_eq!(bad.code, Some(1));
    assert!(
        bad.stderr.contains("\"../etc\" is not an image id"),
        "{bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_an_image_it_cannot_read_and_checks_the_others() {
    let (_glance, _dir, cache, conf) = a_and_b_prefetched(1 << 20).await;
    // A's file cannot be opened any more (a symlink to itself: ELOOP), as a
    // file on a failing disk cannot be read; A comes first in the listing.
    std::fs::remove_file(cache.join(A)).unwrap();
    std::os::unix::fs::symlink(A, cache.join(A)).unwrap();

    let r = offline(&["verify", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        line_of(&r.stdout, A).starts_with(&format!("{A} NOT CHECKED: open ")),
        "{r:?}"
    );
    assert_eq!(line_of(&r.stdout, B), format!("{B} intact"), "{r:?}");
    assert!(
        r.stdout.ends_with(
            "verified 2 images: 1 intact, 0 corrupt (quarantined), 0 without a recorded \
             checksum, 1 could not be checked\n"
        ),
        "{r:?}"
    );
    assert!(
        r.stderr.contains("1 cached images could not be checked"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_of_every_image_counts_one_removed_meanwhile_and_succeeds() {
    let (_glance, _dir, cache, conf) = a_and_b_prefetched(1 << 20).await;
    // A is listed but gone by its turn: a serving proxy's prune removes
    // the file, then the row.
    std::fs::remove_file(cache.join(A)).unwrap();

    let r = offline(&["verify", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(
        line_of(&r.stdout, A),
        format!("{A} removed meanwhile (no longer cached)")
    );
    assert_eq!(line_of(&r.stdout, B), format!("{B} intact"), "{r:?}");
    assert!(
        r.stdout.ends_with(
            "verified 1 images: 1 intact, 0 corrupt (quarantined), 0 without a recorded \
             checksum, 1 removed meanwhile\n"
        ),
        "{r:?}"
    );

    // Named, an image not cached is still a failure.
    let a = offline(&["verify", "--config-file", path_str(&conf), A]).await;
    assert_eq!(a.code, Some(1), "{a:?}");
    assert_eq!(line_of(&a.stdout, A), format!("{A} not cached"));
    assert!(
        a.stderr.contains("1 of the named images are not cached"),
        "{a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_beside_a_serving_proxy_disturbs_no_download() {
    const SIZE: u64 = 16 << 20;
    let glance = glance_with(vec![FakeImage::new(A).pattern(SIZE, 3)]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let port = free_port();
    let conf = write_config(
        dir.path(),
        port,
        Some(&cache),
        &glance.url(),
        "min_free_disk = 0",
    );
    let proxy = ProxyProcess::start(&conf, port);
    let c = Client::new();
    let url = format!("{}/v2/images/{A}/file", proxy.url);
    assert!(c.get(&url, &[]).await.complete());
    wait_for("the commit", Duration::from_secs(20), || async {
        cache.join(A).exists()
    })
    .await;
    let hits: Vec<_> = (0..4)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get(&url, &[]).await })
        })
        .collect();
    let r = offline(&["verify", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(0), "{r:?}\n{}", proxy.log_text());
    assert_eq!(line_of(&r.stdout, A), format!("{A} intact"));
    for hit in hits {
        let hit = hit.await.unwrap();
        assert!(hit.complete(), "{:?}", hit.error);
        assert_eq!(md5_hex(&hit.body), glance.image_md5(A).unwrap());
    }
    assert_eq!(glance.file_gets(A), 1);
    // The proxy trusts the file verify recorded.
    let again = c.get(&url, &[]).await;
    assert!(again.complete());
    assert_eq!(glance.file_gets(A), 1);
}

/// The most file GETs of `ids` the fake served at once, each taken to run
/// from `delay` before its response head (the delay the fake waited).
fn max_concurrent_file_gets(glance: &RunningFakeGlance, ids: &[&str], delay: Duration) -> usize {
    let spans: Vec<(Instant, Instant)> = glance
        .calls()
        .iter()
        .filter(|c| ids.iter().any(|id| c.is_file_get(id)))
        .map(|c| (c.at - delay, c.at))
        .collect();
    assert_eq!(spans.len(), ids.len(), "one file GET per image");
    spans
        .iter()
        .map(|(start, _)| {
            let probe = *start + delay / 2;
            spans
                .iter()
                .filter(|(s, e)| *s <= probe && probe < *e)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_bounds_the_concurrent_downloads() {
    let ids = [A, B, C, D];
    let glance = glance_with(
        ids.iter()
            .enumerate()
            .map(|(n, id)| FakeImage::new(*id).pattern(64 << 10, n as u64))
            .collect(),
    )
    .await;
    let delay = Duration::from_millis(600);
    glance.set_default_behaviour(Behaviour::default().header_delay(delay));
    for (jobs, expected) in [("2", 2), ("4", 4), ("1", 1)] {
        glance.clear_calls();
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        queue(&cache, &ids);
        let conf = config(dir.path(), &cache, &glance.url(), "", "");
        let r = offline(&["prefetch", "--jobs", jobs, "--config-file", path_str(&conf)]).await;
        assert_eq!(r.code, Some(0), "{r:?}");
        assert!(r
            .stdout
            .ends_with("cached 4 of 4 queued images (0 failed)\n"));
        assert_eq!(
            max_concurrent_file_gets(&glance, &ids, delay),
            expected,
            "--jobs {jobs}"
        );
    }
    let r = offline(&["prefetch", "--jobs", "0"]).await;
    assert_eq!(r.code, Some(2), "clap refuses --jobs 0: {r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_uses_the_keystone_service_token() {
    let keystone = FakeKeystone::builder()
        .user(
            FakeUser::new("glance", "glance-secret")
                .project("service")
                .roles(["admin"]),
        )
        .spawn()
        .await
        .unwrap();
    let glance = glance_with(vec![FakeImage::new(A).bytes("IMAGEDATA")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    queue(&cache, &[A]);
    let conf = config(dir.path(), &cache, &glance.url(), "", "");
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str(&format!(
        "\n[keystone_authtoken]\nauth_url = {}\nusername = glance\npassword = glance-secret\n\
         project_name = service\nuser_domain_name = Default\nproject_domain_name = Default\n",
        keystone.root_url()
    ));
    std::fs::write(&conf, text).unwrap();

    let r = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(0), "{r:?}");
    let calls: Vec<_> = glance
        .calls()
        .into_iter()
        .filter(|c| c.is_file_get(A) || c.is_metadata_get(A))
        .collect();
    // The prefetcher's lookup, the download, and the fill's own look at the
    // record (for its multihash): all as the service user.
    assert_eq!(calls.len(), 3, "{calls:?}");
    for call in calls {
        let token = call
            .headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .expect("the service token is sent");
        let roles = keystone.roles_of(token).expect("a token Keystone issued");
        assert!(
            roles.iter().any(|r| r == "admin"),
            "the glance user's: {roles:?}"
        );
    }

    keystone.set_failure(Some(http::StatusCode::SERVICE_UNAVAILABLE));
    queue(&cache, &[B]);
    let r = offline(&["prefetch", "--config-file", path_str(&conf)]).await;
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr
            .contains("glance-cache-proxy: error: cannot get a service token from Keystone"),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glance_command_names_work_through_symlinks() {
    let glance = glance_with(vec![FakeImage::new(A).bytes("IMAGEDATA")]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let conf = config(dir.path(), &cache, &glance.url(), "", "");
    // A later file overrides the size limit, for the pruner.
    let small = dir.path().join("small.conf");
    std::fs::write(&small, "[DEFAULT]\nimage_cache_max_size = 0\n").unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for name in [
        "glance-cache-pruner",
        "glance-cache-cleaner",
        "glance-cache-prefetcher",
    ] {
        std::os::unix::fs::symlink(BIN, bin.join(name)).unwrap();
    }
    let run = |name: &str, args: Vec<String>| {
        let program = bin.join(name);
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            run_program(&program, &args)
        })
    };
    let with_conf = || vec!["--config-file".to_string(), path_str(&conf).to_string()];

    queue(&cache, &[A]);
    let r = run("glance-cache-prefetcher", with_conf()).await.unwrap();
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout
            .ends_with("cached 1 of 1 queued images (0 failed)\n"),
        "{r:?}"
    );
    std::fs::write(cache.join("invalid").join(B), b"bad").unwrap();
    let r = run("glance-cache-cleaner", with_conf()).await.unwrap();
    assert_eq!(
        r.stdout, "removed 1 invalid and 0 stalled incomplete files\n",
        "{r:?}"
    );
    let mut args = with_conf();
    args.extend(["--config-file".to_string(), path_str(&small).to_string()]);
    let r = run("glance-cache-pruner", args).await.unwrap();
    assert_eq!(
        r.stdout, "pruned 1 files, 9 bytes (cache now 0 of 0 bytes)\n",
        "{r:?}"
    );

    let help = run("glance-cache-pruner", vec!["--help".into()])
        .await
        .unwrap();
    assert_eq!(help.code, Some(0));
    assert!(help.stdout.contains("glance-cache-proxy prune"), "{help:?}");
    let bad = run("glance-cache-cleaner", vec!["--bogus".into()])
        .await
        .unwrap();
    assert_eq!(bad.code, Some(2), "{bad:?}");
    assert!(bad.stderr.contains("--bogus"), "{bad:?}");
}

#[test]
fn install_links_creates_the_three_names_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let names = [
        "glance-cache-pruner",
        "glance-cache-cleaner",
        "glance-cache-prefetcher",
    ];
    let bin = Path::new(BIN).canonicalize().unwrap();
    let d = path_str(dir.path());
    for round in 0..2 {
        let r = run_program(Path::new(BIN), &["install-links", "--dir", d]);
        assert_eq!(r.code, Some(0), "round {round}: {r:?}");
        for name in names {
            let link = dir.path().join(name);
            assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
            assert_eq!(link.canonicalize().unwrap(), bin);
        }
    }

    // A regular file (say Glance's own script) is never replaced; a
    // foreign symlink only with --force; the rest are still made.
    let other = tempfile::tempdir().unwrap();
    let script = other.path().join("glance-cache-cleaner");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let foreign = other.path().join("glance-cache-pruner");
    std::os::unix::fs::symlink("/bin/true", &foreign).unwrap();
    let o = path_str(other.path());
    let r = run_program(Path::new(BIN), &["install-links", "--dir", o]);
    assert_eq!(r.code, Some(1), "{r:?}");
    assert!(
        r.stderr.contains(path_str(&script)) && r.stderr.contains("not a symlink"),
        "{r:?}"
    );
    assert!(r.stderr.contains("--force"), "{r:?}");
    assert_eq!(std::fs::read_to_string(&script).unwrap(), "#!/bin/sh\n");
    assert_eq!(
        other
            .path()
            .join("glance-cache-prefetcher")
            .canonicalize()
            .unwrap(),
        bin
    );
    let r = run_program(Path::new(BIN), &["install-links", "--force", "--dir", o]);
    assert_eq!(r.code, Some(1), "the script still blocks: {r:?}");
    assert_eq!(
        foreign.canonicalize().unwrap(),
        bin,
        "--force replaced the symlink"
    );
    assert_eq!(std::fs::read_to_string(&script).unwrap(), "#!/bin/sh\n");

    let missing = dir.path().join("nope");
    let r = run_program(
        Path::new(BIN),
        &["install-links", "--dir", path_str(&missing)],
    );
    assert_eq!(r.code, Some(1));
    assert!(
        r.stderr
            .starts_with("glance-cache-proxy: error: cannot create links in")
            && r.stderr.contains(path_str(&missing)),
        "{r:?}"
    );
}

#[test]
fn without_a_cache_directory_the_commands_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("glance-api.conf");
    std::fs::write(&conf, "[DEFAULT]\nbind_port = 9292\n").unwrap();
    for command in ["prune", "clean", "prefetch"] {
        let r = run_program(Path::new(BIN), &[command, "--config-file", path_str(&conf)]);
        assert_eq!(r.code, Some(1), "{r:?}");
        assert!(
            r.stderr.starts_with(&format!(
                "glance-cache-proxy: error: image_cache_dir is not set in the configuration: \
                 there is no cache directory to {command}"
            )),
            "{r:?}"
        );
        assert!(r.stdout.is_empty());
    }
    let bad = dir.path().join("bad.conf");
    std::fs::write(&bad, "[DEFAULT]\nimage_cache_max_size = 10G\n").unwrap();
    let r = run_program(Path::new(BIN), &["prune", "--config-file", path_str(&bad)]);
    assert_eq!(r.code, Some(1));
    assert!(r.stderr.contains("bad.conf:2"), "{r:?}");
}
