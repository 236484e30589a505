//! The X-Forwarded-For walk (src/limit.rs: `client_ip`, `ClientAddr::of` / `behind`) with a
//! fixed trusted list and arbitrary header values.
//!
//! Never panics. The client is the peer, or (only from a trusted peer) an address that
//! appears as an entry of the header; an untrusted peer is always its own client; the
//! peer is reported in canonical form; `client_ip` and `ClientAddr::of` agree.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use wxgate::limit::{ClientAddr, client_ip};
use wxgate::net::{canonical, in_any};

const TRUSTED: [&str; 4] = [
    "10.0.0.0/8",
    "192.168.0.0/16",
    "::ffff:172.16.0.0/108",
    "2001:db8::/32",
];

fn trusted() -> &'static [IpNet] {
    static NETS: OnceLock<Vec<IpNet>> = OnceLock::new();
    NETS.get_or_init(|| TRUSTED.iter().filter_map(|n| n.parse().ok()).collect())
}

/// Every address an X-Forwarded-For entry of these headers names.
fn named(headers: &HeaderMap) -> Vec<IpAddr> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|e| std::str::from_utf8(e.trim_ascii()).ok())
        .filter_map(|s| {
            s.parse::<IpAddr>()
                .ok()
                .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        })
        .map(canonical)
        .collect()
}

// The input is lines: the socket peer (an address; anything else picks a trusted or an
// untrusted one), then one X-Forwarded-For value per line.
fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let first = lines.next().unwrap_or_default();
    let raw_peer = std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.trim().parse::<IpAddr>().ok())
        .unwrap_or(if first.len() % 2 == 0 {
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        } else {
            IpAddr::V4(Ipv4Addr::new(203, 0, 113, 50))
        });
    let mut headers = HeaderMap::new();
    for line in lines.take(16) {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append("x-forwarded-for", v);
        }
    }
    let nets = trusted();
    let peer = canonical(raw_peer);
    let addr = ClientAddr::of(raw_peer, &headers, nets);
    assert_eq!(addr.peer, peer);
    assert_eq!(addr.peer_trusted, in_any(peer, nets));
    assert_eq!(client_ip(raw_peer, &headers, nets), addr.ip);
    assert_eq!(
        ClientAddr::behind(peer, addr.peer_trusted, &headers, nets),
        addr
    );
    if !addr.peer_trusted {
        assert_eq!(addr.ip, peer, "an untrusted peer's header was believed");
    }
    assert!(
        addr.ip == peer || named(&headers).contains(&addr.ip),
        "{:?} is neither the peer {peer} nor in the header {headers:?}",
        addr.ip
    );
    // Whatever the header says, an untrusted claim is never believed over a trusted peer.
    assert_eq!(ClientAddr::behind(peer, false, &headers, nets).ip, peer);
});
