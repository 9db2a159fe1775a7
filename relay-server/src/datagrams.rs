//! [`Datagrams`]: datagrams to send, packed back to back in one reusable buffer,
//! so the data path appends a relayed datagram without an allocation per
//! datagram (the driver clears and reuses it for every batch).

use std::net::SocketAddr;
use std::ops::Range;

use crate::server::Transmit;

/// Datagrams to send, each with the local socket to send from and its
/// destination. Cleared by the driver after each batch; its capacity stays.
///
/// ```
/// use tsunagi_relay::Datagrams;
/// let mut out = Datagrams::default();
/// let (local, peer) = ("127.0.0.1:3478".parse().unwrap(), "192.0.2.1:9".parse().unwrap());
/// out.push(local, peer, b"hello");
/// let d = out.iter().next().unwrap();
/// assert_eq!((d.local, d.destination, d.payload), (local, peer, &b"hello"[..]));
/// ```
#[derive(Debug, Default, Clone)]
pub struct Datagrams {
    bytes: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    local: SocketAddr,
    destination: SocketAddr,
    range: Range<usize>,
}

/// One datagram in [`Datagrams`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram<'a> {
    /// The local socket to send from.
    pub local: SocketAddr,
    /// Where to send it.
    pub destination: SocketAddr,
    /// The datagram.
    pub payload: &'a [u8],
}

impl Datagrams {
    /// How many datagrams are queued.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Forgets every datagram, keeping the buffers' capacity.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.entries.clear();
    }

    /// Queues a copy of `payload`.
    pub fn push(&mut self, local: SocketAddr, destination: SocketAddr, payload: &[u8]) {
        self.push_with(local, destination, |out| {
            out.extend_from_slice(payload);
            true
        });
    }

    /// Queues the datagram that `write` appends to the buffer (framing written
    /// in place around the payload). If `write` returns `false`, whatever it
    /// appended is discarded and nothing is queued.
    pub(crate) fn push_with(
        &mut self,
        local: SocketAddr,
        destination: SocketAddr,
        write: impl FnOnce(&mut Vec<u8>) -> bool,
    ) -> bool {
        let start = self.bytes.len();
        if !write(&mut self.bytes) {
            self.bytes.truncate(start);
            return false;
        }
        let range = start..self.bytes.len();
        self.entries.push(Entry {
            local,
            destination,
            range,
        });
        true
    }

    /// The `index`th datagram.
    pub fn get(&self, index: usize) -> Option<Datagram<'_>> {
        let entry = self.entries.get(index)?;
        Some(Datagram {
            local: entry.local,
            destination: entry.destination,
            payload: self.bytes.get(entry.range.clone())?,
        })
    }

    /// The datagrams in the order they were queued.
    pub fn iter(&self) -> impl Iterator<Item = Datagram<'_>> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Moves every datagram into `out` as [`Transmit`]s (one allocation each:
    /// for tests and simple drivers), leaving this empty.
    pub fn drain_into(&mut self, out: &mut Vec<Transmit>) {
        out.extend(self.iter().map(|d| Transmit {
            local: d.local,
            destination: d.destination,
            payload: d.payload.to_vec(),
        }));
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_datagrams_and_discards_cancelled_writes() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "[::1]:2".parse().unwrap();
        let mut d = Datagrams::default();
        d.push(a, b, b"one");
        assert!(!d.push_with(b, a, |out| {
            out.extend_from_slice(b"half-written");
            false
        }));
        assert!(d.push_with(b, a, |out| {
            out.extend_from_slice(b"two");
            true
        }));
        let all: Vec<_> = d
            .iter()
            .map(|x| (x.local, x.destination, x.payload.to_vec()))
            .collect();
        assert_eq!(all, vec![(a, b, b"one".to_vec()), (b, a, b"two".to_vec())]);
        assert_eq!(d.get(2), None);
        let mut out = Vec::new();
        d.drain_into(&mut out);
        assert!(d.is_empty());
        assert_eq!(out[1].payload, b"two");
        d.push(a, b, b"");
        assert_eq!(d.get(0).map(|x| x.payload.len()), Some(0));
    }
}
