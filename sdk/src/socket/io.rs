//! The datagram I/O below the path layer: real UDP sockets or the simulator.

use std::fmt;
use std::future::Future;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use quinn_udp::{EcnCodepoint, RecvMeta, Transmit};

/// A future that resolves when a send that returned `WouldBlock` may succeed.
pub type WritableFuture = Pin<Box<dyn Future<Output = io::Result<()>> + Send + Sync>>;

/// The local addresses of a [`DatagramIo`], one per address family it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LocalAddrs {
    /// The IPv4 socket's address, if it has one.
    pub v4: Option<SocketAddr>,
    /// The IPv6 socket's address, if it has one.
    pub v6: Option<SocketAddr>,
}

impl LocalAddrs {
    /// The port shared by the families (the IPv6 one if they differ).
    pub fn port(&self) -> u16 {
        self.v6.or(self.v4).map_or(0, |a| a.port())
    }
}

/// Datagram I/O with quinn-udp's shape: batched receive into caller buffers
/// (GRO: one [`RecvMeta`] may describe several segments of `stride` bytes),
/// sends that may carry several segments (GSO), and `WouldBlock` on a full
/// send buffer.
///
/// Implemented by [`super::UdpSockets`] (one real socket per family) and by
/// `crate::sim::SimIo` (an in-memory network). The path layer's
/// `crate::path::PathSocket` runs on either.
pub trait DatagramIo: Send + Sync + fmt::Debug + 'static {
    /// Receives datagrams into `bufs`, filling `meta` (one entry per buffer
    /// used), or registers the task to be woken when one arrives.
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>>;

    /// Sends one transmit to `transmit.destination` on the socket of its family.
    /// Returns `WouldBlock` when the send buffer is full; then wait on
    /// [`DatagramIo::writable`].
    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()>;

    /// Resolves when a send that returned `WouldBlock` should be retried. Any
    /// number of these futures may wait at once.
    fn writable(self: Arc<Self>) -> WritableFuture;

    /// The local addresses, per family.
    fn local_addrs(&self) -> LocalAddrs;

    /// How many segments one [`Transmit`] may carry (GSO), at least 1.
    fn max_transmit_segments(&self) -> usize {
        1
    }

    /// How many segments one [`RecvMeta`] may describe (GRO), at least 1.
    fn max_receive_segments(&self) -> usize {
        1
    }

    /// Whether datagrams may be fragmented (false when don't-fragment is set,
    /// which lets QUIC discover the path MTU).
    fn may_fragment(&self) -> bool {
        true
    }
}
