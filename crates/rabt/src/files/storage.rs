//! One storage interface over two backends, chosen by `RABT_STORAGE_URL`:
//!
//! - `s3://bucket`: any S3-compatible store. Clients upload and download with
//!   presigned SigV4 URLs (`object_store`'s `Signer`); the bytes never pass
//!   through rabt. The upload URL signs `Content-Type` and
//!   `Content-Disposition`, so the store refuses an upload with other ones
//!   and keeps those it was given, which it serves back on download.
//! - `file:///path`: a folder. rabt itself serves the upload and download
//!   URLs (`/v1/storage/…`), signed with its own key: HMAC-SHA256 over the
//!   method, the object, the expiry and the headers the request must carry
//!   or the response will have, so the client flow is the same.
//!
//! Clients write only to `uploads/{id}`; `complete` checks that object and
//! copies it to `files/{id}`, which only rabt writes, so checked bytes can
//! not be replaced through a still-valid upload URL. Either way rabt reads
//! objects only to check them (size, first bytes), copies and deletes them;
//! `object_store` does the I/O for both.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt as _, stream::BoxStream};
use hmac::{Hmac, Mac as _};
use object_store::{
    ClientOptions, ObjectStore, ObjectStoreExt as _,
    aws::{AmazonS3, AmazonS3Builder},
    local::LocalFileSystem,
    path::Path,
    signer::{HeaderName, HeaderValue, Method, SignedUrlOptions, Signer as _},
};
use secrecy::ExposeSecret as _;
use sha2::Sha256;
use url::Url;
use uuid::Uuid;

use crate::config::{Settings, StorageLocation};

type HmacSha256 = Hmac<Sha256>;

/// The object store and how its URLs are signed. Cheap to clone.
#[derive(Clone)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("store", &self.store.to_string())
            .finish_non_exhaustive()
    }
}

enum Backend {
    S3(Arc<AmazonS3>),
    Local {
        /// Where rabt is reached (`RABT_PUBLIC_URL`), for the URLs it serves.
        base: Url,
        /// Signs those URLs; derived from `RABT_JWT_SECRET`.
        key: [u8; 32],
    },
}

/// A request a client makes straight to the store.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub url: Url,
    /// Headers the request must carry exactly (they are signed).
    pub headers: BTreeMap<String, String>,
    pub expires_at: DateTime<Utc>,
}

/// The key of a ready file's object: written by rabt alone (copied from the
/// upload once checked), so nothing replaces checked bytes.
/// How long a connection to the S3 store may take to open.
const STORE_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long one request to the S3 store may take in all.
const STORE_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The answer to a request whose storage call failed: 503 `unavailable`
/// (logged with its cause), never a 500: the store is a service that can be
/// down, like Postgres.
pub fn unavailable(err: impl Into<anyhow::Error>) -> crate::http::ApiError {
    let err = err.into();
    tracing::error!(error = %err, "the file store failed");
    crate::http::ApiError::unavailable("The file store did not answer; try again shortly.")
}

pub fn object_key(file: Uuid) -> String {
    format!("files/{file}")
}

/// The key of a data export's ZIP (written by rabt alone).
pub fn export_key(export: Uuid) -> String {
    format!("exports/{export}")
}

/// The key a client uploads to, until `complete` checks and copies it.
pub fn upload_key(file: Uuid) -> String {
    format!("uploads/{file}")
}

/// The id in a key made by [`object_key`], [`upload_key`] or
/// [`export_key`].
pub fn parse_key(key: &str) -> Option<Uuid> {
    let id = key
        .strip_prefix("files/")
        .or_else(|| key.strip_prefix("uploads/"))
        .or_else(|| key.strip_prefix("exports/"))?;
    let parsed = Uuid::try_parse(id).ok()?;
    // One spelling only, so a signature covers exactly one object.
    (parsed.to_string() == id).then_some(parsed)
}

impl Storage {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        match &settings.files.storage {
            StorageLocation::Local { root } => {
                std::fs::create_dir_all(root).with_context(|| {
                    format!("RABT_STORAGE_URL: cannot create {}", root.display())
                })?;
                let store = LocalFileSystem::new_with_prefix(root)
                    .with_context(|| format!("RABT_STORAGE_URL: cannot use {}", root.display()))?;
                let mut mac =
                    HmacSha256::new_from_slice(settings.jwt_secret.expose_secret().as_bytes())
                        .context("storage signing key")?;
                mac.update(b"rabt storage url signing v1");
                Ok(Self {
                    store: Arc::new(store),
                    backend: Arc::new(Backend::Local {
                        base: settings.public_url.clone(),
                        key: mac.finalize().into_bytes().into(),
                    }),
                })
            }
            StorageLocation::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            } => {
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    // A store that does not answer fails the request (503)
                    // rather than holding it.
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(STORE_CONNECT_TIMEOUT)
                            .with_timeout(STORE_REQUEST_TIMEOUT),
                    );
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint.as_str().trim_end_matches('/'))
                        .with_allow_http(endpoint.scheme() == "http")
                        // S3-compatible stores (MinIO, Ceph, s3s) address paths.
                        .with_virtual_hosted_style_request(false);
                }
                if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                    builder = builder
                        .with_access_key_id(id)
                        .with_secret_access_key(secret.expose_secret());
                }
                let s3 = Arc::new(builder.build().context("RABT_STORAGE_URL: S3 store")?);
                Ok(Self {
                    store: s3.clone(),
                    backend: Arc::new(Backend::S3(s3)),
                })
            }
        }
    }

    /// Whether rabt serves the URLs itself (`file://`).
    pub fn serves_urls(&self) -> bool {
        matches!(*self.backend, Backend::Local { .. })
    }

    /// A presigned `PUT` of exactly `content_type` and `disposition`, of at
    /// most `max_bytes` (the local store refuses more; S3 cannot sign a
    /// length, so `complete` checks it).
    pub async fn upload_url(
        &self,
        key: &str,
        content_type: &str,
        disposition: &str,
        max_bytes: u64,
        ttl: Duration,
    ) -> anyhow::Result<SignedRequest> {
        let expires_at = expiry(ttl);
        let headers = BTreeMap::from([
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("Content-Disposition".to_owned(), disposition.to_owned()),
        ]);
        let url = match &*self.backend {
            Backend::S3(s3) => {
                let options = SignedUrlOptions::default()
                    .with_signed_header(
                        HeaderName::from_static("content-type"),
                        HeaderValue::from_str(content_type)?,
                    )
                    .with_signed_header(
                        HeaderName::from_static("content-disposition"),
                        HeaderValue::from_str(disposition)?,
                    );
                s3.signed_url_opts(Method::PUT, &Path::from(key), ttl, &options)
                    .await?
            }
            Backend::Local { base, key: secret } => local_url(
                base,
                secret,
                &Grant {
                    method: LocalMethod::Put,
                    key: key.to_owned(),
                    expires: expires_at.timestamp(),
                    content_type: content_type.to_owned(),
                    disposition: disposition.to_owned(),
                    max_bytes,
                },
            )?,
        };
        Ok(SignedRequest {
            url,
            headers,
            expires_at,
        })
    }

    /// A presigned `GET` whose response has `content_type` and
    /// `disposition`, whatever the object was stored with.
    pub async fn download_url(
        &self,
        key: &str,
        content_type: &str,
        disposition: &str,
        ttl: Duration,
    ) -> anyhow::Result<(Url, DateTime<Utc>)> {
        let expires_at = expiry(ttl);
        let url = match &*self.backend {
            Backend::S3(s3) => {
                let options = SignedUrlOptions::default().with_query([
                    ("response-content-type", content_type),
                    ("response-content-disposition", disposition),
                ]);
                s3.signed_url_opts(Method::GET, &Path::from(key), ttl, &options)
                    .await?
            }
            Backend::Local { base, key: secret } => local_url(
                base,
                secret,
                &Grant {
                    method: LocalMethod::Get,
                    key: key.to_owned(),
                    expires: expires_at.timestamp(),
                    content_type: content_type.to_owned(),
                    disposition: disposition.to_owned(),
                    max_bytes: 0,
                },
            )?,
        };
        Ok((url, expires_at))
    }

    /// The object's size; `None` when it is not there.
    pub async fn size(&self, key: &str) -> anyhow::Result<Option<u64>> {
        match self.store.head(&Path::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    /// The first `len` bytes (the object has at least that many).
    pub async fn first_bytes(&self, key: &str, len: u64) -> anyhow::Result<Bytes> {
        Ok(self.store.get_range(&Path::from(key), 0..len).await?)
    }

    /// The whole object, chunk by chunk.
    pub async fn read(
        &self,
        key: &str,
    ) -> anyhow::Result<BoxStream<'static, Result<Bytes, object_store::Error>>> {
        Ok(self.store.get(&Path::from(key)).await?.into_stream())
    }

    /// Copies a checked upload to the file's own key (server-side on S3).
    pub async fn copy(&self, from: &str, to: &str) -> anyhow::Result<()> {
        Ok(self.store.copy(&Path::from(from), &Path::from(to)).await?)
    }

    /// Stores the whole of `file` (read from its start) under `key`, in
    /// parts when it is large; its size. Nothing is left when it fails.
    pub async fn write_file(&self, key: &str, file: std::fs::File) -> anyhow::Result<u64> {
        use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
        let mut file = tokio::fs::File::from_std(file);
        file.seek(std::io::SeekFrom::Start(0)).await?;
        let mut writer =
            object_store::buffered::BufWriter::new(self.store.clone(), Path::from(key));
        let mut written: u64 = 0;
        let outcome = async {
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = file.read(&mut buffer).await?;
                if read == 0 {
                    break;
                }
                written += read as u64;
                writer.put(Bytes::copy_from_slice(&buffer[..read])).await?;
            }
            writer.shutdown().await?;
            anyhow::Ok(written)
        }
        .await;
        if outcome.is_err() {
            let _ = writer.abort().await;
        }
        outcome
    }

    /// Removes the object; one that is already gone counts as removed.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        match self.store.delete(&Path::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Checks a URL rabt signed for the local store: the method, object,
    /// expiry, headers and size limit must be the signed ones, and unexpired.
    pub fn verify(
        &self,
        method: LocalMethod,
        key: &str,
        query: &LocalQuery,
    ) -> Result<Grant, Refused> {
        let Backend::Local { key: secret, .. } = &*self.backend else {
            return Err(Refused::NotServed);
        };
        if parse_key(key).is_none() {
            return Err(Refused::NotServed);
        }
        let grant = Grant {
            method,
            key: key.to_owned(),
            expires: query.expires,
            content_type: query.content_type.clone(),
            disposition: query.disposition.clone(),
            max_bytes: query.max_bytes.unwrap_or(0),
        };
        let signature = hex::decode(&query.signature).map_err(|_| Refused::BadSignature)?;
        grant
            .mac(secret)
            .verify_slice(&signature)
            .map_err(|_| Refused::BadSignature)?;
        if Utc::now().timestamp() > grant.expires {
            return Err(Refused::Expired);
        }
        Ok(grant)
    }

    /// Writes an upload to the local store, refusing more than the grant's
    /// bytes. Nothing is left behind when the body fails or is too long.
    pub async fn write(
        &self,
        grant: &Grant,
        mut body: BoxStream<'static, Result<Bytes, axum::Error>>,
    ) -> Result<(), WriteError> {
        use tokio::io::AsyncWriteExt as _;
        let path = Path::from(grant.key.as_str());
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), path);
        let mut written: u64 = 0;
        let outcome = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| WriteError::Body(e.into()))?;
                written += chunk.len() as u64;
                if written > grant.max_bytes {
                    return Err(WriteError::TooLarge);
                }
                writer
                    .put(chunk)
                    .await
                    .map_err(|e| WriteError::Store(e.into()))?;
            }
            writer
                .shutdown()
                .await
                .map_err(|e| WriteError::Store(e.into()))
        }
        .await;
        if outcome.is_err() {
            let _ = writer.abort().await;
        }
        outcome
    }
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::minutes(15))
}

/// A method the local store serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalMethod {
    Get,
    Put,
}

impl LocalMethod {
    fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Put => "PUT",
        }
    }
}

/// What a local URL allows, all of it under the signature.
#[derive(Debug, Clone)]
pub struct Grant {
    pub method: LocalMethod,
    pub key: String,
    /// Unix seconds.
    pub expires: i64,
    /// The upload's required `Content-Type`, or the download's.
    pub content_type: String,
    /// The upload's required `Content-Disposition`, or the download's.
    pub disposition: String,
    /// Uploads only: the most bytes accepted.
    pub max_bytes: u64,
}

impl Grant {
    fn mac(&self, secret: &[u8; 32]) -> HmacSha256 {
        // HMAC takes keys of any length; the fallback is never used.
        let mut mac = HmacSha256::new_from_slice(secret)
            .unwrap_or_else(|_| HmacSha256::new(&Default::default()));
        // Length-prefixed fields: no two grants sign the same bytes.
        for field in [
            self.method.as_str(),
            &self.key,
            &self.expires.to_string(),
            &self.content_type,
            &self.disposition,
            &self.max_bytes.to_string(),
        ] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac
    }
}

/// The query of a local URL.
#[derive(Debug, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LocalQuery {
    /// Unix seconds after which the URL is refused.
    pub expires: i64,
    /// The content type (required on upload, served on download).
    #[serde(rename = "type")]
    pub content_type: String,
    pub disposition: String,
    /// Uploads: the most bytes accepted.
    #[serde(rename = "max")]
    pub max_bytes: Option<u64>,
    /// Hex HMAC-SHA256 of the rest.
    pub signature: String,
}

/// Why a local URL is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a local store, or not an object key rabt makes.
    NotServed,
    BadSignature,
    Expired,
}

/// Why a local upload failed.
#[derive(Debug)]
pub enum WriteError {
    TooLarge,
    Body(anyhow::Error),
    Store(anyhow::Error),
}

fn local_url(base: &Url, secret: &[u8; 32], grant: &Grant) -> anyhow::Result<Url> {
    let signature = hex::encode(grant.mac(secret).finalize().into_bytes());
    let mut url = Url::parse(&format!(
        "{}/v1/storage/{}",
        base.as_str().trim_end_matches('/'),
        grant.key
    ))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("expires", &grant.expires.to_string())
            .append_pair("type", &grant.content_type)
            .append_pair("disposition", &grant.disposition);
        if grant.method == LocalMethod::Put {
            query.append_pair("max", &grant.max_bytes.to_string());
        }
        query.append_pair("signature", &signature);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant() -> Grant {
        Grant {
            method: LocalMethod::Put,
            key: object_key(Uuid::now_v7()),
            expires: 2_000_000_000,
            content_type: "image/png".into(),
            disposition: "inline".into(),
            max_bytes: 10,
        }
    }

    #[test]
    fn object_keys_have_one_spelling() {
        let id = Uuid::now_v7();
        assert_eq!(parse_key(&object_key(id)), Some(id));
        assert_eq!(parse_key(&upload_key(id)), Some(id));
        assert_eq!(parse_key(&object_key(id).to_uppercase()), None);
        assert_eq!(parse_key("files/../etc/passwd"), None);
        assert_eq!(parse_key(&format!("other/{id}")), None);
        assert_eq!(parse_key(&export_key(id)), Some(id));
    }

    #[test]
    fn a_grant_signs_every_field() {
        let secret = [7u8; 32];
        let base = grant();
        let signature = base.mac(&secret).finalize().into_bytes();
        let mut changed = vec![];
        let mut g = base.clone();
        g.method = LocalMethod::Get;
        changed.push(g);
        let mut g = base.clone();
        g.expires += 1;
        changed.push(g);
        let mut g = base.clone();
        g.content_type = "text/html".into();
        changed.push(g);
        let mut g = base.clone();
        g.disposition = "attachment".into();
        changed.push(g);
        let mut g = base.clone();
        g.max_bytes = 11;
        changed.push(g);
        let mut g = base.clone();
        g.key = object_key(Uuid::now_v7());
        changed.push(g);
        for g in changed {
            assert!(g.mac(&secret).verify_slice(&signature).is_err(), "{g:?}");
        }
        assert!(base.mac(&secret).verify_slice(&signature).is_ok());
        assert!(base.mac(&[8u8; 32]).verify_slice(&signature).is_err());
    }
}
