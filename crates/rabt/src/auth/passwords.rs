//! Passwords: the policy, and Argon2id hashing off the async runtime.
//!
//! Parameters follow OWASP's recommendation for Argon2id (19 MiB, t=2, p=1). A
//! hash made with other parameters still verifies, and is replaced on the next
//! successful login.

use std::{collections::HashSet, sync::LazyLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier as _, Version};
use secrecy::{ExposeSecret as _, SecretString};

use crate::http::FieldError;

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;

/// The 30,000 most common passwords (zxcvbn's list; see `data/NOTICE`).
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("../../data/common-passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect()
});

/// A password that passed the policy. Never printed.
pub struct NewPassword(SecretString);

impl NewPassword {
    /// Checks length (8..=128 characters) and refuses common passwords.
    pub fn parse(field: &str, value: SecretString) -> Result<Self, FieldError> {
        let chars = value.expose_secret().chars().count();
        if chars < MIN_CHARS {
            return Err(FieldError::new(
                field,
                "too_short",
                format!("At least {MIN_CHARS} characters."),
            ));
        }
        if chars > MAX_CHARS {
            return Err(FieldError::new(
                field,
                "too_long",
                format!("At most {MAX_CHARS} characters."),
            ));
        }
        if COMMON.contains(value.expose_secret().to_lowercase().as_str()) {
            return Err(FieldError::new(
                field,
                "too_common",
                "This password is too common; choose another.",
            ));
        }
        Ok(Self(value))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// The marker of hashes made with the current parameters.
const CURRENT_PARAMS: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

/// Hashes a password on the blocking pool (about 20 ms of CPU).
pub async fn hash(password: &SecretString) -> anyhow::Result<String> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose_secret().as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
    })
    .await?
}

/// Whether `password` matches `hash`, on the blocking pool. A malformed hash
/// never matches.
pub async fn verify(password: &SecretString, hash: &str) -> anyhow::Result<bool> {
    let password = password.clone();
    let hash = hash.to_owned();
    Ok(tokio::task::spawn_blocking(move || {
        argon2()
            .verify_password(password.expose_secret().as_bytes(), hash.as_str())
            .is_ok()
    })
    .await?)
}

/// Whether a stored hash was made with other parameters and should be redone.
pub fn needs_rehash(hash: &str) -> bool {
    !hash.starts_with(CURRENT_PARAMS)
}

/// A real hash of a random password, made once: verifying against it costs what
/// a real check costs, so an unknown email answers as slowly as a known one.
pub static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let random: [u8; 16] = rand::random();
    argon2()
        .hash_password(&random)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn the_policy_refuses_short_long_and_common_passwords() {
        let code = |p: &str| {
            NewPassword::parse("password", secret(p))
                .err()
                .map(|e| e.code)
        };
        assert_eq!(code("short").as_deref(), Some("too_short"));
        assert_eq!(code(&"x".repeat(129)).as_deref(), Some("too_long"));
        assert_eq!(code("password1").as_deref(), Some("too_common"));
        assert_eq!(code("PASSWORD1").as_deref(), Some("too_common"));
        assert_eq!(code("correct horse battery staple"), None);
        // Length counts characters, not bytes.
        assert_eq!(code("ééééééé").as_deref(), Some("too_short"));
    }

    #[test]
    fn the_bundled_list_is_large() {
        assert!(COMMON.len() >= 10_000);
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password_and_uses_current_params() {
        let hashed = hash(&secret("tangerine-umbrella-42")).await.unwrap();
        assert!(hashed.starts_with(CURRENT_PARAMS), "{hashed}");
        assert!(!needs_rehash(&hashed));
        assert!(
            verify(&secret("tangerine-umbrella-42"), &hashed)
                .await
                .unwrap()
        );
        assert!(
            !verify(&secret("tangerine-umbrella-43"), &hashed)
                .await
                .unwrap()
        );
        assert!(!verify(&secret("x"), "not a hash").await.unwrap());
    }

    #[tokio::test]
    async fn hashes_with_old_params_still_verify_but_want_a_rehash() {
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8 * 1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"tangerine-umbrella-42")
        .unwrap()
        .to_string();
        assert!(needs_rehash(&weak));
        assert!(
            verify(&secret("tangerine-umbrella-42"), &weak)
                .await
                .unwrap()
        );
    }
}
