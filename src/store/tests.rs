use super::*;
use std::io::Write;

fn id(n: u8) -> ImageId {
    ImageId::parse(&format!("10000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
}

use super::test_entries::{commit_bytes, open_store as open};

#[tokio::test]
async fn fill_commit_lookup_hit_invalidate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let f = store.begin_fill(&id(1), Some(5)).await.unwrap();
    (&**f.file()).write_all(b"hello").unwrap();
    f.commit(5, "5d41402abc4b2a76b9719d911017c592".into(), true, None)
        .await
        .unwrap();
    assert!(dir.path().join(id(1).as_str()).is_file());
    assert!(!dir.path().join("incomplete").join(id(1).as_str()).exists());
    let entry = store.lookup(&id(1)).await.unwrap().unwrap();
    assert_eq!((entry.size, entry.hits, entry.verified), (5, 0, true));
    assert!(store.open_hit(&entry).await.unwrap().is_some());
    assert!(matches!(
        store.begin_fill(&id(1), None).await,
        Err(NoFill::Cached)
    ));
    assert!(store.invalidate(&id(1)).await.unwrap());
    assert!(store.lookup(&id(1)).await.unwrap().is_none());
    assert!(!store.invalidate(&id(1)).await.unwrap());
}

#[tokio::test]
async fn second_writer_is_refused_while_the_first_holds_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let first = store.begin_fill(&id(2), None).await.unwrap();
    assert!(matches!(
        store.begin_fill(&id(2), None).await,
        Err(NoFill::Busy)
    ));
    drop(first);
    // the lock died with the handle: the leftover is taken over
    assert!(store.begin_fill(&id(2), None).await.is_ok());
}

#[tokio::test]
async fn admission_limits() {
    let dir = tempfile::tempdir().unwrap();
    let store = CacheStore::builder(dir.path())
        .with_max_size(100)
        .with_min_free_disk(u64::MAX / 2)
        .open()
        .await
        .unwrap();
    assert!(matches!(
        store.begin_fill(&id(3), Some(101)).await,
        Err(NoFill::TooLarge { .. })
    ));
    assert!(matches!(
        store.begin_fill(&id(3), Some(10)).await,
        Err(NoFill::NoSpace { .. })
    ));
}

#[tokio::test]
async fn wrong_size_file_is_quarantined_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let f = store.begin_fill(&id(4), None).await.unwrap();
    (&**f.file()).write_all(b"0123456789").unwrap();
    f.commit(10, "x".into(), true, None).await.unwrap();
    std::fs::write(dir.path().join(id(4).as_str()), b"0123").unwrap();
    let entry = store.lookup(&id(4)).await.unwrap().unwrap();
    assert!(store.open_hit(&entry).await.unwrap().is_none());
    assert!(dir.path().join("invalid").join(id(4).as_str()).is_file());
    assert!(store.lookup(&id(4)).await.unwrap().is_none());
}

#[tokio::test]
async fn reconcile_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        // committed + row
        let f = store.begin_fill(&id(5), None).await.unwrap();
        (&**f.file()).write_all(b"abc").unwrap();
        f.commit(3, "y".into(), true, None).await.unwrap();
        // row whose file vanished
        let g = store.begin_fill(&id(6), None).await.unwrap();
        g.commit(0, "z".into(), true, None).await.unwrap();
        std::fs::remove_file(dir.path().join(id(6).as_str())).unwrap();
    }
    // a file without row, a stale incomplete file, junk that is not an id
    std::fs::write(dir.path().join(id(7).as_str()), b"seven").unwrap();
    std::fs::write(
        dir.path().join("incomplete").join(id(8).as_str()),
        b"partial",
    )
    .unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"junk").unwrap();
    let store = open(dir.path()).await;
    let report = store.reconcile().await.unwrap();
    assert_eq!(report.entries, 2);
    let ids: Vec<_> = store
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.image_id)
        .collect();
    assert_eq!(ids, vec![id(5), id(7)]);
    assert!(!dir.path().join("incomplete").join(id(8).as_str()).exists());
    assert!(
        dir.path().join("notes.txt").exists(),
        "non-image files are left alone"
    );
}

#[tokio::test]
async fn reconcile_leaves_a_locked_incomplete_file_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let _writer = store.begin_fill(&id(9), None).await.unwrap();
    let report = store.reconcile().await.unwrap();
    assert_eq!(
        (report.incomplete_in_use, report.stale_incomplete_removed),
        (1, 0)
    );
    assert!(dir.path().join("incomplete").join(id(9).as_str()).exists());
}

#[tokio::test]
async fn unusable_cache_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = CacheStore::builder(file.join("cache"))
        .open()
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("create cache directory"), "{msg}");
    assert!(msg.contains("plain-file"), "{msg}");
}

#[test]
fn a_file_replaced_under_its_path_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let file = std::fs::File::create(&path).unwrap();
    assert!(disk::same_file(&file, &path));
    std::fs::remove_file(&path).unwrap();
    assert!(!disk::same_file(&file, &path), "unlinked");
    std::fs::write(&path, b"new").unwrap();
    assert!(
        !disk::same_file(&file, &path),
        "another file at the same path"
    );
}

async fn commit_hello(store: &CacheStore, n: u8) {
    commit_bytes(store, &id(n), b"hello").await;
}

#[tokio::test]
async fn verify_entry_records_intact_files_and_quarantines_changed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    commit_hello(&store, 1).await;
    let committed = store.lookup(&id(1)).await.unwrap().unwrap();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = std::sync::Arc::clone(&seen);
    let outcome = store
        .verify_entry(&id(1), Some(1 << 20), move |n| {
            counter.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        })
        .await
        .unwrap();
    assert_eq!(outcome, Integrity::Intact);
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::Relaxed),
        5,
        "progress heard of every byte"
    );
    let verified = store.lookup(&id(1)).await.unwrap().unwrap();
    assert!(verified.verified_at >= committed.verified_at);
    let sha = verified.multihash.clone().expect("a SHA-512 recorded");
    assert!(sha.value.starts_with("9b71d224bd62f378"), "sha512(hello)");

    // Same size, other bytes.
    std::fs::write(dir.path().join(id(1).as_str()), b"jello").unwrap();
    let opened = store.open_hit(&verified).await.unwrap().unwrap();
    assert_eq!(
        opened.unverified(&verified),
        Some("changed since it was verified")
    );
    drop(opened);
    match store.verify_entry(&id(1), None, |_| {}).await.unwrap() {
        Integrity::Quarantined(why) => assert!(why.to_string().contains("MD5"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(store.lookup(&id(1)).await.unwrap().is_none());
    assert!(dir.path().join("invalid").join(id(1).as_str()).exists());
    assert_eq!(
        store.verify_entry(&id(1), None, |_| {}).await.unwrap(),
        Integrity::NotCached
    );

    // Adopted without a checksum: nothing to compare with.
    std::fs::write(dir.path().join(id(2).as_str()), b"glance").unwrap();
    assert!(store.lookup(&id(2)).await.unwrap().is_some());
    assert_eq!(
        store.verify_entry(&id(2), None, |_| {}).await.unwrap(),
        Integrity::Unverifiable
    );
}

#[tokio::test]
async fn the_scrubbers_hashing_runs_at_the_lowest_priority_and_verify_at_the_processs() {
    use super::blocking::{own_nice as nice_of_this_thread, BACKGROUND_NICE};
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    commit_hello(&store, 4).await;
    let process = nice_of_this_thread();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    let scrubbed = store
        .scrub_entry(&id(4), 1 << 20, move |_| {
            record.lock().unwrap().push(nice_of_this_thread())
        })
        .await
        .unwrap();
    assert_eq!(scrubbed, Integrity::Intact);
    let record = std::sync::Arc::clone(&seen);
    let verified = store
        .verify_entry(&id(4), None, move |_| {
            record.lock().unwrap().push(nice_of_this_thread())
        })
        .await
        .unwrap();
    assert_eq!(verified, Integrity::Intact);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![BACKGROUND_NICE, process],
        "the scrubber's read, then verify's"
    );
}

#[tokio::test]
async fn a_file_committed_anew_is_not_quarantined_for_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    commit_hello(&store, 3).await;
    let old = store.lookup(&id(3)).await.unwrap().unwrap();
    let old_file = store.open_hit(&old).await.unwrap().unwrap().file;
    // Replaced by a new commit before the old file's verdict.
    store.invalidate(&id(3)).await.unwrap();
    commit_hello(&store, 3).await;
    let new = store.lookup(&id(3)).await.unwrap().unwrap();
    assert_ne!(new.stamp.unwrap().ino, old.stamp.unwrap().ino);
    store.quarantine_file(&old, old_file).await.unwrap();
    assert!(
        dir.path().join(id(3).as_str()).exists(),
        "the new file stays"
    );
    assert!(store.lookup(&id(3)).await.unwrap().is_some(), "and its row");
}

#[tokio::test]
async fn a_corrupt_file_that_cannot_be_moved_to_invalid_is_removed_with_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    commit_hello(&store, 5).await;
    std::fs::remove_dir(dir.path().join("invalid")).unwrap();
    std::fs::write(dir.path().join(id(5).as_str()), b"jello").unwrap();
    verify_finds_corrupt_and_drops_the_row(&store, 5).await;
    assert!(
        !dir.path().join(id(5).as_str()).exists(),
        "the corrupt file is not left to be served"
    );
}

/// Verifies entry `n`, asserts that it was found corrupt and that its row
/// is gone, and returns why it was.
async fn verify_finds_corrupt_and_drops_the_row(store: &CacheStore, n: u8) -> IntegrityFailure {
    let outcome = store.verify_entry(&id(n), None, |_| {}).await.unwrap();
    let Integrity::Quarantined(why) = outcome else {
        panic!("{outcome:?}");
    };
    let listed = store.list().await.unwrap();
    assert!(
        listed.iter().all(|e| e.image_id != id(n)),
        "no row left without its file: {listed:?}"
    );
    why
}

#[tokio::test]
async fn a_corrupt_file_whose_row_records_another_inode_takes_its_row_along() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    commit_hello(&store, 6).await;
    let committed = store.lookup(&id(6)).await.unwrap().unwrap();
    // The directory restored with rsync: the same name, a new inode (and
    // other bytes).
    let path = dir.path().join(id(6).as_str());
    let copy = dir.path().join("restored");
    std::fs::write(&copy, b"jello").unwrap();
    std::fs::rename(&copy, &path).unwrap();
    {
        use std::os::unix::fs::MetadataExt;
        let ino = std::fs::metadata(&path).unwrap().ino();
        assert_ne!(Some(ino), committed.stamp.map(|s| s.ino));
    }
    verify_finds_corrupt_and_drops_the_row(&store, 6).await;
    assert!(dir.path().join("invalid").join(id(6).as_str()).exists());
}

#[tokio::test]
async fn a_file_whose_bytes_cannot_be_read_is_quarantined_as_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    // A directory where the file was: it opens, its size is what the index
    // says, and every read fails (EISDIR), as on a disk that fails.
    let unreadable = dir.path().join("unreadable");
    std::fs::create_dir(&unreadable).unwrap();
    std::fs::write(unreadable.join("x"), b"").unwrap();
    let size = std::fs::metadata(&unreadable).unwrap().len();
    assert!(size > 0);
    let f = store.begin_fill(&id(7), Some(size)).await.unwrap();
    (&**f.file()).write_all(&vec![b'x'; size as usize]).unwrap();
    f.commit(size, "5d41402abc4b2a76b9719d911017c592".into(), true, None)
        .await
        .unwrap();
    let path = dir.path().join(id(7).as_str());
    std::fs::remove_file(&path).unwrap();
    std::fs::rename(&unreadable, &path).unwrap();

    let why = verify_finds_corrupt_and_drops_the_row(&store, 7).await;
    assert!(
        matches!(&why, IntegrityFailure::Unreadable(e) if e.contains("directory")),
        "{why:?}"
    );
    assert!(!path.exists(), "out of the way of the next fill");
}
