//! Field-level encryption at rest: AES-256-GCM with a random 96-bit nonce per
//! value, and the id of the key stored beside each ciphertext.
//!
//! - New values are sealed under `RABT_ENCRYPTION_KEY`.
//! - Values sealed under a key listed in `RABT_ENCRYPTION_OLD_KEYS` stay
//!   readable, and `rabt keys rotate` re-seals them under the current key.
//! - Each value is bound to where it lives (the associated data names the
//!   column and row), so a ciphertext copied into another row does not open.
//!
//! Sealed columns today: `oauth_identities.access_token` (the provider's
//! token) and `totp_factors.secret_sealed` (a user's TOTP secret).

use aes_gcm::{
    Aes256Gcm, KeyInit as _, Nonce,
    aead::{Aead as _, Payload},
};
use rand::RngExt as _;
use secrecy::ExposeSecret as _;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    config::{EncryptionKey, Settings},
    db::{Actor, Db},
};

const NONCE_LEN: usize = 12;

/// A sealed value and the id of the key that sealed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// Nonce, then ciphertext and tag.
    pub bytes: Vec<u8>,
    pub key_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("no configured encryption key has id {0}")]
    UnknownKey(String),
    #[error("a sealed value failed authentication")]
    Tampered,
}

/// The current key and the old ones still accepted for reading.
pub struct Keyring {
    current: (String, Aes256Gcm),
    old: Vec<(String, Aes256Gcm)>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.0)
            .field("old", &self.old.iter().map(|k| &k.0).collect::<Vec<_>>())
            .finish()
    }
}

fn cipher(key: &EncryptionKey) -> (String, Aes256Gcm) {
    (
        key.id.clone(),
        Aes256Gcm::new(key.key.expose_secret().into()),
    )
}

impl Keyring {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            current: cipher(&settings.encryption_key),
            old: settings.encryption_old_keys.iter().map(cipher).collect(),
        }
    }

    pub fn current_id(&self) -> &str {
        &self.current.0
    }

    /// Seals `plaintext`, bound to `context` (where the value is stored).
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Sealed {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let (id, cipher) = &self.current;
        let payload = Payload {
            msg: plaintext,
            aad: context.as_bytes(),
        };
        // Encryption fails only for inputs beyond GCM's length limit (64 GiB).
        let ciphertext = cipher
            .encrypt(&Nonce::from(nonce), payload)
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend(ciphertext);
        Sealed {
            bytes,
            key_id: id.clone(),
        }
    }

    /// Opens a value sealed under the current key or an old one.
    pub fn open(&self, sealed: &Sealed, context: &str) -> Result<Vec<u8>, CryptoError> {
        let cipher = std::iter::once(&self.current)
            .chain(&self.old)
            .find(|(id, _)| *id == sealed.key_id)
            .map(|(_, cipher)| cipher)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN {
            return Err(CryptoError::Tampered);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CryptoError::Tampered)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Tampered)
    }
}

/// Where a provider token is stored, as associated data.
pub fn oauth_token_context(provider: &str, subject: &str) -> String {
    format!("oauth_identities.access_token:{provider}:{subject}")
}

/// Where a TOTP secret is stored, as associated data.
pub fn totp_secret_context(factor: Uuid) -> String {
    format!("totp_factors.secret_sealed:{factor}")
}

/// What a rotation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub resealed: u64,
    /// Values under a key that is not configured, or that fail to open: left
    /// as they are, and reported.
    pub unreadable: u64,
}

/// Re-seals every value not under the current key, in batches, each batch in
/// its own transaction (safe to interrupt and run again; safe beside a running
/// server, which reads old and new keys alike).
pub async fn rotate(db: &Db, keyring: &Keyring) -> anyhow::Result<Rotation> {
    let mut rotation = Rotation::default();
    for column in [Column::ProviderTokens, Column::TotpSecrets] {
        let mut skip: Vec<Uuid> = Vec::new();
        loop {
            let mut tx = db.begin(&Actor::Service).await?;
            let batch = match column {
                Column::ProviderTokens => {
                    rotate_batch(&mut tx, keyring, &skip, &mut rotation).await?
                }
                Column::TotpSecrets => {
                    rotate_totp_batch(&mut tx, keyring, &skip, &mut rotation).await?
                }
            };
            tx.commit().await?;
            match batch {
                Some(unreadable) => skip.extend(unreadable),
                None => break,
            }
        }
    }
    Ok(rotation)
}

/// The sealed columns a rotation walks, one after the other.
#[derive(Debug, Clone, Copy)]
enum Column {
    ProviderTokens,
    TotpSecrets,
}

/// One batch of TOTP secrets; `None` when nothing was left to do.
async fn rotate_totp_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    skip: &[Uuid],
    rotation: &mut Rotation,
) -> anyhow::Result<Option<Vec<Uuid>>> {
    let rows = sqlx::query!(
        "select id, secret_sealed, secret_key_id from totp_factors \
         where secret_key_id <> $1 and id <> all($2) \
         order by id limit 200 for update skip locked",
        keyring.current_id(),
        skip,
    )
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut unreadable = Vec::new();
    for row in rows {
        let context = totp_secret_context(row.id);
        let sealed = Sealed {
            bytes: row.secret_sealed,
            key_id: row.secret_key_id,
        };
        match keyring.open(&sealed, &context) {
            Ok(plain) => {
                let plain = secrecy::zeroize::Zeroizing::new(plain);
                let sealed = keyring.seal(&plain, &context);
                sqlx::query!(
                    "update totp_factors set secret_sealed = $2, secret_key_id = $3 \
                     where id = $1",
                    row.id,
                    sealed.bytes,
                    sealed.key_id,
                )
                .execute(&mut *conn)
                .await?;
                rotation.resealed += 1;
            }
            Err(err) => {
                tracing::error!(factor = %row.id, error = %err, "cannot re-seal a TOTP secret");
                rotation.unreadable += 1;
                unreadable.push(row.id);
            }
        }
    }
    Ok(Some(unreadable))
}

/// One batch; `None` when nothing was left to do.
async fn rotate_batch(
    conn: &mut PgConnection,
    keyring: &Keyring,
    skip: &[Uuid],
    rotation: &mut Rotation,
) -> anyhow::Result<Option<Vec<Uuid>>> {
    // `<>` skips rows without a token; a check constraint sets both columns or neither.
    let rows = sqlx::query!(
        r#"select id, provider, subject, access_token as "access_token!",
                  token_key_id as "token_key_id!"
           from oauth_identities
           where token_key_id <> $1 and id <> all($2)
           order by id limit 200 for update skip locked"#,
        keyring.current_id(),
        skip,
    )
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut unreadable = Vec::new();
    for row in rows {
        let (id, bytes, key_id) = (row.id, row.access_token, row.token_key_id);
        let context = oauth_token_context(&row.provider, &row.subject);
        match keyring.open(&Sealed { bytes, key_id }, &context) {
            Ok(plain) => {
                let sealed = keyring.seal(&plain, &context);
                sqlx::query!(
                    "update oauth_identities set access_token = $2, token_key_id = $3 \
                     where id = $1",
                    id,
                    sealed.bytes,
                    sealed.key_id,
                )
                .execute(&mut *conn)
                .await?;
                rotation.resealed += 1;
            }
            Err(err) => {
                tracing::error!(identity = %id, error = %err, "cannot re-seal a provider token");
                rotation.unreadable += 1;
                unreadable.push(id);
            }
        }
    }
    Ok(Some(unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(current: &str, old: &[&str]) -> Keyring {
        let b64 = |seed: &str| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode([seed.as_bytes()[0]; 32])
        };
        let settings = Settings::load_with(&[
            ("database_url", "postgres://x@h/db".into()),
            ("encryption_key", b64(current)),
            (
                "encryption_old_keys",
                old.iter().map(|k| b64(k)).collect::<Vec<_>>().join(","),
            ),
        ])
        .unwrap();
        Keyring::from_settings(&settings)
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_place_and_unchanged() {
        let ring = keyring("a", &[]);
        let sealed = ring.seal(b"gho_secret", "t.c:1");
        assert!(!sealed.bytes.windows(10).any(|w| w == b"gho_secret"));
        assert_eq!(ring.open(&sealed, "t.c:1").unwrap(), b"gho_secret");
        assert!(matches!(
            ring.open(&sealed, "t.c:2"),
            Err(CryptoError::Tampered)
        ));
        let mut flipped = sealed.clone();
        let last = flipped.bytes.len() - 1;
        flipped.bytes[last] ^= 1;
        assert!(matches!(
            ring.open(&flipped, "t.c:1"),
            Err(CryptoError::Tampered)
        ));
        // Two seals of one value differ (fresh nonces).
        assert_ne!(ring.seal(b"x", "c").bytes, ring.seal(b"x", "c").bytes);
    }

    #[test]
    fn old_keys_stay_readable_and_unknown_ones_are_named() {
        let before = keyring("a", &[]);
        let sealed = before.seal(b"token", "c");
        let after = keyring("b", &["a"]);
        assert_ne!(after.current_id(), sealed.key_id);
        assert_eq!(after.open(&sealed, "c").unwrap(), b"token");
        let forgotten = keyring("b", &[]);
        assert!(matches!(
            forgotten.open(&sealed, "c"),
            Err(CryptoError::UnknownKey(id)) if id == sealed.key_id
        ));
    }
}
