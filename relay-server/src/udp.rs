//! The UDP driver: binds the sockets, then runs one thread per socket that feeds
//! datagrams to the shared [`Server`] and sends what it returns.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use socket2::{Domain, Protocol, Socket, Type};

use crate::server::{Rfc5780Addresses, Server, ServerConfig, Transmit};

/// How many times to retry binding the four RFC 5780 sockets when ports are
/// chosen by the kernel (port 0) and the alternate IP's port is already taken.
const EPHEMERAL_ATTEMPTS: usize = 16;
/// Receive buffer: larger than any STUN message we accept over UDP.
const RECV_BUFFER: usize = 4096;

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
    /// A receive thread could not be started.
    #[error("cannot start a receive thread: {0}")]
    Thread(io::Error),
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
}

/// The running service.
#[derive(Debug)]
pub struct Running {
    addresses: Vec<SocketAddr>,
    rfc5780: Option<Rfc5780Addresses>,
    threads: Vec<JoinHandle<()>>,
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

    /// Blocks while the receive threads run (they stop only on process exit).
    pub fn wait(self) {
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a receive thread panicked");
            }
        }
    }
}

fn bind(address: SocketAddr) -> Result<UdpSocket, StartError> {
    let err = |source| StartError::Bind { address, source };
    let domain = Domain::for_address(address);
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
    if address.is_ipv6() {
        // Keep [::] from also taking IPv4, so 0.0.0.0 can be bound beside it.
        socket.set_only_v6(true).map_err(err)?;
    }
    socket.bind(&address.into()).map_err(err)?;
    let socket: UdpSocket = socket.into();
    Ok(socket)
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

/// Binds every socket and starts serving. Returns once all sockets are bound.
pub fn start(options: &Options) -> Result<Running, StartError> {
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

    let server = Arc::new(Mutex::new(Server::new(ServerConfig {
        software: options.software.clone(),
        rfc5780,
    })));
    let mut senders = HashMap::new();
    for (address, socket) in &sockets {
        let clone = socket.try_clone().map_err(|source| StartError::Bind {
            address: *address,
            source,
        })?;
        senders.insert(*address, clone);
    }
    let senders = Arc::new(senders);

    let addresses: Vec<SocketAddr> = sockets.iter().map(|(a, _)| *a).collect();
    let mut threads = Vec::new();
    for (address, socket) in sockets {
        let server = Arc::clone(&server);
        let senders = Arc::clone(&senders);
        let thread = std::thread::Builder::new()
            .name(format!("stun {address}"))
            .spawn(move || serve(address, &socket, &server, &senders))
            .map_err(StartError::Thread)?;
        threads.push(thread);
    }
    Ok(Running {
        addresses,
        rfc5780,
        threads,
    })
}

/// Receives on one socket forever.
fn serve(
    local: SocketAddr,
    socket: &UdpSocket,
    server: &Mutex<Server>,
    senders: &HashMap<SocketAddr, UdpSocket>,
) {
    let mut buf = vec![0u8; RECV_BUFFER];
    let mut out: Vec<Transmit> = Vec::new();
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(received) => received,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; keep going.
                tracing::debug!(%local, error = %e, "recv_from failed");
                continue;
            }
        };
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        {
            // A poisoned lock only means another thread panicked mid-datagram; the
            // server holds no invariants across calls that this could break.
            let mut server = server.lock().unwrap_or_else(|p| p.into_inner());
            server.handle(local, from, packet, &mut out);
        }
        for transmit in out.drain(..) {
            let Some(sender) = senders.get(&transmit.local) else {
                tracing::warn!(local = %transmit.local, "no socket for a response's source");
                continue;
            };
            if let Err(e) = sender.send_to(&transmit.payload, transmit.destination) {
                tracing::debug!(to = %transmit.destination, error = %e, "send_to failed");
            }
        }
    }
}
