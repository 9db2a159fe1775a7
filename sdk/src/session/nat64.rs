//! IPv6-only networks with NAT64 (RFC 6146): reaching an IPv4 server, and
//! reaching IPv4 peers directly.
//!
//! Game configs and tokens often name the rendezvous server by an IPv4 literal. On
//! an IPv6-only network (mobile carriers, some ISPs) that address has no route,
//! but the network's NAT64 translates `prefix + IPv4` to it. So when this host
//! has no IPv4 route, the NAT64 prefix is learnt from the DNS64 server (RFC 7050,
//! via [`crate::diag::nat64`]; the system resolver, which a host on such a
//! network gets from router advertisements or DHCPv6), an IPv4 server is
//! replaced by its synthesized IPv6 address (what iOS's `getaddrinfo` does for
//! IPv4 literals; elsewhere nobody does it for us), the peer's IPv4
//! candidates get synthesized twins, and our signals carry the IPv4 address
//! the server saw (the NAT64's mapping of our socket), so ICE can punch
//! through the NAT64 like through any NAT. Paths to NAT64 addresses count as IPv4
//! ([`crate::path::is_nat64`]).
//!
//! Hostnames need nothing from here: the system resolver on a NAT64 network is
//! the DNS64 server and already answers with synthesized AAAA records.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};

use crate::diag::nat64::{self, Nat64Options, Nat64Prefix};
use crate::signal::{Candidate, CandidateKind};

/// An address that only serves routing-table lookups (no packet is sent).
const ANY_PUBLIC_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Whether the kernel has an IPv4 route to `to` (a UDP `connect` sends
/// nothing; it only looks the route up).
pub(crate) fn has_ipv4_route(to: Option<Ipv4Addr>) -> bool {
    let to = to.unwrap_or(ANY_PUBLIC_V4);
    let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)) else {
        // No IPv4 at all in this process's network stack.
        return false;
    };
    match sock.connect((to, 9)) {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(%to, error = %e, "IPv4 route lookup");
            e.kind() != ErrorKind::NetworkUnreachable
        }
    }
}

/// The network's NAT64 prefix, from its DNS64 server (RFC 7050), also recorded
/// for path ranking. Takes up to 1.5 s when the resolver does not answer.
pub(crate) async fn discover_prefix() -> Option<Nat64Prefix> {
    let options = Nat64Options::default();
    let found = tokio::task::spawn_blocking(move || nat64::discover(&options)).await;
    match found {
        Ok(Ok(report)) => {
            let prefix = report.prefix();
            match prefix {
                Some(p) => {
                    tracing::info!(prefix = %p, "IPv6-only network with NAT64");
                    crate::path::add_nat64_prefix(p.prefix, p.length);
                }
                None => {
                    tracing::debug!(status = ?report.status, "no IPv4 route and no NAT64 prefix")
                }
            }
            prefix
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "NAT64 prefix discovery failed");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "NAT64 prefix discovery did not run");
            None
        }
    }
}

/// `addr` through the NAT64 `prefix`.
pub(crate) fn synthesize(prefix: Nat64Prefix, addr: SocketAddrV4) -> SocketAddr {
    SocketAddr::new(prefix.synthesize(*addr.ip()).into(), addr.port())
}

/// Synthesized twins of the peer's IPv4 candidates (relayed ones excepted: the
/// relay reaches those), as server-reflexive candidates of the same priority.
pub(crate) fn twins(prefix: Nat64Prefix, candidates: &[Candidate]) -> Vec<Candidate> {
    candidates
        .iter()
        .filter(|c| c.kind != CandidateKind::Relayed)
        .filter_map(|c| match c.addr {
            SocketAddr::V4(v4) => Some(Candidate {
                addr: synthesize(prefix, v4),
                kind: CandidateKind::ServerReflexive,
                priority: c.priority,
            }),
            SocketAddr::V6(_) => None,
        })
        .collect()
}

/// Priority of [`translated_candidate`]: RFC 8445 §5.1.2.1 with the
/// server-reflexive type preference (100) and a low local preference, so the
/// peer tries it after its native candidates of the same type.
const TRANSLATED_PRIORITY: u32 = (100 << 24) | (0x0100 << 8) | 255;

/// What the peer should dial to reach us through the NAT64: the IPv4 address
/// the rendezvous server saw (the NAT64's translation of our IPv6 socket, the
/// same toward every IPv4 destination when the NAT64 maps
/// endpoint-independently). The ICE agent cannot hold it (its base is IPv6),
/// so it is added to the signal directly: the peer's checks to it open the
/// peer's NAT for our checks, which go to the peer's synthesized twins.
pub(crate) fn translated_candidate(mapped: SocketAddr) -> Option<Candidate> {
    mapped.is_ipv4().then_some(Candidate {
        addr: mapped,
        kind: CandidateKind::ServerReflexive,
        priority: TRANSLATED_PRIORITY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_a_route() {
        assert!(has_ipv4_route(Some(Ipv4Addr::LOCALHOST)));
    }

    #[test]
    fn twins_of_ipv4_candidates_only() {
        let prefix = Nat64Prefix::new("64:ff9b::".parse().unwrap(), 96);
        let c = |addr: &str, kind| Candidate {
            addr: addr.parse().unwrap(),
            kind,
            priority: 7,
        };
        let peer = [
            c("198.51.100.7:4000", CandidateKind::ServerReflexive),
            c("192.168.1.10:4000", CandidateKind::Host),
            c("198.51.100.9:5000", CandidateKind::Relayed),
            c("[2001:db8::7]:4000", CandidateKind::Host),
        ];
        let t = twins(prefix, &peer);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].addr, "[64:ff9b::c633:6407]:4000".parse().unwrap());
        assert_eq!(t[0].kind, CandidateKind::ServerReflexive);
        assert_eq!(t[1].priority, 7);
    }
}
