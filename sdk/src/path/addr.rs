//! Peers, their stable virtual addresses, and the real paths to them.

use std::fmt;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::RwLock;

use sha2::{Digest, Sha256};

/// The port of every virtual address. QUIC sees `[fdxx:…]:VIRTUAL_PORT`.
pub const VIRTUAL_PORT: u16 = 1;

/// A peer's long-term public key (Ed25519, 32 bytes): what its virtual address
/// is derived from.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerKey(pub [u8; 32]);

impl fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerKey(")?;
        for b in self.0.iter().take(6) {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl From<[u8; 32]> for PeerKey {
    fn from(bytes: [u8; 32]) -> PeerKey {
        PeerKey(bytes)
    }
}

/// The stable address at which QUIC sees the peer with this key: an IPv6
/// unique local address (fd00::/8) from a hash of the key, port
/// [`VIRTUAL_PORT`]. The same key always gives the same address, on every host.
///
/// ```
/// use tsunagi::path::{PeerKey, virtual_addr};
/// let a = virtual_addr(&PeerKey([1; 32]));
/// assert_eq!(a, virtual_addr(&PeerKey([1; 32])));
/// assert_ne!(a, virtual_addr(&PeerKey([2; 32])));
/// assert!(tsunagi::path::is_virtual(a));
/// ```
pub fn virtual_addr(key: &PeerKey) -> SocketAddr {
    hashed_addr(b"tsunagi/path/virtual/key/v1", &key.0)
}

/// The virtual address given to a peer that connected to us before we knew it
/// (created on its first QUIC Initial packet), from its real source address and
/// a per-socket counter. Disjoint from [`virtual_addr`] in practice (both are
/// 120-bit hashes).
pub(crate) fn inbound_virtual_addr(from: SocketAddr, counter: u64) -> SocketAddr {
    let mut input = Vec::with_capacity(40);
    input.extend_from_slice(from.to_string().as_bytes());
    input.extend_from_slice(&counter.to_be_bytes());
    hashed_addr(b"tsunagi/path/virtual/inbound/v1", &input)
}

fn hashed_addr(domain: &[u8], input: &[u8]) -> SocketAddr {
    let digest = Sha256::new()
        .chain_update(domain)
        .chain_update(input)
        .finalize();
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    if let (Some(dst), Some(src)) = (octets.get_mut(1..), digest.get(..15)) {
        dst.copy_from_slice(src);
    }
    SocketAddr::V6(SocketAddrV6::new(
        Ipv6Addr::from(octets),
        VIRTUAL_PORT,
        0,
        0,
    ))
}

/// Whether an address has the shape of a virtual address (fd00::/8, port
/// [`VIRTUAL_PORT`]). Whether a peer has it is for the path table to say.
pub fn is_virtual(addr: SocketAddr) -> bool {
    match addr {
        SocketAddr::V6(a) => a.ip().octets()[0] == 0xfd && a.port() == VIRTUAL_PORT,
        SocketAddr::V4(_) => false,
    }
}

/// The well-known NAT64 prefix 64:ff9b::/96 (RFC 6052 §2.1).
const WELL_KNOWN_NAT64: (Ipv6Addr, u8) = (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96);

/// NAT64 prefixes learnt on this host's networks (RFC 7050), besides the
/// well-known one. Process-wide: a prefix belongs to the network, not to an
/// endpoint.
static NAT64_PREFIXES: RwLock<Vec<(Ipv6Addr, u8)>> = RwLock::new(Vec::new());

/// Records a NAT64 prefix (`addr/length`): paths to addresses inside it are
/// IPv4 behind the NAT64, so they rank and report as [`PathKind::DirectV4`].
pub fn add_nat64_prefix(addr: Ipv6Addr, length: u8) {
    let mut known = NAT64_PREFIXES.write().unwrap_or_else(|e| e.into_inner());
    if !known.contains(&(addr, length)) {
        known.push((addr, length));
    }
}

/// Whether `ip` lies in a NAT64 prefix (the well-known one or a learnt one).
pub fn is_nat64(ip: &Ipv6Addr) -> bool {
    let inside = |&(prefix, length): &(Ipv6Addr, u8)| {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(length.min(128)))
            .unwrap_or(0);
        u128::from(*ip) & mask == u128::from(prefix) & mask && length > 0
    };
    inside(&WELL_KNOWN_NAT64)
        || NAT64_PREFIXES
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(inside)
}

/// What kind of path a datagram takes, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathKind {
    /// Straight to the peer over IPv6 (no NAT, at most a firewall).
    DirectV6,
    /// Straight to the peer over IPv4 (through NATs, if any; also IPv6 to a
    /// NAT64 address, which is IPv4 on the other side of the translator).
    DirectV4,
    /// Through a TURN relay (ours or the peer's).
    Relay,
}

impl fmt::Display for PathKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathKind::DirectV6 => "direct IPv6",
            PathKind::DirectV4 => "direct IPv4",
            PathKind::Relay => "relay",
        })
    }
}

/// One real path to a peer, as the caller describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathAddr {
    /// Send straight to this address of the peer (host, server-reflexive or
    /// port-mapped; IPv6 or IPv4).
    Direct(SocketAddr),
    /// Send through our own TURN allocation on `server` to the peer's address
    /// `peer` (as the relay sees it). Needs a relay added with
    /// `PathHandle::add_relay` for that server.
    Relay {
        /// The TURN server (must be one added with `add_relay`).
        server: SocketAddr,
        /// The peer's address as seen from the relay.
        peer: SocketAddr,
    },
    /// Send straight to the peer's relayed address (its own TURN allocation).
    /// Ranked as a relay path.
    RemoteRelay(SocketAddr),
}

impl PathAddr {
    /// The path's kind, which decides its rank.
    pub fn kind(&self) -> PathKind {
        match self {
            PathAddr::Direct(SocketAddr::V6(a))
                if a.ip().to_ipv4_mapped().is_none() && !is_nat64(a.ip()) =>
            {
                PathKind::DirectV6
            }
            PathAddr::Direct(_) => PathKind::DirectV4,
            PathAddr::Relay { .. } | PathAddr::RemoteRelay(_) => PathKind::Relay,
        }
    }

    /// Where a datagram on this path goes on the wire.
    pub(crate) fn via(&self) -> Via {
        match *self {
            PathAddr::Direct(a) | PathAddr::RemoteRelay(a) => Via::Socket(canonical(a)),
            PathAddr::Relay { server, peer } => Via::Turn {
                server: canonical(server),
                peer: canonical(peer),
            },
        }
    }
}

impl fmt::Display for PathAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathAddr::Direct(a) => write!(f, "direct {a}"),
            PathAddr::Relay { server, peer } => write!(f, "relay {server} → {peer}"),
            PathAddr::RemoteRelay(a) => write!(f, "peer's relay {a}"),
        }
    }
}

/// How a datagram physically travels: straight from our socket to an address,
/// or wrapped for our TURN server which forwards it to `peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Via {
    /// From our socket to this address.
    Socket(SocketAddr),
    /// Through our allocation on `server`, to or from `peer`.
    Turn {
        /// The TURN server.
        server: SocketAddr,
        /// The peer's address as the relay sees it.
        peer: SocketAddr,
    },
}

/// An IPv4-mapped IPv6 address as plain IPv4 (quinn maps IPv4 destinations
/// into IPv6 on an IPv6 endpoint); everything else unchanged.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), a.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_rank_ipv6_then_ipv4_then_relay() {
        let v6 = PathAddr::Direct("[2001:db8::1]:5000".parse().unwrap());
        let v4 = PathAddr::Direct("192.0.2.1:5000".parse().unwrap());
        let mapped = PathAddr::Direct("[::ffff:192.0.2.1]:5000".parse().unwrap());
        let relay = PathAddr::RemoteRelay("192.0.2.9:3478".parse().unwrap());
        assert_eq!(v6.kind(), PathKind::DirectV6);
        assert_eq!(v4.kind(), PathKind::DirectV4);
        assert_eq!(mapped.kind(), PathKind::DirectV4);
        assert_eq!(mapped.via(), v4.via());
        assert!(PathKind::DirectV6 < PathKind::DirectV4 && PathKind::DirectV4 < PathKind::Relay);
        assert_eq!(relay.kind(), PathKind::Relay);
    }

    #[test]
    fn nat64_addresses_are_ipv4_paths() {
        let well_known = PathAddr::Direct("[64:ff9b::c000:201]:5000".parse().unwrap());
        assert_eq!(well_known.kind(), PathKind::DirectV4);
        let learnt = PathAddr::Direct("[2001:db8:4647::c612:a]:5000".parse().unwrap());
        assert_eq!(learnt.kind(), PathKind::DirectV6);
        add_nat64_prefix("2001:db8:4647::".parse().unwrap(), 96);
        assert_eq!(learnt.kind(), PathKind::DirectV4);
        let outside = PathAddr::Direct("[2001:db8:4647:1::c612:a]:5000".parse().unwrap());
        assert_eq!(outside.kind(), PathKind::DirectV6);
    }

    #[test]
    fn inbound_addresses_differ_per_counter_and_are_virtual() {
        let from: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let a = inbound_virtual_addr(from, 0);
        assert_ne!(a, inbound_virtual_addr(from, 1));
        assert!(is_virtual(a));
        assert!(!is_virtual(from));
    }
}
