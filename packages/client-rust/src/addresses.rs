//! The address policy for relay entries: which addrs of a relay list a client
//! is willing to dial. The same rules as the discovery API applies on
//! registration (`packages/shared/src/addresses.ts`), so a hostile entry that
//! slipped into a list (another discovery, an old server) is still dropped.

use std::net::{Ipv4Addr, Ipv6Addr};

use libp2p::multiaddr::{Multiaddr, Protocol};

/// At most this many addrs are kept per relay entry.
pub const MAX_RELAY_ADDRS: usize = 16;

/// Which relay addrs may be dialed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Unspecified, link-local, multicast and broadcast addrs are dropped;
    /// loopback and private ranges are allowed (local mode, kind, private networks).
    #[default]
    Default,
    /// Loopback and private ranges (and `localhost` names) are dropped too (public fleets).
    PublicOnly,
}

fn v4_in(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

fn v6_in(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 { 0 } else { u128::MAX << (128 - prefix) };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Never a relay, whatever the policy: nobody can be reached there, or it is
/// a cloud metadata endpoint (169.254.169.254 is link-local).
fn v4_never(ip: Ipv4Addr) -> Option<&'static str> {
    if v4_in(ip, [0, 0, 0, 0], 8) {
        Some("an unspecified address")
    } else if v4_in(ip, [169, 254, 0, 0], 16) {
        Some("a link-local address")
    } else if v4_in(ip, [224, 0, 0, 0], 4) {
        Some("a multicast address")
    } else if ip == Ipv4Addr::BROADCAST {
        Some("the broadcast address")
    } else {
        None
    }
}

fn v4_local(ip: Ipv4Addr) -> Option<&'static str> {
    if v4_in(ip, [127, 0, 0, 0], 8) {
        Some("a loopback address")
    } else if v4_in(ip, [10, 0, 0, 0], 8)
        || v4_in(ip, [172, 16, 0, 0], 12)
        || v4_in(ip, [192, 168, 0, 0], 16)
        || v4_in(ip, [100, 64, 0, 0], 10)
    {
        Some("a private address")
    } else {
        None
    }
}

fn v6_never(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_unspecified() {
        Some("an unspecified address")
    } else if v6_in(ip, "fe80::".parse().expect("literal"), 10) {
        Some("a link-local address")
    } else if v6_in(ip, "ff00::".parse().expect("literal"), 8) {
        Some("a multicast address")
    } else {
        None
    }
}

fn v6_local(ip: Ipv6Addr) -> Option<&'static str> {
    if ip.is_loopback() {
        Some("a loopback address")
    } else if v6_in(ip, "fc00::".parse().expect("literal"), 7) {
        Some("a private address")
    } else {
        None
    }
}

fn ip_problem(v4: Option<Ipv4Addr>, v6: Option<Ipv6Addr>, policy: AddressPolicy) -> Option<String> {
    // an IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged by the IPv4 rules, so the mapping cannot smuggle one past them
    let v4 = v4.or_else(|| v6.and_then(|ip| ip.to_ipv4_mapped()));
    let (shown, never, local) = match (v4, v6) {
        (Some(ip), orig) => (
            orig.map_or(ip.to_string(), |o| o.to_string()),
            v4_never(ip),
            v4_local(ip),
        ),
        (None, Some(ip)) => (ip.to_string(), v6_never(ip), v6_local(ip)),
        (None, None) => return None,
    };
    if let Some(what) = never {
        return Some(format!("{shown} is {what}, which is never a relay address"));
    }
    match (policy, local) {
        (AddressPolicy::PublicOnly, Some(what)) => Some(format!(
            "{shown} is {what}, refused by the public-addresses-only policy"
        )),
        _ => None,
    }
}

fn host_problem(host: &Protocol<'_>, policy: AddressPolicy) -> Option<String> {
    let name = match host {
        Protocol::Ip4(ip) => return ip_problem(Some(*ip), None, policy),
        Protocol::Ip6(ip) => return ip_problem(None, Some(*ip), policy),
        Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) | Protocol::Dnsaddr(n) => n,
        other => {
            return Some(format!(
                "must start with /ip4, /ip6, /dns, /dns4, /dns6 or /dnsaddr, not {other}"
            ))
        }
    };
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix('.').unwrap_or(&name);
    if policy == AddressPolicy::PublicOnly && (name == "localhost" || name.ends_with(".localhost")) {
        return Some(format!(
            "{name} is a loopback name, refused by the public-addresses-only policy"
        ));
    }
    None
}

fn transport_problem(components: &[Protocol<'_>]) -> Option<String> {
    for (i, c) in components.iter().enumerate() {
        match c {
            Protocol::Tcp(0) | Protocol::Udp(0) => return Some("has port 0, which cannot be dialed".into()),
            // plain UDP, QUIC draft-29, WebRTC: nothing our relays speak, and raw UDP is a reflection vector
            Protocol::Udp(_) if !matches!(components.get(i + 1), Some(Protocol::QuicV1)) => {
                return Some("uses UDP other than /quic-v1".into())
            }
            _ => {}
        }
    }
    None
}

/// Why `addr` must not be dialed as a relay address under `policy`, or `None`
/// when it is acceptable. Only the host and transport are judged (a `/p2p`
/// suffix is the caller's business).
pub fn relay_address_problem(addr: &Multiaddr, policy: AddressPolicy) -> Option<String> {
    let components: Vec<Protocol<'_>> = addr.iter().collect();
    let Some(host) = components.first() else {
        return Some("is empty".into());
    };
    host_problem(host, policy).or_else(|| transport_problem(&components))
}

/// The addrs that pass `policy`, at most [`MAX_RELAY_ADDRS`] of them.
pub fn dialable_relay_addrs(addrs: impl IntoIterator<Item = Multiaddr>, policy: AddressPolicy) -> Vec<Multiaddr> {
    addrs
        .into_iter()
        .filter(|a| relay_address_problem(a, policy).is_none())
        .take(MAX_RELAY_ADDRS)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(addr: &str, policy: AddressPolicy) -> bool {
        relay_address_problem(&addr.parse().unwrap(), policy).is_none()
    }

    #[test]
    fn judges_hosts_and_transports_like_the_shared_policy() {
        use AddressPolicy::*;
        assert!(ok("/ip4/203.0.113.7/tcp/7373", PublicOnly));
        assert!(ok("/ip4/127.0.0.1/tcp/7373", Default));
        assert!(!ok("/ip4/127.0.0.1/tcp/7373", PublicOnly));
        assert!(!ok("/ip4/10.1.2.3/tcp/7373", PublicOnly));
        assert!(!ok("/ip4/100.64.0.1/tcp/7373", PublicOnly));
        assert!(ok("/ip4/100.128.0.1/tcp/7373", PublicOnly));
        assert!(!ok("/ip4/169.254.169.254/tcp/80", Default));
        assert!(!ok("/ip4/0.0.0.0/tcp/7373", Default));
        assert!(!ok("/ip4/224.0.0.1/tcp/7373", Default));
        assert!(!ok("/ip4/255.255.255.255/tcp/7373", Default));
        assert!(!ok("/ip6/::ffff:169.254.169.254/tcp/80", Default));
        assert!(!ok("/ip6/::ffff:127.0.0.1/tcp/80", PublicOnly));
        assert!(!ok("/ip6/fe80::1/tcp/7373", Default));
        assert!(!ok("/ip6/::/tcp/7373", Default));
        assert!(!ok("/ip6/fd00::1/tcp/7373", PublicOnly));
        assert!(ok("/ip6/2001:db8::1/udp/7373/quic-v1", PublicOnly));
        assert!(!ok("/ip4/203.0.113.7/udp/7373", Default));
        assert!(!ok("/ip4/203.0.113.7/udp/7373/quic", Default));
        assert!(!ok("/ip4/203.0.113.7/tcp/0", Default));
        assert!(!ok("/dns/LocalHost./tcp/7373", PublicOnly));
        assert!(ok("/dns/relay.example.com/tcp/7373", PublicOnly));
        assert!(!ok("/memory/5", Default));
    }
}
