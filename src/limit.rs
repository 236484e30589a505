//! Per-client-IP login rate limits and the client-IP rule behind them.
//!
//! One governor bucket per client (IPv4 address, or IPv6 /64) is shared by the login
//! endpoints. The client IP is the socket peer, or — when the peer is a trusted proxy —
//! the right-most X-Forwarded-For address that is not itself trusted, found by a walk from
//! the right that stops at the first entry it cannot read, so a client cannot pick its own
//! key by forging the header. Idle buckets are pruned so memory stays bounded.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;
use ipnet::IpNet;

use crate::config::RateLimitConfig;
use crate::error::GatewayError;
use crate::http::names::X_FORWARDED_FOR;
use crate::net::{canonical, in_any};

/// How often idle buckets are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// The login limiter; `None` inside when the limit is off.
pub struct LoginLimiter {
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl LoginLimiter {
    pub fn new(config: RateLimitConfig) -> Self {
        let limiter = NonZeroU32::new(config.login_per_minute).map(|per_minute| {
            let burst = NonZeroU32::new(config.login_burst).unwrap_or(NonZeroU32::MIN);
            DefaultKeyedRateLimiter::keyed(Quota::per_minute(per_minute).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// Take one token from this client's bucket, or say how long to wait.
    pub fn check(&self, client: IpAddr) -> Result<(), GatewayError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&bucket_key(client)).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            GatewayError::RateLimited {
                retry_after_secs: secs.max(1),
            }
        })
    }

    /// Number of client buckets held (for tests and diagnostics).
    pub fn tracked_clients(&self) -> usize {
        self.limiter.as_ref().map_or(0, |l| l.len())
    }

    /// Prune idle buckets periodically, for as long as the limiter lives.
    pub fn spawn_pruner(self: &Arc<Self>) {
        if self.limiter.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_EVERY);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { return };
                if let Some(l) = &this.limiter {
                    l.retain_recent();
                    l.shrink_to_fit();
                }
            }
        });
    }
}

/// IPv4 per address, IPv6 per /64 (one subscriber usually holds a whole /64).
fn bucket_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

/// Whether the socket peer is a trusted proxy.
pub fn peer_is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    in_any(peer, trusted)
}

/// Who is calling, as far as the gateway believes: the socket peer, whether it is a trusted
/// proxy, and the client IP that keys the rate limit and goes upstream as `X-Real-IP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    pub peer: IpAddr,
    pub peer_trusted: bool,
    pub ip: IpAddr,
}

impl ClientAddr {
    /// Work out the client once per request (see [`client_ip`] for the rule).
    pub fn of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let peer = canonical(peer);
        Self::behind(peer, peer_is_trusted(peer, trusted), headers, trusted)
    }

    /// The same, for a (canonical) peer whose trust was settled when it connected.
    pub fn behind(
        peer: IpAddr,
        peer_trusted: bool,
        headers: &HeaderMap,
        trusted: &[IpNet],
    ) -> Self {
        let ip = if peer_trusted {
            walk_forwarded_for(peer, headers, trusted)
        } else {
            peer
        };
        Self {
            peer,
            peer_trusted,
            ip,
        }
    }
}

/// The client's IP: the peer, or from a trusted peer the first untrusted address met when
/// walking X-Forwarded-For from the right (every such header, joined in order). An entry
/// that does not parse, or is empty, ends the walk and the last trusted hop is the client
/// (the peer itself when the right-most entry is junk): nothing left of it is believed.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    ClientAddr::of(peer, headers, trusted).ip
}

fn walk_forwarded_for(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let mut last_trusted = peer;
    let entries = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .rev()
        .flat_map(|v| v.as_bytes().rsplit(|b| *b == b','));
    for entry in entries {
        match parse_hop(entry.trim_ascii()) {
            Some(ip) if in_any(ip, trusted) => last_trusted = ip,
            Some(ip) => return ip,
            None => break,
        }
    }
    last_trusted
}

/// One X-Forwarded-For entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(entry: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(entry).ok()?;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    s.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| canonical(a.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_xff_says() {
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        assert_eq!(client_ip(ip("9.9.9.9"), &h, &[]), ip("9.9.9.9"));
    }

    #[test]
    fn trusted_peer_gives_rightmost_untrusted_hop() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_default()];
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.7"),
        );
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("1.2.3.4"));
    }

    #[test]
    fn the_walk_stops_at_an_entry_it_cannot_read() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap_or_default()];
        let peer = ip("10.0.0.1");
        let cases: &[(&[&str], &str)] = &[
            (&["198.51.100.7, junk, 203.0.113.9"], "203.0.113.9"),
            (&["198.51.100.7, junk, 10.0.0.9"], "10.0.0.9"),
            (&["198.51.100.7, , 10.0.0.9"], "10.0.0.9"),
            (&["198.51.100.7,,10.0.0.9, 10.0.0.8"], "10.0.0.9"),
            (&["198.51.100.7, junk"], "10.0.0.1"),
            (&["198.51.100.7,"], "10.0.0.1"),
            (&[""], "10.0.0.1"),
            (&["10.0.0.3, 10.0.0.2"], "10.0.0.3"),
            (&["198.51.100.7", "junk", "10.0.0.2"], "10.0.0.2"),
            (&["198.51.100.7, junk", "203.0.113.9"], "203.0.113.9"),
            (&["6.6.6.6", "203.0.113.9, 10.0.0.2"], "203.0.113.9"),
            (&["[2001:db8::1]:443, 10.0.0.2"], "2001:db8::1"),
            (&["203.0.113.9:5000"], "203.0.113.9"),
            (&["::ffff:203.0.113.9"], "203.0.113.9"),
        ];
        for (values, want) in cases {
            let mut h = HeaderMap::new();
            for v in *values {
                h.append(X_FORWARDED_FOR, HeaderValue::from_static(v));
            }
            assert_eq!(client_ip(peer, &h, &trusted), ip(want), "{values:?}");
        }
        let mut h = HeaderMap::new();
        h.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"198.51.100.7, 20\xff3.0.113.9")
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(client_ip(peer, &h, &trusted), peer);
    }

    #[test]
    fn limits_per_client_and_ipv6_per_64() {
        let l = LoginLimiter::new(RateLimitConfig {
            login_per_minute: 60,
            login_burst: 2,
        });
        assert!(l.check(ip("1.1.1.1")).is_ok());
        assert!(l.check(ip("1.1.1.1")).is_ok());
        let err = l.check(ip("1.1.1.1"));
        assert!(
            matches!(err, Err(GatewayError::RateLimited { retry_after_secs }) if retry_after_secs >= 1)
        );
        assert!(l.check(ip("1.1.1.2")).is_ok());
        assert!(l.check(ip("2001:db8::1")).is_ok());
        assert!(l.check(ip("2001:db8::2")).is_ok());
        assert!(l.check(ip("2001:db8::3")).is_err());
        let off = LoginLimiter::new(RateLimitConfig {
            login_per_minute: 0,
            login_burst: 1,
        });
        assert!((0..100).all(|_| off.check(ip("1.1.1.1")).is_ok()));
    }
}
