//! Small parsers the settings' validation shares: trimmed values, lists,
//! URL schemes, random secrets.

use rand::RngExt as _;
use url::Url;

use super::ConfigError;

pub(super) fn random_bytes() -> [u8; 32] {
    rand::rng().random()
}

/// A setting's value, trimmed, when it says something.
pub(super) fn given(value: &Option<String>) -> Option<String> {
    value
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

pub(super) fn split_list(value: Option<&str>) -> impl Iterator<Item = &str> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub(super) fn check_scheme(key: &str, value: &str, schemes: &[&str]) -> Result<(), ConfigError> {
    let url = Url::parse(value).map_err(|_| ConfigError::new(key, "is not a valid URL"))?;
    if schemes.contains(&url.scheme()) {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("must start with {}://", schemes.join(":// or ")),
        ))
    }
}

pub(super) fn parse_http_url(key: &str, value: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(value).map_err(|_| ConfigError::new(key, "is not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ConfigError::new(key, "must be an http:// or https:// URL"));
    }
    Ok(url)
}
