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
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempdir::Dir::new();
    let cert_path = dir.0.join("cert.pem");
    let key_path = dir.0.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let app = spawn_app_with(AppOptions {
        overrides: vec![
            ("tls_cert", cert_path.display().to_string()),
            ("tls_key", key_path.display().to_string()),
        ],
        ..AppOptions::default()
    })
    .await;
    Certified {
        app,
        ca_pem: cert.cert.pem(),
        _dir: dir,
    }
}

#[tokio::test]
async fn serve_speaks_https_with_hsts_over_http1_and_http2() {
    let env = spawn_tls().await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(env.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", env.app.address)
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
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(env.app.address)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect("localhost".try_into().unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
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
    let mut buffer = Vec::new();
    // The server gives up on the headers and closes (it may first answer 408).
    let closed = tokio::time::timeout(Duration::from_secs(10), slow.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the connection was kept open");
    // Meanwhile, a normal client is served.
    assert_eq!(app.get("/health/live").await.status(), 200);
}
