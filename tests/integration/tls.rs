//! TLS on every hop, with certificates made by the tests: the proxy in front
//! of an https upstream (a private CA, an untrusted certificate, mutual TLS,
//! HTTP/2 through ALPN), its own TLS listener (ALPN, client certificates,
//! certificate reload while a download runs), and Keystone over https.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use glance_cache::auth::manage::{KeystoneOptions, ManagementAuth, PolicyRule, Refusal};
use glance_cache::server::ClientAddr;
use glance_cache::tls::{ClientTls, ServerTls, TlsError};
use glance_cache_support::fake_keystone::{FakeKeystone, FakeUser};
use glance_cache_support::fixture::*;
use glance_cache_support::pki::TestPki;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::ServerName;
use sha2::{Digest, Sha256};

use crate::proxy::*;

const MEMBER: (&str, &str) = ("x-auth-token", "MEMBER");

/// The proxy in front of `upstream`, checking its certificate with `tls`;
/// the cache in `dir`.
async fn behind(upstream: &str, dir: &std::path::Path, tls: ClientTls) -> Proxy {
    let options = ProxyOptions {
        upstream_tls: Some(tls),
        ..Default::default()
    };
    Proxy::start(upstream, dir, options).await
}

/// The proxy serving TLS with `tls`, in front of `upstream`.
async fn serving(upstream: &str, dir: &std::path::Path, tls: ServerTls) -> Proxy {
    let options = ProxyOptions {
        listener_tls: Some(tls),
        ..Default::default()
    };
    Proxy::start(upstream, dir, options).await
}

/// An HTTPS client trusting `tls`'s CA, speaking HTTP/2 only (`h2`) or
/// HTTP/1.1 only.
fn https_client(tls: &ClientTls, h2: bool) -> Client<HttpsConnector<HttpConnector>, Empty<Bytes>> {
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(tls.build().expect("client TLS"))
        .https_only();
    let connector = if h2 {
        builder.enable_http2().build()
    } else {
        builder.enable_http1().build()
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.http2_only(h2);
    client.build(connector)
}

struct Got {
    status: StatusCode,
    version: Version,
    body: Vec<u8>,
}

async fn get(
    client: &Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Got, String> {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    // Bounded: a refused handshake must end in an error, never a hang.
    let resp = tokio::time::timeout(
        Duration::from_secs(30),
        client.request(req.body(Empty::new()).unwrap()),
    )
    .await
    .map_err(|_| "no answer within 30 s".to_owned())?
    .map_err(|e| format!("{e:?}"))?;
    let (status, version) = (resp.status(), resp.version());
    let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .map_err(|_| "the body did not end within 60 s".to_owned())?
        .map_err(|e| e.to_string())?
        .to_bytes()
        .to_vec();
    Ok(Got {
        status,
        version,
        body,
    })
}

/// The SHA-256 of the leaf certificate a TLS server at `addr` presents.
async fn served_fingerprint(addr: std::net::SocketAddr, ca: &std::path::Path) -> String {
    let config = ClientTls::new().with_ca_file(ca).build().unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .expect("handshake");
    let leaf = &tls.get_ref().1.peer_certificates().expect("certificates")[0];
    hex::encode(Sha256::digest(leaf.as_ref()))
}

fn file_fingerprint(cert: &std::path::Path) -> String {
    use rustls::pki_types::pem::PemObject;
    let leaf = rustls::pki_types::CertificateDer::pem_file_iter(cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    hex::encode(Sha256::digest(leaf.as_ref()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_signed_by_a_private_ca_fills_the_cache_and_hits_are_served() {
    let pki = TestPki::new("upstream CA");
    let glance = fake_glance_builder()
        .tls(pki.server_config(false))
        .spawn()
        .await
        .unwrap();
    assert!(glance.url().starts_with("https://"));
    let dir = tempfile::tempdir().unwrap();
    let proxy = behind(
        &glance.url(),
        dir.path(),
        ClientTls::new().with_ca_file(&pki.ca),
    )
    .await;
    let c = glance_cache_support::client::Client::new();
    let miss = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert_eq!(
        miss.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&miss.body)
    );
    assert_eq!(miss.body, alphabet());
    proxy.settle().await;
    assert!(proxy.entry(PRIV).await.is_some(), "cached over https");
    let hit = c.get(&proxy.file_url(PRIV), &[MEMBER]).await;
    assert_eq!((hit.status.as_u16(), hit.body), (200, alphabet()));
    assert_eq!(glance.file_gets(PRIV), 1, "one download");
    assert!(
        glance.ranged_file_gets(PRIV) >= 1,
        "the hit was authorized upstream"
    );
    // Hit authorization went over https too: the other project is refused.
    let other = c
        .get(&proxy.file_url(PRIV), &[("x-auth-token", "OTHER")])
        .await;
    assert_eq!(other.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_certificate_the_proxy_does_not_trust_is_a_prompt_502() {
    let (trusted, untrusted) = (TestPki::new("trusted CA"), TestPki::new("unknown CA"));
    let glance = fake_glance_builder()
        .tls(untrusted.server_config(false))
        .spawn()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = behind(
        &glance.url(),
        dir.path(),
        ClientTls::new().with_ca_file(&trusted.ca),
    )
    .await;
    let c = glance_cache_support::client::Client::new();
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        c.get(&proxy.file_url(PUB), &[MEMBER]),
    )
    .await
    .expect("answered promptly, no hang");
    assert_eq!(r.status, 502);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("certificate"), "the reason is given: {text}");
    assert!(proxy.entry(PUB).await.is_none());
    assert_eq!(glance.file_gets(PUB), 0, "no request reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_requires_client_certificates_accepts_the_proxys_and_refuses_none() {
    let pki = TestPki::new("mutual CA");
    let glance = fake_glance_builder()
        .tls(pki.server_config(true))
        .spawn()
        .await
        .unwrap();
    let c = glance_cache_support::client::Client::new();

    let dir = tempfile::tempdir().unwrap();
    let with_cert = behind(
        &glance.url(),
        dir.path(),
        ClientTls::new()
            .with_ca_file(&pki.ca)
            .with_client_cert(&pki.client.cert, &pki.client.key),
    )
    .await;
    let r = c.get(&with_cert.file_url(PUB), &[MEMBER]).await;
    assert_eq!(
        (r.status.as_u16(), r.body.as_slice()),
        (200, &b"IMAGEDATA"[..])
    );

    let dir = tempfile::tempdir().unwrap();
    let without = behind(
        &glance.url(),
        dir.path(),
        ClientTls::new().with_ca_file(&pki.ca),
    )
    .await;
    let r = c.get(&without.file_url(PUB), &[MEMBER]).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn a_client_key_that_does_not_match_its_certificate_is_refused_by_name() {
    let pki = TestPki::new("CA");
    let other = pki.issue_client("other", "someone else");
    let e = ClientTls::new()
        .with_ca_file(&pki.ca)
        .with_client_cert(&pki.client.cert, &other.key)
        .build()
        .unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    assert!(e.to_string().contains("other.key"), "{e}");
    let e = ClientTls::new()
        .with_ca_file(pki.dir().join("missing.pem"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_offering_http2_is_spoken_to_in_http2_over_one_connection() {
    let pki = TestPki::new("h2 CA");
    // Records the version and the client port of every request.
    let seen: Arc<Mutex<Vec<(Version, u16)>>> = Arc::default();
    let record = Arc::clone(&seen);
    let upstream = tower::service_fn(move |req: Request<Incoming>| {
        let port = req
            .extensions()
            .get::<ClientAddr>()
            .map_or(0, |a| a.0.port());
        record.lock().unwrap().push((req.version(), port));
        async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("{\"images\": []}")))) }
    });
    let tls = ServerTls::builder(&pki.server.cert, &pki.server.key)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(glance_cache::server::serve_tls(
        listener,
        tls,
        upstream,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
    ));

    let dir = tempfile::tempdir().unwrap();
    let proxy = behind(
        &format!("https://{addr}"),
        dir.path(),
        ClientTls::new().with_ca_file(&pki.ca),
    )
    .await;
    let c = glance_cache_support::client::Client::new();
    let url = format!("{}/v2/images", proxy.url);
    for _ in 0..3 {
        assert_eq!(c.get(&url, &[]).await.status, 200);
    }
    let together = futures_util::future::join_all((0..4).map(|_| c.get(&url, &[]))).await;
    assert!(together.iter().all(|r| r.status == 200));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 7);
    assert!(
        seen.iter().all(|(v, _)| *v == Version::HTTP_2),
        "HTTP/2 through ALPN: {seen:?}"
    );
    let ports: std::collections::BTreeSet<u16> = seen.iter().map(|(_, p)| *p).collect();
    assert_eq!(ports.len(), 1, "one multiplexed connection: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_speaks_http2_and_http11_over_tls_through_alpn() {
    let pki = TestPki::new("listener CA");
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = ServerTls::builder(&pki.server.cert, &pki.server.key)
        .build()
        .unwrap();
    let proxy = serving(&glance.url(), dir.path(), tls).await;
    assert!(proxy.url.starts_with("https://"));
    let trust = ClientTls::new().with_ca_file(&pki.ca);
    for (h2, version) in [(true, Version::HTTP_2), (false, Version::HTTP_11)] {
        let client = https_client(&trust, h2);
        for _ in 0..2 {
            let r = get(&client, &proxy.file_url(BIG), &[MEMBER]).await.unwrap();
            assert_eq!((r.status, r.version), (StatusCode::OK, version));
            assert_eq!(r.body.len() as u64, BIG_SIZE);
            assert_eq!(
                hex::encode(md5::Md5::digest(&r.body)),
                glance.image_md5(BIG).unwrap()
            );
        }
        proxy.settle().await;
        // The versions document links back over https, to the address used.
        let r = get(&client, &format!("{}/versions", proxy.url), &[])
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            text.contains(&format!("\"href\": \"https://{}/v2/\"", proxy.addr))
                || text.contains(&format!("\"href\":\"https://{}/v2/\"", proxy.addr)),
            "{text}"
        );
    }
    // A client that does not trust the CA fails its handshake.
    let stranger = TestPki::new("another CA");
    let client = https_client(&ClientTls::new().with_ca_file(&stranger.ca), false);
    let e = get(&client, &proxy.file_url(PUB), &[MEMBER])
        .await
        .err()
        .expect("refused");
    assert!(
        e.contains("UnknownIssuer") || e.contains("certificate"),
        "{e}"
    );
    // Plain HTTP on the TLS port gets no HTTP answer, and the connection ends.
    let answer = glance_cache_support::client::raw_request(
        proxy.addr,
        &format!("GET /v2/images/{PUB}/file HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert!(
        !answer.contains("IMAGEDATA") && !answer.contains(" 200 "),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_with_a_client_ca_serves_only_clients_with_a_certificate_of_it() {
    let pki = TestPki::new("client CA");
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    let tls = ServerTls::builder(&pki.server.cert, &pki.server.key)
        .client_ca_file(&pki.ca)
        .build()
        .unwrap();
    assert!(tls.verifies_clients());
    let proxy = serving(&glance.url(), dir.path(), tls).await;
    let with_cert = https_client(
        &ClientTls::new()
            .with_ca_file(&pki.ca)
            .with_client_cert(&pki.client.cert, &pki.client.key),
        false,
    );
    let r = get(&with_cert, &proxy.file_url(PUB), &[MEMBER])
        .await
        .unwrap();
    assert_eq!(
        (r.status, r.body.as_slice()),
        (StatusCode::OK, &b"IMAGEDATA"[..])
    );

    let without = https_client(&ClientTls::new().with_ca_file(&pki.ca), false);
    assert!(
        get(&without, &proxy.file_url(PUB), &[MEMBER])
            .await
            .is_err(),
        "no certificate, no answer"
    );
    let stranger = TestPki::new("another CA");
    let foreign = https_client(
        &ClientTls::new()
            .with_ca_file(&pki.ca)
            .with_client_cert(&stranger.client.cert, &stranger.client.key),
        false,
    );
    assert!(
        get(&foreign, &proxy.file_url(PUB), &[MEMBER])
            .await
            .is_err(),
        "a certificate of another CA is refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_reload_reaches_new_connections_while_a_running_download_completes() {
    let pki = TestPki::new("rotation CA");
    let glance = fake_glance().await;
    let dir = tempfile::tempdir().unwrap();
    // The files the listener is configured with; the rotation overwrites them.
    let (cert, key) = (pki.dir().join("live.pem"), pki.dir().join("live.key"));
    std::fs::copy(&pki.server.cert, &cert).unwrap();
    std::fs::copy(&pki.server.key, &key).unwrap();
    let tls = ServerTls::builder(&cert, &key).build().unwrap();
    let proxy = serving(&glance.url(), dir.path(), tls.clone()).await;
    let old = file_fingerprint(&pki.server.cert);
    assert_eq!(served_fingerprint(proxy.addr, &pki.ca).await, old);
    assert_eq!(tls.loaded().fingerprint, old);

    // A download in flight on the old certificate: read its head and a little.
    let client = https_client(&ClientTls::new().with_ca_file(&pki.ca), false);
    let resp = client
        .request(
            Request::get(proxy.file_url(BIG))
                .header(MEMBER.0, MEMBER.1)
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    while received.len() < 1 << 20 {
        let frame = body.frame().await.expect("more").expect("data");
        if let Ok(data) = frame.into_data() {
            received.extend_from_slice(&data);
        }
    }

    // Rotate: a new certificate at the same paths, then reload.
    let next = pki.issue_server("next");
    std::fs::copy(&next.cert, &cert).unwrap();
    std::fs::copy(&next.key, &key).unwrap();
    let loaded = tls.reload().expect("reload");
    let new = file_fingerprint(&next.cert);
    assert_eq!(loaded.fingerprint, new);
    assert_eq!(served_fingerprint(proxy.addr, &pki.ca).await, new);

    // A broken rotation (the key of another certificate) keeps the new one.
    std::fs::copy(&pki.server.key, &key).unwrap();
    let e = tls.reload().unwrap_err();
    assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e:?}");
    std::fs::write(&cert, "garbage").unwrap();
    assert!(matches!(tls.reload().unwrap_err(), TlsError::Empty { .. }));
    assert_eq!(tls.loaded().fingerprint, new);
    assert_eq!(served_fingerprint(proxy.addr, &pki.ca).await, new);

    // The download that started on the old certificate completes intact.
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.expect("no error").into_data() {
            received.extend_from_slice(&data);
        }
    }
    assert_eq!(received.len() as u64, BIG_SIZE);
    assert_eq!(
        hex::encode(md5::Md5::digest(&received)),
        glance.image_md5(BIG).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_over_https_validates_tokens_with_the_configured_ca() {
    let pki = TestPki::new("keystone CA");
    let keystone = FakeKeystone::builder()
        .user(
            FakeUser::new("glance", "s3cret")
                .project("service")
                .roles(["admin", "service"]),
        )
        .user(FakeUser::new("admin", "pw").roles(["admin"]))
        .tls(pki.server_config(false))
        .spawn()
        .await
        .unwrap();
    assert!(keystone.url().starts_with("https://"));
    let admin_token = keystone.token("admin").expect("a token");
    let mut headers = HeaderMap::new();
    headers.insert("x-auth-token", HeaderValue::from_str(&admin_token).unwrap());

    let options = KeystoneOptions::new(keystone.root_url(), "glance", "s3cret", "service");
    let trusted = ManagementAuth::keystone(
        options
            .clone()
            .with_tls(ClientTls::new().with_ca_file(&pki.ca)),
    )
    .unwrap();
    let principal = trusted
        .check(&headers, PolicyRule::CacheList)
        .await
        .expect("validated over https");
    assert!(principal.roles.iter().any(|r| r == "admin"));

    // Without the CA (the system's trust store does not know it): Keystone
    // is unavailable, never "valid".
    let untrusted = ManagementAuth::keystone(options.clone()).unwrap();
    let refusal = untrusted
        .check(&headers, PolicyRule::CacheList)
        .await
        .unwrap_err();
    assert!(matches!(refusal, Refusal::Unavailable(_)), "{refusal:?}");

    // A CA file that cannot be read is an error when the auth is built.
    let e = ManagementAuth::keystone(
        options.with_tls(ClientTls::new().with_ca_file(pki.dir().join("nope.pem"))),
    )
    .unwrap_err();
    assert!(e.to_string().contains("nope.pem"), "{e}");
}
