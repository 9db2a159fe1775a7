//! A non-async endpoint for game loops and the C ABI: call [`PollEndpoint::pump`] on the
//! game's tick and drain events with [`PollEndpoint::poll_event`].
//!
//! Networking runs on one background thread with its own single-threaded tokio runtime,
//! so the game needs no runtime and gets no callbacks. Every call returns at once.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use bytes::Bytes;
use tokio::sync::oneshot;

use super::config::SessionConfig;
use super::endpoint::{Endpoint, Events};
use super::error::SessionError;
use super::event::{Event, PeerStats};
use super::identity::PeerId;

/// An endpoint driven from a game loop.
///
/// ```no_run
/// use tsunagi::session::{Identity, PollEndpoint, SessionConfig, Event};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let (friend, addr) = ("tsu...".parse()?, "[::1]:4000".parse()?);
/// let mut endpoint = PollEndpoint::new(SessionConfig::new(Identity::generate()?))?;
/// endpoint.connect(friend, vec![addr]);
/// loop {
///     endpoint.pump();
///     while let Some(event) = endpoint.poll_event() {
///         if let Event::Connected { peer, .. } = event {
///             endpoint.send_message(peer, 0, b"hello")?;
///         }
///     }
///     // ... simulate and render one frame ...
/// #   break;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct PollEndpoint {
    endpoint: Endpoint,
    events: Events,
    queue: VecDeque<Event>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl PollEndpoint {
    /// Starts the networking thread and binds the configured sockets.
    pub fn new(config: SessionConfig) -> Result<Self, SessionError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SessionError::Runtime)?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (bound_tx, bound_rx) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("tsunagi-net".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let bound = Endpoint::bind(config).await;
                    let endpoint = bound.as_ref().ok().map(|(e, _)| e.clone());
                    if bound_tx.send(bound).is_err() {
                        return;
                    }
                    let _ = stopped.await;
                    if let Some(endpoint) = endpoint {
                        endpoint.close().await;
                    }
                });
            })
            .map_err(SessionError::Runtime)?;
        let (endpoint, events) = bound_rx
            .blocking_recv()
            .map_err(|_| SessionError::Closed)??;
        Ok(Self {
            endpoint,
            events,
            queue: VecDeque::new(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// This endpoint's identity as others see it.
    pub fn peer_id(&self) -> PeerId {
        self.endpoint.peer_id()
    }

    /// The local socket addresses, IPv6 first.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.endpoint.local_addrs()
    }

    /// The async endpoint underneath, for code that mixes both styles.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Starts dialling `peer`; watch for [`Event::Connected`] or [`Event::ConnectFailed`].
    pub fn connect(&self, peer: PeerId, addrs: Vec<SocketAddr>) {
        self.endpoint.connect_in_background(peer, addrs);
    }

    /// Queues a reliable message on `channel` (never blocks).
    pub fn send_message(
        &self,
        peer: PeerId,
        channel: u16,
        message: &[u8],
    ) -> Result<(), SessionError> {
        self.endpoint
            .try_send(peer, channel, Bytes::copy_from_slice(message))
    }

    /// Sends an unreliable message (never blocks).
    pub fn send_datagram(&self, peer: PeerId, message: &[u8]) -> Result<(), SessionError> {
        self.endpoint
            .send_datagram(peer, Bytes::copy_from_slice(message))
    }

    /// Collects what arrived since the last call; returns how many events are waiting.
    pub fn pump(&mut self) -> usize {
        while let Some(event) = self.events.try_recv() {
            self.queue.push_back(event);
        }
        self.queue.len()
    }

    /// The next event, oldest first (also picks up events that arrived since `pump`).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.queue.pop_front().or_else(|| self.events.try_recv())
    }

    /// Statistics of the session with `peer`, if connected.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.endpoint.stats(peer)
    }

    /// The largest unreliable message `peer` can be sent now, if connected.
    pub fn datagram_limit(&self, peer: PeerId) -> Option<usize> {
        self.endpoint.datagram_limit(peer)
    }

    /// Ends the session with `peer`.
    pub fn disconnect(&self, peer: PeerId, reason: &str) {
        self.endpoint.disconnect(peer, reason);
    }
}

impl Drop for PollEndpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
