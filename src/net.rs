//! Address membership in configured networks (`trusted_proxies`, `[admin] allow`,
//! `[token_server] allow`), in one place so that every list reads an address the same way.
//!
//! An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what a dual-stack socket reports for an
//! IPv4 peer) is the IPv4 address it carries, and matches an IPv4 network as well as an
//! IPv6 one that covers the mapped form. Nothing here parses headers or decides policy.

use std::net::IpAddr;

use ipnet::IpNet;

/// IPv4-mapped IPv6 addresses read as the IPv4 address they carry; others unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` lies in one of `nets`: as given, in canonical form, or (an IPv4 address)
/// in its IPv4-mapped IPv6 form.
pub fn in_any(ip: IpAddr, nets: &[IpNet]) -> bool {
    let canonical = canonical(ip);
    let mapped = match canonical {
        IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
        IpAddr::V6(_) => None,
    };
    nets.iter().any(|net| {
        net.contains(&ip) || net.contains(&canonical) || mapped.is_some_and(|m| net.contains(&m))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().filter_map(|n| n.parse().ok()).collect()
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_an_ipv4_network() {
        let v4 = nets(&["10.0.0.0/8"]);
        assert!(in_any(ip("::ffff:10.0.0.1"), &v4));
        assert!(in_any(ip("10.0.0.1"), &v4));
        assert!(!in_any(ip("::ffff:11.0.0.1"), &v4));
        assert!(
            !in_any(ip("::10.0.0.1"), &v4),
            "IPv4-compatible is not mapped"
        );
    }

    #[test]
    fn a_mapped_network_matches_the_ipv4_peer_too() {
        let mapped = nets(&["::ffff:10.0.0.0/104"]);
        assert!(in_any(ip("10.1.2.3"), &mapped));
        assert!(in_any(ip("::ffff:10.1.2.3"), &mapped));
        assert!(!in_any(ip("11.1.2.3"), &mapped));
    }

    #[test]
    fn ipv6_and_empty_lists() {
        let v6 = nets(&["2001:db8::/32"]);
        assert!(in_any(ip("2001:db8::1"), &v6));
        assert!(!in_any(ip("2001:db9::1"), &v6));
        assert!(!in_any(ip("127.0.0.1"), &[]));
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
    }
}
