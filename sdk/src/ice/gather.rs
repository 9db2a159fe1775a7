//! Server-reflexive gathering: STUN Binding requests to the configured servers,
//! sent *from the shared socket*, so the mapping the server reports is the one
//! QUIC and the peers' checks go through (mission, finding 6).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::stun::{Class, Message, MessageBuilder, Method, TransactionId};

/// First retransmission timeout (RFC 8489 §6.2.1 suggests 500 ms; servers we
/// gather from are one RTT away and a late candidate delays the connection).
const INITIAL_RTO: Duration = Duration::from_millis(250);
/// Requests sent per server at most before giving up.
const MAX_SENDS: u32 = 5;

#[derive(Debug, Clone, Copy)]
struct Txn {
    server: SocketAddr,
    base: SocketAddr,
    next: Instant,
    rto: Duration,
    sends: u32,
}

/// What a gathering transaction found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gathered {
    /// The server saw `base` as `mapped`.
    Mapped {
        server: SocketAddr,
        base: SocketAddr,
        mapped: SocketAddr,
        /// The mapping this server reported before, if it differs.
        previous: Option<SocketAddr>,
    },
    /// The server did not answer.
    TimedOut { server: SocketAddr },
}

/// Outstanding Binding transactions and the mappings they found.
#[derive(Debug, Default)]
pub(crate) struct Gatherer {
    txns: BTreeMap<TransactionId, Txn>,
    mapped: BTreeMap<SocketAddr, SocketAddr>,
}

impl Gatherer {
    /// Starts a Binding transaction to `server` from `base`; returns the request.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        server: SocketAddr,
        base: SocketAddr,
        tid: TransactionId,
    ) -> Vec<u8> {
        // One transaction per server at a time.
        self.txns.retain(|_, t| t.server != server);
        self.txns.insert(
            tid,
            Txn {
                server,
                base,
                next: now + INITIAL_RTO,
                rto: INITIAL_RTO,
                sends: 1,
            },
        );
        request(tid)
    }

    /// A STUN message from `from`: returns what it means if it answers one of
    /// our transactions, `None` otherwise (it is someone else's).
    pub(crate) fn handle_response(&mut self, from: SocketAddr, bytes: &[u8]) -> Option<Gathered> {
        let message = Message::decode(bytes).ok()?;
        if message.method() != Method::BINDING {
            return None;
        }
        let tid = message.transaction_id();
        let txn = self.txns.get(&tid).copied()?;
        if txn.server != from {
            return None;
        }
        match message.class() {
            Class::SuccessResponse => {}
            Class::ErrorResponse => {
                self.txns.remove(&tid);
                tracing::debug!(server = %from, "STUN server refused our Binding request");
                return Some(Gathered::TimedOut { server: from });
            }
            _ => return None,
        }
        self.txns.remove(&tid);
        let mapped = message
            .xor_mapped_address()
            .or_else(|| message.mapped_address())?;
        let previous = self
            .mapped
            .insert(from, mapped)
            .filter(|&old| old != mapped);
        Some(Gathered::Mapped {
            server: from,
            base: txn.base,
            mapped,
            previous,
        })
    }

    /// Retransmits due requests into `out` (server, bytes); returns the
    /// transactions that gave up.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> Vec<Gathered> {
        let mut failed = Vec::new();
        self.txns.retain(|tid, t| {
            if t.next > now {
                return true;
            }
            if t.sends >= MAX_SENDS {
                tracing::debug!(server = %t.server, "STUN server did not answer; no server-reflexive candidate from it");
                failed.push(Gathered::TimedOut { server: t.server });
                return false;
            }
            t.sends += 1;
            t.rto *= 2;
            t.next = now + t.rto;
            out.push((t.server, request(*tid)));
            true
        });
        failed
    }

    /// The next retransmission.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.txns.values().map(|t| t.next).min()
    }

    /// Whether any transaction is outstanding.
    pub(crate) fn is_busy(&self) -> bool {
        !self.txns.is_empty()
    }
}

fn request(tid: TransactionId) -> Vec<u8> {
    MessageBuilder::new(Class::Request, Method::BINDING, tid).finish_with_fingerprint()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stun::Attribute;

    fn response(tid: TransactionId, mapped: SocketAddr) -> Vec<u8> {
        let mut b = MessageBuilder::new(Class::SuccessResponse, Method::BINDING, tid);
        b.add(&Attribute::XorMappedAddress(mapped)).unwrap();
        b.finish_with_fingerprint()
    }

    #[test]
    fn answers_give_mappings_and_report_changes() {
        let now = Instant::now();
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let base: SocketAddr = "10.0.0.2:5000".parse().unwrap();
        let mut g = Gatherer::default();
        let tid = TransactionId::new([1; 12]);
        g.start(now, server, base, tid);
        let m1: SocketAddr = "198.51.100.1:6000".parse().unwrap();
        assert_eq!(
            g.handle_response("192.0.2.9:3478".parse().unwrap(), &response(tid, m1)),
            None
        );
        assert_eq!(
            g.handle_response(server, &response(tid, m1)),
            Some(Gathered::Mapped {
                server,
                base,
                mapped: m1,
                previous: None
            })
        );
        assert!(!g.is_busy());
        let tid2 = TransactionId::new([2; 12]);
        g.start(now, server, base, tid2);
        let m2: SocketAddr = "198.51.100.1:6001".parse().unwrap();
        assert_eq!(
            g.handle_response(server, &response(tid2, m2)),
            Some(Gathered::Mapped {
                server,
                base,
                mapped: m2,
                previous: Some(m1)
            })
        );
    }

    #[test]
    fn retransmits_then_gives_up() {
        let mut now = Instant::now();
        let server: SocketAddr = "192.0.2.1:3478".parse().unwrap();
        let mut g = Gatherer::default();
        g.start(
            now,
            server,
            "10.0.0.2:5000".parse().unwrap(),
            TransactionId::new([1; 12]),
        );
        let mut out = Vec::new();
        let mut failed = Vec::new();
        while let Some(t) = g.poll_timeout() {
            now = t;
            failed.extend(g.handle_timeout(now, &mut out));
        }
        assert_eq!(out.len(), (MAX_SENDS - 1) as usize);
        assert_eq!(failed, vec![Gathered::TimedOut { server }]);
        assert_eq!(g.handle_response(server, &[0, 1, 2]), None);
    }
}
