//! Per-client rate limits on the public listener (the router's `rate_limit` layer applies
//! them). The client is the connection's peer, or, when the peer is a configured trusted proxy,
//! the nearest address in `X-Forwarded-For` that is not one (so a client cannot pick its own key
//! by sending the header itself).

use std::net::IpAddr;
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

pub struct ClientLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

impl ClientLimiter {
    /// `per_second == 0` turns limiting off; `burst == 0` means a burst of `per_second`.
    pub fn new(per_second: u32, burst: u32, trusted_proxies: Vec<IpNet>) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            trusted_proxies,
        }
    }

    fn trusted(&self, address: IpAddr) -> bool {
        self.trusted_proxies
            .iter()
            .any(|net| net.contains(&address))
    }

    /// The address the limit applies to.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // An IPv4 proxy reaching a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in forwarded.iter().rev() {
            match hop.parse::<IpAddr>().map(|address| address.to_canonical()) {
                Ok(address) if self.trusted(address) => client = address,
                Ok(address) => return address,
                // Garbage from beyond our proxies: the last trusted hop is all we know.
                Err(_) => return client,
            }
        }
        client
    }

    pub fn allows(&self, client: IpAddr) -> bool {
        self.limiter
            .as_ref()
            .is_none_or(|limiter| limiter.check_key(&bucket(client)).is_ok())
    }

    /// Drops the state of clients that have been quiet long enough to be back at full burst.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
        }
    }
}

/// The key of a client's bucket: an IPv4 address, or an IPv6 /64 — one IPv6 client usually has a
/// whole /64 and could otherwise take a fresh bucket for every request.
fn bucket(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(address) => {
            let prefix = u128::from(address) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", forwarded.parse().unwrap());
        headers
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let limiter = ClientLimiter::new(
            1,
            1,
            vec![
                "10.0.0.0/8".parse().unwrap(),
                "192.0.2.7/32".parse().unwrap(),
            ],
        );
        let untrusted: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(
            limiter.client(untrusted, &headers("198.51.100.1")),
            untrusted
        );
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(
            limiter.client(proxy, &headers("198.51.100.1")),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            limiter.client(proxy, &headers("6.6.6.6, 198.51.100.1, 192.0.2.7")),
            "198.51.100.1".parse::<IpAddr>().unwrap(),
            "the client cannot choose its key by adding entries on the left"
        );
        assert_eq!(limiter.client(proxy, &headers("nonsense")), proxy);
        assert_eq!(limiter.client(proxy, &HeaderMap::new()), proxy);
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_mapped_ipv4_is_ipv4() {
        let limiter = ClientLimiter::new(1, 1, vec!["10.0.0.0/8".parse().unwrap()]);
        assert!(limiter.allows("2001:db8:1:2::1".parse().unwrap()));
        assert!(
            !limiter.allows("2001:db8:1:2:ffff::9".parse().unwrap()),
            "same /64"
        );
        assert!(
            limiter.allows("2001:db8:1:3::1".parse().unwrap()),
            "another /64"
        );
        let mapped_proxy: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(
            limiter.client(mapped_proxy, &headers("198.51.100.1")),
            "198.51.100.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn each_client_gets_its_own_bucket() {
        let limiter = ClientLimiter::new(1, 2, Vec::new());
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        assert!(limiter.allows(a) && limiter.allows(a));
        assert!(!limiter.allows(a));
        assert!(limiter.allows(b));
        assert!(
            ClientLimiter::new(0, 0, Vec::new()).allows(a),
            "0 turns it off"
        );
    }
}
