//! Signed webhooks, in Stripe's scheme, which rabt's own `POST /email/events`
//! uses too: a header `t=<unix time>,v1=<hex>`, where each `v1` is
//! HMAC-SHA256, keyed with the endpoint secret, of `"<t>.<raw body>"`.
//! Several `v1` may be present (while a secret is rolled); any one matching
//! is enough. The timestamp bounds replays.

use hmac::{Hmac, Mac as _};
use sha2::Sha256;

/// How far the signed time may be from ours.
pub const TOLERANCE_SECS: i64 = 300;

/// The most `v1` signatures one header may carry, and its longest length.
const MAX_SIGNATURES: usize = 8;
const MAX_HEADER_LEN: usize = 2048;

/// Why an event was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is missing or malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches")]
    Mismatch,
}

impl SignatureError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Stale => "stale",
            Self::Mismatch => "mismatch",
        }
    }
}

/// Checks `header` over `payload` with `secret` at `now` (Unix seconds).
pub fn verify(payload: &[u8], header: &str, secret: &str, now: i64) -> Result<(), SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                );
            }
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                // A v1 that is not hex cannot match; it does not spoil the rest.
                if let Ok(bytes) = hex::decode(value) {
                    signatures.push(bytes);
                }
            }
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if now.abs_diff(timestamp) > TOLERANCE_SECS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let mut mac =
        <Hmac<Sha256>>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    // `verify_slice` compares in constant time; every candidate is checked.
    let matched = signatures.iter().fold(false, |found, candidate| {
        mac.clone().verify_slice(candidate).is_ok() | found
    });
    if matched {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The header a sender would send for `payload` at `timestamp` (tests, the
/// benchmark, relays of provider events).
pub fn sign(payload: &[u8], secret: &str, timestamp: i64) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";
    const BODY: &[u8] = br#"{"id":"evt_1","type":"customer.subscription.updated"}"#;

    #[test]
    fn a_signature_of_the_body_verifies_within_the_tolerance() {
        let header = sign(BODY, SECRET, 1_000_000);
        assert_eq!(verify(BODY, &header, SECRET, 1_000_000), Ok(()));
        assert_eq!(verify(BODY, &header, SECRET, 1_000_300), Ok(()));
        assert_eq!(
            verify(BODY, &header, SECRET, 1_000_301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(BODY, &header, SECRET, 999_699),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn another_body_secret_or_time_does_not_verify() {
        let header = sign(BODY, SECRET, 1_000_000);
        assert_eq!(
            verify(b"{}", &header, SECRET, 1_000_000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(BODY, &header, "whsec_other", 1_000_000),
            Err(SignatureError::Mismatch)
        );
        // The signed time is part of the MAC: moving it breaks the signature.
        let moved = header.replace("t=1000000", "t=1000001");
        assert_eq!(
            verify(BODY, &moved, SECRET, 1_000_000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn any_v1_may_match_and_other_schemes_are_ignored() {
        let good = sign(BODY, SECRET, 5);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=5,v0=abc,v1={},v1=zz,v1={v1}", "00".repeat(32));
        assert_eq!(verify(BODY, &header, SECRET, 5), Ok(()));
    }

    #[test]
    fn a_timestamp_at_the_ends_of_the_range_is_stale_not_a_panic() {
        for t in [i64::MIN, i64::MAX] {
            let header = format!("t={t},v1={}", "00".repeat(32));
            assert_eq!(
                verify(BODY, &header, SECRET, 1_000_000),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in [
            "",
            "t=5",
            "v1=00",
            "t=x,v1=00",
            "t5,v1=00",
            &"v1=00,".repeat(400),
        ] {
            assert_eq!(
                verify(BODY, header, SECRET, 5),
                Err(SignatureError::Malformed),
                "{header}"
            );
        }
    }
}
