//! [`IceAgent`]: our sans-IO ICE agent — gathering on the shared socket, trickle
//! through signals, and `is::IceAgent`'s connectivity checks underneath.

use std::collections::{BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::candidate::{credentials, local_candidate, remote_candidate, usable};
use super::error::{IceError, family};
use super::gather::Gatherer;
use super::hardnat::{HardNatStats, NoPlan, Prober};
use super::{IceConfig, IceEvent, IceState, IceTransmit};
use crate::path::{PathAddr, Via, canonical};
use crate::signal::{Candidate, CandidateKind, MAX_CANDIDATES, NatDescription, Role, Signal};
use crate::stun::TransactionId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Relayed {
    server: SocketAddr,
    relayed: SocketAddr,
}

/// One peer's ICE session on the shared socket, as a sans-IO state machine.
///
/// Give it the shared socket's addresses ([`IceAgent::add_host`]), start
/// server-reflexive gathering ([`IceAgent::gather`]), add a relayed candidate
/// when the TURN allocation made from the same socket is ready
/// ([`IceAgent::add_relayed`]), and hand it the peer's signals
/// ([`IceAgent::apply_remote`]). Feed it the STUN datagrams the path layer did
/// not consume ([`IceAgent::handle_stun`]) and the time
/// ([`IceAgent::handle_timeout`]); poll it for datagrams
/// ([`IceAgent::poll_transmit`]), events ([`IceAgent::poll_event`]: candidates
/// to trickle, paths to add to the path layer) and its next deadline
/// ([`IceAgent::poll_timeout`]).
///
/// ```
/// use std::time::Instant;
/// use tsunagi::ice::{IceAgent, IceConfig, IceEvent};
/// use tsunagi::signal::Role;
///
/// let now = Instant::now();
/// let mut agent = IceAgent::new(IceConfig::default(), true, 7);
/// agent.add_host("[2001:db8::1]:5000".parse()?)?;
/// agent.add_host("192.0.2.1:5000".parse()?)?;
/// agent.handle_timeout(now);
/// // The first signal carries both host candidates, IPv6 first (RFC 8421).
/// let offer = agent.signal(Role::Offer, [1; 32], 1);
/// assert!(offer.candidates[0].addr.is_ipv6());
/// assert!(offer.candidates[0].priority > offer.candidates[1].priority);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct IceAgent {
    agent: is::IceAgent,
    config: IceConfig,
    rng: StdRng,
    bases: Vec<SocketAddr>,
    relays: Vec<Relayed>,
    port_mapped: BTreeSet<SocketAddr>,
    gatherer: Gatherer,
    remote_ufrag: Option<String>,
    remote_attempt: Option<u64>,
    remote: BTreeSet<SocketAddr>,
    remote_relayed: BTreeSet<SocketAddr>,
    permissions: BTreeSet<(SocketAddr, IpAddr)>,
    usable_paths: BTreeSet<PathAddr>,
    nominated: Option<PathAddr>,
    unsent: Vec<Candidate>,
    transmits: VecDeque<IceTransmit>,
    events: VecDeque<IceEvent>,
    state: IceState,
    tie_breaker: u64,
    local_nat: Option<NatDescription>,
    remote_nat: Option<NatDescription>,
    /// The peer's public IPv4 address (its server-reflexive candidate).
    remote_public_v4: Option<IpAddr>,
    hard_nat_plan: Option<NoPlan>,
    prober: Option<Prober<is::stun::TransId>>,
    last_now: Option<Instant>,
}

impl IceAgent {
    /// A new agent. `controlling`: whether we nominate (the offerer does).
    /// `seed` drives the credentials and transaction IDs: from the OS in
    /// production, fixed in simulations.
    pub fn new(config: IceConfig, controlling: bool, seed: u64) -> IceAgent {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut agent = is::IceAgent::new(credentials(&mut rng));
        agent.set_controlling(controlling);
        let tie_breaker = rng.random();
        agent.set_control_tie_breaker(tie_breaker);
        agent.set_max_candidate_pairs(config.max_candidate_pairs);
        IceAgent {
            agent,
            config,
            rng,
            bases: Vec::new(),
            relays: Vec::new(),
            port_mapped: BTreeSet::new(),
            gatherer: Gatherer::default(),
            remote_ufrag: None,
            remote_attempt: None,
            remote: BTreeSet::new(),
            remote_relayed: BTreeSet::new(),
            permissions: BTreeSet::new(),
            usable_paths: BTreeSet::new(),
            nominated: None,
            unsent: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            state: IceState::New,
            tie_breaker,
            local_nat: None,
            remote_nat: None,
            remote_public_v4: None,
            hard_nat_plan: None,
            prober: None,
            last_now: None,
        }
    }

    /// Describes our NAT to the peer (from [`super::hardnat::NatDescriber`] or a
    /// cached `diag` result): every signal from now on carries it.
    pub fn set_local_nat(&mut self, nat: NatDescription) {
        self.local_nat = Some(nat);
    }

    /// Our NAT description, if set.
    pub fn local_nat(&self) -> Option<&NatDescription> {
        self.local_nat.as_ref()
    }

    /// The peer's NAT description, once a signal carried one.
    pub fn remote_nat(&self) -> Option<&NatDescription> {
        self.remote_nat.as_ref()
    }

    /// What hard-NAT probing planned and did for this peer.
    pub fn hard_nat(&self) -> HardNatStats {
        HardNatStats {
            plan: match (&self.prober, &self.hard_nat_plan) {
                (Some(p), _) => Some(Ok(p.plan().clone())),
                (None, Some(no)) => Some(Err(no.clone())),
                (None, None) => None,
            },
            packets_sent: self.prober.as_ref().map_or(0, |p| p.packets_sent()),
            state: self.prober.as_ref().map(|p| p.state()),
        }
    }

    /// Our ICE username fragment and password (they go into every signal).
    pub fn local_credentials(&self) -> (&str, &str) {
        let c = self.agent.local_credentials();
        (&c.ufrag, &c.pass)
    }

    /// Whether we nominate.
    pub fn controlling(&self) -> bool {
        self.agent.controlling()
    }

    /// The ICE state.
    pub fn state(&self) -> IceState {
        self.state
    }

    /// The path of the nominated pair, once there is one.
    pub fn nominated(&self) -> Option<PathAddr> {
        self.nominated
    }

    /// Every path a check proved usable so far.
    pub fn usable_paths(&self) -> impl Iterator<Item = &PathAddr> {
        self.usable_paths.iter()
    }

    /// The peer's addresses learnt from its checks rather than its signals
    /// (peer-reflexive candidates, RFC 8445 §7.3.1.3).
    pub fn peer_reflexive(&self) -> Vec<SocketAddr> {
        self.agent
            .remote_candidates()
            .filter(|c| c.kind() == is::CandidateKind::PeerReflexive)
            .map(|c| c.addr())
            .collect()
    }

    /// Our relayed addresses (one per TURN allocation given to
    /// [`IceAgent::add_relayed`]).
    pub fn local_relayed(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.relays.iter().map(|r| r.relayed)
    }

    /// Adds a host candidate: an address of the shared socket (one per local
    /// interface address it is reachable at). Add IPv6 global addresses first.
    pub fn add_host(&mut self, addr: SocketAddr) -> Result<(), IceError> {
        let addr = canonical(addr);
        let c = is::Candidate::host(addr, "udp").map_err(|_| IceError::BadCandidate(addr))?;
        if !self.bases.contains(&addr) {
            self.bases.push(addr);
        }
        self.add_local(c, false);
        Ok(())
    }

    /// Starts server-reflexive gathering: a STUN Binding request to every
    /// configured server, from the shared socket's address of that family.
    /// Call again to refresh the mappings (a changed mapping is reported as
    /// [`IceEvent::ServerReflexive`] with `previous`, and its new address is
    /// trickled).
    pub fn gather(&mut self, now: Instant) {
        for server in self.config.stun_servers.clone() {
            let server = canonical(server);
            let Some(base) = self.base_for(server) else {
                tracing::debug!(%server, "no local address of this STUN server's family");
                continue;
            };
            let tid = TransactionId::new(self.rng.random());
            let bytes = self.gatherer.start(now, server, base, tid);
            self.transmits.push_back(IceTransmit {
                via: Via::Socket(server),
                bytes,
            });
        }
    }

    /// Adds a server-reflexive candidate found elsewhere (e.g. the mapped
    /// address a TURN server reported). `base` is the shared socket's address.
    pub fn add_server_reflexive(
        &mut self,
        mapped: SocketAddr,
        base: SocketAddr,
    ) -> Result<(), IceError> {
        let (mapped, base) = (canonical(mapped), canonical(base));
        let c = is::Candidate::server_reflexive(mapped, base, "udp")
            .map_err(|_| IceError::BadCandidate(mapped))?;
        self.add_local(c, false);
        Ok(())
    }

    /// Adds a port-mapped candidate (UPnP-IGD / NAT-PMP / PCP, from
    /// `diag::portmap`): an external address the router forwards to `base`.
    /// Optional: ICE never depends on one.
    pub fn add_port_mapped(
        &mut self,
        external: SocketAddr,
        base: SocketAddr,
    ) -> Result<(), IceError> {
        let (external, base) = (canonical(external), canonical(base));
        let c = is::Candidate::server_reflexive(external, base, "udp")
            .map_err(|_| IceError::BadCandidate(external))?;
        self.port_mapped.insert(external);
        self.add_local(c, true);
        Ok(())
    }

    /// Adds a relayed candidate: `relayed` was allocated on TURN `server` by a
    /// `crate::relay::Client` running on the shared socket. Checks from it go
    /// out as [`Via::Turn`] transmits.
    pub fn add_relayed(&mut self, server: SocketAddr, relayed: SocketAddr) -> Result<(), IceError> {
        let (server, relayed) = (canonical(server), canonical(relayed));
        let local = self.base_for(server).ok_or(IceError::NoBase {
            addr: server,
            family: family(server),
        })?;
        let c = is::Candidate::relayed(relayed, local, "udp")
            .map_err(|_| IceError::BadCandidate(relayed))?;
        let r = Relayed { server, relayed };
        if !self.relays.contains(&r) {
            self.relays.push(r);
        }
        self.add_local(c, false);
        for remote in self.remote.clone() {
            self.need_permission(remote);
        }
        Ok(())
    }

    fn add_local(&mut self, c: is::Candidate, port_mapped: bool) {
        if let Some(added) = self.agent.add_local_candidate(c) {
            let signalled = local_candidate(added, port_mapped);
            tracing::debug!(addr = %signalled.addr, kind = ?signalled.kind, "local candidate");
            self.unsent.push(signalled);
        }
    }

    /// Our description so far, as an offer or answer: credentials and every
    /// local candidate, best first (at most [`MAX_CANDIDATES`]). Candidates
    /// found later come as [`IceEvent::LocalCandidates`]; send each batch with
    /// [`IceAgent::trickle`].
    pub fn signal(&mut self, role: Role, from: [u8; 32], attempt: u64) -> Signal {
        self.unsent.clear();
        let mut candidates: Vec<Candidate> = self
            .agent
            .local_candidates()
            .filter(|c| c.kind() != is::CandidateKind::PeerReflexive)
            .map(|c| local_candidate(&c, self.port_mapped.contains(&c.addr())))
            .collect();
        candidates.sort_by_key(|c| std::cmp::Reverse(c.priority));
        candidates.truncate(MAX_CANDIDATES);
        self.signal_with(role, from, attempt, candidates)
    }

    /// A trickle update: a signal of the same attempt, role and credentials
    /// carrying only `candidates` (a batch from [`IceEvent::LocalCandidates`]).
    /// The peer's [`IceAgent::apply_remote`] adds them to what it knows.
    pub fn trickle(
        &self,
        role: Role,
        from: [u8; 32],
        attempt: u64,
        mut candidates: Vec<Candidate>,
    ) -> Signal {
        candidates.truncate(MAX_CANDIDATES);
        self.signal_with(role, from, attempt, candidates)
    }

    fn signal_with(
        &self,
        role: Role,
        from: [u8; 32],
        attempt: u64,
        candidates: Vec<Candidate>,
    ) -> Signal {
        let (ufrag, pwd) = self.local_credentials();
        Signal {
            role,
            from,
            attempt,
            ice_ufrag: ufrag.to_owned(),
            ice_pwd: pwd.to_owned(),
            candidates,
            nat: self.local_nat.clone(),
        }
    }

    /// Applies the peer's offer, answer or trickle update: its credentials
    /// (first signal) and the candidates we did not know yet. Returns how many
    /// candidates were new.
    pub fn apply_remote(&mut self, signal: &Signal) -> Result<usize, IceError> {
        if let Some(expected) = self.remote_attempt
            && expected != signal.attempt
        {
            return Err(IceError::WrongAttempt {
                expected,
                got: signal.attempt,
            });
        }
        match &self.remote_ufrag {
            Some(u) if *u != signal.ice_ufrag => {
                return Err(IceError::CredentialsChanged {
                    expected_ufrag: u.clone(),
                    got_ufrag: signal.ice_ufrag.clone(),
                });
            }
            Some(_) => {}
            None => {
                self.agent.set_remote_credentials(is::IceCreds {
                    ufrag: signal.ice_ufrag.clone(),
                    pass: signal.ice_pwd.clone(),
                });
                self.remote_ufrag = Some(signal.ice_ufrag.clone());
                self.remote_attempt = Some(signal.attempt);
            }
        }
        if self.remote_nat.is_none() {
            self.remote_nat.clone_from(&signal.nat);
        }
        let mut added = 0;
        for c in &signal.candidates {
            let addr = canonical(c.addr);
            if matches!(
                c.kind,
                CandidateKind::ServerReflexive | CandidateKind::PortMapped
            ) && addr.is_ipv4()
                && self.remote_public_v4.is_none()
            {
                self.remote_public_v4 = Some(addr.ip());
            }
            if !usable(addr) || !self.remote.insert(addr) {
                continue;
            }
            let mut c = c.clone();
            c.addr = addr;
            self.agent
                .add_remote_candidate(remote_candidate(&c, self.remote.len()));
            added += 1;
            self.need_permission(addr);
            if c.kind == CandidateKind::Relayed {
                // Relay-first: the peer's relayed address works as soon as its
                // allocation permits us; the path layer probes it at once.
                self.remote_relayed.insert(addr);
                self.path_usable(PathAddr::RemoteRelay(addr));
            }
        }
        Ok(added)
    }

    /// Asks for a TURN permission for `remote`'s IP on each of our relays of
    /// its family (once), so the relay lets the peer's checks in.
    fn need_permission(&mut self, remote: SocketAddr) {
        let wanted: Vec<SocketAddr> = self
            .relays
            .iter()
            .filter(|r| r.relayed.is_ipv4() == remote.is_ipv4())
            .map(|r| r.server)
            .collect();
        for server in wanted {
            if self.permissions.insert((server, remote.ip())) {
                self.events.push_back(IceEvent::PermissionNeeded {
                    server,
                    peer: remote.ip(),
                });
            }
        }
    }

    fn path_usable(&mut self, path: PathAddr) {
        if let PathAddr::Direct(_) = path
            && let Some(p) = &mut self.prober
        {
            // Any direct path ends probing: the rest would only cost packets.
            p.stop();
        }
        if self.usable_paths.insert(path) {
            tracing::debug!(%path, "ICE: path usable");
            self.events.push_back(IceEvent::PathUsable(path));
        }
    }

    fn base_for(&self, remote: SocketAddr) -> Option<SocketAddr> {
        self.bases
            .iter()
            .copied()
            .find(|b| b.is_ipv4() == remote.is_ipv4())
    }

    fn path_of(&self, via: Via) -> PathAddr {
        match via {
            Via::Socket(a) if self.remote_relayed.contains(&a) => PathAddr::RemoteRelay(a),
            Via::Socket(a) => PathAddr::Direct(a),
            Via::Turn { server, peer } => PathAddr::Relay { server, peer },
        }
    }

    fn via_for(&self, source: SocketAddr, destination: SocketAddr) -> Via {
        match self.relays.iter().find(|r| r.relayed == source) {
            Some(r) => Via::Turn {
                server: r.server,
                peer: destination,
            },
            None => Via::Socket(destination),
        }
    }
}

mod hard;
mod io;
