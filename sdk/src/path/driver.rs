//! The state shared by [`super::PathSocket`], [`super::PathHandle`] and the
//! driver task: the core behind a mutex, the I/O below, and the glue between.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, broadcast, mpsc};

use super::addr::{PathAddr, Via};
use super::core::{CoreTransmit, PathCore};
use super::event::PathEvent;
use super::keepalive::ServerKeepalives;
use super::relay::Relays;
use crate::socket::{DatagramIo, Transmit};

/// Events kept for the application at most; older ones are dropped first.
const MAX_EVENTS: usize = 4096;
/// Events a subscriber ([`super::PathHandle::subscribe`]) may fall behind by
/// before it misses some.
const BROADCAST_EVENTS: usize = 1024;
/// STUN datagrams queued for a consumer at most.
pub(crate) const STUN_QUEUE: usize = 256;

/// A STUN datagram that was not a path probe: for ICE, NAT diagnosis or any
/// other STUN client sharing the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedStun {
    /// Its source address.
    pub from: SocketAddr,
    /// The datagram.
    pub bytes: Vec<u8>,
}

/// The clock of the path layer: tokio's, so `tokio::time::pause` drives it in
/// tests exactly as it drives quinn's timers.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) core: PathCore,
    pub(crate) relays: Relays,
    /// Keepalives for the mappings toward servers.
    pub(crate) keepalives: ServerKeepalives,
    /// QUIC datagrams that arrived through a relay, waiting for quinn.
    pub(crate) pending: VecDeque<(SocketAddr, Vec<u8>)>,
    pub(crate) events: VecDeque<PathEvent>,
    pub(crate) stun_consumer: Option<mpsc::Sender<ReceivedStun>>,
    /// Where rendezvous messages (STUN methods 0x0C0/0x0C1, from any source,
    /// including a TURN server's address) go; see
    /// [`super::PathHandle::rendezvous_receiver`].
    pub(crate) rendezvous_consumer: Option<mpsc::Sender<ReceivedStun>>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) io: Arc<dyn DatagramIo>,
    state: Mutex<State>,
    /// Wakes the driver task (new path, new relay, new deadline).
    pub(crate) wake_driver: Arc<Notify>,
    /// Wakes tasks waiting for events.
    pub(crate) event_ready: Notify,
    /// Every event, for each subscriber (the session layer is one; the
    /// application's `next_event` queue is another, so neither steals the
    /// other's events).
    pub(crate) broadcast: broadcast::Sender<PathEvent>,
    /// Wakes quinn's receive task when relayed QUIC is pending.
    pub(crate) recv_waker: Mutex<Option<std::task::Waker>>,
    /// Whether `State::pending` may hold datagrams: written under the state
    /// lock whenever `pending` changes, read without it so that
    /// `PathSocket::poll_recv` takes the lock only when relayed QUIC waits.
    pub(crate) has_pending: AtomicBool,
}

impl Shared {
    pub(crate) fn new(io: Arc<dyn DatagramIo>, mut core: PathCore, seed: u64) -> Arc<Shared> {
        let keepalives = ServerKeepalives::new(
            core.config().keepalive.clone(),
            core.config().nat_timer,
            now(),
            seed.rotate_left(17),
        );
        core.set_keepalive_interval(keepalives.interval());
        let shared = Arc::new(Shared {
            io,
            state: Mutex::new(State {
                core,
                relays: Relays::default(),
                keepalives,
                pending: VecDeque::new(),
                events: VecDeque::new(),
                stun_consumer: None,
                rendezvous_consumer: None,
            }),
            wake_driver: Arc::new(Notify::new()),
            event_ready: Notify::new(),
            broadcast: broadcast::channel(BROADCAST_EVENTS).0,
            recv_waker: Mutex::new(None),
            has_pending: AtomicBool::new(false),
        });
        tokio::spawn(drive(Arc::downgrade(&shared), shared.wake_driver.clone()));
        shared
    }

    /// Locks the state. A panic elsewhere while holding the lock leaves the
    /// state usable (it holds no invariants a half-done update breaks for long).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what the core and the relays want sent, and publishes events.
    pub(crate) fn flush(&self, state: &mut State, now: Instant) {
        while let Some(CoreTransmit { via, bytes }) = state.core.poll_transmit() {
            self.send_via(state, now, via, &bytes);
        }
        let mut relay_events = VecDeque::new();
        let State {
            core,
            relays,
            pending,
            stun_consumer,
            ..
        } = state;
        relays.pump(
            now,
            core,
            pending,
            &mut relay_events,
            stun_consumer.as_ref(),
        );
        self.send_relay_transmits(state, now);
        while let Some((to, bytes)) = state.keepalives.poll_transmit() {
            self.send_raw(to, &bytes);
        }
        if !state.pending.is_empty() {
            // Set before the waker is taken: a receive task that registers its
            // waker after this sees the flag (the waker's mutex orders them).
            self.has_pending.store(true, Ordering::Release);
            let waker = self
                .recv_waker
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(w) = waker {
                w.wake();
            }
        }
        for e in &relay_events {
            if let PathEvent::RelayAllocated {
                server,
                mapped: Some(mapped),
                ..
            } = e
            {
                state.keepalives.observed(*server, *mapped);
            }
        }
        while let Some(e) = state.keepalives.poll_event() {
            if let PathEvent::MappingChanged { server, .. } = e {
                // The allocation belongs to the old mapping: find out now.
                state.relays.path_lost(now, server);
                self.send_relay_transmits(state, now);
            }
            relay_events.push_back(e);
        }
        state
            .core
            .set_keepalive_interval(state.keepalives.interval());
        let mut published = !relay_events.is_empty();
        for e in relay_events {
            let _ = self.broadcast.send(e.clone());
            state.events.push_back(e);
        }
        while let Some(e) = state.core.poll_event() {
            if let PathEvent::PathLost {
                path: PathAddr::Relay { server, .. },
                ..
            } = e
            {
                state.relays.path_lost(now, server);
                self.send_relay_transmits(state, now);
            }
            // No subscriber is not an error: the queue below still holds it.
            let _ = self.broadcast.send(e.clone());
            state.events.push_back(e);
            published = true;
        }
        while state.events.len() > MAX_EVENTS {
            state.events.pop_front();
        }
        if published || !state.events.is_empty() {
            self.event_ready.notify_waiters();
        }
    }

    /// Sends one datagram (no GSO) by `via`; errors are logged, not returned:
    /// probes are retried and QUIC retransmits.
    pub(crate) fn send_via(&self, state: &mut State, now: Instant, via: Via, bytes: &[u8]) {
        match via {
            Via::Socket(to) => self.send_raw(to, bytes),
            Via::Turn { server, peer } => {
                if let Err(e) = state.relays.send(now, server, peer, bytes) {
                    tracing::debug!(%server, %peer, error = %e, "relay send failed");
                }
                self.send_relay_transmits(state, now);
            }
        }
    }

    /// Sends what the TURN clients want sent; it refreshes the mappings
    /// toward the servers, so they need no keepalive meanwhile.
    fn send_relay_transmits(&self, state: &mut State, now: Instant) {
        let State {
            relays, keepalives, ..
        } = state;
        for t in relays.transmits() {
            keepalives.on_sent(now, t.to);
            self.send_raw(t.to, &t.bytes);
        }
    }

    pub(crate) fn send_raw(&self, to: SocketAddr, bytes: &[u8]) {
        let transmit = Transmit {
            destination: to,
            ecn: None,
            contents: bytes,
            segment_size: None,
            src_ip: None,
        };
        if let Err(e) = self.io.try_send(&transmit) {
            tracing::trace!(%to, error = %e, "send failed");
        }
    }

    /// Runs due timers; returns the next deadline.
    fn on_timeout(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        if state.core.poll_timeout().is_some_and(|t| t <= now) {
            state.core.handle_timeout(now);
        }
        state.relays.handle_timeout(now);
        state.keepalives.handle_timeout(now);
        self.flush(&mut state, now);
        [
            state.core.poll_timeout(),
            state.relays.poll_timeout(),
            state.keepalives.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

/// The driver task: timers only. Receiving happens in quinn's receive task
/// (`PathSocket::poll_recv`), sending in quinn's send path.
async fn drive(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let now = now();
        let deadline = s.on_timeout(now);
        drop(s);
        // Wake at least once a second, to notice that the socket is gone.
        let cap = now + Duration::from_secs(1);
        let deadline = deadline.map_or(cap, |d| d.min(cap)).max(now);
        tokio::select! {
            _ = tokio::time::sleep_until(deadline.into()) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Converts an I/O error from a family without a socket into a log line.
pub(crate) fn swallow(result: io::Result<()>, to: SocketAddr) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(e),
        Err(e) => {
            tracing::trace!(%to, error = %e, "send failed; QUIC will retransmit");
            Ok(())
        }
        Ok(()) => Ok(()),
    }
}
