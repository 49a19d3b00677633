//! The S3 server against a real S3 client, `object_store`'s `AmazonS3`.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey, S3ConditionalPut};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, GetOptions, ObjectStore, ObjectStoreExt as _, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};

use super::*;

const MIB: usize = 1024 * 1024;

/// A client of `s3` signing with `secret`, without retries (object_store retries 5xx and
/// connection errors up to 10 times over 3 minutes by default).
fn client(s3: &S3Server, secret: &str) -> AmazonS3 {
    // reqwest is built without a bundled rustls provider (see Cargo.toml).
    let _ = rustls::crypto::ring::default_provider().install_default();
    AmazonS3Builder::new()
        .with_endpoint(s3.endpoint())
        .with_allow_http(true)
        .with_bucket_name(s3.bucket())
        .with_region("us-east-1")
        .with_access_key_id(s3.access_key())
        .with_secret_access_key(secret)
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 0,
            retry_timeout: Duration::from_secs(10),
        })
        .build()
        .expect("S3 client")
}

fn store(s3: &S3Server) -> AmazonS3 {
    client(s3, s3.secret_key())
}

/// `len` bytes that differ from one `seed` to another.
fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    hex::encode(md5::Md5::digest(bytes))
}

#[tokio::test(flavor = "multi_thread")]
async fn put_and_get_round_trip_bytes_and_user_metadata() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/round-trip");
    let body = b"hello bytes".to_vec();
    let attributes = Attributes::from_iter([
        (Attribute::Metadata("size".into()), "11"),
        (Attribute::ContentType, "application/octet-stream"),
    ]);
    let put = store
        .put_opts(
            &path,
            PutPayload::from(body.clone()),
            PutOptions {
                attributes,
                ..Default::default()
            },
        )
        .await
        .expect("put");
    let md5 = md5_hex(&body);
    assert_eq!(put.e_tag.as_deref(), Some(format!("\"{md5}\"").as_str()));

    // What the disk holds.
    assert_eq!(s3.keys(""), ["images/round-trip"]);
    assert_eq!(
        std::fs::read(s3.object_path("images/round-trip")).unwrap(),
        body
    );
    let meta = s3.user_metadata("images/round-trip").expect("metadata");
    assert_eq!(meta.get("size").map(String::as_str), Some("11"));
    assert_eq!(s3.etag("images/round-trip"), Some(md5.clone()));

    // GET answers the bytes, the ETag and the attributes, user metadata included.
    let got = store
        .get_opts(&path, GetOptions::default())
        .await
        .expect("get");
    assert_eq!(got.meta.size, 11);
    assert_eq!(
        got.meta.e_tag.as_deref(),
        Some(format!("\"{md5}\"").as_str())
    );
    let attributes = got.attributes.clone();
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());
    assert_eq!(
        attributes
            .get(&Attribute::Metadata("size".into()))
            .map(|v| v.as_ref()),
        Some("11")
    );
    assert_eq!(
        attributes.get(&Attribute::ContentType).map(|v| v.as_ref()),
        Some("application/octet-stream")
    );
    assert_eq!(attributes.len(), 2, "{attributes:?}");

    // A HEAD through get_opts (`head: true`) answers them as well; `head` gives
    // `ObjectMeta` only, which has no attributes.
    let head = store
        .get_opts(
            &path,
            GetOptions {
                head: true,
                ..Default::default()
            },
        )
        .await
        .expect("head via get_opts");
    assert_eq!(
        head.attributes
            .get(&Attribute::Metadata("size".into()))
            .map(|v| v.as_ref()),
        Some("11")
    );
    let meta = store.head(&path).await.expect("head");
    assert_eq!(meta.size, 11);
    assert_eq!(s3.heads("images/"), 2);
    assert_eq!(s3.gets("images/"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_create_of_one_key_is_already_exists() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/once");
    let create = || PutOptions::from(PutMode::Create);
    store
        .put_opts(&path, PutPayload::from_static(b"first"), create())
        .await
        .expect("first create");
    let err = store
        .put_opts(&path, PutPayload::from_static(b"second"), create())
        .await
        .expect_err("second create");
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("412"), "{err}");
    assert_eq!(
        std::fs::read(s3.object_path("images/once")).unwrap(),
        b"first"
    );
    let statuses: Vec<_> = s3.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, [Some(200), Some(412)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_create_with_a_large_body_is_answered_not_cut_off() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/large");
    let create = || PutOptions::from(PutMode::Create);
    store
        .put_opts(&path, PutPayload::from(data(MIB, 1)), create())
        .await
        .expect("first create");
    // A body larger than the socket buffers: answered before it is read, the client
    // would be cut off while still sending it.
    for seed in 2..6u8 {
        let err = store
            .put_opts(&path, PutPayload::from(data(32 * MIB, seed)), create())
            .await
            .expect_err("a second create");
        assert!(
            matches!(err, object_store::Error::AlreadyExists { .. }),
            "create {seed}: {err:?}"
        );
    }
    assert!(std::fs::read(s3.object_path("images/large")).unwrap() == data(MIB, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_of_one_key_have_exactly_one_winner() {
    let s3 = S3Server::start();
    let store = Arc::new(store(&s3));
    let path = ObjectPath::from("images/race");
    let mut tasks = JoinSet::new();
    for seed in 0..8u8 {
        let store = Arc::clone(&store);
        let path = path.clone();
        tasks.spawn(async move {
            let body = data(2 * MIB, seed);
            let result = store
                .put_opts(&path, PutPayload::from(body), PutMode::Create.into())
                .await;
            (seed, result)
        });
    }
    let mut winners = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined.unwrap() {
            (seed, Ok(_)) => winners.push(seed),
            (_, Err(object_store::Error::AlreadyExists { .. })) => {}
            (seed, Err(e)) => panic!("create {seed}: {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = std::fs::read(s3.object_path("images/race")).unwrap();
    assert!(stored == data(2 * MIB, winners[0]), "the winner's bytes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_secret_is_permission_denied() {
    let s3 = S3Server::start();
    let wrong = client(&s3, "not-the-secret");
    let err = wrong
        .put(&ObjectPath::from("x"), PutPayload::from_static(b"x"))
        .await
        .expect_err("put with a wrong secret");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("403"), "{err}");
    let err = wrong
        .get(&ObjectPath::from("x"))
        .await
        .expect_err("get with a wrong secret");
    assert!(
        matches!(err, object_store::Error::PermissionDenied { .. }),
        "{err:?}"
    );
    assert!(s3.keys("").is_empty());
}

/// The files of multipart uploads in progress, in the root.
fn part_files(s3: &S3Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(s3.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".upload_id-"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multipart_upload_appears_only_when_completed() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/big");
    let upload = store
        .put_multipart_opts(
            &path,
            PutMultipartOptions {
                attributes: Attributes::from_iter([(
                    Attribute::Metadata("size".into()),
                    "11534336",
                )]),
                ..Default::default()
            },
        )
        .await
        .expect("create multipart upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 * MIB);
    let body = data(11 * MIB, 7);
    writer.write(&body);
    writer.wait_for_capacity(0).await.expect("parts uploaded");

    // Two full parts are on disk, outside the bucket; the key is not there yet.
    assert_eq!(s3.count(S3Op::UploadPart, "images/big"), 2);
    let parts = part_files(&s3);
    assert_eq!(parts.len(), 2, "{parts:?}");
    assert!(
        parts[0].ends_with(".part-1") && parts[1].ends_with(".part-2"),
        "{parts:?}"
    );
    assert!(s3.keys("").is_empty());
    assert!(!s3.object_path("images/big").exists());
    let err = store.head(&path).await.expect_err("not visible yet");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{err:?}"
    );

    let put = writer.finish().await.expect("complete");
    assert_eq!(s3.keys(""), ["images/big"]);
    assert!(part_files(&s3).is_empty());
    assert_eq!(std::fs::read(s3.object_path("images/big")).unwrap(), body);
    let etag = s3.etag("images/big").unwrap();
    assert!(etag.ends_with("-3"), "{etag}");
    assert_eq!(put.e_tag.as_deref(), Some(format!("\"{etag}\"").as_str()));
    let meta = s3.user_metadata("images/big").unwrap();
    assert_eq!(meta.get("size").map(String::as_str), Some("11534336"));
    let got = store.get(&path).await.unwrap();
    assert_eq!(
        got.attributes
            .get(&Attribute::Metadata("size".into()))
            .map(|v| v.as_ref()),
        Some("11534336")
    );
    assert_eq!(got.bytes().await.unwrap().len(), 11 * MIB);
    assert_eq!(s3.count(S3Op::CreateMultipartUpload, ""), 1);
    assert_eq!(s3.count(S3Op::CompleteMultipartUpload, "images/"), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn aborted_and_abandoned_multipart_uploads_are_not_listed() {
    let s3 = S3Server::start();
    let store = store(&s3);

    let mut aborted = store
        .put_multipart(&ObjectPath::from("images/aborted"))
        .await
        .unwrap();
    aborted
        .put_part(PutPayload::from(data(5 * MIB, 1)))
        .await
        .unwrap();
    assert_eq!(part_files(&s3).len(), 1);
    aborted.abort().await.expect("abort");
    assert!(part_files(&s3).is_empty());
    assert_eq!(s3.count(S3Op::AbortMultipartUpload, "images/aborted"), 1);

    let mut abandoned = store
        .put_multipart(&ObjectPath::from("images/abandoned"))
        .await
        .unwrap();
    abandoned
        .put_part(PutPayload::from(data(5 * MIB, 2)))
        .await
        .unwrap();
    drop(abandoned);

    // The abandoned part stays on disk, outside the bucket.
    assert_eq!(part_files(&s3).len(), 1);
    assert!(s3.keys("").is_empty());
    let listed: Vec<_> = {
        use futures_util::TryStreamExt as _;
        store.list(None).try_collect().await.unwrap()
    };
    assert!(listed.is_empty(), "{listed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn each_fault_behaves_as_documented() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/f");
    store
        .put(&path, PutPayload::from_static(b"bytes"))
        .await
        .unwrap();

    // Status: every request answered with it, a body included.
    s3.set_fault(Fault::Status(500));
    assert_eq!(s3.fault(), Fault::Status(500));
    let err = store.get(&path).await.expect_err("500");
    assert!(err.to_string().contains("500"), "{err}");
    let err = store
        .put(&path, PutPayload::from(data(MIB, 3)))
        .await
        .expect_err("500 on a put");
    assert!(err.to_string().contains("500"), "{err}");
    let faulted: Vec<_> = s3.calls().into_iter().filter(|c| c.faulted).collect();
    assert_eq!(faulted.len(), 2, "{faulted:?}");
    assert!(faulted.iter().all(|c| c.status == Some(500)));
    s3.set_fault(Fault::Status(503));
    let err = store.head(&path).await.expect_err("503");
    assert!(err.to_string().contains("503"), "{err}");

    // Delay: answers after it.
    s3.set_fault(Fault::Delay(Duration::from_millis(400)));
    let t0 = Instant::now();
    store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );

    // Refuse: new connections refused, open ones (and the request in flight) cut.
    s3.set_fault(Fault::Delay(Duration::from_secs(30)));
    let in_flight = {
        let store = store.clone();
        let path = path.clone();
        tokio::spawn(async move { store.get(&path).await.map(|_| ()) })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while s3.gets("images/f") < 2 {
        assert!(Instant::now() < deadline, "the delayed get did not arrive");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t0 = Instant::now();
    s3.set_fault(Fault::Refuse);
    let cut = in_flight.await.unwrap().expect_err("cut by Refuse");
    assert!(t0.elapsed() < Duration::from_secs(5), "{cut}");
    let refused = TcpStream::connect(s3.addr()).expect_err("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
    let err = store.get(&path).await.expect_err("refused");
    let chain = format!("{err:?}");
    assert!(
        chain.contains("Connection refused") || chain.contains("connect"),
        "{chain}"
    );

    // None: serves again, on the same port.
    s3.set_fault(Fault::None);
    let got = store.get(&path).await.expect("served again");
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"bytes");
    assert!(s3.endpoint().ends_with(&s3.addr().port().to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_counted_by_operation_and_key_prefix() {
    let s3 = S3Server::start();
    let store = store(&s3);
    for key in ["a/1", "a/2", "b/1"] {
        store
            .put(&ObjectPath::from(key), PutPayload::from_static(b"x"))
            .await
            .unwrap();
    }
    for key in ["a/1", "a/1", "b/1"] {
        store.get(&ObjectPath::from(key)).await.unwrap();
    }
    store.head(&ObjectPath::from("a/2")).await.unwrap();
    let err = store.get(&ObjectPath::from("a/missing")).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{err:?}"
    );

    assert_eq!(s3.requests(), 8);
    assert_eq!(s3.puts(""), 3);
    assert_eq!(s3.gets("a/"), 3);
    assert_eq!(s3.gets("a/1"), 2);
    assert_eq!(s3.gets(""), 4);
    assert_eq!(s3.heads("a/"), 1);
    let last = s3.calls().pop().unwrap();
    assert_eq!(last.op, S3Op::GetObject);
    assert_eq!(last.bucket, BUCKET);
    assert_eq!(last.key.as_deref(), Some("a/missing"));
    assert_eq!(last.status, Some(404));
    assert_eq!(s3.keys("a/"), ["a/1", "a/2"]);
    s3.reset_calls();
    assert_eq!(s3.requests(), 0);
    assert!(s3.calls().is_empty());
}

#[test]
fn starts_and_stops_from_a_plain_test_and_drop_removes_everything() {
    let s3 = S3Server::start();
    let root = s3.root().to_owned();
    let addr = s3.addr();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = store(&s3);
        store
            .put(&ObjectPath::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
    });
    assert_eq!(s3.keys(""), ["k"]);
    drop(s3);
    assert!(!root.exists(), "{} left behind", root.display());
    let refused = TcpStream::connect(addr).expect_err("stopped");
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn env_configures_a_client_from_a_current_thread_runtime() {
    let s3 = S3Server::start();
    let env = s3.env();
    let names: Vec<_> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "AWS_ENDPOINT",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_ALLOW_HTTP"
        ]
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    // What `AmazonS3Builder::from_env` does with these variables.
    let mut builder = AmazonS3Builder::new().with_bucket_name(s3.bucket());
    for (key, value) in &env {
        let key: AmazonS3ConfigKey = key.to_ascii_lowercase().parse().expect(key);
        builder = builder.with_config(key, value);
    }
    let store = builder.build().unwrap();
    store
        .put(&ObjectPath::from("env"), PutPayload::from_static(b"ok"))
        .await
        .unwrap();
    let got = store.get(&ObjectPath::from("env")).await.unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"ok");
}

#[test]
fn paths_are_classified_and_decoded() {
    let none = HeaderMap::new();
    let c = |m: Method, p: &str, q: Option<&str>| {
        let (op, bucket, key) = classify(&m, p, q, &none);
        (op, bucket, key)
    };
    assert_eq!(
        c(Method::GET, "/glance-cache/a%20b/c%2Fd", None),
        (
            S3Op::GetObject,
            "glance-cache".into(),
            Some("a b/c/d".into())
        )
    );
    assert_eq!(
        c(Method::GET, "/glance-cache", Some("list-type=2&prefix=a")),
        (S3Op::ListObjects, "glance-cache".into(), None)
    );
    assert_eq!(
        c(Method::PUT, "/b/k", Some("partNumber=1&uploadId=u")).0,
        S3Op::UploadPart
    );
    assert_eq!(
        c(Method::POST, "/b/k", Some("uploads")).0,
        S3Op::CreateMultipartUpload
    );
    assert_eq!(
        c(Method::POST, "/b/k", Some("uploadId=u")).0,
        S3Op::CompleteMultipartUpload
    );
    assert_eq!(
        c(Method::DELETE, "/b/k", Some("uploadId=u")).0,
        S3Op::AbortMultipartUpload
    );
    assert_eq!(c(Method::GET, "/", None).0, S3Op::Other);
    assert_eq!(percent_decode("100%"), "100%");
    assert_eq!(percent_decode("%zz%41"), "%zzA");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_object_file_is_served_with_its_original_etag() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/rot");
    let body = data(64 * 1024, 9);
    let put = store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .unwrap();

    // A flipped byte: the new bytes, the old ETag.
    let file = s3.object_path("images/rot");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.e_tag, put.e_tag);
    assert_eq!(got.bytes().await.unwrap().as_ref(), bytes.as_slice());

    // A truncated file: a shorter object, the old ETag.
    std::fs::write(&file, &body[..1000]).unwrap();
    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.e_tag, put.e_tag);
    assert_eq!(got.meta.size, 1000);
    assert_eq!(got.bytes().await.unwrap().as_ref(), &body[..1000]);
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_and_ranged_gets_of_a_large_object_are_byte_exact() {
    let s3 = S3Server::start();
    let store = store(&s3);
    let path = ObjectPath::from("images/large");
    // Not a multiple of the server's 1 MiB reads.
    let body = data(3 * MIB + 12_345, 4);
    store
        .put(&path, PutPayload::from(body.clone()))
        .await
        .unwrap();

    let got = store.get(&path).await.unwrap();
    assert_eq!(got.meta.size, body.len() as u64);
    assert_eq!(got.bytes().await.unwrap().as_ref(), body.as_slice());

    let len = body.len() as u64;
    for range in [0..1, 5..(2 * MIB as u64 + 7), (len - 100)..len, 1..len] {
        let got = store.get_range(&path, range.clone()).await.unwrap();
        let (a, b) = (range.start as usize, range.end as usize);
        assert_eq!(got.as_ref(), &body[a..b], "range {range:?}");
    }
    let ranged = |range| {
        let store = &store;
        let path = &path;
        async move {
            let options = GetOptions {
                range: Some(range),
                ..GetOptions::default()
            };
            let got = store.get_opts(path, options).await.unwrap();
            got.bytes().await.unwrap()
        }
    };
    let suffix = ranged(object_store::GetRange::Suffix(10)).await;
    assert_eq!(suffix.as_ref(), &body[body.len() - 10..]);
    let tail = ranged(object_store::GetRange::Offset(len - 3)).await;
    assert_eq!(tail.as_ref(), &body[body.len() - 3..]);
}
