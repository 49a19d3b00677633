//! Hits of a file that must be hashed again: one hashing for all of them,
//! finished whatever the clients do, and never a complete response from a
//! file that is not the one found intact.

use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use http_body_util::BodyExt;

use super::reverify::{wait_for_verdict, Joined};
use super::test_entries::{commit_bytes, open_store};
use super::{recorded, CacheEntry, CacheStore, OpenedHit, VerifyingBody};
use crate::metrics::IntegrityCheck;
use crate::ImageId;

fn id(n: u8) -> ImageId {
    ImageId::parse(&format!("20000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
}

/// 4 MiB: more than a hit's reads ahead of its client.
fn image() -> Vec<u8> {
    (0..4u32 << 20).map(|i| (i % 251) as u8).collect()
}

/// Commits `data` as image `n` and then gives the file another identity
/// (rewritten with `now` in place of the same bytes, another mtime), as an
/// operator's or a restore's write would: the next hit must hash it again.
async fn committed_then_changed(store: &CacheStore, n: u8, data: &[u8], now: &[u8]) -> PathBuf {
    commit_bytes(store, &id(n), data).await;
    let path = store.root().join(id(n).as_str());
    std::fs::write(&path, now).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000))
        .unwrap();
    path
}

/// Image `n`'s entry and its file opened, as a hit finds them: the file
/// must be hashed again.
async fn opened(store: &CacheStore, n: u8) -> (CacheEntry, OpenedHit) {
    let entry = store.lookup(&id(n)).await.unwrap().unwrap();
    let opened = store.open_hit(&entry).await.unwrap().unwrap();
    assert!(
        opened.unverified(&entry).is_some(),
        "the file must be hashed again"
    );
    (entry, opened)
}

/// The body of a hit of that file, as the cache layer serves one.
fn hit_of(store: &CacheStore, (entry, opened): (CacheEntry, OpenedHit)) -> (VerifyingBody, Joined) {
    let expected = recorded(&entry).unwrap();
    let (pending, joined) = store.reverification(&entry, &opened, expected, true);
    (store.verifying_hit_body(entry, opened, pending), joined)
}

/// A hit of image `n` as the cache layer starts one for an unverified file.
async fn verifying_hit(store: &CacheStore, n: u8) -> (VerifyingBody, Joined) {
    let found = opened(store, n).await;
    hit_of(store, found)
}

/// What a client reading `body` to its end receives (it copies each chunk
/// and drops it, as hyper does), and how the body ended.
async fn receive(mut body: VerifyingBody) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap()),
            Err(e) => return (got, Err(e)),
        }
    }
    (got, Ok(()))
}

/// Waits (bounded) until image `n`'s current file is recorded as verified.
async fn until_verified(store: &CacheStore, n: u8) {
    for _ in 0..500 {
        let entry = store.lookup(&id(n)).await.unwrap().unwrap();
        let opened = store.open_hit(&entry).await.unwrap().unwrap();
        if opened.unverified(&entry).is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("image {n} was not verified within 5 s");
}

#[tokio::test]
async fn concurrent_hits_of_a_changed_file_hash_it_once_and_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let data = image();
    committed_then_changed(&store, 1, &data, &data).await;

    // Three hits find the file changed; then each asks for its verdict
    // (nothing runs in between: the joins cannot depend on the timing).
    let mut found = Vec::new();
    for _ in 0..3 {
        found.push(opened(&store, 1).await);
    }
    let hits: Vec<_> = found.into_iter().map(|f| hit_of(&store, f)).collect();
    let joined: Vec<Joined> = hits.iter().map(|(_, j)| *j).collect();
    assert_eq!(
        joined,
        [Joined::Started, Joined::Existing, Joined::Existing]
    );
    let received = futures_util::future::join_all(hits.into_iter().map(|(b, _)| receive(b))).await;
    for (got, end) in received {
        end.unwrap();
        assert!(got == data, "every hit gets the whole image");
    }
    let m = store.metrics().snapshot();
    assert_eq!(m.hit_verifications, 1, "one hashing for the three hits");
    assert_eq!(m.hit_bytes, 3 * data.len() as u64);
    assert_eq!(m.integrity_failures(IntegrityCheck::Hit), 0);
    until_verified(&store, 1).await;

    // Verified now: the next hit has nothing to wait for.
    let entry = store.lookup(&id(1)).await.unwrap().unwrap();
    let opened = store.open_hit(&entry).await.unwrap().unwrap();
    assert_eq!(opened.unverified(&entry), None);
}

#[tokio::test]
async fn every_hit_waiting_on_a_corrupt_file_ends_short_and_it_is_quarantined_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let data = image();
    let mut rotten = data.clone();
    rotten[1 << 20] ^= 0x20;
    committed_then_changed(&store, 2, &data, &rotten).await;

    let found = (opened(&store, 2).await, opened(&store, 2).await);
    let (first, started) = hit_of(&store, found.0);
    let (second, joined) = hit_of(&store, found.1);
    assert_eq!((started, joined), (Joined::Started, Joined::Existing));
    for (got, end) in [receive(first).await, receive(second).await] {
        let e = end.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
        assert!(e.to_string().contains("MD5"), "{e}");
        assert_eq!(got.len(), data.len() - 1, "all but the last byte");
    }
    let m = store.metrics().snapshot();
    assert_eq!(m.hit_verifications, 1);
    assert_eq!(m.integrity_failures(IntegrityCheck::Hit), 1);
    assert!(store.lookup(&id(2)).await.unwrap().is_none(), "row dropped");
    assert!(dir.path().join("invalid").join(id(2).as_str()).exists());
}

#[tokio::test]
async fn a_stalled_client_does_not_hold_up_the_verification() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let data = image();
    committed_then_changed(&store, 3, &data, &data).await;

    // The client takes one chunk, then reads nothing more.
    let (mut body, _) = verifying_hit(&store, 3).await;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, data[..first.len()]);
    until_verified(&store, 3).await;

    // When it reads on, it gets the rest.
    let (rest, end) = receive(body).await;
    end.unwrap();
    assert!(
        [&first[..], &rest[..]].concat() == data,
        "the whole image, once"
    );
}

#[tokio::test]
async fn a_file_written_after_it_was_found_intact_is_not_served_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    let data = image();
    let path = committed_then_changed(&store, 4, &data, &data).await;

    let (mut body, _) = verifying_hit(&store, 4).await;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    until_verified(&store, 4).await;
    // A byte the client has not read yet changes after the hashing.
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.write_all_at(b"!", 3 << 20).unwrap();

    let (rest, end) = receive(body).await;
    let e = end.unwrap_err();
    assert!(e.to_string().contains("changed while it was served"), "{e}");
    assert_eq!(
        first.len() + rest.len(),
        data.len() - 1,
        "all but the last byte"
    );
}

#[tokio::test]
async fn an_empty_file_waits_for_its_verdict_and_ends_complete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(dir.path()).await;
    committed_then_changed(&store, 5, b"", b"").await;
    let (body, joined) = verifying_hit(&store, 5).await;
    assert_eq!(joined, Joined::Started);
    let (got, end) = receive(body).await;
    end.unwrap();
    assert!(got.is_empty());
    until_verified(&store, 5).await;
}

#[test]
fn a_verification_that_stops_without_a_verdict_leaves_its_hits_undecided_not_waiting() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, entry, opened) = rt.block_on(async {
        let store = open_store(dir.path()).await;
        committed_then_changed(&store, 6, b"hello", b"hello").await;
        let entry = store.lookup(&id(6)).await.unwrap().unwrap();
        let opened = store.open_hit(&entry).await.unwrap().unwrap();
        (store, entry, opened)
    });
    let expected = recorded(&entry).unwrap();
    // The verification is spawned on a runtime that shuts down before it
    // runs (a process stopping, say): its task is dropped unfinished.
    let doomed = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let pending = {
        let _in = doomed.enter();
        store
            .reverification(&entry, &opened, expected.clone(), true)
            .0
    };
    drop(doomed);

    rt.block_on(async {
        let e = tokio::time::timeout(Duration::from_secs(10), wait_for_verdict(pending))
            .await
            .expect("a verdict, not a wait without end")
            .unwrap_err();
        assert!(e.to_string().contains("stopped before its verdict"), "{e}");
        // Later hits start a verification of their own, which finishes.
        let (pending, joined) = store.reverification(&entry, &opened, expected, true);
        assert_eq!(joined, Joined::Started);
        wait_for_verdict(pending).await.unwrap();
    });
}
