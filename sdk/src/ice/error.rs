//! Errors of the ICE agent.

use std::net::SocketAddr;

/// Why the ICE agent refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceError {
    /// The peer's signal carried other ICE credentials than the ones this
    /// agent already uses for it.
    #[error(
        "the peer's signal has ICE credentials {got_ufrag:?}, not the {expected_ufrag:?} this agent checks with: \
         a new connection attempt needs a new IceAgent (or an ICE restart)"
    )]
    CredentialsChanged {
        /// The ufrag the agent uses.
        expected_ufrag: String,
        /// The ufrag in the signal.
        got_ufrag: String,
    },
    /// The peer's signal is for another connection attempt.
    #[error(
        "signal for attempt {got} reached the agent of attempt {expected}: route signals by their attempt number"
    )]
    WrongAttempt {
        /// The attempt of this agent.
        expected: u64,
        /// The attempt of the signal.
        got: u64,
    },
    /// A candidate address the agent cannot use (unspecified, multicast,
    /// broadcast or link-local IPv4).
    #[error("candidate {0} is not a usable unicast address; pass the socket's real address")]
    BadCandidate(SocketAddr),
    /// No agent runs for this peer.
    #[error("no ICE agent for peer {0}: call IceDriver::add_peer first")]
    UnknownPeer(SocketAddr),
    /// A relayed candidate or TURN server of an address family for which the
    /// shared socket has no local address.
    #[error(
        "no local {family} address to pair with {addr}: bind the shared socket for that family first"
    )]
    NoBase {
        /// The address that could not be based.
        addr: SocketAddr,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
}

pub(crate) fn family(addr: SocketAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}
