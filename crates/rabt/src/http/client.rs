//! Who is on the other end: the client's address and user agent, for rate
//! limits, sessions and the audit log.
//!
//! The address is the socket peer's, unless the peer is a trusted proxy
//! (`RABT_TRUSTED_PROXIES`); then it is the rightmost `X-Forwarded-For` hop that
//! is not itself a trusted proxy. A header from anyone else is ignored, so a
//! client cannot choose its own address.

use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use ipnet::IpNet;

use crate::app::AppState;

/// The calling client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    /// A stable key for per-address limits.
    pub fn ip_key(&self) -> String {
        self.ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// Resolves the client address from the peer and the forwarding header.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> Option<IpAddr> {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = peer?;
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    while let Some(hop) = hops.pop() {
        if !is_trusted(&hop) {
            return Some(hop);
        }
    }
    Some(peer)
}

impl<S> FromRequestParts<S> for ClientInfo
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = client_ip(peer, &parts.headers, &state.settings.trusted_proxies);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect());
        Ok(Self { ip, user_agent })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert("x-forwarded-for", xff.parse().unwrap());
        map
    }

    #[test]
    fn an_untrusted_peer_cannot_choose_its_address() {
        let peer = "203.0.113.9".parse().ok();
        let ip = client_ip(peer, &headers("1.2.3.4"), &["10.0.0.0/8".parse().unwrap()]);
        assert_eq!(ip, peer);
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_counts() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            "10.0.0.2".parse().ok(),
            &headers("6.6.6.6, 198.51.100.7, 10.0.0.1"),
            &trusted,
        );
        assert_eq!(ip, "198.51.100.7".parse().ok());
    }

    #[test]
    fn garbage_forwarding_headers_fall_back_to_the_peer() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip("10.0.0.2".parse().ok(), &headers("not-an-ip"), &trusted);
        assert_eq!(ip, "10.0.0.2".parse().ok());
    }
}
