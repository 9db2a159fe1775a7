//! Relayed sockets: the core picks addresses, the driver binds them.
//!
//! The core stays sans-IO: it asks a [`RelaySockets`] to bind or close a UDP
//! socket and learns the result at once, so an Allocate is answered in the same
//! call. The UDP driver implements it with real sockets; [`VirtualSockets`]
//! (the default) only records addresses, for tests and simulations.
//!
//! A port reserved by EVEN-PORT with the R bit is bound but received on by no
//! core ([`RelaySockets::reserve`]); the reservation holds it in the state all
//! cores share, and the core that serves the Allocate with its token, possibly
//! another worker's, takes it over ([`RelaySockets::adopt`]).

use std::any::Any;
use std::collections::HashSet;
use std::fmt::Debug;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex};

/// Binds and closes relayed sockets for the core. The driver receives on each
/// socket it opened and passes datagrams to [`crate::Server::handle_relayed`];
/// [`crate::Transmit`]s whose `local` is a relayed address go out on that socket.
pub trait RelaySockets: Debug + Send {
    /// Binds a UDP socket on `address`; port 0 lets the OS choose. Returns the
    /// bound address. An error (port in use) makes the core try another port.
    fn open(&mut self, address: SocketAddr) -> io::Result<SocketAddr>;
    /// Closes the socket bound on `address` (its allocation ended).
    fn close(&mut self, address: SocketAddr);
    /// Binds a UDP socket on `address` that nobody receives on yet: a reserved
    /// port. The returned handle owns it (dropping it closes the socket) until
    /// a core takes it over with [`RelaySockets::adopt`], maybe another
    /// worker's (the handle is `Send`).
    fn reserve(&mut self, address: SocketAddr) -> io::Result<ReservedSocket>;
    /// Starts receiving on a socket from [`RelaySockets::reserve`] (of this or
    /// another instance of the same implementation), as if this one had
    /// opened it; returns its address. An error (a handle of another kind)
    /// closes the socket.
    fn adopt(&mut self, socket: ReservedSocket) -> io::Result<SocketAddr>;
}

/// A bound relayed socket that no core receives on: the port an EVEN-PORT
/// reservation holds until a client claims it with its token. Dropping it
/// closes the socket.
pub struct ReservedSocket {
    address: SocketAddr,
    socket: Box<dyn Any + Send>,
}

impl ReservedSocket {
    /// `socket`, bound on `address`, in whatever form the [`RelaySockets`]
    /// implementation that made it keeps sockets.
    pub fn new(address: SocketAddr, socket: impl Any + Send) -> ReservedSocket {
        ReservedSocket {
            address,
            socket: Box::new(socket),
        }
    }

    /// The bound address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The socket, if it is a `T`; else the handle back.
    pub fn downcast<T: Any>(self) -> Result<T, ReservedSocket> {
        let address = self.address;
        self.socket
            .downcast::<T>()
            .map(|socket| *socket)
            .map_err(|socket| ReservedSocket { address, socket })
    }
}

impl Debug for ReservedSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservedSocket")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Relayed sockets that exist only as addresses: `open` succeeds unless the
/// address is open or reserved here (port 0 becomes 40000, 40001, …). For tests
/// and simulations of the sans-IO core.
#[derive(Debug, Default)]
pub struct VirtualSockets {
    open: HashSet<SocketAddr>,
    /// Reserved addresses, until their [`VirtualReservation`] is dropped.
    reserved: Arc<Mutex<HashSet<SocketAddr>>>,
    next_port: u16,
}

/// What a [`VirtualSockets`] reservation holds: its address, freed on drop.
#[derive(Debug)]
struct VirtualReservation {
    address: SocketAddr,
    reserved: Arc<Mutex<HashSet<SocketAddr>>>,
}

impl Drop for VirtualReservation {
    fn drop(&mut self) {
        lock(&self.reserved).remove(&self.address);
    }
}

fn lock(set: &Mutex<HashSet<SocketAddr>>) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
    set.lock().unwrap_or_else(|p| p.into_inner())
}

impl VirtualSockets {
    /// The addresses open now.
    pub fn open_addresses(&self) -> &HashSet<SocketAddr> {
        &self.open
    }

    /// The addresses reserved here and neither adopted nor closed yet.
    pub fn reserved_addresses(&self) -> HashSet<SocketAddr> {
        lock(&self.reserved).clone()
    }

    fn bind(&mut self, address: SocketAddr) -> io::Result<SocketAddr> {
        let mut address = address;
        if address.port() == 0 {
            address.set_port(40_000u16.wrapping_add(self.next_port));
            self.next_port = self.next_port.wrapping_add(1);
        }
        if self.open.contains(&address) || lock(&self.reserved).contains(&address) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        Ok(address)
    }
}

impl RelaySockets for VirtualSockets {
    fn open(&mut self, address: SocketAddr) -> io::Result<SocketAddr> {
        let address = self.bind(address)?;
        self.open.insert(address);
        Ok(address)
    }

    fn close(&mut self, address: SocketAddr) {
        self.open.remove(&address);
    }

    fn reserve(&mut self, address: SocketAddr) -> io::Result<ReservedSocket> {
        let address = self.bind(address)?;
        lock(&self.reserved).insert(address);
        let reservation = VirtualReservation {
            address,
            reserved: Arc::clone(&self.reserved),
        };
        Ok(ReservedSocket::new(address, reservation))
    }

    fn adopt(&mut self, socket: ReservedSocket) -> io::Result<SocketAddr> {
        let reservation = socket
            .downcast::<VirtualReservation>()
            .map_err(|_| io::Error::other("not a virtual socket"))?;
        self.open.insert(reservation.address);
        Ok(reservation.address)
    }
}

/// How many ports to try before answering 508 Insufficient Capacity.
const ATTEMPTS: usize = 64;

/// Chooses relay ports from the configured range at a random start, so ports are
/// hard to guess, skipping ports in use.
#[derive(Debug)]
pub(crate) struct PortPool {
    range: Option<RangeInclusive<u16>>,
    in_use: HashSet<SocketAddr>,
    state: u64,
}

impl PortPool {
    /// Ports from `range`, or from the OS when `None`. `seed` randomizes the order.
    pub fn new(range: Option<RangeInclusive<u16>>, seed: u64) -> PortPool {
        PortPool {
            range,
            in_use: HashSet::new(),
            state: seed | 1,
        }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: not for secrets, only to spread ports.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Opens a relayed socket on `ip` (an even port if `even`).
    pub fn open(
        &mut self,
        sockets: &mut dyn RelaySockets,
        ip: IpAddr,
        even: bool,
    ) -> Option<SocketAddr> {
        let Some(range) = self.range.clone() else {
            // OS-chosen ports: retry a few times when an even port is wanted.
            for _ in 0..ATTEMPTS {
                let bound = sockets.open(SocketAddr::new(ip, 0)).ok()?;
                if !even || bound.port() % 2 == 0 {
                    self.in_use.insert(bound);
                    return Some(bound);
                }
                sockets.close(bound);
            }
            return None;
        };
        let (low, high) = (u64::from(*range.start()), u64::from(*range.end()));
        let size = high.checked_sub(low)? + 1;
        let mut offset = self.random() % size;
        for _ in 0..ATTEMPTS.min(size as usize) {
            let port = u16::try_from(low + offset).ok()?;
            offset = (offset + 1) % size;
            let address = SocketAddr::new(ip, port);
            if (even && port % 2 == 1) || self.in_use.contains(&address) {
                continue;
            }
            match sockets.open(address) {
                Ok(bound) => {
                    self.in_use.insert(bound);
                    return Some(bound);
                }
                Err(e) => tracing::debug!(%address, error = %e, "relay port unavailable"),
            }
        }
        None
    }

    /// Opens a relayed socket on an even port and reserves the port after it
    /// (EVEN-PORT with the R bit, RFC 8656 §7.2). The reserved port is not
    /// counted in use here: whichever core adopts it counts it
    /// ([`PortPool::adopt`]), and while it is reserved binding it fails.
    pub fn open_pair(
        &mut self,
        sockets: &mut dyn RelaySockets,
        ip: IpAddr,
    ) -> Option<(SocketAddr, ReservedSocket)> {
        for _ in 0..ATTEMPTS {
            let even = self.open(sockets, ip, true)?;
            let next = SocketAddr::new(ip, even.port().checked_add(1)?);
            let in_range = self.range.as_ref().is_none_or(|r| r.contains(&next.port()));
            if in_range && !self.in_use.contains(&next) {
                match sockets.reserve(next) {
                    Ok(reserved) => return Some((even, reserved)),
                    Err(e) => {
                        tracing::debug!(address = %next, error = %e, "relay port unavailable")
                    }
                }
            }
            self.close(sockets, even);
        }
        None
    }

    /// Starts receiving on a reserved socket (maybe reserved by another core's
    /// pool); in use here until closed. `None` if `sockets` refuses it.
    pub fn adopt(
        &mut self,
        sockets: &mut dyn RelaySockets,
        reserved: ReservedSocket,
    ) -> Option<SocketAddr> {
        match sockets.adopt(reserved) {
            Ok(address) => {
                self.in_use.insert(address);
                Some(address)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take over a reserved relay socket");
                None
            }
        }
    }

    /// Closes a relayed socket.
    pub fn close(&mut self, sockets: &mut dyn RelaySockets, address: SocketAddr) {
        self.in_use.remove(&address);
        sockets.close(address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_the_range_and_are_not_reused() {
        let mut sockets = VirtualSockets::default();
        let mut pool = PortPool::new(Some(50_000..=50_003), 42);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut got = HashSet::new();
        for _ in 0..4 {
            let a = pool.open(&mut sockets, ip, false).unwrap();
            assert!((50_000..=50_003).contains(&a.port()));
            assert!(got.insert(a));
        }
        assert_eq!(pool.open(&mut sockets, ip, false), None, "range exhausted");
        let first = *got.iter().next().unwrap();
        pool.close(&mut sockets, first);
        assert_eq!(pool.open(&mut sockets, ip, false), Some(first));
    }

    #[test]
    fn even_port_pairs() {
        let mut sockets = VirtualSockets::default();
        let mut pool = PortPool::new(Some(50_000..=50_005), 3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut seen = HashSet::new();
        let mut held = Vec::new();
        for _ in 0..3 {
            let (even, next) = pool.open_pair(&mut sockets, ip).unwrap();
            assert_eq!(even.port() % 2, 0);
            assert_eq!(next.address().port(), even.port() + 1);
            assert!(seen.insert(even) && seen.insert(next.address()));
            held.push(next);
        }
        assert!(
            pool.open_pair(&mut sockets, ip).is_none(),
            "range exhausted"
        );
        assert_eq!(
            (
                sockets.open_addresses().len(),
                sockets.reserved_addresses().len()
            ),
            (3, 3),
            "nothing left open on failure"
        );
        // A reserved port is taken over by another core's sockets and pool,
        // or freed when its reservation is dropped.
        let adopted = held.pop().unwrap();
        let address = adopted.address();
        let (mut other, mut other_pool) = (VirtualSockets::default(), PortPool::new(None, 1));
        assert_eq!(other_pool.adopt(&mut other, adopted), Some(address));
        assert!(other.open_addresses().contains(&address));
        drop(held.pop());
        assert_eq!(sockets.reserved_addresses().len(), 1);
        assert_eq!(
            pool.open(&mut sockets, ip, false).map(|a| a.port() % 2),
            Some(1)
        );
        // The last even port of a range has no partner in it.
        let mut pool = PortPool::new(Some(50_000..=50_000), 3);
        assert!(pool.open_pair(&mut VirtualSockets::default(), ip).is_none());
    }

    #[test]
    fn even_ports() {
        let mut sockets = VirtualSockets::default();
        let mut pool = PortPool::new(Some(50_000..=50_100), 7);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            assert_eq!(pool.open(&mut sockets, ip, true).unwrap().port() % 2, 0);
        }
    }
}
