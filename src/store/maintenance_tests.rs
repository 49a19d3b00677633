//! Tests of queue, prune, clean, clear and their locks, on real files and a real index.

use super::locks::{Operation, CLEAN_LOCK_FILE, PRUNE_LOCK_FILE};
use super::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime};

fn id(n: u8) -> ImageId {
    ImageId::parse(&format!("20000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
}

async fn open_max(dir: &Path, max: u64) -> CacheStore {
    CacheStore::builder(dir)
        .with_max_size(max)
        .with_min_free_disk(0)
        .open()
        .await
        .unwrap()
}

/// Commits `size` bytes as entry `n`, the way a fill does.
async fn commit(store: &CacheStore, n: u8, size: usize) {
    let f = store.begin_fill(&id(n), None).await.unwrap();
    (&**f.file()).write_all(&vec![n; size]).unwrap();
    f.commit(size as u64, "md5".into(), true, None)
        .await
        .unwrap();
}

fn set_mtime(path: &Path, at: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

fn days_ago(days: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(days * 86_400)
}

fn entry_exists(dir: &Path, n: u8) -> bool {
    dir.join(id(n).as_str()).exists()
}

async fn listed(store: &CacheStore) -> Vec<ImageId> {
    let mut ids: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.image_id)
        .collect();
    ids.sort();
    ids
}

fn disjoint(a: (Instant, Instant), b: (Instant, Instant)) -> bool {
    a.1 <= b.0 || b.1 <= a.0
}

// ---- clean ----

#[tokio::test]
async fn clean_removes_invalid_and_stalled_files_but_never_a_live_fill() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 1 << 20).await;
    std::fs::write(d.join("invalid").join(id(1).as_str()), b"bad").unwrap();
    std::fs::write(d.join("invalid").join("not-an-id"), b"bad").unwrap();
    let old = d.join("incomplete").join(id(2).as_str());
    std::fs::write(&old, b"stalled").unwrap();
    set_mtime(&old, days_ago(2));
    let fresh = d.join("incomplete").join(id(3).as_str());
    std::fs::write(&fresh, b"fresh").unwrap();
    // A live fill whose file looks old: it holds the lock, so it stays.
    let live = store.begin_fill(&id(4), None).await.unwrap();
    live.file().set_modified(days_ago(2)).unwrap();
    // Not clean's business: queue markers and committed entries.
    commit(&store, 5, 10).await;
    assert!(store.queue_image(&id(6)).await.unwrap());

    let report = store.clean(Duration::from_secs(86_400)).await.unwrap();
    assert_eq!((report.invalid_removed, report.incomplete_removed), (2, 1));
    assert!(report.started <= report.finished);
    assert_eq!(std::fs::read_dir(d.join("invalid")).unwrap().count(), 0);
    assert!(!old.exists());
    assert!(fresh.exists());
    assert!(d.join("incomplete").join(id(4).as_str()).exists());
    assert!(entry_exists(d, 5));
    assert!(store.is_queued(&id(6)).await.unwrap());
    assert_eq!(listed(&store).await, vec![id(5)]);

    // stall 0: every unlocked incomplete file goes, the live one stays.
    let report = store.clean(Duration::ZERO).await.unwrap();
    assert_eq!((report.invalid_removed, report.incomplete_removed), (0, 1));
    assert!(!fresh.exists());
    assert!(d.join("incomplete").join(id(4).as_str()).exists());

    // Once the writer is gone, its stalled file is fair game.
    drop(live);
    let report = store.clean(Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(report.incomplete_removed, 1);
    assert!(!d.join("incomplete").join(id(4).as_str()).exists());
}

#[tokio::test]
async fn clean_with_a_stall_longer_than_the_epoch_removes_no_incomplete_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 1 << 20).await;
    let old = dir.path().join("incomplete").join(id(1).as_str());
    std::fs::write(&old, b"x").unwrap();
    set_mtime(&old, days_ago(2));
    let report = store.clean(Duration::MAX).await.unwrap();
    assert_eq!(report.incomplete_removed, 0);
    assert!(old.exists());
}

// ---- prune ----

#[tokio::test]
async fn prune_of_an_empty_cache_reports_zeros() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 0).await;
    let report = store.prune().await.unwrap();
    assert_eq!((report.files, report.bytes, report.orphans), (0, 0, 0));
}

#[tokio::test]
async fn prune_removes_least_recently_accessed_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 5120).await;
    for n in 0..10 {
        commit(&store, n, 1024).await;
    }
    for n in 0..10 {
        tokio::time::sleep(Duration::from_millis(2)).await;
        store.inner.index.record_access(&id(n), true);
    }
    tokio::time::sleep(Duration::from_millis(2)).await;
    commit(&store, 99, 1024).await;
    assert_eq!(store.cache_size().await.unwrap(), 11 * 1024);

    let report = store.prune().await.unwrap();
    assert_eq!((report.files, report.bytes, report.orphans), (6, 6144, 0));
    for n in 0..6 {
        assert!(!entry_exists(d, n), "entry {n} should be pruned");
    }
    for n in [6, 7, 8, 9, 99] {
        assert!(entry_exists(d, n), "entry {n} should remain");
    }
    assert_eq!(
        listed(&store).await,
        vec![id(6), id(7), id(8), id(9), id(99)]
    );
    assert_eq!(store.cache_size().await.unwrap(), 5120);
}

#[tokio::test]
async fn prune_stops_when_the_size_equals_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 102_400).await;
    for n in 0..15 {
        commit(&store, n, 10_240).await;
    }
    let report = store.prune().await.unwrap();
    assert_eq!((report.files, report.bytes), (5, 51_200));
    let rows = listed(&store).await;
    assert_eq!(rows.len(), 10);
    for n in 0..15 {
        assert_eq!(
            entry_exists(d, n),
            rows.contains(&id(n)),
            "file and row disagree for {n}"
        );
    }
    assert_eq!(store.cache_size().await.unwrap(), 102_400);
    let again = store.prune().await.unwrap();
    assert_eq!((again.files, again.bytes), (0, 0));
}

#[tokio::test]
async fn prune_with_limit_zero_removes_everything() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 0).await;
    commit(&store, 1, 100).await;
    commit(&store, 2, 50).await;
    let report = store.prune().await.unwrap();
    assert_eq!((report.files, report.bytes), (2, 150));
    assert_eq!(store.cache_size().await.unwrap(), 0);
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn prune_terminates_and_reports_files_without_rows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 0).await;
    // Orphans written after open (open would adopt them).
    std::fs::write(d.join(id(1).as_str()), b"orphan one").unwrap();
    std::fs::write(d.join(id(2).as_str()), b"orphan two").unwrap();
    let report = tokio::time::timeout(Duration::from_secs(10), store.prune())
        .await
        .expect("prune with only orphans must end")
        .unwrap();
    assert_eq!((report.files, report.bytes, report.orphans), (0, 0, 2));

    commit(&store, 3, 7).await;
    let report = tokio::time::timeout(Duration::from_secs(10), store.prune())
        .await
        .expect("prune must end")
        .unwrap();
    assert_eq!((report.files, report.bytes, report.orphans), (1, 7, 2));
    assert!(entry_exists(d, 1) && entry_exists(d, 2) && !entry_exists(d, 3));
    assert_eq!(store.cache_size().await.unwrap(), 20);
}

#[tokio::test]
async fn prune_drops_rows_whose_file_is_gone_without_counting_them() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 0).await;
    commit(&store, 1, 10).await;
    commit(&store, 2, 10).await;
    std::fs::remove_file(d.join(id(1).as_str())).unwrap();
    let report = store.prune().await.unwrap();
    assert_eq!((report.files, report.bytes), (1, 10));
    assert!(store.list().await.unwrap().is_empty());
}

#[tokio::test]
async fn prune_leaves_fills_alone_and_running_hits_finish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 0).await;
    commit(&store, 1, 4096).await;
    let entry = store.lookup(&id(1)).await.unwrap().unwrap();
    let file = store.open_hit(&entry).await.unwrap().unwrap().file;
    let fill = store.begin_fill(&id(2), None).await.unwrap();
    (&**fill.file()).write_all(b"in progress").unwrap();

    let report = store.prune().await.unwrap();
    assert_eq!(report.files, 1);
    assert!(d.join("incomplete").join(id(2).as_str()).exists());
    let mut bytes = Vec::new();
    (&*file).read_to_end(&mut bytes).unwrap();
    assert_eq!(bytes, vec![1u8; 4096], "an open hit keeps its bytes");
}

// ---- size and clear ----

#[tokio::test]
async fn cache_size_and_clear_see_only_image_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 1 << 20).await;
    commit(&store, 1, 100).await;
    commit(&store, 2, 200).await;
    std::fs::write(d.join(id(3).as_str()), b"orphan").unwrap();
    // Junk and our own lock files in D, a queue marker, an incomplete file.
    std::fs::write(d.join("notes.txt"), b"junk").unwrap();
    std::fs::write(d.join("glance-cache-prune"), b"").unwrap();
    std::fs::create_dir(d.join(id(4).as_str())).unwrap();
    store.prune().await.unwrap();
    store.clean(Duration::from_secs(3600)).await.unwrap();
    assert!(store.queue_image(&id(5)).await.unwrap());
    std::fs::write(d.join("incomplete").join(id(6).as_str()), b"partial").unwrap();
    assert_eq!(store.cache_size().await.unwrap(), 306);

    assert_eq!(store.clear_cache().await.unwrap(), 3);
    assert!(store.list().await.unwrap().is_empty());
    assert_eq!(store.cache_size().await.unwrap(), 0);
    for kept in [
        "cache.db",
        "cache.db-wal",
        "cache.db-shm",
        "notes.txt",
        "glance-cache-prune",
        PRUNE_LOCK_FILE,
        CLEAN_LOCK_FILE,
        id(4).as_str(),
    ] {
        assert!(d.join(kept).exists(), "{kept} must survive a clear");
    }
    assert!(store.is_queued(&id(5)).await.unwrap());
    assert!(d.join("incomplete").join(id(6).as_str()).exists());
    // The index still works after the clear.
    commit(&store, 1, 10).await;
    assert_eq!(listed(&store).await, vec![id(1)]);
    assert_eq!(store.clear_cache().await.unwrap(), 1);
    assert_eq!(store.clear_cache().await.unwrap(), 0);
}

#[test]
fn lock_files_are_never_image_ids() {
    for name in [PRUNE_LOCK_FILE, CLEAN_LOCK_FILE] {
        assert!(ImageId::parse(name).is_err(), "{name}");
    }
}

// ---- queue ----

#[tokio::test]
async fn queue_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = open_max(d, 1 << 20).await;
    let i = id(1);
    assert!(store.queue_image(&i).await.unwrap());
    assert!(store.is_queued(&i).await.unwrap());
    assert_eq!(store.queued().await.unwrap(), vec![i.clone()]);
    assert!(!store.queue_image(&i).await.unwrap(), "queued already");
    assert_eq!(store.queued().await.unwrap().len(), 1);

    commit(&store, 1, 8).await;
    assert!(!store.is_queued(&i).await.unwrap(), "a commit dequeues");
    assert!(store.queued().await.unwrap().is_empty());
    assert!(!store.queue_image(&i).await.unwrap(), "cached already");
    assert!(!store.is_queued(&i).await.unwrap());

    let _writer = store.begin_fill(&id(2), None).await.unwrap();
    assert!(!store.queue_image(&id(2)).await.unwrap(), "being cached");
    assert!(!store.is_queued(&id(2)).await.unwrap());

    // After cleaning, queue "0", "1", "2" (ids sorting the other way).
    assert_eq!(store.clear_queue().await.unwrap(), 0);
    let (zero, one, two) = (id(0x32), id(0x31), id(0x30));
    let t = SystemTime::now() - Duration::from_secs(60);
    for (k, q) in [&zero, &one, &two].into_iter().enumerate() {
        assert!(store.queue_image(q).await.unwrap());
        set_mtime(
            &d.join("queue").join(q.as_str()),
            t + Duration::from_secs(k as u64),
        );
    }
    std::fs::write(d.join("queue").join("junk"), b"").unwrap();
    assert_eq!(
        store.queued().await.unwrap(),
        vec![zero.clone(), one.clone(), two.clone()]
    );
    // Equal mtimes: by id.
    set_mtime(&d.join("queue").join(zero.as_str()), t);
    set_mtime(&d.join("queue").join(one.as_str()), t);
    assert_eq!(
        store.queued().await.unwrap(),
        vec![one.clone(), zero.clone(), two.clone()]
    );

    assert!(store.dequeue(&one).await.unwrap());
    assert!(
        !store.dequeue(&one).await.unwrap(),
        "missing is not an error"
    );
    assert_eq!(store.queued().await.unwrap(), vec![zero, two]);
    assert_eq!(store.clear_queue().await.unwrap(), 2);
    assert!(store.queued().await.unwrap().is_empty());
    assert!(d.join("queue").join("junk").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_listing_survives_markers_vanishing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 1 << 20).await;
    for n in 0..20 {
        store.queue_image(&id(n)).await.unwrap();
    }
    let churn = {
        let store = store.clone();
        tokio::spawn(async move {
            for round in 0..50u8 {
                let n = round % 20;
                store.dequeue(&id(n)).await.unwrap();
                store.queue_image(&id(n)).await.unwrap();
            }
        })
    };
    for _ in 0..50 {
        let listed = store.queued().await.unwrap();
        assert!(listed.len() <= 20);
    }
    churn.await.unwrap();
    assert_eq!(store.queued().await.unwrap().len(), 20);
}

// ---- serialisation ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_prunes_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 0).await;
    for n in 0..40 {
        commit(&store, n, 16).await;
    }
    let a = tokio::spawn({
        let store = store.clone();
        async move { store.prune().await }
    });
    let b = tokio::spawn({
        let store = store.clone();
        async move { store.prune().await }
    });
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(
        disjoint((a.started, a.finished), (b.started, b.finished)),
        "{a:?} / {b:?}"
    );
    assert_eq!(a.files + b.files, 40);
    assert_eq!(a.bytes + b.bytes, 640);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cleans_do_not_interleave() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 0).await;
    for n in 0..40 {
        std::fs::write(dir.path().join("invalid").join(id(n).as_str()), b"x").unwrap();
    }
    let a = tokio::spawn({
        let store = store.clone();
        async move { store.clean(Duration::ZERO).await }
    });
    let b = tokio::spawn({
        let store = store.clone();
        async move { store.clean(Duration::ZERO).await }
    });
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert!(
        disjoint((a.started, a.finished), (b.started, b.finished)),
        "{a:?} / {b:?}"
    );
    assert_eq!(a.invalid_removed + b.invalid_removed, 40);
}

#[tokio::test]
async fn a_held_prune_lock_makes_prune_wait_but_not_clean() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_max(dir.path(), 0).await;
    commit(&store, 1, 10).await;
    let guard = store.maintenance_lock(Operation::Prune).await.unwrap();
    let mut waiting = tokio::spawn({
        let store = store.clone();
        async move { store.prune().await }
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut waiting)
            .await
            .is_err(),
        "prune ran while the prune lock was held"
    );
    tokio::time::timeout(Duration::from_secs(5), store.clean(Duration::ZERO))
        .await
        .expect("clean must not wait for the prune lock")
        .unwrap();
    let released = Instant::now();
    drop(guard);
    let report = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("prune must run once the lock is released")
        .unwrap()
        .unwrap();
    assert!(report.started >= released);
    assert_eq!(report.files, 1);
}

#[tokio::test]
async fn maintenance_locks_hold_across_stores_sharing_a_directory() {
    // Two stores on one directory stand for two processes: they share no
    // memory, only the lock files.
    let dir = tempfile::tempdir().unwrap();
    let first = open_max(dir.path(), 0).await;
    let second = open_max(dir.path(), 0).await;
    commit(&first, 1, 10).await;
    for op in [Operation::Prune, Operation::Clean] {
        let guard = first.maintenance_lock(op).await.unwrap();
        let mut waiting = tokio::spawn({
            let second = second.clone();
            async move {
                match op {
                    Operation::Prune => second.prune().await.map(|r| r.started),
                    Operation::Clean => second.clean(Duration::ZERO).await.map(|r| r.started),
                }
            }
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(200), &mut waiting)
                .await
                .is_err(),
            "{op:?} ran in the second store while the first held its lock"
        );
        let released = Instant::now();
        drop(guard);
        let started = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the second store must proceed once the lock is released")
            .unwrap()
            .unwrap();
        assert!(started >= released, "{op:?}");
    }
    assert!(second.list().await.unwrap().is_empty());
}

#[test]
fn maintenance_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = rt.block_on(open_max(dir.path(), 0));
    let i = id(1);
    send(&store.queue_image(&i));
    send(&store.queued());
    send(&store.is_queued(&i));
    send(&store.dequeue(&i));
    send(&store.clear_queue());
    send(&store.clear_cache());
    send(&store.cache_size());
    send(&store.prune());
    send(&store.clean(Duration::ZERO));
}
