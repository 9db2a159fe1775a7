//! The sans-IO diagnosis core: feed it time, datagrams and opened sockets; poll it for
//! datagrams to send, sockets to open or close, progress, and the next timeout.
//!
//! Which socket each test uses (users behind MAP-E may have only a few hundred ports):
//!
//! | test (RFC 5780)                              | socket                         |
//! |----------------------------------------------|--------------------------------|
//! | binding (test I), filtering (tests II, III)   | main                           |
//! | mapping (tests II, III) + one more sample     | main                           |
//! | hairpinning (§4.5: to our own mapped address) | main                           |
//! | port allocation, EIM NAT that moved the port  | `port_sockets` extra, one request each |
//! | port allocation otherwise                     | main (its four mappings)       |
//! | binding lifetime (§4.6)                       | main asks; `trials_per_round` fresh sockets per round hold the idle mappings |
//!
//! Filtering runs before mapping tests II/III: those contact the alternate address and
//! would open an address-dependent filter to it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::analysis::Sample;
use super::lifetime::{Bracket, LifetimeConfig};
use super::report::Report;
use super::txn::{Ask, IdGen, MAIN_SOCKET, Outcome, Parsed, Retransmit, SocketId, Txn, parse};

mod steps;

/// How the diagnosis runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// STUN retransmission timers.
    pub retransmit: Retransmit,
    /// Skip the binding-lifetime search.
    pub quick: bool,
    /// Extra sockets for the port-allocation test, used only behind an
    /// endpoint-independent NAT that did not keep the local port (0 = never).
    pub port_sockets: u8,
    /// The binding-lifetime search.
    pub lifetime: LifetimeConfig,
    /// Seed for transaction IDs (the driver takes it from the OS).
    pub seed: u64,
}

impl Default for ProbeConfig {
    fn default() -> ProbeConfig {
        ProbeConfig {
            retransmit: Retransmit::default(),
            quick: false,
            port_sockets: 4,
            lifetime: LifetimeConfig::default(),
            seed: 0x7473_756e_6167_6921,
        }
    }
}

/// A stage of the diagnosis, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Test I: is there UDP, what is the mapped address.
    Binding,
    /// Filtering tests and hairpinning.
    Filtering,
    /// Mapping tests II and III.
    Mapping,
    /// Extra port-allocation samples.
    PortAllocation,
    /// The binding-lifetime search.
    Lifetime,
    /// Done; the report is ready.
    Finished,
}

/// Progress of the diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A phase started.
    Phase(Phase),
    /// A lifetime round started or ended.
    Lifetime {
        /// Proven alive after this many seconds.
        lower_s: f64,
        /// Proven gone after this many seconds, if known yet.
        upper_s: Option<f64>,
        /// The search's maximum.
        max_s: f64,
        /// Idle times being tried in the current round (empty between rounds).
        trying_s: Vec<f64>,
    },
}

/// What the core asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send `payload` from `socket` to `destination`.
    Transmit {
        /// The local socket.
        socket: SocketId,
        /// Where to.
        destination: SocketAddr,
        /// The datagram.
        payload: Vec<u8>,
    },
    /// Bind a new UDP socket (same family and local IP as the main one, any port) and
    /// report it with [`Prober::handle_socket_opened`].
    OpenSocket(SocketId),
    /// The socket is no longer needed.
    CloseSocket(SocketId),
    /// Progress to show the user.
    Progress(Progress),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Test1,
    FilterChangeBoth,
    FilterChangePort,
    Hairpin,
    Map2,
    Map3,
    Map4,
    PortSample,
    LifeOpen(usize),
    LifeProbe(usize),
}

#[derive(Debug, Clone)]
struct Trial {
    wait: f64,
    socket: SocketId,
    alive_since: Option<Instant>,
    mapped_port: Option<u16>,
    probe_at: Option<Instant>,
    probe_sent: Option<Instant>,
    verdict: Option<bool>,
}

/// The diagnosis state machine. See the module docs.
#[derive(Debug)]
pub struct Prober {
    cfg: ProbeConfig,
    server: SocketAddr,
    main_local: SocketAddr,
    started: Instant,
    ids: IdGen,
    txns: Vec<(Tag, Txn)>,
    out: VecDeque<Output>,
    report: Report,
    phase: Phase,
    samples: Vec<Sample>,
    pending_sockets: BTreeMap<SocketId, Tag>,
    open_sockets: BTreeSet<SocketId>,
    socket_ports: BTreeMap<SocketId, u16>,
    next_socket: u32,
    m1: Option<SocketAddr>,
    other: Option<SocketAddr>,
    rtt: Duration,
    bracket: Bracket,
    trials: Vec<Trial>,
}

impl Prober {
    /// A diagnosis against the STUN server at `server` (named `server_name` in the
    /// report), from the main socket bound at `main_local`.
    pub fn new(
        cfg: ProbeConfig,
        server_name: &str,
        server: SocketAddr,
        main_local: SocketAddr,
        now: Instant,
    ) -> Prober {
        let mut report = Report::new(server_name);
        report.server_address = Some(server);
        report.local_address = Some(main_local);
        report.quick = cfg.quick;
        let mut p = Prober {
            ids: IdGen::new(cfg.seed),
            cfg,
            server,
            main_local,
            started: now,
            txns: Vec::new(),
            out: VecDeque::new(),
            report,
            phase: Phase::Binding,
            samples: Vec::new(),
            pending_sockets: BTreeMap::new(),
            open_sockets: BTreeSet::new(),
            socket_ports: BTreeMap::new(),
            next_socket: 1,
            m1: None,
            other: None,
            rtt: Duration::ZERO,
            bracket: Bracket::new(),
            trials: Vec::new(),
        };
        p.progress(Progress::Phase(Phase::Binding));
        p.request(Tag::Test1, MAIN_SOCKET, server, Ask::default(), now);
        p.drive(now);
        p
    }

    /// The next thing to do, if any.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When [`Prober::handle_timeout`] must be called next; `None` when finished.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Finished {
            return None;
        }
        let txns = self.txns.iter().filter_map(|(_, t)| t.deadline());
        let probes = self
            .trials
            .iter()
            .filter(|t| t.probe_sent.is_none())
            .filter_map(|t| t.probe_at);
        txns.chain(probes).min()
    }

    /// Time passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.drive(now);
    }

    /// A datagram arrived on `socket` from `from`. Anything that is not an answer to
    /// one of our transactions is ignored.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        socket: SocketId,
        from: SocketAddr,
        data: &[u8],
    ) {
        let Some(parsed) = parse(data) else {
            return;
        };
        let (id, outcome) = match parsed {
            Parsed::Request { id } => (id, Outcome::Looped { socket }),
            Parsed::Response {
                id,
                error: Some(code),
                ..
            } => (id, Outcome::Error(code)),
            Parsed::Response {
                id, mapped, other, ..
            } => {
                let Some(mapped) = mapped else {
                    tracing::debug!(%from, "Binding response without a mapped address");
                    return;
                };
                (
                    id,
                    Outcome::Response {
                        mapped,
                        from,
                        socket,
                        other,
                        at: now,
                    },
                )
            }
        };
        if let Some((_, t)) = self.txns.iter_mut().find(|(_, t)| t.id == id && !t.done()) {
            if let (Outcome::Response { at, .. }, 1) = (&outcome, t.attempts)
                && let Some(sent) = t.first_sent
            {
                self.rtt = at.saturating_duration_since(sent);
            }
            t.outcome = Some(outcome);
        }
        self.drive(now);
    }

    /// A socket requested with [`Output::OpenSocket`] is bound at `local`, or could not
    /// be bound (`Err` with the reason).
    pub fn handle_socket_opened(
        &mut self,
        now: Instant,
        socket: SocketId,
        local: Result<SocketAddr, String>,
    ) {
        let Some(tag) = self.pending_sockets.remove(&socket) else {
            return;
        };
        match local {
            Ok(addr) => {
                self.socket_ports.insert(socket, addr.port());
                self.request(tag, socket, self.server, Ask::default(), now);
            }
            Err(reason) => {
                self.warn(format!("could not open an extra UDP socket ({reason}); results that needed it are missing"));
                self.open_sockets.remove(&socket);
                if let Tag::LifeOpen(_) = tag {
                    self.end_round();
                    self.finish(now);
                    return;
                }
            }
        }
        self.drive(now);
    }

    /// Stops early: the report keeps what was learnt, with a warning.
    pub fn cancel(&mut self, now: Instant) {
        if self.phase != Phase::Finished {
            self.warn(format!(
                "cancelled during {:?}; later tests did not run",
                self.phase
            ));
            self.finish(now);
        }
    }

    /// Whether the report is complete.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The report so far (complete once [`Prober::is_finished`]).
    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Takes the report.
    pub fn into_report(self) -> Report {
        self.report
    }
}
