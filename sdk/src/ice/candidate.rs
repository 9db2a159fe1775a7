//! Conversions between signalled candidates ([`crate::signal::Candidate`]) and
//! the agent's (`is::Candidate`), and ICE credentials.

use std::net::SocketAddr;

use rand::Rng;
use rand::rngs::StdRng;

use crate::signal::{Candidate, CandidateKind};

/// A candidate's ICE type preference class, for sorting what we signal
/// (RFC 8445 §5.1.2.2 order: host, peer-reflexive, server-reflexive, relayed).
pub(crate) fn signal_kind(kind: is::CandidateKind) -> CandidateKind {
    match kind {
        is::CandidateKind::Host => CandidateKind::Host,
        // A peer-reflexive local candidate is never signalled (RFC 8445
        // §7.2.5.3.1); if one is, it is an address the NAT gave us, like srflx.
        is::CandidateKind::ServerReflexive | is::CandidateKind::PeerReflexive => {
            CandidateKind::ServerReflexive
        }
        is::CandidateKind::Relayed => CandidateKind::Relayed,
    }
}

/// The agent's view of a candidate the peer signalled. Port-mapped candidates
/// behave like server-reflexive ones (an address a NAT forwards to the base).
pub(crate) fn remote_candidate(c: &Candidate, index: usize) -> is::Candidate {
    let kind = match c.kind {
        CandidateKind::Host => is::CandidateKind::Host,
        CandidateKind::ServerReflexive | CandidateKind::PortMapped => {
            is::CandidateKind::ServerReflexive
        }
        CandidateKind::Relayed => is::CandidateKind::Relayed,
    };
    // Peers signal at most a few dozen candidates: one foundation each keeps
    // every pair unfrozen, which is what we want for a handful of pairs.
    is::Candidate::from_parts(
        format!("r{index}"),
        1,
        is::Protocol::Udp,
        c.priority.clamp(1, (1 << 31) - 1),
        c.addr,
        kind,
        None,
        None,
        None,
    )
}

/// Our candidate as signalled to the peer.
pub(crate) fn local_candidate(c: &is::Candidate, port_mapped: bool) -> Candidate {
    Candidate {
        addr: c.addr(),
        kind: if port_mapped {
            CandidateKind::PortMapped
        } else {
            signal_kind(c.kind())
        },
        priority: c.prio(),
    }
}

/// Whether an address may be a candidate (the agent refuses unspecified,
/// multicast, broadcast and link-local IPv4 addresses).
pub(crate) fn usable(addr: SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(v) => {
            !v.is_link_local() && !v.is_broadcast() && !v.is_multicast() && !v.is_unspecified()
        }
        std::net::IpAddr::V6(v) => !v.is_multicast() && !v.is_unspecified(),
    }
}

/// Fresh ICE credentials (RFC 8445 §5.3: at least 24 bits of randomness in the
/// ufrag, 128 in the password) made of characters every signal blob accepts.
pub(crate) fn credentials(rng: &mut StdRng) -> is::IceCreds {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut pick = |n: usize| -> String {
        (0..n)
            .map(|_| {
                let i = rng.random_range(0..CHARS.len());
                CHARS.get(i).map_or('A', |&b| b as char)
            })
            .collect()
    };
    // 8 characters of 62 ≈ 47 bits; 24 ≈ 142 bits.
    let ufrag = pick(8);
    let pass = pick(24);
    is::IceCreds { ufrag, pass }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn credentials_fit_a_signal_blob() {
        let mut rng = StdRng::seed_from_u64(1);
        let c = credentials(&mut rng);
        assert_eq!(c.ufrag.len(), 8);
        assert_eq!(c.pass.len(), 24);
        assert_ne!(c, credentials(&mut rng));
    }

    #[test]
    fn remote_candidates_keep_address_and_priority() {
        let c = Candidate {
            addr: "203.0.113.5:4000".parse().unwrap(),
            kind: CandidateKind::PortMapped,
            priority: 0,
        };
        let r = remote_candidate(&c, 3);
        assert_eq!(r.addr(), c.addr);
        assert_eq!(r.kind(), is::CandidateKind::ServerReflexive);
        assert_eq!(r.prio(), 1, "priority 0 is clamped into RFC 8445's range");
    }

    #[test]
    fn unusable_addresses() {
        assert!(!usable("0.0.0.0:1".parse().unwrap()));
        assert!(!usable("169.254.1.1:1".parse().unwrap()));
        assert!(!usable("[::]:1".parse().unwrap()));
        assert!(usable("127.0.0.1:1".parse().unwrap()));
        assert!(usable("[::1]:1".parse().unwrap()));
    }
}
