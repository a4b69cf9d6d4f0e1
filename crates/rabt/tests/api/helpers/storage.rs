//! Object storage for file tests: a real S3-compatible server (`s3s` over
//! `s3s-fs`) running in the test process, which checks SigV4 signatures and
//! the expiry of presigned URLs; or rabt's own local folder store. The same
//! tests run against both.

use std::{net::SocketAddr, path::PathBuf};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder as ConnBuilder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::helpers::auth::{AuthApp, spawn};

pub const ACCESS_KEY: &str = "rabt-test-access";
pub const SECRET_KEY: &str = "rabt-test-secret-key-0123456789";
pub const BUCKET: &str = "rabt-files";
/// Where a local-store app says it is reached; tests send its URLs to the
/// instance's real address, as a reverse proxy would.
pub const LOCAL_PUBLIC_URL: &str = "http://files.rabt.test";

/// Which store an app under test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    S3,
    Local,
}

/// An S3 server with one bucket, in a temporary folder removed on drop.
pub struct S3Server {
    pub address: SocketAddr,
    root: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    pub async fn start() -> Self {
        let root = std::env::temp_dir().join(format!("rabt-s3-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(root.join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(&root).unwrap();
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
        Self {
            address,
            root,
            task,
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// An app on `backend`, with its store (and the settings in `extra`).
pub struct FilesApp {
    pub env: AuthApp,
    _s3: Option<S3Server>,
    local_root: Option<PathBuf>,
}

impl Drop for FilesApp {
    fn drop(&mut self) {
        if let Some(root) = &self.local_root {
            let _ = std::fs::remove_dir_all(root);
        }
    }
}

pub async fn spawn_files(backend: Backend, extra: Vec<(&'static str, String)>) -> FilesApp {
    let mut overrides = Vec::new();
    let (s3, local_root) = match backend {
        Backend::S3 => {
            let server = S3Server::start().await;
            overrides.extend([
                ("storage_url", format!("s3://{BUCKET}")),
                ("s3_endpoint", format!("http://{}", server.address)),
                ("aws_access_key_id", ACCESS_KEY.to_owned()),
                ("aws_secret_access_key", SECRET_KEY.to_owned()),
            ]);
            (Some(server), None)
        }
        Backend::Local => {
            let root = std::env::temp_dir().join(format!("rabt-files-{}", Uuid::new_v4().simple()));
            overrides.extend([
                ("storage_url", format!("file://{}", root.display())),
                ("public_url", LOCAL_PUBLIC_URL.to_owned()),
            ]);
            (None, Some(root))
        }
    };
    overrides.extend(extra);
    FilesApp {
        env: spawn(overrides).await,
        _s3: s3,
        local_root,
    }
}

impl FilesApp {
    /// `url` as this test reaches it: the local store's URLs go to the
    /// instance; S3's to the S3 server they name.
    pub fn reach(&self, url: &str) -> String {
        match url.strip_prefix(LOCAL_PUBLIC_URL) {
            Some(rest) => self.env.app.url(rest),
            None => url.to_owned(),
        }
    }
}
