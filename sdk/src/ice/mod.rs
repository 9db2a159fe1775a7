//! ICE (RFC 8445) on the shared socket: candidates, connectivity checks and
//! nomination, feeding the path layer.
//!
//! [`IceAgent`] wraps `is` (str0m's sans-IO agent, decision 0002) and adds what
//! the SDK owns around it:
//!
//! - **Gathering on the shared socket.** Host candidates are the shared
//!   socket's addresses; server-reflexive candidates come from STUN Binding
//!   requests sent *from that socket* ([`IceAgent::gather`]), so the mapping a
//!   server saw is the one QUIC and the peer's checks use; relayed candidates
//!   come from a TURN allocation made from the same socket
//!   ([`IceAgent::add_relayed`]); port-mapped ones from `diag::portmap`
//!   ([`IceAgent::add_port_mapped`], optional).
//! - **Priorities (RFC 8445 §5.1.2, RFC 8421).** Type preference host >
//!   server-reflexive > relayed; within a type, IPv6 and IPv4 interleave with
//!   IPv6 first (`is::default_local_preference`).
//! - **Trickle through signals.** The first [`crate::signal::Signal`] (offer or
//!   answer, [`IceAgent::signal`]) carries the credentials and the candidates
//!   known so far. Candidates found later arrive as
//!   [`IceEvent::LocalCandidates`]; each batch goes to the peer as another
//!   signal of the same attempt, role and credentials ([`IceAgent::trickle`]).
//!   The receiver's [`IceAgent::apply_remote`] adds what it did not know.
//! - **Hard NATs** ([`hardnat`]). Each signal carries this side's NAT
//!   description ([`IceAgent::set_local_nat`], blob version 2); with the
//!   peer's, [`hardnat::plan`] picks a port-set sweep, sequential-port
//!   prediction or a bounded birthday attempt, and the agent sends those
//!   checks itself under the budget of [`hardnat::HardNatConfig`]. An answered
//!   probe becomes a remote candidate and a usable direct path.
//! - **Paths.** Every authenticated check received, every answer to one of
//!   ours and the nominated pair become [`IceEvent::PathUsable`] with the path
//!   kind the path layer ranks (direct IPv6 > direct IPv4 > relay); the peer's
//!   relayed candidate is usable at once (relay-first). The path layer probes
//!   each and switches to the best live one, so ICE nomination only decides
//!   where traffic goes until the path layer has confirmed something better.
//!
//! [`IceDriver`] runs agents over a [`crate::path::PathHandle`] (real sockets
//! or the simulator): it reads the path layer's STUN consumer, sends from the
//! shared socket and adds paths.

mod agent;
mod candidate;
mod driver;
mod error;
mod gather;
pub mod hardnat;

#[cfg(test)]
mod hardnat_sim_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod sim_tests;

use std::net::{IpAddr, SocketAddr};

pub use agent::IceAgent;
pub(crate) use driver::host_addresses;
pub use driver::{DriverEvent, IceDriver};
pub use error::IceError;

use crate::path::{PathAddr, Via};
use crate::signal::Candidate;

/// What an [`IceAgent`] uses.
#[derive(Debug, Clone)]
pub struct IceConfig {
    /// STUN servers (our relay answers Binding requests too) for
    /// server-reflexive candidates, any family; each gets one request from the
    /// shared socket's address of its family.
    pub stun_servers: Vec<SocketAddr>,
    /// Candidate pairs at most (port prediction may add many remote candidates).
    pub max_candidate_pairs: usize,
    /// The budget of hard-NAT probing (sweep, prediction, birthday).
    pub hard_nat: hardnat::HardNatConfig,
}

impl Default for IceConfig {
    /// No STUN server, 100 pairs, the default hard-NAT budget.
    fn default() -> IceConfig {
        IceConfig {
            stun_servers: Vec::new(),
            max_candidate_pairs: 100,
            hard_nat: hardnat::HardNatConfig::default(),
        }
    }
}

/// A datagram for the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceTransmit {
    /// From the shared socket to an address, or through our TURN allocation.
    pub via: Via,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// The ICE connection state (RFC 8445 §6.1.3 without Failed: with trickle,
/// a later candidate can always still connect; the path layer's relay path
/// is the fallback).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IceState {
    /// Not started.
    New,
    /// Checks running, nothing works yet.
    Checking,
    /// A pair works; checks may still find a better one.
    Connected,
    /// Checks are done and a pair is nominated.
    Completed,
    /// The nominated pair stopped answering.
    Disconnected,
}

/// What an [`IceAgent`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IceEvent {
    /// New local candidates: send them to the peer in a trickle signal
    /// ([`IceAgent::trickle`]), unless the first signal is still unsent
    /// ([`IceAgent::signal`] includes them).
    LocalCandidates(Vec<Candidate>),
    /// A check proved this path works: add it to the peer in the path layer.
    PathUsable(PathAddr),
    /// The controlling agent nominated (or the controlled agent accepted) this
    /// path.
    Nominated(PathAddr),
    /// Our TURN allocation on `server` must permit `peer` (CreatePermission),
    /// or the relay drops the peer's checks to our relayed candidate.
    PermissionNeeded {
        /// The TURN server.
        server: SocketAddr,
        /// The peer's IP.
        peer: IpAddr,
    },
    /// A STUN server reported our mapping. `previous` is set when it differs
    /// from what the same server reported before: the NAT mapping expired or
    /// moved (keepalives should shorten; see `crate::keepalive`).
    ServerReflexive {
        /// The STUN server.
        server: SocketAddr,
        /// The shared socket's address the request left from.
        base: SocketAddr,
        /// The address the server saw.
        mapped: SocketAddr,
        /// The address it saw before, if different.
        previous: Option<SocketAddr>,
    },
    /// A STUN server did not answer: no server-reflexive candidate from it.
    GatheringFailed {
        /// The server.
        server: SocketAddr,
    },
    /// The ICE state changed.
    StateChanged(IceState),
}
