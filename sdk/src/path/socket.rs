//! [`PathSocket`]: quinn's `AsyncUdpSocket` over the path layer.

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

use super::addr::{Via, canonical};
use super::core::{PathCore, SendRoute};
use super::driver::{ReceivedStun, Shared, State, now, swallow};
use super::event::PathConfig;
use super::handle::PathHandle;
use crate::socket::{
    DatagramIo, Route, SocketConfig, SocketError, UdpSockets, WritableFuture, route,
};

/// The socket quinn runs on: every peer appears at its stable virtual address
/// while the datagrams take the best live real path underneath.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tsunagi::path::{PathAddr, PathConfig, PathSocket, PeerKey};
/// use tsunagi::socket::{SocketConfig, endpoint_config};
///
/// let (socket, handle) = PathSocket::bind(&SocketConfig::default(), PathConfig::default())?;
/// let peer = handle.add_peer(&PeerKey([7; 32]));
/// handle.add_path(peer, PathAddr::Direct("[2001:db8::7]:4433".parse()?))?;
/// let endpoint = quinn::Endpoint::new_with_abstract_socket(
///     endpoint_config(),
///     None,
///     socket,
///     Arc::new(quinn::TokioRuntime),
/// )?;
/// // endpoint.connect_with(client_config, peer, "peer")?  — QUIC dials `peer`.
/// # Ok(()) }
/// ```
pub struct PathSocket {
    shared: Arc<Shared>,
}

impl fmt::Debug for PathSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PathSocket")
            .field("local", &self.shared.io.local_addrs())
            .finish_non_exhaustive()
    }
}

impl PathSocket {
    /// Binds the shared UDP sockets and starts the path layer on them. Call
    /// inside a tokio runtime. Returns the socket for quinn and a handle for
    /// the application.
    pub fn bind(
        sockets: &SocketConfig,
        config: PathConfig,
    ) -> Result<(Arc<PathSocket>, PathHandle), SocketError> {
        let io = Arc::new(UdpSockets::bind(sockets)?);
        Ok(PathSocket::new(io, config, rand::random()))
    }

    /// Starts the path layer on any datagram I/O (real sockets, or
    /// `crate::sim::SimIo`). `seed` drives probe transaction IDs. Call inside a
    /// tokio runtime: a driver task runs the probe timers.
    pub fn new(
        io: Arc<dyn DatagramIo>,
        config: PathConfig,
        seed: u64,
    ) -> (Arc<PathSocket>, PathHandle) {
        let shared = Shared::new(io, PathCore::new(config, seed), seed);
        let socket = Arc::new(PathSocket {
            shared: shared.clone(),
        });
        (socket, PathHandle::new(shared))
    }

    /// A handle to the same path layer.
    pub fn handle(&self) -> PathHandle {
        PathHandle::new(self.shared.clone())
    }

    /// Sends QUIC's transmit by `via`. A direct path is a plain send on the
    /// shared socket (GSO batch intact) without the state lock; only relay
    /// paths, which wrap each datagram in TURN, take it.
    fn send_one(&self, via: Via, transmit: &Transmit<'_>) -> io::Result<()> {
        match via {
            Via::Socket(to) => {
                let t = Transmit {
                    destination: to,
                    ecn: transmit.ecn,
                    contents: transmit.contents,
                    segment_size: transmit.segment_size,
                    src_ip: None,
                };
                swallow(self.shared.io.try_send(&t), to)
            }
            Via::Turn { .. } => {
                // TURN wraps each datagram: split GSO batches.
                let size = transmit
                    .segment_size
                    .unwrap_or(transmit.contents.len())
                    .max(1);
                let now = now();
                let mut state = self.shared.lock();
                for segment in transmit.contents.chunks(size) {
                    self.shared.send_via(&mut state, now, via, segment);
                }
                Ok(())
            }
        }
    }
}

/// Polls the I/O below for writability on behalf of one quinn task.
struct Poller {
    io: Arc<dyn DatagramIo>,
    waiting: Option<WritableFuture>,
}

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poller").finish_non_exhaustive()
    }
}

impl UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let fut = this
            .waiting
            .get_or_insert_with(|| this.io.clone().writable());
        let result = fut.as_mut().poll(cx);
        if result.is_ready() {
            this.waiting = None;
        }
        result
    }
}

impl AsyncUdpSocket for PathSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller {
            io: self.shared.io.clone(),
            waiting: None,
        })
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let segments = transmit
            .segment_size
            .map_or(1, |s| transmit.contents.len().div_ceil(s.max(1)));
        // The route is chosen (and counted) under the state lock; the send
        // itself, a syscall, happens after it is released, so quinn's receive
        // task never waits behind a send.
        let route = {
            let mut shared = self.shared.lock();
            shared
                .core
                .note_sent(transmit.destination, transmit.contents);
            shared
                .core
                .route(transmit.destination, transmit.contents.len(), segments)
        };
        match route {
            SendRoute::Path(via) => self.send_one(via, transmit),
            SendRoute::NotVirtual(to) => self.send_one(Via::Socket(to), transmit),
            SendRoute::Flood(vias) => {
                for via in vias {
                    // Best effort on each; a full buffer on one path is not a reason
                    // to stall the others.
                    let _ = self.send_one(via, transmit);
                }
                Ok(())
            }
            SendRoute::NoPath => {
                tracing::trace!(to = %transmit.destination, "no path to this peer yet; dropped");
                Ok(())
            }
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            if let Some(n) = self.take_pending(bufs, meta) {
                return Poll::Ready(Ok(n));
            }
            let n = match self.shared.io.poll_recv(cx, bufs, meta) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {
                    {
                        let mut waker = self
                            .shared
                            .recv_waker
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                            *waker = Some(cx.waker().clone());
                        }
                    }
                    // A relayed datagram may have been queued meanwhile.
                    if let Some(n) = self.take_pending(bufs, meta) {
                        return Poll::Ready(Ok(n));
                    }
                    return Poll::Pending;
                }
            };
            let kept = self.sort_received(bufs, meta, n);
            if kept > 0 {
                return Poll::Ready(Ok(kept));
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        // QUIC talks to virtual IPv6 addresses, so the endpoint must be IPv6.
        Ok(SocketAddr::new(
            Ipv6Addr::UNSPECIFIED.into(),
            self.shared.io.local_addrs().port(),
        ))
    }

    fn max_transmit_segments(&self) -> usize {
        self.shared.io.max_transmit_segments()
    }

    fn max_receive_segments(&self) -> usize {
        self.shared.io.max_receive_segments()
    }

    fn may_fragment(&self) -> bool {
        self.shared.io.may_fragment()
    }
}

impl PathSocket {
    /// Moves relayed QUIC datagrams waiting for quinn into its buffers.
    /// Takes the state lock only when the `has_pending` flag says some wait.
    fn take_pending(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta]) -> Option<usize> {
        if !self.shared.has_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut state = self.shared.lock();
        if state.pending.is_empty() {
            self.shared.has_pending.store(false, Ordering::Release);
            return None;
        }
        let mut n = 0;
        for (buf, m) in bufs.iter_mut().zip(meta.iter_mut()) {
            let Some((from, bytes)) = state.pending.pop_front() else {
                break;
            };
            let len = bytes.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..len), bytes.get(..len)) {
                dst.copy_from_slice(src);
            }
            *m = RecvMeta {
                addr: from,
                len,
                stride: len,
                ..RecvMeta::default()
            };
            n += 1;
        }
        if state.pending.is_empty() {
            self.shared.has_pending.store(false, Ordering::Release);
        }
        Some(n)
    }

    /// Demultiplexes `n` received entries: QUIC stays (moved to the front, its
    /// source rewritten to the peer's virtual address), the rest goes to the
    /// path core, the TURN clients or the STUN consumer. Returns how many stay.
    fn sort_received(&self, bufs: &mut [IoSliceMut<'_>], meta: &mut [RecvMeta], n: usize) -> usize {
        let now = now();
        let mut state = self.shared.lock();
        let mut kept = 0;
        for i in 0..n.min(meta.len()).min(bufs.len()) {
            let Some(m) = meta.get(i).copied() else { break };
            let from = canonical(m.addr);
            let Some(data) = bufs.get(i).and_then(|b| b.get(..m.len)) else {
                continue;
            };
            let stride = m.stride.max(1);
            match route(data, state.core.is_relay_server(from)) {
                Route::Quic => {
                    // GRO batches one flow: the first segment speaks for all.
                    let virtual_addr = state.core.handle_quic(now, Via::Socket(from), data);
                    if kept != i {
                        let (head, tail) = bufs.split_at_mut(i);
                        if let (Some(dst), Some(src)) = (head.get_mut(kept), tail.first()) {
                            let len = m.len.min(dst.len());
                            if let (Some(d), Some(s)) = (dst.get_mut(..len), src.get(..len)) {
                                d.copy_from_slice(s);
                            }
                        }
                    }
                    if let Some(slot) = meta.get_mut(kept) {
                        *slot = RecvMeta {
                            addr: virtual_addr.unwrap_or(from),
                            ..m
                        };
                    }
                    kept += 1;
                }
                Route::Stun => {
                    for segment in data.chunks(stride) {
                        if deliver_rendezvous(&state, from, segment) {
                            continue;
                        }
                        if state.keepalives.handle_input(from, segment) {
                            continue;
                        }
                        if !state.core.handle_stun(now, Via::Socket(from), segment) {
                            deliver_stun(&state, from, segment);
                        }
                    }
                }
                Route::Turn => {
                    for segment in data.chunks(stride) {
                        // Signalling shares the relay's address: sort it out before TURN.
                        if deliver_rendezvous(&state, from, segment)
                            || state.keepalives.handle_input(from, segment)
                        {
                            continue;
                        }
                        if !state.relays.handle_input(now, from, segment)
                            && crate::stun::Message::decode(segment)
                                .is_ok_and(|m| m.method() == crate::stun::Method::BINDING)
                        {
                            // A Binding answer from the relay's own address (NAT
                            // description) is for the STUN consumer.
                            deliver_stun(&state, from, segment);
                        }
                    }
                }
                Route::Drop => {}
            }
        }
        self.shared.flush(&mut state, now);
        kept
    }
}

/// Hands a rendezvous message (one GRO segment) to its consumer; returns
/// whether it was one (dropped when nobody listens).
fn deliver_rendezvous(state: &State, from: SocketAddr, segment: &[u8]) -> bool {
    if !crate::signal::wire::is_rendezvous(segment) {
        return false;
    }
    if let Some(tx) = &state.rendezvous_consumer {
        let _ = tx.try_send(ReceivedStun {
            from,
            bytes: segment.to_vec(),
        });
    }
    true
}

fn deliver_stun(state: &State, from: SocketAddr, bytes: &[u8]) {
    if let Some(tx) = &state.stun_consumer {
        let _ = tx.try_send(ReceivedStun {
            from,
            bytes: bytes.to_vec(),
        });
    }
}
