//! [`NatDescriber`]: the NAT description at connect time, from three STUN
//! Binding requests on the shared socket.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::path::canonical;
use crate::signal::NatDescription;
use crate::stun::{
    Attribute, AttributeType, Class, Message, MessageBuilder, Method, TransactionId,
};

const RTO: Duration = Duration::from_millis(250);
/// Requests per address at most (about 1.75 s in all).
const MAX_SENDS: u32 = 3;

#[derive(Debug, Clone, Copy)]
struct Txn {
    /// Position of this destination in the order mappings were made.
    order: usize,
    server: SocketAddr,
    next: Instant,
    rto: Duration,
    sends: u32,
}

/// Measures this side's NAT cheaply: a Binding request to the server's
/// primary address, whose answer names the RFC 5780 OTHER-ADDRESS; then one
/// to the primary IP at the other port and one to the other IP and port, sent
/// together in that order. Three public ports for one local port, oldest
/// mapping first, classified by [`NatDescription::from_observed`].
///
/// A server without RFC 5780 (no OTHER-ADDRESS) or a lost answer leaves the
/// description with what was seen (mapping `Unknown` from one sample). Sans-IO:
/// [`NatDescriber::start`] gives the first request; feed answers to
/// [`NatDescriber::handle_response`], run [`NatDescriber::handle_timeout`] at
/// [`NatDescriber::poll_timeout`]; [`NatDescriber::result`] once done.
#[derive(Debug)]
pub struct NatDescriber {
    local_port: u16,
    txns: BTreeMap<TransactionId, Txn>,
    seen: BTreeMap<usize, u16>,
    done: bool,
    next_tid: u64,
    seed: u64,
}

impl NatDescriber {
    /// Starts with a request to `server` (the primary address) from the shared
    /// socket bound at `local_port`; returns (destination, datagram).
    /// `seed` makes transaction IDs (random in production, fixed in tests).
    pub fn start(
        now: Instant,
        server: SocketAddr,
        local_port: u16,
        seed: u64,
    ) -> (NatDescriber, (SocketAddr, Vec<u8>)) {
        let mut d = NatDescriber {
            local_port,
            txns: BTreeMap::new(),
            seen: BTreeMap::new(),
            done: false,
            next_tid: 0,
            seed,
        };
        let first = d.request(now, 0, canonical(server));
        (d, first)
    }

    fn request(&mut self, now: Instant, order: usize, server: SocketAddr) -> (SocketAddr, Vec<u8>) {
        self.next_tid += 1;
        let mut id = [0u8; 12];
        id[..8].copy_from_slice(&self.seed.to_le_bytes());
        id[8..].copy_from_slice(&u32::try_from(self.next_tid).unwrap_or(0).to_le_bytes());
        let tid = TransactionId::new(id);
        self.txns.insert(
            tid,
            Txn {
                order,
                server,
                next: now + RTO,
                rto: RTO,
                sends: 1,
            },
        );
        (server, binding(tid))
    }

    /// A datagram from `from`: returns whether it answered one of our
    /// requests, and pushes follow-up requests into `out`.
    pub fn handle_response(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &[u8],
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) -> bool {
        let Ok(m) = Message::decode(bytes) else {
            return false;
        };
        if m.method() != Method::BINDING || m.class() != Class::SuccessResponse {
            return false;
        }
        let from = canonical(from);
        let Some(txn) = self.txns.get(&m.transaction_id()).copied() else {
            return false;
        };
        if txn.server != from {
            return false;
        }
        self.txns.remove(&m.transaction_id());
        let Some(mapped) = m.xor_mapped_address().or_else(|| m.mapped_address()) else {
            return true;
        };
        self.seen.insert(txn.order, mapped.port());
        if txn.order == 0 {
            match m.get(AttributeType::OTHER_ADDRESS) {
                Some(Attribute::OtherAddress(other))
                    if other.is_ipv4() == from.is_ipv4()
                        && other.ip() != from.ip()
                        && other.port() != from.port() =>
                {
                    let other = canonical(*other);
                    out.push(self.request(now, 1, SocketAddr::new(from.ip(), other.port())));
                    out.push(self.request(now, 2, other));
                }
                _ => {
                    tracing::debug!(server = %from, "no RFC 5780 OTHER-ADDRESS: NAT mapping not described");
                }
            }
        }
        self.done = self.txns.is_empty();
        true
    }

    /// Retransmits into `out`; gives up on addresses after [`MAX_SENDS`].
    pub fn handle_timeout(&mut self, now: Instant, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let mut gave_up = false;
        self.txns.retain(|tid, t| {
            if t.next > now {
                return true;
            }
            if t.sends >= MAX_SENDS {
                gave_up = true;
                return false;
            }
            t.sends += 1;
            t.rto *= 2;
            t.next = now + t.rto;
            out.push((t.server, binding(*tid)));
            true
        });
        if gave_up {
            tracing::debug!("a STUN address did not answer: the NAT description is partial");
        }
        self.done = self.txns.is_empty();
    }

    /// When to call [`NatDescriber::handle_timeout`] (`None` when done).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.txns.values().map(|t| t.next).min()
    }

    /// The description once every request was answered or given up.
    pub fn result(&self) -> Option<NatDescription> {
        if !self.done {
            return None;
        }
        // A missing middle sample would fake a step: keep the ports in order
        // only up to the first gap.
        let mut ports = Vec::new();
        for i in 0..3 {
            match self.seen.get(&i) {
                Some(&p) => ports.push(p),
                None => break,
            }
        }
        Some(NatDescription::from_observed(&ports, self.local_port))
    }
}

fn binding(tid: TransactionId) -> Vec<u8> {
    MessageBuilder::new(Class::Request, Method::BINDING, tid).finish_with_fingerprint()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signal::{NatMapping, PortAllocation};

    fn answer(req: &[u8], mapped: SocketAddr, other: Option<SocketAddr>) -> Vec<u8> {
        let m = Message::decode(req).unwrap();
        let mut b =
            MessageBuilder::new(Class::SuccessResponse, Method::BINDING, m.transaction_id());
        b.add(&Attribute::XorMappedAddress(mapped)).unwrap();
        if let Some(o) = other {
            b.add(&Attribute::OtherAddress(o)).unwrap();
        }
        b.finish_with_fingerprint()
    }

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn three_bindings_describe_a_sequential_symmetric_nat() {
        let t0 = Instant::now();
        let primary = a("203.0.113.1:3478");
        let other = a("203.0.113.2:3479");
        let (mut d, (to, req)) = NatDescriber::start(t0, primary, 5000, 1);
        assert_eq!(to, primary);
        let mut out = Vec::new();
        assert!(d.handle_response(
            t0,
            primary,
            &answer(&req, a("198.51.100.1:40000"), Some(other)),
            &mut out
        ));
        assert_eq!(d.result(), None);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, a("203.0.113.1:3479"));
        assert_eq!(out[1].0, other);
        let mut more = Vec::new();
        // Answers may come back in any order.
        d.handle_response(
            t0,
            out[1].0,
            &answer(&out[1].1, a("198.51.100.1:40002"), None),
            &mut more,
        );
        d.handle_response(
            t0,
            out[0].0,
            &answer(&out[0].1, a("198.51.100.1:40001"), None),
            &mut more,
        );
        assert!(more.is_empty());
        let r = d.result().unwrap();
        assert_eq!(r.mapping, NatMapping::EndpointDependent);
        assert_eq!(r.allocation, PortAllocation::Sequential { delta: 1 });
        assert_eq!(r.observed, vec![40000, 40001, 40002]);
    }

    #[test]
    fn without_rfc5780_or_answers_the_description_stays_unknown() {
        let t0 = Instant::now();
        let primary = a("203.0.113.1:3478");
        let (mut d, (_, req)) = NatDescriber::start(t0, primary, 5000, 1);
        let mut out = Vec::new();
        // An answer from elsewhere or garbage is not ours.
        assert!(!d.handle_response(t0, a("203.0.113.9:1"), &req, &mut out));
        assert!(!d.handle_response(t0, primary, b"junk", &mut out));
        d.handle_response(
            t0,
            primary,
            &answer(&req, a("198.51.100.1:5000"), None),
            &mut out,
        );
        let r = d.result().unwrap();
        assert_eq!(r.mapping, NatMapping::Unknown);
        assert_eq!(r.observed, vec![5000]);

        let (mut silent, _) = NatDescriber::start(t0, primary, 5000, 2);
        let mut sends = 1;
        while let Some(t) = silent.poll_timeout() {
            let mut out = Vec::new();
            silent.handle_timeout(t, &mut out);
            sends += out.len();
        }
        assert_eq!(sends, MAX_SENDS as usize);
        assert_eq!(silent.result().unwrap(), NatDescription::unknown());
    }
}
