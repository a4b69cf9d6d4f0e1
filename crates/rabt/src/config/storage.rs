//! Where uploaded files are kept and what each purpose accepts: the storage
//! settings' validation, called from [`super::raw`].

use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::{
    ConfigError, FILE_TYPES, StorageLocation, UploadLimits,
    raw::{parse_http_url, split_list},
};

/// `file:///path` (the default: `.data/files`) or `s3://bucket` with its
/// endpoint, region and credentials.
pub(super) fn storage_location(
    url: Option<&str>,
    endpoint: Option<String>,
    region: String,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
) -> Result<StorageLocation, ConfigError> {
    let Some(url) = url.map(str::trim).filter(|u| !u.is_empty()) else {
        return Ok(StorageLocation::Local {
            root: PathBuf::from(".data/files"),
        });
    };
    let parsed =
        Url::parse(url).map_err(|_| ConfigError::new("storage_url", "is not a valid URL"))?;
    match parsed.scheme() {
        "file" => {
            let root = parsed.to_file_path().map_err(|()| {
                ConfigError::new("storage_url", "must be file:///an/absolute/path")
            })?;
            Ok(StorageLocation::Local { root })
        }
        "s3" => {
            let bucket = parsed.host_str().unwrap_or_default().to_owned();
            if bucket.is_empty() || !matches!(parsed.path(), "" | "/") {
                return Err(ConfigError::new(
                    "storage_url",
                    "must be s3://bucket (no path)",
                ));
            }
            let endpoint = endpoint
                .filter(|e| !e.trim().is_empty())
                .map(|e| parse_http_url("s3_endpoint", &e))
                .transpose()?;
            if region.trim().is_empty() {
                return Err(ConfigError::new("s3_region", "must not be empty"));
            }
            let (access_key_id, secret_access_key) = match (
                access_key_id.filter(|k| !k.is_empty()),
                secret_access_key.filter(|k| !k.is_empty()),
            ) {
                (Some(id), Some(secret)) => (Some(id), Some(SecretString::from(secret))),
                // From the instance's role (AWS) when neither is given.
                (None, None) => (None, None),
                (Some(_), None) => {
                    return Err(ConfigError::new(
                        "aws_secret_access_key",
                        "is required with AWS_ACCESS_KEY_ID",
                    ));
                }
                (None, Some(_)) => {
                    return Err(ConfigError::new(
                        "aws_access_key_id",
                        "is required with AWS_SECRET_ACCESS_KEY",
                    ));
                }
            };
            Ok(StorageLocation::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
            })
        }
        _ => Err(ConfigError::new(
            "storage_url",
            "must start with file:// or s3://",
        )),
    }
}

pub(super) fn upload_limits(
    size_key: &str,
    max_bytes: u64,
    types_key: &str,
    types: &str,
) -> Result<UploadLimits, ConfigError> {
    if !(1..=5 * 1024 * 1024 * 1024).contains(&max_bytes) {
        return Err(ConfigError::new(size_key, "must be 1..=5368709120 (5 GiB)"));
    }
    let types: Vec<String> = split_list(Some(types))
        .map(str::to_ascii_lowercase)
        .collect();
    if types.is_empty() {
        return Err(ConfigError::new(types_key, "must name at least one type"));
    }
    if let Some(unknown) = types.iter().find(|t| !FILE_TYPES.contains(&t.as_str())) {
        return Err(ConfigError::new(
            types_key,
            format!("has `{unknown}`; known types: {}", FILE_TYPES.join(", ")),
        ));
    }
    Ok(UploadLimits { max_bytes, types })
}
