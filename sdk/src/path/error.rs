//! Why a path-table call was refused.

use std::net::SocketAddr;

use super::addr::PathAddr;

/// A call on the path table was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// The virtual address belongs to no peer.
    #[error("no peer has the virtual address {0}; add the peer first (add_peer returns it)")]
    UnknownPeer(SocketAddr),
    /// A relay path names a TURN server that was not added.
    #[error("no TURN relay {server} is configured; call add_relay for it before adding {path}")]
    UnknownRelay {
        /// The server named by the path.
        server: SocketAddr,
        /// The path.
        path: PathAddr,
    },
    /// No relay was added for this TURN server.
    #[error("no TURN relay {0} is configured; call PathHandle::add_relay first")]
    NoRelay(SocketAddr),
    /// The relay has no allocation yet.
    #[error(
        "the TURN relay {server} has no allocation after {timeout:?}: check its address, the \
         credentials and that UDP to it is not blocked (PathEvent::RelayLost says why)"
    )]
    RelayNotReady {
        /// The TURN server.
        server: SocketAddr,
        /// How long we waited.
        timeout: std::time::Duration,
    },
    /// The path already leads to another peer.
    #[error("{path} already leads to peer {owner}; one address cannot reach two peers")]
    PathTaken {
        /// The path.
        path: PathAddr,
        /// The peer it belongs to.
        owner: SocketAddr,
    },
    /// The peer has the most paths allowed.
    #[error("peer {peer} already has {max} paths; remove one before adding another")]
    TooManyPaths {
        /// The peer.
        peer: SocketAddr,
        /// The limit (PathConfig::max_paths_per_peer).
        max: usize,
    },
    /// The path's address family has no local socket.
    #[error("{path} needs an {family} socket, which this PathSocket does not have")]
    NoSocketForFamily {
        /// The path.
        path: PathAddr,
        /// "IPv4" or "IPv6".
        family: &'static str,
    },
    /// The path socket was closed (its driver ended).
    #[error("the path socket is closed; create a new PathSocket")]
    Closed,
}
