//! Relayed sockets: the core picks addresses, the driver binds them.
//!
//! The core stays sans-IO: it asks a [`RelaySockets`] to bind or close a UDP
//! socket and learns the result at once, so an Allocate is answered in the same
//! call. The UDP driver implements it with real sockets; [`VirtualSockets`]
//! (the default) only records addresses, for tests and simulations.

use std::collections::HashSet;
use std::fmt::Debug;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;

/// Binds and closes relayed sockets for the core. The driver receives on each
/// socket it opened and passes datagrams to [`crate::Server::handle_relayed`];
/// [`crate::Transmit`]s whose `local` is a relayed address go out on that socket.
pub trait RelaySockets: Debug + Send {
    /// Binds a UDP socket on `address`; port 0 lets the OS choose. Returns the
    /// bound address. An error (port in use) makes the core try another port.
    fn open(&mut self, address: SocketAddr) -> io::Result<SocketAddr>;
    /// Closes the socket bound on `address` (its allocation ended).
    fn close(&mut self, address: SocketAddr);
}

/// Relayed sockets that exist only as addresses: `open` always succeeds (port 0
/// becomes 40000, 40001, …). For tests and simulations of the sans-IO core.
#[derive(Debug, Default)]
pub struct VirtualSockets {
    open: HashSet<SocketAddr>,
    next_port: u16,
}

impl VirtualSockets {
    /// The addresses open now.
    pub fn open_addresses(&self) -> &HashSet<SocketAddr> {
        &self.open
    }
}

impl RelaySockets for VirtualSockets {
    fn open(&mut self, address: SocketAddr) -> io::Result<SocketAddr> {
        let mut address = address;
        if address.port() == 0 {
            address.set_port(40_000u16.wrapping_add(self.next_port));
            self.next_port = self.next_port.wrapping_add(1);
        }
        if !self.open.insert(address) {
            return Err(io::Error::from(io::ErrorKind::AddrInUse));
        }
        Ok(address)
    }

    fn close(&mut self, address: SocketAddr) {
        self.open.remove(&address);
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

    /// Opens relayed sockets on an even port and the port after it (EVEN-PORT
    /// with the R bit, RFC 8656 §7.2): `(even, even + 1)`.
    pub fn open_pair(
        &mut self,
        sockets: &mut dyn RelaySockets,
        ip: IpAddr,
    ) -> Option<(SocketAddr, SocketAddr)> {
        for _ in 0..ATTEMPTS {
            let even = self.open(sockets, ip, true)?;
            let next = SocketAddr::new(ip, even.port().checked_add(1)?);
            let in_range = self.range.as_ref().is_none_or(|r| r.contains(&next.port()));
            if in_range && !self.in_use.contains(&next) {
                match sockets.open(next) {
                    Ok(bound) => {
                        self.in_use.insert(bound);
                        return Some((even, bound));
                    }
                    Err(e) => {
                        tracing::debug!(address = %next, error = %e, "relay port unavailable")
                    }
                }
            }
            self.close(sockets, even);
        }
        None
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
        for _ in 0..3 {
            let (even, next) = pool.open_pair(&mut sockets, ip).unwrap();
            assert_eq!(even.port() % 2, 0);
            assert_eq!(next.port(), even.port() + 1);
            assert!(seen.insert(even) && seen.insert(next));
        }
        assert_eq!(pool.open_pair(&mut sockets, ip), None, "range exhausted");
        assert_eq!(
            sockets.open_addresses().len(),
            6,
            "nothing left open on failure"
        );
        // The last even port of a range has no partner in it.
        let mut pool = PortPool::new(Some(50_000..=50_000), 3);
        assert_eq!(pool.open_pair(&mut VirtualSockets::default(), ip), None);
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
