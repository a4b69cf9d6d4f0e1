//! `rabt serve` terminating TLS itself (HTTP/1.1 and HTTP/2 by ALPN, HSTS), and
//! the connection limits that guard against slow clients.

use std::{sync::Arc, time::Duration};

use rustls::pki_types::pem::PemObject as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::helpers::{AppOptions, TestApp, spawn_app_with};

struct Certified {
    app: TestApp,
    ca_pem: String,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path = std::env::temp_dir().join(format!("rabt-tls-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

async fn spawn_tls() -> Certified {
    spawn_tls_with(Vec::new()).await
}

async fn spawn_tls_with(mut overrides: Vec<(&'static str, String)>) -> Certified {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempdir::Dir::new();
    let cert_path = dir.0.join("cert.pem");
    let key_path = dir.0.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    overrides.push(("tls_cert", cert_path.display().to_string()));
    overrides.push(("tls_key", key_path.display().to_string()));
    let app = spawn_app_with(AppOptions {
        overrides,
        ..AppOptions::default()
    })
    .await;
    Certified {
        app,
        ca_pem: cert.cert.pem(),
        _dir: dir,
    }
}

fn tls_client_config(env: &Certified, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(env.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config
}

async fn tls_connect(
    env: &Certified,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(env.app.address)
        .await
        .unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(tls_client_config(env, alpn)))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// An HTTP/2 connection (by ALPN): its request sender and the connection
/// future, which ends when the server closes it.
async fn http2_connect(
    env: &Certified,
) -> (
    hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    impl Future<Output = hyper::Result<()>> + Send + 'static,
) {
    let tls = tls_connect(env, &[b"h2"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap()
}

/// Waits (at most 10 s) for the server to close `stream`: a read that ends
/// or fails.
async fn assert_disconnected(mut stream: impl tokio::io::AsyncRead + Unpin) {
    let mut buffer = Vec::new();
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the connection was kept open");
}

#[tokio::test]
async fn serve_speaks_https_with_hsts_over_http1_and_http2() {
    let env = spawn_tls().await;
    // HTTP/1.1 asked for explicitly: reqwest, built with HTTP/2 support (for
    // object_store), would otherwise offer h2 too.
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(env.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", env.app.address)
        .http1_only()
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/health/live", env.app.address.port());
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    assert!(
        response.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );

    // HTTP/2, negotiated by ALPN.
    let (mut sender, connection) = http2_connect(&env).await;
    tokio::spawn(connection);
    let request = hyper::Request::get(&url)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);

    // Plain HTTP on the TLS port gets nowhere.
    let plain = reqwest::get(format!("http://{}/health/live", env.app.address)).await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("header_read_timeout_secs", "1".into())],
        ..AppOptions::default()
    })
    .await;
    let mut slow = tokio::net::TcpStream::connect(app.address).await.unwrap();
    slow.write_all(b"GET /health/live HTTP/1.1\r\nHost: rabt\r\nX-Slow: ")
        .await
        .unwrap();
    // The server gives up on the headers and closes (it may first answer 408).
    assert_disconnected(slow).await;
    // Meanwhile, a normal client is served.
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn a_client_that_connects_and_sends_nothing_is_disconnected() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("header_read_timeout_secs", "1".into())],
        ..AppOptions::default()
    })
    .await;
    let silent = tokio::net::TcpStream::connect(app.address).await.unwrap();
    assert_disconnected(silent).await;
    assert_eq!(app.get("/health/live").await.status(), 200);
}

#[tokio::test]
async fn a_tls_client_that_never_starts_its_handshake_is_disconnected() {
    let env = spawn_tls_with(vec![("header_read_timeout_secs", "1".into())]).await;
    let silent = tokio::net::TcpStream::connect(env.app.address)
        .await
        .unwrap();
    assert_disconnected(silent).await;
}

#[tokio::test]
async fn a_tls_client_that_sends_nothing_after_its_handshake_is_disconnected() {
    let env = spawn_tls_with(vec![("header_read_timeout_secs", "1".into())]).await;
    for alpn in [&[][..], &[&b"http/1.1"[..]], &[&b"h2"[..]]] {
        let silent = tls_connect(&env, alpn).await;
        assert_disconnected(silent).await;
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed() {
    let env = spawn_tls_with(vec![("idle_timeout_secs", "1".into())]).await;
    let (mut sender, connection) = http2_connect(&env).await;
    let connection = tokio::spawn(connection);
    let url = format!("https://localhost:{}/health/live", env.app.address.port());
    let request = hyper::Request::get(&url)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);

    // The client keeps answering pings, but sends no further request.
    let closed = tokio::time::timeout(Duration::from_secs(10), connection).await;
    assert!(closed.is_ok(), "the idle connection was kept open");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let app = spawn_app_with(AppOptions {
        overrides: vec![("max_connections", "1".into())],
        ..AppOptions::default()
    })
    .await;
    let request = b"GET /health/live HTTP/1.1\r\nHost: rabt\r\n\r\n";
    let mut first = tokio::net::TcpStream::connect(app.address).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buffer = [0; 64];
    let read = first.read(&mut buffer).await.unwrap();
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));

    // The kernel completes the second connection, but rabt does not take it
    // while the first (kept alive) holds the only slot.
    let mut second = tokio::net::TcpStream::connect(app.address).await.unwrap();
    second.write_all(request).await.unwrap();
    let early = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buffer)).await;
    assert!(early.is_err(), "a connection beyond the cap was served");

    drop(first);
    let read = tokio::time::timeout(Duration::from_secs(10), second.read(&mut buffer))
        .await
        .expect("the waiting connection is served once a slot frees")
        .unwrap();
    assert!(buffer[..read].starts_with(b"HTTP/1.1 200"));
}
