//! The rules of the second factor, without I/O: TOTP codes (RFC 6238:
//! HMAC-SHA-1, 6 digits, 30-second steps, one step of clock drift either
//! way), what an authenticator app is shown at enrolment, recovery codes, and
//! the request body that carries one or the other.

use rand::RngExt as _;
use secrecy::zeroize::Zeroizing;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use utoipa::ToSchema;

use crate::http::{ApiError, FieldError};

/// The issuer authenticator apps show beside the account.
pub const ISSUER: &str = "rabt";
/// Bytes of a new TOTP secret (160 bits, RFC 4226's recommendation).
pub const SECRET_BYTES: usize = 20;
/// How many recovery codes a set has.
pub const RECOVERY_CODES: usize = 10;
/// Recovery codes are read aloud and typed: no look-alike characters.
const RECOVERY_ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
/// 16 characters of a 31-letter alphabet: about 79 random bits.
const RECOVERY_LEN: usize = 16;

/// A TOTP secret in the clear; it exists only in memory, zeroed when dropped.
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

impl TotpSecret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let bytes: [u8; SECRET_BYTES] = rand::rng().random();
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// A secret as it was stored (opened from its sealed form).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, account: &str) -> Result<totp_rs::Totp, totp_rs::TotpError> {
        totp_rs::Builder::new()
            .with_algorithm(totp_rs::Algorithm::SHA1)
            .with_digits(6)
            .with_step_duration(30)
            .with_skew(1)
            .with_secret(self.0.to_vec())
            .with_issuer(Some(ISSUER))
            // The label's separator is `:`; an address cannot carry one in.
            .with_account_name(account.replace(':', "_"))
            .build()
    }

    /// The RFC 6238 time step that `code` is valid for at `unix_time`, within
    /// one step either way; `None` for a wrong or malformed code.
    pub fn check(&self, code: &str, unix_time: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != 6 {
            return None;
        }
        self.totp("-").ok()?.check(&code, unix_time)
    }

    /// The code of `unix_time` (tests and the enrolment's unit tests).
    pub fn code_at(&self, unix_time: u64) -> Option<String> {
        Some(self.totp("-").ok()?.generate(unix_time).to_string())
    }

    /// What an authenticator app is given: the secret in base32, the
    /// `otpauth://` URL, and that URL as a QR code in SVG.
    pub fn enrolment(&self, account: &str) -> anyhow::Result<Enrolment> {
        let totp = self
            .totp(account)
            .map_err(|e| anyhow::anyhow!("TOTP parameters: {e}"))?;
        let otpauth_url = totp
            .to_url()
            .map_err(|e| anyhow::anyhow!("otpauth URL: {e}"))?;
        let qr_svg = qrcode::QrCode::new(otpauth_url.as_bytes())?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(Enrolment {
            secret: totp.secret().to_base32(),
            otpauth_url,
            qr_svg,
        })
    }
}

/// The answer to an enrolment.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Enrolment {
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/rabt:<email>?secret=…&issuer=rabt`
    pub otpauth_url: String,
    /// The URL as a QR code, an SVG document.
    pub qr_svg: String,
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// A fresh set of recovery codes, formatted `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let raw: String = (0..RECOVERY_LEN)
                .map(|_| {
                    let at = rng.random_range(0..RECOVERY_ALPHABET.len());
                    char::from(RECOVERY_ALPHABET[at])
                })
                .collect();
            raw.as_bytes()
                .chunks(4)
                .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// What is stored of a recovery code: the SHA-256 of its characters, case,
/// dashes and spaces aside, so a code typed `ABCD EFGH …` still matches.
pub fn recovery_code_hash(code: &str) -> Vec<u8> {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    Sha256::digest(normal.as_bytes()).to_vec()
}

/// A second factor as a request carries it: a TOTP code or a recovery code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Factor {
    Totp(String),
    RecoveryCode(String),
}

impl Factor {
    /// The factor of a body with `code` or `recovery_code`: exactly one, each
    /// of a plausible size (longer input is refused before any work).
    pub fn parse(code: Option<String>, recovery_code: Option<String>) -> Result<Self, ApiError> {
        let invalid = |field: &str, message: &str| {
            ApiError::validation(vec![FieldError::new(field, "invalid", message)])
        };
        match (code, recovery_code) {
            (Some(code), None) if code.len() <= 16 => Ok(Self::Totp(code)),
            (Some(_), None) => Err(invalid("code", "A code has 6 digits.")),
            (None, Some(code)) if code.len() <= 64 => Ok(Self::RecoveryCode(code)),
            (None, Some(_)) => Err(invalid("recovery_code", "Not a recovery code.")),
            (Some(_), Some(_)) => Err(invalid("code", "Send `code` or `recovery_code`, not both.")),
            (None, None) => Err(ApiError::validation(vec![FieldError::new(
                "code",
                "required",
                "Send `code` or `recovery_code`.",
            )])),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Totp(_) => "totp",
            Self::RecoveryCode(_) => "recovery_code",
        }
    }
}

/// A body that proves the second factor with `{code}` or `{recovery_code}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FactorRequest {
    /// The current 6-digit code of the authenticator app.
    pub code: Option<String>,
    /// One of the recovery codes, instead of `code`.
    pub recovery_code: Option<String>,
}

impl FactorRequest {
    pub fn factor(self) -> Result<Factor, ApiError> {
        Factor::parse(self.code, self.recovery_code)
    }
}

/// The associated data a TOTP secret is sealed with: its row.
pub fn secret_context(factor: uuid::Uuid) -> String {
    crate::crypto::totp_secret_context(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_rfc_6238_for_sha1() {
        // RFC 6238, appendix B: the SHA-1 seed, T = 59 → 94287082 (8 digits);
        // six digits are its last six.
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        assert_eq!(secret.code_at(59).unwrap(), "287082");
        assert_eq!(secret.code_at(1_111_111_109).unwrap(), "081804");
        assert_eq!(secret.check("287082", 59), Some(1));
        assert_eq!(secret.check("287 082", 59), Some(1));
    }

    #[test]
    fn a_code_is_valid_one_step_either_way_and_no_further() {
        let secret = TotpSecret::generate();
        let now: u64 = 1_800_000_000;
        let step = now / 30;
        for (offset, valid) in [
            (-60_i64, false),
            (-30, true),
            (0, true),
            (30, true),
            (60, false),
        ] {
            let at = now.checked_add_signed(offset).unwrap();
            let code = secret.code_at(at).unwrap();
            let expected = valid.then_some(at / 30);
            // A code of another step may collide by chance (1 in a million).
            if !valid && secret.code_at(now).unwrap() == code {
                continue;
            }
            assert_eq!(secret.check(&code, now), expected, "offset {offset}");
        }
        assert_eq!(secret.check(&secret.code_at(now).unwrap(), now), Some(step));
        for bad in ["", "12345", "1234567", "abcdef", "+12345"] {
            assert_eq!(secret.check(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn the_enrolment_names_the_issuer_and_account_and_draws_the_url() {
        let secret = TotpSecret::from_bytes(vec![7; SECRET_BYTES]);
        let enrolment = secret.enrolment("ada@rabt.test").unwrap();
        assert_eq!(enrolment.secret, "A4DQOBYHA4DQOBYHA4DQOBYHA4DQOBYH");
        assert!(
            enrolment
                .otpauth_url
                .starts_with("otpauth://totp/rabt:ada%40rabt.test?secret=A4DQ"),
            "{}",
            enrolment.otpauth_url
        );
        assert!(enrolment.otpauth_url.contains("issuer=rabt"));
        assert!(enrolment.qr_svg.contains("<svg"));
    }

    #[test]
    fn recovery_codes_are_distinct_readable_and_match_however_typed() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 19);
            assert!(!code.contains(['0', 'o', '1', 'l', 'i']), "{code}");
        }
        let code = &codes[0];
        let shouted = code.to_uppercase().replace('-', " ");
        assert_eq!(recovery_code_hash(code), recovery_code_hash(&shouted));
        assert_ne!(recovery_code_hash(code), recovery_code_hash(&codes[1]));
    }

    #[test]
    fn a_factor_is_a_code_or_a_recovery_code_never_both_or_neither() {
        assert_eq!(
            Factor::parse(Some("123456".into()), None).unwrap(),
            Factor::Totp("123456".into())
        );
        assert_eq!(
            Factor::parse(None, Some("abcd".into())).unwrap().kind(),
            "recovery_code"
        );
        for (code, recovery) in [
            (None, None),
            (Some("1".to_owned()), Some("2".to_owned())),
            (Some("1".repeat(17)), None),
            (None, Some("a".repeat(65))),
        ] {
            let err = Factor::parse(code, recovery).unwrap_err();
            assert_eq!(err.code(), crate::http::ErrorCode::ValidationFailed);
        }
    }
}
