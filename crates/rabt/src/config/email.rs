//! Mail: where it goes, how it is signed, paced and tracked. The email
//! settings' validation, called from [`super::raw`].

use std::{path::PathBuf, time::Duration};

use rsa::{
    RsaPrivateKey,
    pkcs1::{DecodeRsaPrivateKey as _, EncodeRsaPrivateKey as _, LineEnding},
    pkcs8::DecodePrivateKey as _,
};
use secrecy::SecretString;

use super::{
    ConfigError, DkimSettings, EmailSettings,
    raw::{RawSettings, check_scheme, given},
};

/// The largest DKIM key accepted inline or read from a file.
const MAX_KEY_BYTES: u64 = 16 * 1024;

impl RawSettings {
    pub(super) fn email(&self) -> Result<EmailSettings, ConfigError> {
        let smtp_url = match given(&self.smtp_url) {
            Some(url) => {
                check_scheme("smtp_url", &url, &["smtp", "smtps"])?;
                Some(SecretString::from(url))
            }
            None => None,
        };
        let from: lettre::message::Mailbox = self.email_from.parse().map_err(|_| {
            ConfigError::new(
                "email_from",
                "must be an address like `rabt <no-reply@example.com>`",
            )
        })?;
        let events_secret = match given(&self.email_events_secret) {
            Some(secret) if secret.len() < 32 => {
                return Err(ConfigError::new(
                    "email_events_secret",
                    "must be at least 32 characters",
                ));
            }
            other => other.map(SecretString::from),
        };
        if self.email_per_domain_per_minute > 600_000 {
            return Err(ConfigError::new(
                "email_per_domain_per_minute",
                "must be 0..=600000",
            ));
        }
        if !(1..=365).contains(&self.email_soft_bounce_days) {
            return Err(ConfigError::new(
                "email_soft_bounce_days",
                "must be 1..=365",
            ));
        }
        let dkim = match (given(&self.dkim_selector), given(&self.dkim_private_key)) {
            (Some(selector), Some(key)) => {
                let label = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
                if selector.len() > 63 || !selector.chars().all(label) {
                    return Err(ConfigError::new(
                        "dkim_selector",
                        "must be a DNS label (letters, digits, `-`)",
                    ));
                }
                let domain = given(&self.dkim_domain)
                    .unwrap_or_else(|| from.email.domain().to_owned())
                    .to_ascii_lowercase();
                if domain.len() > 253 || !domain.chars().all(label) || !domain.contains('.') {
                    return Err(ConfigError::new(
                        "dkim_domain",
                        "must be a domain name (it defaults to RABT_EMAIL_FROM's)",
                    ));
                }
                Some(DkimSettings {
                    selector,
                    domain,
                    private_key_pem: SecretString::from(dkim_key(&key)?),
                })
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "dkim_private_key",
                    "is required with the selector",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "dkim_selector",
                    "is required with the private key",
                ));
            }
        };
        Ok(EmailSettings {
            smtp_url,
            from: self.email_from.clone(),
            mail_dir: PathBuf::from(&self.mail_dir),
            tracking: self.email_tracking,
            events_secret,
            per_domain_per_minute: self.email_per_domain_per_minute,
            soft_bounce_suppression: Duration::from_secs(
                u64::from(self.email_soft_bounce_days) * 86_400,
            ),
            dkim,
        })
    }
}

/// The DKIM key as PKCS#1 PEM, from PEM text or the path of a PEM file, in
/// PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8 (`BEGIN PRIVATE KEY`, what
/// `openssl genpkey` writes).
fn dkim_key(value: &str) -> Result<String, ConfigError> {
    const KEY: &str = "dkim_private_key";
    let pem = if value.starts_with("-----BEGIN") {
        value.to_owned()
    } else {
        let path = std::path::Path::new(value);
        let size = std::fs::metadata(path)
            .map_err(|_| ConfigError::new(KEY, "is neither a PEM key nor a readable file"))?
            .len();
        if size > MAX_KEY_BYTES {
            return Err(ConfigError::new(KEY, "names a file too large to be a key"));
        }
        std::fs::read_to_string(path)
            .map_err(|_| ConfigError::new(KEY, "names a file that is not readable text"))?
    };
    let key = RsaPrivateKey::from_pkcs1_pem(&pem)
        .or_else(|_| RsaPrivateKey::from_pkcs8_pem(&pem))
        .map_err(|_| ConfigError::new(KEY, "is not an RSA private key in PEM"))?;
    if rsa::traits::PublicKeyParts::size(&key) * 8 < 1024 {
        return Err(ConfigError::new(
            KEY,
            "must be an RSA key of at least 1024 bits",
        ));
    }
    key.to_pkcs1_pem(LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|_| ConfigError::new(KEY, "could not be encoded"))
}
