//! Which peer addresses the relay forwards to.
//!
//! A TURN server is an open door into whatever network it sits in, so peers are
//! denied by default when they are:
//!
//! - unspecified (`0.0.0.0/8`, `::`), loopback (`127.0.0.0/8`, `::1`);
//! - private: RFC 1918 (`10/8`, `172.16/12`, `192.168/16`) and IPv6 ULA `fc00::/7`;
//! - link-local (`169.254/16`, `fe80::/10`) and the old site-local `fec0::/10`;
//! - multicast (`224/4`, `ff00::/8`), reserved and broadcast (`240/4`);
//! - CGN shared space `100.64.0.0/10` (RFC 6598): not routable on the Internet, so
//!   a relay inside a carrier network would otherwise reach other subscribers;
//! - IPv4-mapped (`::ffff:0:0/96`) and NAT64 (`64:ff9b::/96`) addresses whose
//!   embedded IPv4 address is denied (so they cannot smuggle one of the above);
//! - the relay's own IPs, except the relay port range: two clients of the same
//!   relay reach each other through their relayed addresses, but no one reaches the
//!   relay's other services through it.
//!
//! `--allow-peer CIDR` opens a range (tests, private deployments). One thing
//! stays denied whatever is allowed: the relay's own listening addresses, so the
//! relay can never be made to send TURN traffic to itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;

/// An IP range in CIDR notation, e.g. `127.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// The part before `/` is not an IP address.
    #[error("{0:?} is not an IP address; write a range like 127.0.0.0/8 or ::1/128")]
    BadAddress(String),
    /// The prefix length is not a number or too long for the family.
    #[error("prefix length {0:?} is not valid (0–32 for IPv4, 0–128 for IPv6)")]
    BadPrefix(String),
}

impl Cidr {
    /// The range `network/prefix`; host bits are cleared. `None` if the prefix is
    /// too long for the family.
    pub fn new(network: IpAddr, prefix: u8) -> Option<Cidr> {
        let bits = match network {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        if prefix > bits {
            return None;
        }
        let network = match network {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Some(Cidr { network, prefix })
    }

    /// Whether `ip` is in the range (an IPv4 range never contains an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => u32::from(a) & mask32(self.prefix) == u32::from(n),
            (IpAddr::V6(n), IpAddr::V6(a)) => u128::from(a) & mask128(self.prefix) == u128::from(n),
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    /// Parses `ADDRESS/PREFIX`; a bare address is a single host (/32 or /128).
    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (address, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = address
            .parse()
            .map_err(|_| CidrError::BadAddress(address.to_string()))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse().map_err(|_| CidrError::BadPrefix(p.to_string()))?,
            None => max,
        };
        Cidr::new(ip, prefix).ok_or_else(|| CidrError::BadPrefix(prefix.to_string()))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The peer filter: default-denied ranges, the operator's `--allow-peer` ranges,
/// and the relay's own addresses.
#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    /// Ranges opened by the operator.
    pub allowed: Vec<Cidr>,
    /// The relay's own IPs (relay IPs and specific listen IPs).
    pub own_ips: Vec<IpAddr>,
    /// The addresses the relay listens on for TURN; a wildcard IP stands for
    /// every own IP at that port.
    pub listening: Vec<SocketAddr>,
    /// The relay port range; ports in it on an own IP are other allocations.
    /// `None` means ports are chosen by the OS: then only `relayed_port_in_use`
    /// (checked by the caller) lets a peer on an own IP through.
    pub relay_ports: Option<RangeInclusive<u16>>,
}

/// Why a peer is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// One of the relay's own listening addresses: never relayed to.
    OwnListener,
    /// One of the relay's own IPs outside the relay port range.
    OwnAddress,
    /// A special-purpose range (loopback, private, …) not opened by `--allow-peer`.
    SpecialRange,
}

impl PeerPolicy {
    /// Whether data may be relayed to `peer`. `active_relayed` says whether `peer`
    /// is currently some allocation's relayed address (for OS-chosen ports).
    pub fn check(&self, peer: SocketAddr, active_relayed: bool) -> Result<(), Denied> {
        self.check_with(peer, || active_relayed)
    }

    /// [`PeerPolicy::check`], asking `active_relayed` only when the answer
    /// depends on it (a peer on one of the relay's own IPs, ports chosen by the
    /// OS): the data path calls this per datagram.
    pub fn check_with(
        &self,
        peer: SocketAddr,
        active_relayed: impl FnOnce() -> bool,
    ) -> Result<(), Denied> {
        let ip = canonical(peer.ip());
        if self.is_listener(ip, peer.port()) {
            return Err(Denied::OwnListener);
        }
        if self.own_ips.contains(&ip) {
            let in_range = match &self.relay_ports {
                Some(range) => range.contains(&peer.port()),
                None => active_relayed(),
            };
            if in_range {
                return Ok(());
            }
            return if self.is_allowed(ip) {
                Ok(())
            } else {
                Err(Denied::OwnAddress)
            };
        }
        if is_special(ip) && !self.is_allowed(ip) {
            return Err(Denied::SpecialRange);
        }
        Ok(())
    }

    fn is_allowed(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(ip))
    }

    fn is_listener(&self, ip: IpAddr, port: u16) -> bool {
        self.listening.iter().any(|l| {
            l.port() == port
                && (canonical(l.ip()) == ip
                    || (l.ip().is_unspecified()
                        && (self.own_ips.contains(&ip) || ip.is_loopback())))
        })
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Whether `ip` is in a range denied by default (see the module docs).
pub fn is_special(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(a) => is_special_v4(a),
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let nat64 = Cidr {
                network: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)),
                prefix: 96,
            };
            if nat64.contains(IpAddr::V6(a)) {
                // Truncation keeps exactly the embedded low 32 bits.
                return is_special_v4(Ipv4Addr::from(bits as u32));
            }
            let first = a.segments()[0];
            a.is_unspecified()
                || a.is_loopback()
                || first & 0xfe00 == 0xfc00 // ULA fc00::/7
                || first & 0xffc0 == 0xfe80 // link-local fe80::/10
                || first & 0xffc0 == 0xfec0 // site-local fec0::/10
                || first & 0xff00 == 0xff00 // multicast ff00::/8
        }
    }
}

fn is_special_v4(a: Ipv4Addr) -> bool {
    let [b0, b1, ..] = a.octets();
    b0 == 0
        || a.is_loopback()
        || a.is_private()
        || a.is_link_local()
        || a.is_multicast()
        || b0 >= 240 // reserved 240/4 and broadcast
        || (b0 == 100 && b1 & 0xc0 == 64) // CGN shared space 100.64/10
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parses_and_contains() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert!(c.contains("10.255.0.1".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert!(matches!(
            "1.2.3.4/33".parse::<Cidr>(),
            Err(CidrError::BadPrefix(_))
        ));
        assert!(matches!(
            "x/3".parse::<Cidr>(),
            Err(CidrError::BadAddress(_))
        ));
    }

    #[test]
    fn special_ranges_are_denied_by_default() {
        let policy = PeerPolicy::default();
        for denied in [
            "127.0.0.1:1",
            "10.0.0.1:1",
            "172.16.5.5:1",
            "192.168.1.1:1",
            "169.254.1.1:1",
            "0.0.0.0:1",
            "224.0.0.1:1",
            "255.255.255.255:1",
            "100.64.0.1:1",
            "100.127.255.255:1",
            "[::1]:1",
            "[::]:1",
            "[fd00::1]:1",
            "[fe80::1]:1",
            "[ff02::1]:1",
            "[::ffff:127.0.0.1]:1",
            "[64:ff9b::10.0.0.1]:1",
        ] {
            assert_eq!(
                policy.check(sa(denied), false),
                Err(Denied::SpecialRange),
                "{denied}"
            );
        }
        for allowed in [
            "8.8.8.8:53",
            "100.128.0.1:1",
            "[2001:db8::1]:1",
            "[64:ff9b::8.8.8.8]:1",
        ] {
            assert_eq!(policy.check(sa(allowed), false), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn allow_peer_opens_a_range_but_never_the_listener() {
        let policy = PeerPolicy {
            allowed: vec!["127.0.0.0/8".parse().unwrap()],
            own_ips: vec!["127.0.0.1".parse().unwrap()],
            listening: vec![sa("127.0.0.1:3478"), sa("[::]:3478")],
            relay_ports: Some(50000..=50010),
        };
        assert_eq!(policy.check(sa("127.0.0.2:9"), false), Ok(()));
        assert_eq!(policy.check(sa("127.0.0.1:3480"), false), Ok(()));
        assert_eq!(policy.check(sa("127.0.0.1:50005"), false), Ok(()));
        assert_eq!(
            policy.check(sa("[::1]:3478"), false),
            Err(Denied::OwnListener),
            "a wildcard listener covers loopback"
        );
        assert_eq!(
            policy.check(sa("127.0.0.1:3478"), false),
            Err(Denied::OwnListener)
        );
        assert_eq!(
            policy.check(sa("[::1]:9"), false),
            Err(Denied::SpecialRange),
            "::1 is not opened by 127.0.0.0/8"
        );
    }

    #[test]
    fn own_public_address_only_in_the_relay_port_range() {
        let policy = PeerPolicy {
            allowed: vec![],
            own_ips: vec!["203.0.113.5".parse().unwrap()],
            listening: vec![sa("0.0.0.0:3478")],
            relay_ports: Some(49152..=65535),
        };
        assert_eq!(policy.check(sa("203.0.113.5:50000"), false), Ok(()));
        assert_eq!(
            policy.check(sa("203.0.113.5:22"), false),
            Err(Denied::OwnAddress)
        );
        assert_eq!(
            policy.check(sa("203.0.113.5:3478"), false),
            Err(Denied::OwnListener)
        );
        let os_ports = PeerPolicy {
            relay_ports: None,
            ..policy
        };
        assert_eq!(os_ports.check(sa("203.0.113.5:40000"), true), Ok(()));
        assert_eq!(
            os_ports.check(sa("203.0.113.5:40000"), false),
            Err(Denied::OwnAddress)
        );
    }
}
