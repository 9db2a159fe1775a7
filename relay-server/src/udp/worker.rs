//! One worker: its sockets (listening and relayed), its own [`Server`], one
//! epoll set, batched receive and send. Nothing here is shared with other
//! workers except the stop flag and the counters (relaxed atomics on the
//! worker's own cache line).

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};
use quinn_udp::{BATCH_SIZE, RecvMeta, UdpSocketState};

use super::{SocketIndex, StartError};
use crate::metrics::{DriverCounters, Registry};
use crate::server::{Server, Transmit};
use crate::turn::ports::RelaySockets;

/// How often an idle worker wakes to check the stop flag.
const TICK: Duration = Duration::from_millis(100);
/// Receive buffer per datagram slot: the largest UDP payload, which also holds a
/// GRO train (the kernel caps those at 64 KiB).
const SLOT: usize = 64 * 1024;
/// Largest GSO send (the kernel's limit is one 64 KiB UDP datagram).
const GSO_MAX_BYTES: usize = 60 * 1024;
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
    out: Vec<Transmit>,
    gso: Vec<u8>,
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
            by_local: SocketIndex::new(),
            server,
            relay_sockets,
            counters,
            stop,
            recv: vec![0; BATCH_SIZE * SLOT],
            out: Vec::with_capacity(BATCH_SIZE * 2),
            gso: Vec::with_capacity(GSO_MAX_BYTES),
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
    /// Returns whether the socket may hold more.
    fn receive_batch(&mut self, slot: usize) -> bool {
        let Worker {
            endpoints,
            server,
            recv,
            out,
            counters,
            ..
        } = self;
        let Some(Some(endpoint)) = endpoints.get(slot) else {
            return false;
        };
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let received = {
            let mut slices: Vec<IoSliceMut<'_>> =
                recv.chunks_mut(SLOT).map(IoSliceMut::new).collect();
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
                        requests += u64::from(is_stun_request(packet));
                        server.handle_at(now, endpoint.local, meta.addr, packet, out);
                    }
                    Kind::Relayed => {
                        server.handle_relayed(now, endpoint.local, meta.addr, packet, out);
                    }
                }
            }
        }
        counters.count_received(datagrams, bytes);
        if requests > 0 {
            counters.count_stun_requests(requests);
        }
        self.apply_relay_changes();
        self.flush();
        true
    }

    /// Sends everything in `out`: runs of equal-size datagrams from one socket
    /// to one destination go out as one GSO send.
    fn flush(&mut self) {
        let Worker {
            endpoints,
            by_local,
            out,
            gso,
            counters,
            ..
        } = self;
        let mut rest: &[Transmit] = out;
        while let Some(first) = rest.first() {
            let endpoint = by_local
                .get(&first.local)
                .and_then(|&slot| endpoints.get(slot))
                .and_then(Option::as_ref);
            let Some(endpoint) = endpoint else {
                tracing::debug!(local = %first.local, "no socket for a datagram's source address");
                rest = rest.get(1..).unwrap_or_default();
                continue;
            };
            let size = first.payload.len();
            let max = endpoint
                .state
                .max_gso_segments()
                .min(GSO_MAX_BYTES / size.max(1))
                .max(1);
            let run = rest
                .iter()
                .take(max)
                .take_while(|t| {
                    t.local == first.local
                        && t.destination == first.destination
                        && t.payload.len() == size
                })
                .count()
                .max(1);
            let (batch, remaining) = rest.split_at(run.min(rest.len()));
            rest = remaining;
            let (contents, segment_size) = if batch.len() == 1 {
                (first.payload.as_slice(), None)
            } else {
                gso.clear();
                for t in batch {
                    gso.extend_from_slice(&t.payload);
                }
                (gso.as_slice(), Some(size))
            };
            let transmit = quinn_udp::Transmit {
                destination: first.destination,
                ecn: None,
                contents,
                segment_size,
                src_ip: None,
            };
            match endpoint
                .state
                .try_send((&endpoint.socket).into(), &transmit)
            {
                Ok(()) => counters.count_sent(batch.len() as u64, contents.len() as u64),
                Err(e) => {
                    // UDP: a full send buffer or an ICMP error drops the datagram.
                    counters.count_send_error();
                    tracing::trace!(to = %first.destination, error = %e, "send failed");
                }
            }
        }
        out.clear();
    }
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
