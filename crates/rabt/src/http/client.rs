//! Who is on the other end: the client's address and user agent, for rate
//! limits, sessions and the audit log.
//!
//! The address is the socket peer's, unless the peer is a trusted proxy
//! (`RABT_TRUSTED_PROXIES`); then `X-Forwarded-For` is walked from the right,
//! past trusted proxies, and the first hop that is not one is the client. Only
//! trusted proxies vouch for what they append: a hop that does not parse ends
//! the walk at the last trusted address, since anything left of it may have
//! been written by the client. A header from anyone else is ignored, so a
//! client cannot choose its own address.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, FromRef, FromRequestParts},
    http::{HeaderMap, header, request::Parts},
};
use ipnet::IpNet;

use crate::config::Settings;

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
    let mut nearest = peer?;
    if !is_trusted(&nearest) {
        return Some(nearest);
    }
    let values: Vec<&str> = match headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str())
        .collect()
    {
        Ok(values) => values,
        // Not text: nothing in it can be vouched for.
        Err(_) => return Some(nearest),
    };
    // Repeated headers are one list, in order.
    let hops = values.iter().flat_map(|v| v.split(','));
    for hop in hops.rev() {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            return Some(nearest);
        };
        if !is_trusted(&hop) {
            return Some(hop);
        }
        nearest = hop;
    }
    Some(nearest)
}

impl<S> FromRequestParts<S> for ClientInfo
where
    Arc<Settings>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let settings = Arc::<Settings>::from_ref(state);
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = client_ip(peer, &parts.headers, &settings.trusted_proxies);
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
    fn an_unparseable_hop_stops_the_walk_at_the_last_trusted_address() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let peer = "10.0.0.2".parse().ok();
        // The client wrote "6.6.6.6, junk"; the proxy appended 10.0.0.1.
        let ip = client_ip(peer, &headers("6.6.6.6, junk, 10.0.0.1"), &trusted);
        assert_eq!(ip, "10.0.0.1".parse().ok());
        let ip = client_ip(peer, &headers("6.6.6.6, 10.0.0.1 junk"), &trusted);
        assert_eq!(ip, peer);
        let ip = client_ip(peer, &headers("6.6.6.6,,10.0.0.1"), &trusted);
        assert_eq!(ip, "10.0.0.1".parse().ok());
    }

    #[test]
    fn repeated_forwarding_headers_are_one_list_walked_from_the_right() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let mut map = HeaderMap::new();
        map.append("x-forwarded-for", "6.6.6.6".parse().unwrap());
        map.append("x-forwarded-for", "198.51.100.7, 10.0.0.1".parse().unwrap());
        let ip = client_ip("10.0.0.2".parse().ok(), &map, &trusted);
        assert_eq!(ip, "198.51.100.7".parse().ok());
    }

    #[test]
    fn when_every_hop_is_trusted_the_farthest_one_is_the_client() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip(
            "10.0.0.2".parse().ok(),
            &headers("10.0.0.5, 10.0.0.1"),
            &trusted,
        );
        assert_eq!(ip, "10.0.0.5".parse().ok());
    }

    #[test]
    fn garbage_forwarding_headers_fall_back_to_the_peer() {
        let trusted = ["10.0.0.0/8".parse().unwrap()];
        let ip = client_ip("10.0.0.2".parse().ok(), &headers("not-an-ip"), &trusted);
        assert_eq!(ip, "10.0.0.2".parse().ok());
    }
}
