//! The tokens in tracked mail: 32 random bytes, base64url in the URL and
//! SHA-256 in the database, so a leaked table cannot be turned into links.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngExt as _;
use sha2::{Digest as _, Sha256};

/// The length of a token in a URL.
const TOKEN_LEN: usize = 43;

/// A fresh token and the hash it is stored under.
pub fn mint() -> (String, [u8; 32]) {
    let bytes: [u8; 32] = rand::rng().random();
    let token = URL_SAFE_NO_PAD.encode(bytes);
    let hash = hash(&token);
    (token, hash)
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The hash of a token from a URL, or `None` when it cannot be one rabt
/// minted (so it costs no database round trip).
pub fn parse(token: &str) -> Option<[u8; 32]> {
    (token.len() == TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then(|| hash(token))
}

/// Whether a pixel fetch comes from a mail provider's image proxy, which
/// fetches images when mail arrives or is listed, whether anyone reads it.
/// Such fetches are counted apart, never as opens.
pub fn is_image_proxy(user_agent: &str) -> bool {
    const PROXIES: &[&str] = &[
        "GoogleImageProxy",
        "ggpht.com",
        "YahooMailProxy",
        "Yahoo! Slurp",
        "OutlookImageProxy",
        "Microsoft Office Protocol Discovery",
        "ms-office",
        "Superhuman",
        "Mimecast",
        "Barracuda",
        "Proofpoint",
        "FeedFetcher",
        "bot",
        "Bot",
        "spider",
        "preview",
    ];
    user_agent.is_empty() || PROXIES.iter().any(|p| user_agent.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minted_token_parses_to_its_hash_and_an_altered_one_does_not() {
        let (token, hash) = mint();
        assert_eq!(parse(&token), Some(hash));
        let mut altered = token.clone().into_bytes();
        altered[0] = if altered[0] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(altered).unwrap();
        assert_ne!(parse(&altered), Some(hash));
        assert_eq!(parse(&token[1..]), None);
        assert_eq!(parse(&format!("{}/", &token[1..])), None);
    }

    #[test]
    fn proxies_are_told_from_mail_clients() {
        assert!(is_image_proxy(
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
        ));
        assert!(is_image_proxy(
            "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy"
        ));
        assert!(is_image_proxy(""));
        assert!(!is_image_proxy(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
        ));
    }
}
