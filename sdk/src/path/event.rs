//! What the path layer reports: events, per-path statistics, configuration.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::addr::{PathAddr, PathKind, PeerKey};
use super::relay::RelayPeerError;
use crate::keepalive::KeepaliveConfig;

/// Something that happened to a peer's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathEvent {
    /// The path QUIC's packets take to `peer` changed (`None`: no live path).
    PathChanged {
        /// The peer's virtual address.
        peer: SocketAddr,
        /// The kind of the previous path, if there was one.
        from: Option<PathKind>,
        /// The kind of the new path, if there is one.
        to: Option<PathKind>,
        /// The new path, if there is one.
        path: Option<PathAddr>,
    },
    /// A path was confirmed live (a probe was answered on it).
    PathLive {
        /// The peer's virtual address.
        peer: SocketAddr,
        /// The path.
        path: PathAddr,
        /// Its kind.
        kind: PathKind,
    },
    /// A live path went quiet: no probe answer and no QUIC packet for the
    /// configured `live_timeout`. It stays in the table and is probed again.
    PathLost {
        /// The peer's virtual address.
        peer: SocketAddr,
        /// The path.
        path: PathAddr,
        /// Its kind.
        kind: PathKind,
    },
    /// A new path to a known peer was found from its QUIC traffic: a packet for
    /// one of the peer's connections came from an address we had not seen (a
    /// NAT rebinding, or a candidate we were not told about). It is probed and
    /// used once confirmed.
    PathDiscovered {
        /// The peer's virtual address.
        peer: SocketAddr,
        /// The new path.
        path: PathAddr,
    },
    /// An unknown address opened a QUIC connection to us; it was given a
    /// virtual address, at which QUIC sees it from now on.
    PeerDiscovered {
        /// The new peer's virtual address.
        peer: SocketAddr,
        /// Where its first packet came from.
        from: PathAddr,
    },
    /// A TURN allocation is in place (first, or again after a loss): relay
    /// paths through `server` carry data now. Tell peers the relayed addresses
    /// (they change when the allocation is made again).
    RelayAllocated {
        /// The TURN server.
        server: SocketAddr,
        /// Our relayed addresses on it.
        relayed: Vec<SocketAddr>,
        /// Our address as the server saw it.
        mapped: Option<SocketAddr>,
    },
    /// Allocating on a TURN server failed, or the allocation is gone (the relay
    /// restarted and answered 437, a refresh went unanswered, it expired). The
    /// path layer allocates again after `retry_in`; relay paths through it carry
    /// nothing meanwhile.
    RelayLost {
        /// The TURN server.
        server: SocketAddr,
        /// Why.
        reason: crate::relay::Error,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// The address a server (a TURN relay, the rendezvous server) sees us at
    /// changed: the NAT dropped our mapping toward it while it was idle (its
    /// session timer is shorter than the keepalive interval, which shortens
    /// now), or the network changed. The relay allocation, bound to the old
    /// mapping, is refreshed at once (and made again when the server answers
    /// 437); a rendezvous registration is renewed from the new mapping.
    MappingChanged {
        /// The server.
        server: SocketAddr,
        /// Where it saw us before.
        from: SocketAddr,
        /// Where it sees us now.
        to: SocketAddr,
    },
    /// The relay cannot reach one peer (permission refused, wrong family); asked
    /// again in a few seconds.
    RelayPeerFailed {
        /// The TURN server.
        server: SocketAddr,
        /// The peer, as the relay sees it.
        peer: SocketAddr,
        /// Why.
        reason: RelayPeerError,
    },
}

/// Statistics of one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStats {
    /// The path.
    pub path: PathAddr,
    /// Its kind.
    pub kind: PathKind,
    /// Smoothed round-trip time of probes, once one was answered.
    pub rtt: Option<Duration>,
    /// When a probe answer or a QUIC packet last arrived on it.
    pub last_seen: Option<Instant>,
    /// Whether it is live (seen within `live_timeout` and confirmed by a probe).
    pub live: bool,
    /// Whether QUIC's packets currently take it.
    pub active: bool,
    /// Probes sent on it.
    pub probes_sent: u64,
    /// Probe answers received on it.
    pub probes_answered: u64,
    /// QUIC datagrams sent on it.
    pub packets_sent: u64,
    /// QUIC bytes sent on it.
    pub bytes_sent: u64,
    /// QUIC datagrams received on it.
    pub packets_received: u64,
    /// QUIC bytes received on it.
    pub bytes_received: u64,
}

/// Statistics of one peer: its paths and which one is active.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStats {
    /// The peer's virtual address.
    pub peer: SocketAddr,
    /// The peer's key, if it was added by key (inbound peers have none).
    pub key: Option<PeerKey>,
    /// The active path's kind, if any path is live.
    pub active: Option<PathKind>,
    /// Every path in the table.
    pub paths: Vec<PathStats>,
}

impl PeerStats {
    /// The stats of the active path, if any.
    pub fn active_path(&self) -> Option<&PathStats> {
        self.paths.iter().find(|p| p.active)
    }
}

/// Timers and limits of the path layer.
#[derive(Debug, Clone)]
pub struct PathConfig {
    /// How often a live path is probed (also a keepalive for NAT mappings on it).
    pub probe_interval: Duration,
    /// The first retry for a path that is not live yet; doubles up to
    /// `probe_interval`.
    pub initial_retry: Duration,
    /// A path with no probe answer and no QUIC packet for this long is not live.
    pub live_timeout: Duration,
    /// Switch between two live paths of the same kind only if the new one's RTT
    /// is below this fraction of the active one's (hysteresis).
    pub rtt_switch_ratio: f64,
    /// Peers created from unknown sources, at most (a flood of Initials cannot
    /// grow the table without bound).
    pub max_inbound_peers: usize,
    /// Paths per peer, at most.
    pub max_paths_per_peer: usize,
    /// Keepalive bounds and default for the NAT mappings toward servers (relays,
    /// the rendezvous server), which get a STUN Binding request whenever nothing
    /// went there for one interval; the same interval caps `probe_interval` on
    /// live paths. `None` turns keepalives off (tests showing what they are for).
    pub keepalive: Option<KeepaliveConfig>,
    /// The NAT's UDP session timer, if known: the binding lifetime `diag`
    /// measured (its lower bound), or one remembered for this network
    /// ([`crate::keepalive::LifetimeCache`]). Keepalives come at 40 % of it;
    /// unknown, every 15 s. Changeable later with
    /// [`super::PathHandle::set_nat_timer`].
    pub nat_timer: Option<Duration>,
}

impl Default for PathConfig {
    /// Probe every second, retry from 100 ms, lose a path after 3 s of silence;
    /// server keepalives every 15 s until the NAT timer is known.
    fn default() -> PathConfig {
        PathConfig {
            probe_interval: Duration::from_secs(1),
            initial_retry: Duration::from_millis(100),
            live_timeout: Duration::from_secs(3),
            rtt_switch_ratio: 0.75,
            max_inbound_peers: 1024,
            max_paths_per_peer: 16,
            keepalive: Some(KeepaliveConfig::default()),
            nat_timer: None,
        }
    }
}
