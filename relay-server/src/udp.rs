//! The UDP driver: binds the sockets and runs the sans-IO [`Server`] on them.
//!
//! Shape, for all cores and few system calls:
//!
//! - **One worker thread per core** (`Options::threads`, 0 = one per core).
//!   Every worker binds its own socket on each listening address with
//!   `SO_REUSEPORT`; the kernel spreads clients over them by a hash of the
//!   5-tuple, so a client's packets always reach the same worker.
//! - **Each worker owns its [`Server`]** (no lock anywhere on the packet path):
//!   a client's state lives in the worker its 5-tuple hashes to, and so do the
//!   relay sockets that worker opens for it. The one exception: a port reserved
//!   by EVEN-PORT waits, bound and unpolled, in the state all workers share
//!   ([`Shared`], locked per Allocate), and the worker that serves its
//!   RESERVATION-TOKEN (often another: the claiming client sends from another
//!   port) takes the socket over.
//! - **Batched I/O** through `quinn-udp`: `recvmmsg` (up to 32 datagrams a call,
//!   with GRO where the kernel offers it); each batch's answers leave in one
//!   `sendmmsg` per socket, many destinations per call, and runs of equal-size
//!   datagrams to one destination as one GSO message (`udp/sendmmsg.rs`).
//! - **No allocation per datagram** on the data path: the core appends relayed
//!   datagrams to one reused buffer ([`crate::Datagrams`]).
//! - **Readiness** with `mio` (epoll): a worker sleeps until one of its sockets
//!   is readable or the shutdown tick (100 ms) passes.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

use crate::health::Health;
use crate::metrics::Registry;
use crate::rendezvous::{Rendezvous, RendezvousConfig};
use crate::server::{Rfc5780Addresses, Server, ServerConfig};
use crate::shared::Shared;
use crate::turn::TurnConfig;

/// Most peers the rendezvous service holds at once (about 200 bytes each).
const RENDEZVOUS_MAX_PEERS: usize = 100_000;

mod sendmmsg;
mod worker;

/// How many times to retry binding the four RFC 5780 sockets when ports are
/// chosen by the kernel (port 0) and the alternate IP's port is already taken.
const EPHEMERAL_ATTEMPTS: usize = 16;
/// Socket buffer sizes asked for (the kernel caps them at `net.core.rmem_max`
/// and `wmem_max`; raise those for high packet rates).
const SOCKET_BUFFER: usize = 4 << 20;

/// Why the driver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be bound.
    #[error("cannot bind UDP {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The RFC 5780 addresses are unusable.
    #[error(transparent)]
    Rfc5780(#[from] crate::server::Rfc5780Error),
    /// `--rfc5780-alt` has no `--listen` address of its family to pair with.
    #[error("no listen address of the same family as the RFC 5780 alternate {0}")]
    NoPrimaryFor(SocketAddr),
    /// A worker thread could not be started.
    #[error("cannot start a worker thread: {0}")]
    Thread(io::Error),
    /// The batched-I/O layer or epoll refused a socket.
    #[error("cannot set up UDP {address} for batched I/O: {source}")]
    Setup {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// What to listen on.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Addresses to listen on. With `rfc5780_alternate`, the first of the same
    /// family is the RFC 5780 primary.
    pub listen: Vec<SocketAddr>,
    /// The RFC 5780 alternate IP and port.
    pub rfc5780_alternate: Option<SocketAddr>,
    /// SOFTWARE for responses.
    pub software: Option<String>,
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// The TURN service; `None` serves STUN only. Its `listening` addresses are
    /// filled in with the bound ones.
    pub turn: Option<TurnConfig>,
}

/// The running service.
#[derive(Debug)]
pub struct Running {
    addresses: Vec<SocketAddr>,
    rfc5780: Option<Rfc5780Addresses>,
    threads: Vec<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    registry: Arc<Registry>,
    health: Arc<Health>,
}

impl Running {
    /// The addresses actually bound (ports resolved), in binding order.
    pub fn local_addresses(&self) -> &[SocketAddr] {
        &self.addresses
    }

    /// The RFC 5780 address set, if enabled.
    pub fn rfc5780(&self) -> Option<Rfc5780Addresses> {
        self.rfc5780
    }

    /// The counters of every worker and core shard, for `/metrics`.
    pub fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    /// Health as `/healthz` reports it.
    pub fn health(&self) -> Arc<Health> {
        Arc::clone(&self.health)
    }

    /// How many worker threads serve.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Blocks while the workers run (until [`Running::shutdown`] or a panic).
    pub fn wait(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }

    /// Stops the workers: each finishes the batch in hand, sends its answers and
    /// returns within one tick. Waits at most `grace`; returns whether all ended.
    pub fn shutdown(self, grace: Duration) -> bool {
        self.health.set_stopping();
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && self.threads.iter().any(|t| !t.is_finished()) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let all = self.threads.iter().all(JoinHandle::is_finished);
        if all {
            for thread in self.threads {
                if thread.join().is_err() {
                    tracing::error!("a worker thread panicked");
                }
            }
        }
        all
    }
}

/// Binds a listening address for one worker: `SO_REUSEPORT` so every worker
/// has its own socket on the same address.
fn bind(address: SocketAddr) -> Result<UdpSocket, StartError> {
    bind_socket(address, true).map_err(|source| StartError::Bind { address, source })
}

/// Binds a non-blocking UDP socket (IPv6 ones V6ONLY) with large buffers.
/// Relayed sockets are not `reuse_port`: each belongs to one allocation.
fn bind_socket(address: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(address),
        Type::DGRAM,
        Some(Protocol::UDP),
    )?;
    if address.is_ipv6() {
        // Keep [::] from also taking IPv4, so 0.0.0.0 can be bound beside it.
        socket.set_only_v6(true)?;
    }
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nonblocking(true)?;
    // Best effort: the kernel caps these at net.core.{r,w}mem_max silently.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&address.into())?;
    Ok(socket.into())
}

fn local_addr(socket: &UdpSocket, address: SocketAddr) -> Result<SocketAddr, StartError> {
    socket
        .local_addr()
        .map_err(|source| StartError::Bind { address, source })
}

/// Binds the four RFC 5780 sockets. Port 0 asks the kernel; then the alternate IP
/// reuses the ports it chose, retrying if one is taken there.
fn bind_rfc5780(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Rfc5780Addresses, Vec<(SocketAddr, UdpSocket)>), StartError> {
    let ephemeral = primary.port() == 0 || alternate.port() == 0;
    let mut last_error = None;
    for _ in 0..if ephemeral { EPHEMERAL_ATTEMPTS } else { 1 } {
        match try_bind_rfc5780(primary, alternate) {
            Ok(bound) => return Ok(bound),
            Err(e @ StartError::Bind { .. }) if ephemeral => last_error = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or(StartError::NoPrimaryFor(alternate)))
}

fn try_bind_rfc5780(
    primary: SocketAddr,
    alternate: SocketAddr,
) -> Result<(Rfc5780Addresses, Vec<(SocketAddr, UdpSocket)>), StartError> {
    // Validate IPs and families before binding anything (ports checked below).
    let probe_port =
        |a: SocketAddr, p| SocketAddr::new(a.ip(), if a.port() == 0 { p } else { a.port() });
    Rfc5780Addresses::new(probe_port(primary, 1), probe_port(alternate, 2))?;

    let pp = bind(primary)?;
    let pp_addr = local_addr(&pp, primary)?;
    let pa_want = SocketAddr::new(primary.ip(), alternate.port());
    let pa = bind(pa_want)?;
    let pa_addr = local_addr(&pa, pa_want)?;
    let addresses =
        Rfc5780Addresses::new(pp_addr, SocketAddr::new(alternate.ip(), pa_addr.port()))?;
    let [_, _, ap_want, aa_want] = addresses.socket_addresses();
    let ap = bind(ap_want)?;
    let aa = bind(aa_want)?;
    Ok((
        addresses,
        vec![(pp_addr, pp), (pa_addr, pa), (ap_want, ap), (aa_want, aa)],
    ))
}

/// Bound sockets with their resolved addresses.
type Bound = Vec<(SocketAddr, UdpSocket)>;

/// Binds the first worker's sockets (resolving port 0 and RFC 5780).
fn bind_first(options: &Options) -> Result<(Option<Rfc5780Addresses>, Bound), StartError> {
    let mut sockets: Vec<(SocketAddr, UdpSocket)> = Vec::new();
    let mut rfc5780 = None;
    let mut primary_index = None;
    if let Some(alternate) = options.rfc5780_alternate {
        let index = options
            .listen
            .iter()
            .position(|a| a.is_ipv4() == alternate.is_ipv4())
            .ok_or(StartError::NoPrimaryFor(alternate))?;
        let primary = options
            .listen
            .get(index)
            .copied()
            .ok_or(StartError::NoPrimaryFor(alternate))?;
        let (addresses, bound) = bind_rfc5780(primary, alternate)?;
        rfc5780 = Some(addresses);
        primary_index = Some(index);
        sockets.extend(bound);
    }
    for (i, &address) in options.listen.iter().enumerate() {
        if Some(i) == primary_index || sockets.iter().any(|(a, _)| *a == address) {
            continue;
        }
        let socket = bind(address)?;
        sockets.push((local_addr(&socket, address)?, socket));
    }
    Ok((rfc5780, sockets))
}

/// Binds every socket of every worker and starts serving. Returns once all
/// sockets are bound (so privileges may be dropped right after).
pub fn start(options: &Options) -> Result<Running, StartError> {
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let (rfc5780, first) = bind_first(options)?;
    let addresses: Vec<SocketAddr> = first.iter().map(|(a, _)| *a).collect();
    let mut per_worker = vec![first];
    for _ in 1..threads {
        let mut sockets = Vec::with_capacity(addresses.len());
        for &address in &addresses {
            sockets.push((address, bind(address)?));
        }
        per_worker.push(sockets);
    }

    let config = ServerConfig {
        software: options.software.clone(),
        rfc5780,
    };
    let turn = options.turn.clone().map(|mut turn| {
        turn.listening.extend(addresses.iter().copied());
        turn
    });
    // One set of quotas, nonce key and counters across the workers' cores.
    let shared = Shared::new();
    // Rendezvous accepts the same REST tokens as TURN (`--auth-secret`).
    let rendezvous = turn
        .as_ref()
        .filter(|t| !t.auth_secrets.is_empty())
        .map(|t| {
            Arc::new(Mutex::new(Rendezvous::new(RendezvousConfig {
                secrets: t.auth_secrets.clone(),
                max_peers: RENDEZVOUS_MAX_PEERS,
            })))
        });
    let stop = Arc::new(AtomicBool::new(false));
    let registry = Arc::new(Registry::new());
    let health = Arc::new(Health::default());
    let mut handles = Vec::with_capacity(threads);
    for (index, sockets) in per_worker.into_iter().enumerate() {
        let relay_sockets = worker::WorkerSockets::default();
        let server = match &turn {
            Some(turn) => Server::with_turn(
                config.clone(),
                turn.clone(),
                Box::new(relay_sockets.clone()),
                &shared,
            ),
            None => Server::new(config.clone()),
        };
        let server = match &rendezvous {
            Some(rv) => server.with_rendezvous(Arc::clone(rv)),
            None => server,
        };
        let mut worker =
            worker::Worker::new(index, server, relay_sockets, Arc::clone(&stop), &registry)?;
        for (address, socket) in sockets {
            worker.add_listening(address, socket)?;
        }
        let health = Arc::clone(&health);
        let handle = std::thread::Builder::new()
            .name(format!("relay worker {index}"))
            .spawn(move || {
                if let Err(e) = worker.run() {
                    tracing::error!(worker = index, error = %e, "worker stopped");
                    health.set_failed();
                }
            })
            .map_err(StartError::Thread)?;
        handles.push(handle);
    }
    tracing::info!(workers = threads, "UDP driver started");
    Ok(Running {
        addresses,
        rfc5780,
        threads: handles,
        stop,
        registry,
        health,
    })
}

/// Sockets of one worker, by local address (for [`crate::Transmit::local`]).
pub(crate) type SocketIndex = crate::fast_map::FastMap<SocketAddr, usize>;
