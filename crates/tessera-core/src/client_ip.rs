//! Which address a request came from, for throttling and audit.
//!
//! By default the socket peer, and nothing else: `X-Forwarded-For` is written by whoever
//! sends the request, so trusting it would let an attacker pick a fresh address for every
//! guess. Behind a reverse proxy every request comes from the proxy, so the operator names
//! the proxies (`TESSERA_TRUSTED_PROXIES`): when the peer is one of them, the header is read
//! from the right (the hop the proxy itself appended) skipping trusted addresses, and the
//! first untrusted one is the client.

use std::net::IpAddr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`), or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// Parses `addr/prefix` or a bare address (a network of one).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let problem = || format!("`{text}` is not an IP address or network (e.g. 10.0.0.0/8)");
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| problem())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| problem())?,
            None => max,
        };
        if prefix > max {
            return Err(problem());
        }
        Ok(Self { addr, prefix })
    }

    /// Whether `ip` lies in the network (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNetwork {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl std::fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The client's address: `peer`, unless `peer` is a trusted proxy, in which case the
/// rightmost untrusted address of the `X-Forwarded-For` values (in the order the headers
/// came). When every hop is trusted the leftmost one is taken; an unreadable entry ends the
/// walk at the hop after it (the last address a trusted proxy vouched for).
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNetwork]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    let peer = canonical(peer);
    if !is_trusted(peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_for.iter().rev().flat_map(|v| v.rsplit(',')) {
        let Some(ip) = parse_hop(hop) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<std::net::SocketAddr>()
        .ok()
        .map(|s| canonical(s.ip()))
}

/// IPv4-mapped IPv6 (`::ffff:1.2.3.4`, as a dual-stack socket reports IPv4 peers) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn nets(list: &[&str]) -> Vec<IpNetwork> {
        list.iter().map(|s| IpNetwork::parse(s).unwrap()).collect()
    }

    #[test]
    fn networks_parse_and_match() {
        let n = IpNetwork::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.255.0.1")));
        assert!(n.contains(ip("::ffff:10.1.2.3")));
        assert!(!n.contains(ip("11.0.0.1")));
        let one = IpNetwork::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        let v6 = IpNetwork::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")) && !v6.contains(ip("2001:db9::1")));
        assert!(
            IpNetwork::parse("0.0.0.0/0")
                .unwrap()
                .contains(ip("8.8.8.8"))
        );
        for bad in ["", "10.0.0.0/33", "::/129", "example.com", "10.0.0.0/x"] {
            assert!(IpNetwork::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(n.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        let xff = ["198.51.100.1"];
        assert_eq!(client_ip(ip("203.0.113.5"), &xff, &[]), ip("203.0.113.5"));
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(ip("203.0.113.5"), &xff, &trusted),
            ip("203.0.113.5")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff, &trusted),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_whatever_the_client_wrote() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client forged "1.1.1.1"; the edge proxy appended the real address, then an
        // inner proxy appended the edge.
        let xff = ["1.1.1.1, 198.51.100.9", "10.0.0.7"];
        assert_eq!(
            client_ip(ip("10.0.0.2"), &xff, &trusted),
            ip("198.51.100.9")
        );
        // All hops trusted: the leftmost.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["10.0.0.9"], &trusted),
            ip("10.0.0.9")
        );
        // No header: the proxy itself.
        assert_eq!(client_ip(ip("10.0.0.2"), &[], &trusted), ip("10.0.0.2"));
        // Garbage stops the walk at the last vouched-for hop; ports are allowed.
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["nonsense, 10.0.0.3"], &trusted),
            ip("10.0.0.3")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), &["198.51.100.2:4711"], &trusted),
            ip("198.51.100.2")
        );
        assert_eq!(
            client_ip(ip("::ffff:10.0.0.2"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }
}
