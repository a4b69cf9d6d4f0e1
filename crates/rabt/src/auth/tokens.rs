//! Tokens: short-lived access JWTs, and opaque random tokens (refresh, email
//! verification, password reset) that are stored only as SHA-256 hashes.

use std::time::Duration;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use rand::RngExt as _;
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use crate::{
    config::Settings,
    http::{ApiError, ErrorCode},
};

const AUDIENCE: &str = "rabt";

fn aal1() -> u8 {
    1
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub roles: Vec<String>,
    /// Authenticator assurance level of the session: 1 (a password, an
    /// emailed link or a provider), 2 (a second factor as well).
    #[serde(default = "aal1")]
    pub aal: u8,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// Signs and checks access tokens (HS256 with `RABT_JWT_SECRET`).
#[derive(Clone)]
pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    pub ttl: Duration,
}

impl AccessTokens {
    pub fn from_settings(settings: &Settings) -> Self {
        let secret = settings.jwt_secret.expose_secret().as_bytes();
        let issuer = settings.public_url.origin().ascii_serialization();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = 5;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer,
            ttl: settings.auth.access_token_ttl,
        }
    }

    /// A token for `user` in session `sid`, at the session's assurance level.
    pub fn issue(
        &self,
        user: Uuid,
        sid: Uuid,
        roles: Vec<String>,
        aal: u8,
    ) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user,
            sid,
            roles,
            aal,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(900),
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_owned(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Checks signature, algorithm, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, ApiError> {
        jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| match err.kind() {
                ErrorKind::ExpiredSignature => ApiError::new(ErrorCode::TokenExpired),
                _ => ApiError::new(ErrorCode::Unauthorized)
                    .with_detail("The access token is not valid."),
            })
    }
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a random token.
pub fn hash_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(secret: &str, ttl: u64) -> AccessTokens {
        let settings = Settings::load_with(&[
            ("database_url", "postgres://x@h/db".into()),
            ("jwt_secret", secret.into()),
            ("access_token_ttl_secs", ttl.to_string()),
        ])
        .unwrap();
        AccessTokens::from_settings(&settings)
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_issued_token_verifies_with_its_claims() {
        let keys = tokens(SECRET, 900);
        let (user, sid) = (Uuid::now_v7(), Uuid::now_v7());
        let token = keys.issue(user, sid, vec!["member".into()], 2).unwrap();
        let claims = keys.verify(&token).unwrap();
        assert_eq!((claims.sub, claims.sid), (user, sid));
        assert_eq!(claims.aal, 2);
        assert_eq!(claims.roles, vec!["member"]);
        assert_eq!(claims.aud, "rabt");
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let token = tokens("another-secret-another-secret-xyz", 900)
            .issue(Uuid::now_v7(), Uuid::now_v7(), vec![], 1)
            .unwrap();
        let err = tokens(SECRET, 900).verify(&token).unwrap_err();
        assert_eq!(err.code(), ErrorCode::Unauthorized);
    }

    #[test]
    fn an_expired_token_is_token_expired() {
        let keys = tokens(SECRET, 900);
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            roles: vec![],
            aal: 1,
            iat: now - 1000,
            exp: now - 100,
            iss: keys.issuer.clone(),
            aud: AUDIENCE.into(),
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(
            keys.verify(&token).unwrap_err().code(),
            ErrorCode::TokenExpired
        );
    }

    #[test]
    fn an_unsigned_token_is_refused() {
        let keys = tokens(SECRET, 900);
        let token = keys
            .issue(Uuid::now_v7(), Uuid::now_v7(), vec![], 1)
            .unwrap();
        let mut parts: Vec<&str> = token.split('.').collect();
        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        parts[0] = &none_header;
        parts[2] = "";
        assert!(keys.verify(&parts.join(".")).is_err());
    }

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(hash_token(&a).len(), 32);
    }
}
