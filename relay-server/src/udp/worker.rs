//! One worker: its sockets (listening and relayed), its own [`Server`], one
//! epoll set, batched receive and send. Nothing here is shared with other
//! workers except the stop flag and the counters (relaxed atomics on the
//! worker's own cache line) — and ports reserved by EVEN-PORT: the core keeps
//! their bound sockets, unpolled, in the state all workers share, and the
//! worker whose core serves the RESERVATION-TOKEN registers the socket here
//! ([`RelaySockets::adopt`]).

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSocketState};

use super::sendmmsg::{self, Outgoing};
use super::{SocketIndex, StartError};
use crate::datagrams::Datagrams;
use crate::metrics::{DriverCounters, Registry};
use crate::server::{Server, Transmit};
use crate::turn::ports::{RelaySockets, ReservedSocket};

/// How often an idle worker wakes to check the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// Receive buffer per datagram slot: the largest UDP payload, which also holds a
/// GRO train (the kernel caps those at 64 KiB).
const SLOT: usize = 64 * 1024;
/// Receive batches per socket before the worker looks at the others again.
const ROUNDS_PER_WAKE: usize = 8;

/// Which entry point of the core a socket's datagrams go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A listening address: clients' STUN, TURN and ChannelData.
    Listening,
    /// A relayed address: datagrams from peers.
    Relayed,
}

/// One socket and its batched-I/O state.
#[derive(Debug)]
struct Endpoint {
    local: SocketAddr,
    kind: Kind,
    socket: mio::net::UdpSocket,
    state: UdpSocketState,
    /// GSO segments per send (1 once the kernel refused GSO on this socket).
    gso_segments: usize,
}

/// A relayed socket opened or closed by the core, waiting for the worker.
#[derive(Debug)]
enum Change {
    Open(SocketAddr, UdpSocket),
    Close(SocketAddr),
}

/// The worker's [`RelaySockets`]: binds at once (so the core learns the port in
/// the same call) and queues the socket for the worker to poll. Only the
/// worker's own thread uses it, so the lock is never contended.
#[derive(Debug, Clone, Default)]
pub(crate) struct WorkerSockets {
    changes: Arc<Mutex<Vec<Change>>>,
    pending: Arc<AtomicBool>,
}

impl WorkerSockets {
    fn push(&self, change: Change) {
        self.changes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(change);
        self.pending.store(true, Ordering::Relaxed);
    }

    fn take(&self) -> Vec<Change> {
        if !self.pending.swap(false, Ordering::Relaxed) {
            return Vec::new();
        }
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl RelaySockets for WorkerSockets {
    fn open(&mut self, address: SocketAddr) -> io::Result<SocketAddr> {
        let socket = super::bind_socket(address, false)?;
        let bound = socket.local_addr()?;
        self.push(Change::Open(bound, socket));
        Ok(bound)
    }

    fn close(&mut self, address: SocketAddr) {
        self.push(Change::Close(address));
    }

    fn reserve(&mut self, address: SocketAddr) -> io::Result<ReservedSocket> {
        // Bound but not polled: nothing is relayed through a reserved port.
        let socket = super::bind_socket(address, false)?;
        let bound = socket.local_addr()?;
        Ok(ReservedSocket::new(bound, socket))
    }

    fn adopt(&mut self, socket: ReservedSocket) -> io::Result<SocketAddr> {
        let address = socket.address();
        let socket = socket
            .downcast::<UdpSocket>()
            .map_err(|_| io::Error::other("a reserved socket of another kind"))?;
        self.push(Change::Open(address, socket));
        Ok(address)
    }
}

/// A worker thread's state.
#[derive(Debug)]
pub(crate) struct Worker {
    index: usize,
    poll: Poll,
    /// Slots by mio token; closed relayed sockets leave a `None` for reuse.
    endpoints: Vec<Option<Endpoint>>,
    free: Vec<usize>,
    by_local: SocketIndex,
    server: Server,
    relay_sockets: WorkerSockets,
    counters: Arc<DriverCounters>,
    stop: Arc<AtomicBool>,
    /// `BATCH_SIZE` receive slots of `SLOT` bytes, reused for every batch.
    recv: Vec<u8>,
    /// What a batch sends, packed in one buffer reused for every batch.
    out: Datagrams,
    /// Answers from the general (control) path, moved into `out` per batch.
    control: Vec<Transmit>,
    /// `out`'s datagrams as (socket slot, destination key, index), sorted
    /// for sending.
    order: Vec<(usize, u64, usize)>,
    /// Sockets that may still hold datagrams (mio is edge-triggered).
    ready: Vec<usize>,
}

impl Worker {
    /// A worker around `server`, whose relayed sockets it opens through
    /// `relay_sockets` (the same handle given to the server), counted in `registry`.
    pub(crate) fn new(
        index: usize,
        server: Server,
        relay_sockets: WorkerSockets,
        stop: Arc<AtomicBool>,
        registry: &Registry,
    ) -> Result<Worker, StartError> {
        let poll = Poll::new().map_err(StartError::Thread)?;
        let counters = Arc::new(DriverCounters::default());
        registry.add_driver(Arc::clone(&counters));
        registry.add_core(server.counters());
        Ok(Worker {
            index,
            poll,
            endpoints: Vec::new(),
            free: Vec::new(),
            by_local: SocketIndex::default(),
            server,
            relay_sockets,
            counters,
            stop,
            recv: vec![0; BATCH_SIZE * SLOT],
            out: Datagrams::default(),
            control: Vec::new(),
            order: Vec::with_capacity(BATCH_SIZE * 2),
            ready: Vec::new(),
        })
    }

    /// Adds a bound, non-blocking listening socket to this worker.
    pub(crate) fn add_listening(
        &mut self,
        local: SocketAddr,
        socket: UdpSocket,
    ) -> Result<(), StartError> {
        self.add(local, Kind::Listening, socket)
            .map_err(|source| StartError::Setup {
                address: local,
                source,
            })
    }

    fn add(&mut self, local: SocketAddr, kind: Kind, socket: UdpSocket) -> io::Result<()> {
        let state = UdpSocketState::new((&socket).into())?;
        without_address_messages(&socket, local.is_ipv4());
        let gso_segments = state.max_gso_segments().max(1);
        let mut socket = mio::net::UdpSocket::from_std(socket);
        let slot = self.free.pop().unwrap_or(self.endpoints.len());
        self.poll
            .registry()
            .register(&mut socket, Token(slot), Interest::READABLE)?;
        let endpoint = Some(Endpoint {
            local,
            kind,
            socket,
            state,
            gso_segments,
        });
        match self.endpoints.get_mut(slot) {
            Some(entry) => *entry = endpoint,
            None => self.endpoints.push(endpoint),
        }
        self.by_local.insert(local, slot);
        Ok(())
    }

    /// Registers relayed sockets the core opened and drops those it closed.
    fn apply_relay_changes(&mut self) {
        for change in self.relay_sockets.take() {
            match change {
                Change::Open(local, socket) => {
                    if let Err(e) = self.add(local, Kind::Relayed, socket) {
                        // The allocation stays, but relays nothing from peers.
                        tracing::warn!(%local, error = %e, "cannot poll a relayed socket");
                    }
                }
                Change::Close(local) => {
                    let Some(slot) = self.by_local.remove(&local) else {
                        continue;
                    };
                    if let Some(mut endpoint) = self.endpoints.get_mut(slot).and_then(Option::take)
                    {
                        let _ = self.poll.registry().deregister(&mut endpoint.socket);
                        self.free.push(slot);
                    }
                }
            }
        }
    }

    /// Serves until the stop flag is set. Errors only if epoll itself fails.
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        tracing::debug!(
            worker = self.index,
            sockets = self.endpoints.len(),
            "worker running"
        );
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let timeout = if self.ready.is_empty() {
                self.server
                    .poll_timeout()
                    .map_or(TICK, |at| at.saturating_duration_since(now).min(TICK))
            } else {
                Duration::ZERO
            };
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in &events {
                let slot = event.token().0;
                if !self.ready.contains(&slot) {
                    self.ready.push(slot);
                }
            }
            // Round-robin one batch per ready socket, so a flood on one socket
            // cannot starve the others; drop a socket from `ready` once drained.
            for _ in 0..ROUNDS_PER_WAKE {
                let mut i = 0;
                while let Some(&slot) = self.ready.get(i) {
                    if self.receive_batch(slot) {
                        i += 1;
                    } else {
                        self.ready.swap_remove(i);
                    }
                }
                if self.ready.is_empty() {
                    break;
                }
            }
            let now = Instant::now();
            if self.server.poll_timeout().is_some_and(|at| at <= now) {
                self.server.handle_timeout(now);
                self.apply_relay_changes();
            }
        }
        tracing::debug!(worker = self.index, "worker stopped");
        Ok(())
    }

    /// Receives one batch on endpoint `slot`, handles it and sends the answers.
    /// Returns whether the socket may hold more: a short batch means it was
    /// drained, and epoll (edge-triggered, an edge per arrival) reports the next
    /// datagram, so no extra `recvmmsg` is spent to see `EAGAIN`.
    fn receive_batch(&mut self, slot: usize) -> bool {
        let Worker {
            endpoints,
            server,
            recv,
            out,
            control,
            counters,
            ..
        } = self;
        let Some(Some(endpoint)) = endpoints.get(slot) else {
            return false;
        };
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let received = {
            let mut slices: [IoSliceMut<'_>; BATCH_SIZE] = {
                let mut chunks = recv.chunks_mut(SLOT);
                std::array::from_fn(|_| IoSliceMut::new(chunks.next().unwrap_or_default()))
            };
            endpoint
                .state
                .recv((&endpoint.socket).into(), &mut slices, &mut meta)
        };
        let count = match received {
            Ok(count) => count,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) => {
                // ICMP errors from earlier sends surface here on Linux; go on.
                tracing::trace!(local = %endpoint.local, error = %e, "recv failed");
                return true;
            }
        };
        let now = Instant::now();
        let (mut datagrams, mut bytes, mut requests) = (0u64, 0u64, 0u64);
        for (meta, buffer) in meta.iter().zip(recv.chunks(SLOT)).take(count) {
            let Some(filled) = buffer.get(..meta.len) else {
                continue;
            };
            let stride = if meta.stride == 0 {
                meta.len
            } else {
                meta.stride
            };
            for packet in filled.chunks(stride.max(1)) {
                datagrams += 1;
                bytes += packet.len() as u64;
                match endpoint.kind {
                    Kind::Listening => {
                        if !server.handle_client_data(now, endpoint.local, meta.addr, packet, out) {
                            requests += u64::from(is_stun_request(packet));
                            server.handle_at(now, endpoint.local, meta.addr, packet, control);
                        }
                    }
                    Kind::Relayed => {
                        server.handle_peer_data(now, endpoint.local, meta.addr, packet, out);
                    }
                }
            }
        }
        server.flush_counters();
        counters.count_received(datagrams, bytes);
        if requests > 0 {
            counters.count_stun_requests(requests);
        }
        self.apply_relay_changes();
        self.flush();
        count == BATCH_SIZE
    }

    /// Sends everything queued: per socket one `sendmmsg` (see
    /// [`sendmmsg::send`]), datagrams grouped by destination (order kept per
    /// destination) so each run to one destination leaves as one GSO message.
    fn flush(&mut self) {
        let Worker {
            endpoints,
            by_local,
            out,
            control,
            order,
            counters,
            ..
        } = self;
        for t in control.drain(..) {
            out.push(t.local, t.destination, &t.payload);
        }
        order.clear();
        let mut last: Option<(SocketAddr, usize)> = None;
        for (i, d) in out.iter().enumerate() {
            let slot = match last {
                Some((local, slot)) if local == d.local => slot,
                _ => {
                    let Some(&slot) = by_local.get(&d.local) else {
                        tracing::debug!(local = %d.local, "no socket for a datagram's source address");
                        continue;
                    };
                    last = Some((d.local, slot));
                    slot
                }
            };
            order.push((slot, destination_key(d.destination), i));
        }
        // Grouped by socket, then by destination, keeping the order of the
        // datagrams to one destination (the index breaks ties). The key is a
        // cheap fold of the destination: two destinations that share one only
        // interleave (each in its order), so runs are found by comparing the
        // real addresses when sending.
        order.sort_unstable();
        let mut outgoing: Vec<Outgoing<'_>> = Vec::with_capacity(order.len());
        let mut rest = order.as_slice();
        while let Some(&(slot, _, _)) = rest.first() {
            let run = rest.iter().take_while(|(s, _, _)| *s == slot).count();
            let (group, remaining) = rest.split_at(run);
            rest = remaining;
            let Some(Some(endpoint)) = endpoints.get_mut(slot) else {
                continue;
            };
            outgoing.clear();
            outgoing.extend(group.iter().filter_map(|&(_, _, i)| {
                let d = out.get(i)?;
                Some(Outgoing {
                    destination: d.destination,
                    payload: d.payload,
                })
            }));
            let sent = sendmmsg::send(endpoint.socket.as_fd(), &outgoing, endpoint.gso_segments);
            if sent.gso_refused {
                endpoint.gso_segments = 1;
            }
            counters.count_sent(sent.datagrams, sent.bytes);
            for _ in 0..sent.errors {
                counters.count_send_error();
            }
        }
        drop(outgoing);
        out.clear();
    }
}

/// Turns off the per-datagram control messages `quinn-udp` asks for that this
/// driver does not read: the destination address (`IP_PKTINFO`,
/// `IPV6_RECVPKTINFO`; each socket's own address is known) and the TOS /
/// traffic class (ECN, unused). The kernel then skips building them for every
/// datagram received; GRO's segment size still comes. Best effort: a socket
/// that keeps them works the same, a little slower.
fn without_address_messages(socket: &UdpSocket, ipv4: bool) {
    use std::os::fd::AsRawFd;
    let off: libc::c_int = 0;
    let options: &[(libc::c_int, libc::c_int)] = if ipv4 {
        &[
            (libc::IPPROTO_IP, libc::IP_PKTINFO),
            (libc::IPPROTO_IP, libc::IP_RECVTOS),
        ]
    } else {
        &[
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
            (libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS),
        ]
    };
    for &(level, name) in options {
        // SAFETY: a valid socket descriptor and a pointer to a c_int of the
        // length given, which the kernel only reads.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&raw const off).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            tracing::trace!(level, name, error = %io::Error::last_os_error(), "cannot turn a control message off");
        }
    }
}

/// A sort key for grouping datagrams by destination (see [`Worker::flush`]).
fn destination_key(destination: SocketAddr) -> u64 {
    let ip = match destination.ip() {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29)
        }
    };
    (ip << 16) ^ u64::from(destination.port())
}

/// Whether `packet` looks like a STUN request (header only; the core decides).
fn is_stun_request(packet: &[u8]) -> bool {
    const MAGIC: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    let (Some(&b0), Some(&b1), Some(cookie)) = (packet.first(), packet.get(1), packet.get(4..8))
    else {
        return false;
    };
    // Top two bits zero, magic cookie, class bits (0x0110) zero = request.
    packet.len() >= 20 && b0 & 0xC0 == 0 && cookie == MAGIC && (b0 & 0x01) == 0 && (b1 & 0x10) == 0
}
