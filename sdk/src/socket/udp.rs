//! One real UDP socket per address family, with quinn-udp's batching (GSO,
//! GRO, recvmmsg), ECN and don't-fragment.

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;

use super::error::SocketError;
use super::io::{DatagramIo, LocalAddrs, RecvMeta, Transmit, WritableFuture};

/// How to bind the shared sockets.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// The IPv4 address to bind, or `None` for no IPv4 socket.
    pub v4: Option<SocketAddr>,
    /// The IPv6 address to bind (V6ONLY), or `None` for no IPv6 socket. Port 0
    /// tries the IPv4 socket's port first, so both families share one number.
    pub v6: Option<SocketAddr>,
    /// Receive buffer size to ask the kernel for (best effort).
    pub recv_buffer: usize,
    /// Send buffer size to ask the kernel for (best effort).
    pub send_buffer: usize,
}

impl Default for SocketConfig {
    /// Any address, any port, both families, 2 MiB buffers.
    fn default() -> SocketConfig {
        SocketConfig {
            v4: Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))),
            v6: Some(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0))),
            recv_buffer: 2 << 20,
            send_buffer: 2 << 20,
        }
    }
}

impl SocketConfig {
    /// Loopback only (127.0.0.1 and ::1), any port: for tests and demos.
    pub fn loopback() -> SocketConfig {
        SocketConfig {
            v4: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            v6: Some(SocketAddr::from((Ipv6Addr::LOCALHOST, 0))),
            ..SocketConfig::default()
        }
    }
}

#[derive(Debug)]
struct FamilySocket {
    io: tokio::net::UdpSocket,
    state: quinn_udp::UdpSocketState,
}

impl FamilySocket {
    fn bind(addr: SocketAddr, config: &SocketConfig) -> io::Result<FamilySocket> {
        let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
        if addr.is_ipv6() {
            // One socket per family: the IPv6 socket must not also take IPv4.
            socket.set_only_v6(true)?;
        }
        if let Err(e) = socket.set_recv_buffer_size(config.recv_buffer) {
            tracing::debug!(%addr, error = %e, "could not set the receive buffer size");
        }
        if let Err(e) = socket.set_send_buffer_size(config.send_buffer) {
            tracing::debug!(%addr, error = %e, "could not set the send buffer size");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let std_socket: std::net::UdpSocket = socket.into();
        let state = quinn_udp::UdpSocketState::new((&std_socket).into())?;
        let io = tokio::net::UdpSocket::from_std(std_socket)?;
        Ok(FamilySocket { io, state })
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        loop {
            match self.io.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
            if let Ok(n) = self.io.try_io(Interest::READABLE, || {
                self.state.recv((&self.io).into(), bufs, meta)
            }) {
                return Poll::Ready(Ok(n));
            }
        }
    }
}

/// The shared sockets: one UDP socket per address family, carrying STUN, TURN,
/// ICE checks and QUIC for every peer, so N peers cost one local port (and one
/// NAT mapping) per family.
#[derive(Debug)]
pub struct UdpSockets {
    v4: Option<FamilySocket>,
    v6: Option<FamilySocket>,
    /// Which family to read first next time, so neither starves the other.
    v6_first: AtomicBool,
    /// Which family last returned `WouldBlock` (true: IPv6).
    v6_blocked: AtomicBool,
}

impl UdpSockets {
    /// Binds the sockets. A family that cannot be bound (a host without IPv6)
    /// is left out with a warning; it is an error only if both fail. Must be
    /// called inside a tokio runtime with I/O enabled.
    pub fn bind(config: &SocketConfig) -> Result<UdpSockets, SocketError> {
        let (v4, v4_err) = match config.v4 {
            Some(addr) => match FamilySocket::bind(addr, config) {
                Ok(s) => (Some(s), String::new()),
                Err(e) => (None, format!("IPv4 {addr}: {e}")),
            },
            None => (None, "IPv4 not requested".to_owned()),
        };
        let v4_port = v4
            .as_ref()
            .and_then(|s| s.io.local_addr().ok())
            .map(|a| a.port());
        let (v6, v6_err) = match config.v6 {
            Some(addr) => {
                let same_port = match (addr.port(), v4_port) {
                    (0, Some(p)) => FamilySocket::bind(SocketAddr::new(addr.ip(), p), config).ok(),
                    _ => None,
                };
                match same_port.map_or_else(|| FamilySocket::bind(addr, config), Ok) {
                    Ok(s) => (Some(s), String::new()),
                    Err(e) => (None, format!("IPv6 {addr}: {e}")),
                }
            }
            None => (None, "IPv6 not requested".to_owned()),
        };
        if v4.is_none() && v6.is_none() {
            return Err(SocketError::NoFamily {
                v4: v4_err,
                v6: v6_err,
            });
        }
        if !v4_err.is_empty() && config.v4.is_some() {
            tracing::warn!(reason = %v4_err, "no IPv4 socket; IPv4 peers are reachable only through a relay");
        }
        if !v6_err.is_empty() && config.v6.is_some() {
            tracing::warn!(reason = %v6_err, "no IPv6 socket; IPv6 peers are reachable only through a relay");
        }
        Ok(UdpSockets {
            v4,
            v6,
            v6_first: AtomicBool::new(false),
            v6_blocked: AtomicBool::new(false),
        })
    }

    /// The bound sockets, IPv4 first.
    fn sockets(&self) -> impl Iterator<Item = &FamilySocket> {
        self.v4.iter().chain(&self.v6)
    }

    fn for_destination(&self, destination: SocketAddr) -> io::Result<&FamilySocket> {
        let socket = if destination.is_ipv6() {
            self.v6.as_ref()
        } else {
            self.v4.as_ref()
        };
        socket.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("no local socket of the family of {destination}"),
            )
        })
    }
}

impl DatagramIo for UdpSockets {
    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let v6_first = self.v6_first.fetch_xor(true, Ordering::Relaxed);
        let order = if v6_first {
            [self.v6.as_ref(), self.v4.as_ref()]
        } else {
            [self.v4.as_ref(), self.v6.as_ref()]
        };
        for socket in order.into_iter().flatten() {
            // Both are polled so that both register the waker when pending.
            if let Poll::Ready(result) = socket.poll_recv(cx, bufs, meta) {
                return Poll::Ready(result);
            }
        }
        Poll::Pending
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let socket = self.for_destination(transmit.destination)?;
        let send = || socket.state.send((&socket.io).into(), transmit);
        let mut tried = false;
        let mut result = socket.io.try_io(Interest::WRITABLE, || {
            tried = true;
            send()
        });
        if !tried {
            // tokio answered WouldBlock without asking the kernel: it has not
            // seen the socket writable yet (bound moments ago, before the
            // reactor's first turn; or its buffer was full and the reactor has
            // not yet noticed it drained). Callers that do not wait and retry
            // (TURN, STUN, relayed data) would lose the datagram and wait for a
            // retransmission timeout (500 ms for a TURN Allocate), so let the
            // kernel decide. Outside `try_io`, a real WouldBlock here leaves
            // tokio's readiness as it was.
            result = send();
        }
        if matches!(&result, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
            self.v6_blocked
                .store(transmit.destination.is_ipv6(), Ordering::Relaxed);
        }
        result
    }

    fn writable(self: Arc<Self>) -> WritableFuture {
        Box::pin(async move {
            let v6 = self.v6_blocked.load(Ordering::Relaxed);
            let socket = if v6 {
                self.v6.as_ref()
            } else {
                self.v4.as_ref()
            };
            match socket.or(self.v4.as_ref()).or(self.v6.as_ref()) {
                Some(s) => s.io.writable().await,
                None => Ok(()),
            }
        })
    }

    fn local_addrs(&self) -> LocalAddrs {
        LocalAddrs {
            v4: self.v4.as_ref().and_then(|s| s.io.local_addr().ok()),
            v6: self.v6.as_ref().and_then(|s| s.io.local_addr().ok()),
        }
    }

    fn max_transmit_segments(&self) -> usize {
        self.sockets()
            .map(|s| s.state.max_gso_segments())
            .min()
            .unwrap_or(1)
    }

    fn max_receive_segments(&self) -> usize {
        self.sockets()
            .map(|s| s.state.gro_segments())
            .max()
            .unwrap_or(1)
    }

    fn may_fragment(&self) -> bool {
        self.sockets().any(|s| s.state.may_fragment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn both_families_share_one_port_on_loopback() {
        let sockets = UdpSockets::bind(&SocketConfig::loopback()).unwrap();
        let addrs = sockets.local_addrs();
        let v4 = addrs.v4.unwrap();
        if let Some(v6) = addrs.v6 {
            assert_eq!(v4.port(), v6.port());
        }
    }

    /// A datagram sent right after binding, before the runtime's reactor has
    /// turned once (so tokio has not yet seen the socket writable), goes out:
    /// the TURN Allocate and the rendezvous registration an endpoint sends at
    /// once were dropped here and resent only after their 500 ms timeouts.
    #[tokio::test]
    async fn a_send_right_after_binding_is_not_refused() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let to = receiver.local_addr().unwrap();
        let sockets = UdpSockets::bind(&SocketConfig::loopback()).unwrap();
        // No await between the bind and the send: the reactor has not run.
        let sent = sockets.try_send(&Transmit {
            destination: to,
            ecn: None,
            contents: b"first",
            segment_size: None,
            src_ip: None,
        });
        assert!(sent.is_ok(), "the first send was refused: {sent:?}");
        let mut buf = [0u8; 16];
        let (n, from) = receiver.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"first");
        assert_eq!(Some(from), sockets.local_addrs().v4);
    }
}
